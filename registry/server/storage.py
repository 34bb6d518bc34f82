"""Repository storage: content-addressed blobs shared by every repository, and per
repository links, manifest revisions, tags and referrers.  It knows no HTTP: it
raises ``imagefmt.errors`` classes only.

On disk, under ``root`` (:class:`Layout` is the only place paths are built)::

    <root>/
    ├── blobs/<alg>/<hex[:2]>/<hex>                the bytes; created once, by rename, after verification
    ├── repositories/<name…>/                      <name> nests (a/b/c); its components never start
    │   │                                          with "_", so the entries below cannot clash with one
    │   ├── _layers/<alg>/<hex>                    empty: <name> may serve blob <alg>:<hex>
    │   ├── _manifests/revisions/<alg>/<hex>       holds the manifest's media type; its bytes are a blob
    │   ├── _manifests/tags/<tag>                  holds the digest the tag points at ("sha256:…")
    │   ├── _referrers/<alg>/<subject hex>/<alg>-<hex>   the referrer's descriptor as JSON
    │   └── _uploads/<uuid>/{data,state.json}      an upload session (see registry/uploads.py)
    ├── tmp/                                       temp files: monolithic uploads, manifests, tags
    └── gc.lock                                    pushes flock it shared; the GC sweep exclusive

Every write is atomic (a temp file in the same filesystem, then ``os.replace``),
so a reader sees the old or the new file, never half of one, even after kill -9.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from imagefmt.digest import Digest
from imagefmt.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
)
from imagefmt.manifest import Descriptor
from imagefmt.reference import is_valid_repository_path, is_valid_tag

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    media_type: str
    raw: bytes


class Storage(Protocol):
    """What the API needs from a storage backend.  Names and tags are validated
    by the caller (:func:`check_name`, :func:`check_tag`)."""

    def blob_size(self, digest: Digest) -> int:
        """The size of a stored blob; BlobUnknown."""
        ...

    def open_blob(self, digest: Digest) -> BinaryIO:
        """A readable file of the blob (a real file, so sendfile can serve it); BlobUnknown."""
        ...

    def put_blob(self, src: IO[bytes], expected: Digest, length: int | None = None) -> int:
        """Store ``src`` as ``expected`` and return its size.  Verified (DigestInvalid,
        SizeInvalid when ``length`` is given and differs), atomic and idempotent:
        nothing is visible unless the whole content matched."""
        ...

    def touch_blob(self, digest: Digest) -> None:
        """Mark a blob as just used, so a running GC spares it (registry/gc.py)."""
        ...

    def push_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held by a push while it checks blobs and writes links; GC sweeps exclusively."""
        ...

    def link_blob(self, name: str, digest: Digest) -> None:
        """Let ``name`` serve a stored blob; idempotent; BlobUnknown if not stored."""
        ...

    def linked_blob_size(self, name: str, digest: Digest) -> int:
        """The size of a blob ``name`` may serve (a layer, config or manifest); BlobUnknown."""
        ...

    def unlink_blob(self, name: str, digest: Digest) -> None:
        """Stop serving a blob from ``name`` (the bytes stay until GC); BlobUnknown."""
        ...

    def put_manifest(self, name: str, raw: bytes, media_type: str, digest: Digest) -> None:
        """Store a verified manifest's exact bytes as a revision of ``name``; idempotent."""
        ...

    def manifest(self, name: str, reference: str) -> StoredManifest:
        """A manifest by tag or digest; ManifestUnknown."""
        ...

    def resolve(self, name: str, reference: str) -> Digest:
        """The digest a tag (or a digest reference) names; ManifestUnknown, DigestInvalid."""
        ...

    def delete_manifest(self, name: str, digest: Digest) -> None:
        """Remove a revision, every tag pointing at it and its referrer entry; ManifestUnknown."""
        ...

    def tag(self, name: str, tag: str, digest: Digest) -> None:
        """Point ``tag`` at a stored revision (atomic replace)."""
        ...

    def untag(self, name: str, tag: str) -> None:
        """Remove a tag; ManifestUnknown."""
        ...

    def tags(self, name: str) -> list[str]:
        """The tags of ``name`` in lexical order; NameUnknown for an unknown repository."""
        ...

    def repositories(self) -> list[str]:
        """Every repository with a blob or a manifest, in lexical order."""
        ...

    def add_referrer(self, name: str, subject: Digest, descriptor: Descriptor) -> None:
        """Record that ``descriptor`` names ``subject`` as its subject."""
        ...

    def referrers(self, name: str, subject: Digest) -> list[Descriptor]:
        """The descriptors of the manifests whose subject is ``subject`` (maybe none)."""
        ...

    def repository_size(self, name: str) -> int:
        """The bytes of the blobs and manifests ``name`` serves (for quotas)."""
        ...


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise NameInvalid.

    The regex admits no ``..``, ``/`` at either end or uppercase, so a name is a
    safe relative path below ``repositories/``."""
    if not is_valid_repository_path(name):
        raise NameInvalid(f"invalid repository name {name!r}", {"name": name})
    return name


def check_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise TagInvalid(f"invalid tag {tag!r}", {"tag": tag})
    return tag


class Layout:
    """Every path of the tree drawn in the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.gc_lock = root / "gc.lock"

    def blob(self, d: Digest) -> Path:
        return self.root / "blobs" / d.algorithm / d.hex[:2] / d.hex

    def blobs(self) -> Path:
        return self.root / "blobs"

    def repositories(self) -> Path:
        return self.root / "repositories"

    def repo(self, name: str) -> Path:
        return self.root / "repositories" / name

    def layer_link(self, name: str, d: Digest) -> Path:
        return self.repo(name) / "_layers" / d.algorithm / d.hex

    def revision(self, name: str, d: Digest) -> Path:
        return self.repo(name) / "_manifests" / "revisions" / d.algorithm / d.hex

    def tags(self, name: str) -> Path:
        return self.repo(name) / "_manifests" / "tags"

    def tag(self, name: str, tag: str) -> Path:
        return self.tags(name) / tag

    def referrers(self, name: str, subject: Digest) -> Path:
        return self.repo(name) / "_referrers" / subject.algorithm / subject.hex

    def referrer(self, name: str, subject: Digest, d: Digest) -> Path:
        return self.referrers(name, subject) / f"{d.algorithm}-{d.hex}"

    def uploads(self, name: str) -> Path:
        return self.repo(name) / "_uploads"

    def upload(self, name: str, uuid: str) -> Path:
        return self.uploads(name) / uuid


def write_atomic(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Replace ``path`` with ``data`` all at once (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def copy_hashing(src: IO[bytes], dst: IO[bytes], hasher: hashlib._Hash, limit: int | None = None) -> int:
    """Copy ``src`` to ``dst`` in 1 MiB reads, hashing; return the bytes copied.

    With ``limit``, read at most that many bytes."""
    n = 0
    while limit is None or n < limit:
        chunk = src.read(CHUNK if limit is None else min(CHUNK, limit - n))
        if not chunk:
            break
        hasher.update(chunk)
        dst.write(chunk)
        n += len(chunk)
    return n


class FilesystemStorage:
    """:class:`Storage` on a local directory (see the tree above).

    ``fsync`` makes committed blobs durable against power loss as well as crashes;
    a crash of the process alone never exposes a partial blob either way."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.layout = Layout(root)
        self.fsync = fsync
        self.layout.tmp.mkdir(parents=True, exist_ok=True)
        self.layout.repositories().mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[Digest, bytes] = OrderedDict()  # manifest bytes; immutable by digest
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------ locks ---

    @contextlib.contextmanager
    def push_lock(self) -> Iterator[None]:
        """Held (shared) while a push checks blobs and writes links; GC sweeps exclusively."""
        with _flock(self.layout.gc_lock, fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def gc_lock(self) -> Iterator[None]:
        with _flock(self.layout.gc_lock, fcntl.LOCK_EX):
            yield

    # ------------------------------------------------------------ blobs ---

    def blob_size(self, digest: Digest) -> int:
        try:
            return self.layout.blob(digest).stat().st_size
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} unknown", {"digest": str(digest)}) from None

    def open_blob(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.layout.blob(digest), "rb")  # the caller streams and closes it
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} unknown", {"digest": str(digest)}) from None

    def put_blob(self, src: IO[bytes], expected: Digest, length: int | None = None) -> int:
        hasher = hashlib.new(expected.algorithm)
        fd, tmp = tempfile.mkstemp(dir=self.layout.tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                size = copy_hashing(src, f, hasher, length)
            if length is not None and size != length:
                raise SizeInvalid(f"blob {expected}: got {size} bytes, Content-Length said {length}")
            got = Digest(expected.algorithm, hasher.hexdigest())
            if got != expected:
                raise DigestInvalid(f"blob digest mismatch: expected {expected}, got {got}", str(expected))
            self.commit_file(Path(tmp), expected)
            return size
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def commit_file(self, path: Path, digest: Digest) -> None:
        """Move a verified file into the blob store (a no-op but a touch if present).

        The caller has checked that ``path`` hashes to ``digest``.  The mtime of an
        existing blob is refreshed so that a running GC spares it (registry/gc.py)."""
        dest = self.layout.blob(digest)
        if dest.exists():
            with contextlib.suppress(FileNotFoundError):
                os.utime(dest)
            return
        if self.fsync:
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)

    def touch_blob(self, digest: Digest) -> None:
        """Refresh a blob's mtime (a client just relied on it existing)."""
        with contextlib.suppress(OSError):
            os.utime(self.layout.blob(digest))

    # ------------------------------------------------------------ links ---

    def link_blob(self, name: str, digest: Digest) -> None:
        self.blob_size(digest)
        link = self.layout.layer_link(name, digest)
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.touch()

    def linked_blob_size(self, name: str, digest: Digest) -> int:
        if not (self.layout.layer_link(name, digest).exists() or self.layout.revision(name, digest).exists()):
            raise BlobUnknown(f"blob {digest} unknown to repository {name}", {"digest": str(digest)})
        return self.blob_size(digest)

    def unlink_blob(self, name: str, digest: Digest) -> None:
        try:
            self.layout.layer_link(name, digest).unlink()
        except FileNotFoundError:
            raise BlobUnknown(
                f"blob {digest} unknown to repository {name}", {"digest": str(digest)}
            ) from None

    # -------------------------------------------------------- manifests ---

    def put_manifest(self, name: str, raw: bytes, media_type: str, digest: Digest) -> None:
        dest = self.layout.blob(digest)
        if dest.exists():
            self.touch_blob(digest)
        else:
            write_atomic(dest, raw, self.layout.tmp)
        rev = self.layout.revision(name, digest)
        if not rev.exists() or rev.read_text() != media_type:
            write_atomic(rev, media_type.encode(), self.layout.tmp)

    def manifest(self, name: str, reference: str) -> StoredManifest:
        digest = self.resolve(name, reference)
        try:
            media_type = self.layout.revision(name, digest).read_text()
        except FileNotFoundError:
            raise _manifest_unknown(name, reference) from None
        raw = self.manifest_bytes(digest)
        if raw is None:
            raise _manifest_unknown(name, reference)
        return StoredManifest(digest, media_type, raw)

    def resolve(self, name: str, reference: str) -> Digest:
        """The digest of a tag or a digest reference; ManifestUnknown for a missing tag."""
        if ":" in reference:
            return Digest.parse(reference)
        check_tag(reference)
        try:
            return Digest.parse(self.layout.tag(name, reference).read_text().strip())
        except FileNotFoundError:
            raise _manifest_unknown(name, reference) from None

    def manifest_bytes(self, digest: Digest) -> bytes | None:
        with self._cache_lock:
            raw = self._cache.get(digest)
            if raw is not None:
                self._cache.move_to_end(digest)
                return raw
        try:
            raw = self.layout.blob(digest).read_bytes()
        except FileNotFoundError:
            return None
        with self._cache_lock:
            self._cache[digest] = raw
            while len(self._cache) > 1024:
                self._cache.popitem(last=False)
        return raw

    def revisions(self, name: str) -> list[Digest]:
        """Every manifest revision of ``name`` (for GC)."""
        base = self.layout.repo(name) / "_manifests" / "revisions"
        return [Digest(alg.name, p.name) for alg in _dirs(base) for p in _entries(alg)]

    def layer_links(self, name: str) -> list[Digest]:
        base = self.layout.repo(name) / "_layers"
        return [Digest(alg.name, p.name) for alg in _dirs(base) for p in _entries(alg)]

    def delete_manifest(self, name: str, digest: Digest) -> None:
        rev = self.layout.revision(name, digest)
        if not rev.exists():
            raise _manifest_unknown(name, str(digest))
        for tag in self.tags_of(name, digest):
            with contextlib.suppress(FileNotFoundError):
                self.layout.tag(name, tag).unlink()
        raw = self.manifest_bytes(digest)
        subject = _subject_of(raw) if raw else None
        if subject is not None:
            with contextlib.suppress(FileNotFoundError):
                self.layout.referrer(name, subject, digest).unlink()
        rev.unlink()

    def tags_of(self, name: str, digest: Digest) -> list[str]:
        found = []
        for p in _entries(self.layout.tags(name)):
            with contextlib.suppress(OSError):
                if p.read_text().strip() == str(digest):
                    found.append(p.name)
        return found

    # ------------------------------------------------------------- tags ---

    def tag(self, name: str, tag: str, digest: Digest) -> None:
        path = self.layout.tag(name, check_tag(tag))
        with contextlib.suppress(FileNotFoundError):
            if path.read_text() == str(digest):
                return
        write_atomic(path, str(digest).encode(), self.layout.tmp)

    def untag(self, name: str, tag: str) -> None:
        try:
            self.layout.tag(name, check_tag(tag)).unlink()
        except FileNotFoundError:
            raise _manifest_unknown(name, tag) from None

    def tags(self, name: str) -> list[str]:
        repo = self.layout.repo(name)
        if not repo.is_dir():
            raise NameUnknown(f"repository {name} not known to registry", {"name": name})
        return sorted(p.name for p in _entries(self.layout.tags(name)))

    def repositories(self) -> list[str]:
        found: list[str] = []
        _walk_repositories(self.layout.repositories(), "", found)
        return sorted(found)

    def repository_exists(self, name: str) -> bool:
        return self.layout.repo(name).is_dir()

    # -------------------------------------------------------- referrers ---

    def add_referrer(self, name: str, subject: Digest, descriptor: Descriptor) -> None:
        path = self.layout.referrer(name, subject, descriptor.digest)
        if not path.exists():
            write_atomic(path, json.dumps(descriptor.to_json()).encode(), self.layout.tmp)

    def referrers(self, name: str, subject: Digest) -> list[Descriptor]:
        out = []
        for p in sorted(_entries(self.layout.referrers(name, subject))):
            with contextlib.suppress(OSError, ValueError):
                out.append(Descriptor.from_json(json.loads(p.read_bytes())))
        return out

    def repository_size(self, name: str) -> int:
        total = 0
        for d in {*self.layer_links(name), *self.revisions(name)}:
            with contextlib.suppress(BlobUnknown):
                total += self.blob_size(d)
        return total


def _manifest_unknown(name: str, reference: str) -> ManifestUnknown:
    return ManifestUnknown(f"manifest unknown: {name}:{reference}", {"name": name, "reference": reference})


def _subject_of(raw: bytes) -> Digest | None:
    try:
        subject = json.loads(raw).get("subject")
        return Digest.parse(subject["digest"]) if subject else None
    except (ValueError, TypeError, KeyError, AttributeError, DigestInvalid):
        return None


def _entries(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _dirs(path: Path) -> list[Path]:
    return [p for p in _entries(path) if p.is_dir()]


def _walk_repositories(base: Path, prefix: str, found: list[str]) -> None:
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return
    names = {e.name for e in entries}
    if prefix and ("_manifests" in names or "_layers" in names):
        found.append(prefix.rstrip("/"))
    for e in entries:
        if e.is_dir() and not e.name.startswith("_"):
            _walk_repositories(Path(e.path), prefix + e.name + "/", found)


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except OSError as err:  # EINTR on signal delivery
                if err.errno != errno.EINTR:
                    raise
        yield
    finally:
        os.close(fd)
