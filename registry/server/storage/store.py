"""Repository storage over a storage driver: content-addressed blobs shared by
every repository, and per repository links, manifest revisions, tags and
referrers, laid out as ``paths.py`` draws.  It knows no HTTP: it raises
``imagefmt.errors`` classes only.

Every small write is the driver's atomic ``put_content`` and a blob becomes
visible by one ``move`` after it was verified, so a reader sees the old or the
new state, never half of one, even after kill -9.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, BinaryIO, Protocol

from imagefmt.digest import Digest
from imagefmt.errors import BlobUnknown, DigestInvalid, ManifestUnknown, NameUnknown, SizeInvalid
from imagefmt.manifest import Descriptor
from registry.server.storage import paths
from registry.server.storage.driver import FileWriter, PathNotFound, StorageDriver, UnsupportedMethod
from registry.server.storage.paths import check_tag

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    media_type: str
    raw: bytes


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


def copy_hashing(src: IO[bytes], dst: _Sink, hasher: _Hasher, limit: int | None = None) -> int:
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


_LOOKUPS = ThreadPoolExecutor(16, thread_name_prefix="lookup")  # a request's independent reads


class Storage:
    """Blobs, links, manifests, tags and referrers on ``driver``.  Names and tags
    are validated by the caller (``paths.check_name``, ``paths.check_tag``)."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self._cache: OrderedDict[Digest, bytes] = OrderedDict()  # manifest bytes; immutable by digest
        self._cache_lock = threading.Lock()

    def _exists(self, path: str) -> bool:
        return self.driver.exists(path)

    def _children(self, path: str) -> list[str]:
        """The names below a directory, none when it is missing."""
        try:
            return [p.rsplit("/", 1)[1] for p in self.driver.list(path)]
        except PathNotFound:
            return []

    # ------------------------------------------------------------ locks ---

    def push_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held (shared) while a push checks blobs and writes links; GC sweeps exclusively."""
        return self.driver.lock(paths.GC_LOCK, exclusive=False)

    def gc_lock(self) -> contextlib.AbstractContextManager[None]:
        return self.driver.lock(paths.GC_LOCK, exclusive=True)

    # ------------------------------------------------------------ blobs ---

    def blob_size(self, digest: Digest) -> int:
        """The size of a stored blob; BlobUnknown."""
        try:
            return self.driver.stat(paths.blob(digest)).size
        except PathNotFound:
            raise _blob_unknown(digest) from None

    def open_blob(self, digest: Digest, offset: int = 0) -> BinaryIO:
        """A stream of the blob from ``offset`` (a real file on the filesystem
        driver, which gunicorn sends with sendfile); BlobUnknown."""
        try:
            return self.driver.reader(paths.blob(digest), offset)
        except PathNotFound:
            raise _blob_unknown(digest) from None

    def blob_url(self, digest: Digest) -> str | None:
        """A URL that serves the blob without us (the driver's ``url_for``), or None."""
        try:
            return self.driver.url_for(paths.blob(digest))
        except UnsupportedMethod:
            return None

    def put_blob(self, src: IO[bytes], expected: Digest, length: int | None = None) -> int:
        """Store ``src`` as ``expected`` and return its size.  Verified (DigestInvalid,
        SizeInvalid when ``length`` is given and differs), atomic and idempotent:
        nothing is visible unless the whole content matched."""
        hasher = hashlib.new(expected.algorithm)
        tmp = paths.tmp(str(uuid.uuid4()))
        w = self.driver.writer(tmp)
        try:
            size = copy_hashing(src, w, hasher, length)
            if length is not None and size != length:
                raise SizeInvalid(f"blob {expected}: got {size} bytes, Content-Length said {length}")
            got = Digest(expected.algorithm, hasher.hexdigest())
            if got != expected:
                raise DigestInvalid(f"blob digest mismatch: expected {expected}, got {got}", str(expected))
            self.store_blob(tmp, expected, w)
        except BaseException:  # also a commit that meets a full disk: no temp file left
            w.cancel()
            raise
        return size

    def store_blob(self, path: str, digest: Digest, writer: FileWriter | None = None) -> None:
        """Make the verified content at ``path`` the blob ``digest``: commit its
        ``writer`` (when it is not committed yet) and move it into place.

        The caller has checked that it hashes to ``digest``.  When the blob exists
        already, the content is dropped uncommitted (no fsync) and the blob's mtime
        refreshed, so that a running GC spares it (registry/server/gc.py)."""
        dest = paths.blob(digest)
        if self._exists(dest):
            self.touch_blob(digest)
            if writer is not None:
                writer.cancel()
            else:
                with contextlib.suppress(PathNotFound):
                    self.driver.delete(path)
            return
        if writer is not None:
            writer.commit()
        self.driver.move(path, dest)

    def has_blob(self, digest: Digest) -> bool:
        return self._exists(paths.blob(digest))

    def touch_blob(self, digest: Digest) -> None:
        """Mark a blob as just used (a client relied on it existing), so a running GC spares it."""
        with contextlib.suppress(PathNotFound):
            self.driver.touch(paths.blob(digest))

    # ------------------------------------------------------------ links ---

    def link_blob(self, name: str, digest: Digest, stored: bool = False) -> None:
        """Let ``name`` serve a stored blob; idempotent; BlobUnknown if not stored
        (not checked again when the caller has just ``stored`` it)."""
        if not stored:
            self.blob_size(digest)
        link = paths.layer_link(name, digest)
        if not self._exists(link):
            self.driver.put_content(link, b"")

    def linked_blob_size(self, name: str, digest: Digest) -> int:
        """The size of a blob ``name`` may serve (a layer, config or manifest); BlobUnknown.

        The blob and the repository's link are looked up at once (on S3 a round trip
        each: a pull's blob GET waits for one)."""
        unknown = BlobUnknown(f"blob {digest} unknown to repository {name}", {"digest": str(digest)})
        linked = _LOOKUPS.submit(
            self._exists, paths.layer_link(name, digest)
        )  # at once: a round trip each on S3
        try:
            size = self.blob_size(digest)
        except BlobUnknown:
            raise unknown from None
        finally:
            is_linked = linked.result()
        if not (is_linked or self._exists(paths.revision(name, digest))):
            raise unknown
        return size

    def unlink_blob(self, name: str, digest: Digest) -> None:
        """Stop serving a blob from ``name`` (the bytes stay until GC); BlobUnknown."""
        try:
            self.driver.delete(paths.layer_link(name, digest))
        except PathNotFound:
            raise BlobUnknown(
                f"blob {digest} unknown to repository {name}", {"digest": str(digest)}
            ) from None

    def layer_links(self, name: str) -> list[Digest]:
        base = paths.layer_links(name)
        return [Digest(alg, hx) for alg in self._children(base) for hx in self._children(f"{base}/{alg}")]

    # -------------------------------------------------------- manifests ---

    def put_manifest(self, name: str, raw: bytes, media_type: str, digest: Digest) -> None:
        """Store a verified manifest's exact bytes as a revision of ``name``; idempotent."""
        if self._exists(paths.blob(digest)):
            self.touch_blob(digest)
        else:
            self.driver.put_content(paths.blob(digest), raw)
        rev = paths.revision(name, digest)
        try:
            same = self.driver.get_content(rev).decode() == media_type
        except PathNotFound:
            same = False
        if not same:
            self.driver.put_content(rev, media_type.encode())

    def manifest(self, name: str, reference: str) -> StoredManifest:
        """A manifest by tag or digest; ManifestUnknown.

        One read of the store for either (the bytes are cached by digest): a tag
        holds its revision's media type too, and a revision is removed only after
        the tags that point at it."""
        digest, media_type = self._resolve(name, reference)
        if not media_type:
            try:
                media_type = self.driver.get_content(paths.revision(name, digest)).decode()
            except PathNotFound:
                raise _manifest_unknown(name, reference) from None
        raw = self.manifest_bytes(digest)
        if raw is None:
            raise _manifest_unknown(name, reference)
        return StoredManifest(digest, media_type, raw)

    def resolve(self, name: str, reference: str) -> Digest:
        """The digest of a tag or a digest reference; ManifestUnknown for a missing
        tag, DigestInvalid."""
        return self._resolve(name, reference)[0]

    def _resolve(self, name: str, reference: str) -> tuple[Digest, str]:
        """(digest, the media type a tag records or "")."""
        if ":" in reference:
            return Digest.parse(reference), ""
        check_tag(reference)
        try:
            raw = self.driver.get_content(paths.tag(name, reference)).decode()
        except PathNotFound:
            raise _manifest_unknown(name, reference) from None
        digest, _, media_type = raw.partition("\n")
        return Digest.parse(digest.strip()), media_type.strip()

    def manifest_bytes(self, digest: Digest) -> bytes | None:
        with self._cache_lock:
            raw = self._cache.get(digest)
            if raw is not None:
                self._cache.move_to_end(digest)
                return raw
        try:
            raw = self.driver.get_content(paths.blob(digest))
        except PathNotFound:
            return None
        with self._cache_lock:
            self._cache[digest] = raw
            while len(self._cache) > 1024:
                self._cache.popitem(last=False)
        return raw

    def revisions(self, name: str) -> list[Digest]:
        """Every manifest revision of ``name`` (for GC)."""
        base = paths.revisions(name)
        return [Digest(alg, hx) for alg in self._children(base) for hx in self._children(f"{base}/{alg}")]

    def delete_manifest(self, name: str, digest: Digest) -> None:
        """Remove a revision, every tag pointing at it and its referrer entry; ManifestUnknown."""
        rev = paths.revision(name, digest)
        if not self._exists(rev):
            raise _manifest_unknown(name, str(digest))
        for tag in self.tags_of(name, digest):
            with contextlib.suppress(PathNotFound):
                self.driver.delete(paths.tag(name, tag))
        raw = self.manifest_bytes(digest)
        subject = _subject_of(raw) if raw else None
        if subject is not None:
            with contextlib.suppress(PathNotFound):
                self.driver.delete(paths.referrer(name, subject, digest))
        with contextlib.suppress(PathNotFound):
            self.driver.delete(rev)

    def tags_of(self, name: str, digest: Digest) -> list[str]:
        found = []
        for tag in self._children(paths.tags(name)):
            with contextlib.suppress(PathNotFound):
                if self.driver.get_content(paths.tag(name, tag)).decode().partition("\n")[0] == str(digest):
                    found.append(tag)
        return found

    # ------------------------------------------------------------- tags ---

    def tag(self, name: str, tag: str, digest: Digest, media_type: str = "") -> None:
        """Point ``tag`` at a stored revision (atomic replace).  The tag holds the
        digest and, on a second line, the revision's media type (read from the
        revision when not given), so that a GET by tag reads one object."""
        path = paths.tag(name, check_tag(tag))
        if not media_type:
            try:
                media_type = self.driver.get_content(paths.revision(name, digest)).decode()
            except PathNotFound:
                raise _manifest_unknown(name, str(digest)) from None
        content = f"{digest}\n{media_type}".encode()
        with contextlib.suppress(PathNotFound):
            if self.driver.get_content(path) == content:
                return
        self.driver.put_content(path, content)

    def untag(self, name: str, tag: str) -> None:
        """Remove a tag; ManifestUnknown."""
        try:
            self.driver.delete(paths.tag(name, check_tag(tag)))
        except PathNotFound:
            raise _manifest_unknown(name, tag) from None

    def tags(self, name: str) -> list[str]:
        """The tags of ``name`` in lexical order; NameUnknown for an unknown repository."""
        if not self.repository_exists(name):
            raise NameUnknown(f"repository {name} not known to registry", {"name": name})
        return sorted(self._children(paths.tags(name)))

    def repositories(self) -> list[str]:
        """Every repository with a blob or a manifest, in lexical order."""
        found = [n for n, children in self.repository_dirs() if {"_manifests", "_layers"} & children]
        return sorted(found)

    def repository_dirs(self) -> Iterator[tuple[str, set[str]]]:
        """(name, the names in it) of every directory below ``repositories/`` that
        may be a repository (a name, nested or not: its parts never start with "_")."""
        todo = [(n, paths.repository(n)) for n in self._children(paths.REPOSITORIES) if not n.startswith("_")]
        while todo:
            name, path = todo.pop()
            children = set(self._children(path))
            yield name, children
            todo.extend((f"{name}/{c}", f"{path}/{c}") for c in sorted(children) if not c.startswith("_"))

    def repository_exists(self, name: str) -> bool:
        try:
            return self.driver.stat(paths.repository(name)).is_dir
        except PathNotFound:
            return False

    # -------------------------------------------------------- referrers ---

    def add_referrer(self, name: str, subject: Digest, descriptor: Descriptor) -> None:
        """Record that ``descriptor`` names ``subject`` as its subject."""
        path = paths.referrer(name, subject, descriptor.digest)
        if not self._exists(path):
            self.driver.put_content(path, json.dumps(descriptor.to_json()).encode())

    def referrers(self, name: str, subject: Digest) -> list[Descriptor]:
        """The descriptors of the manifests whose subject is ``subject`` (maybe none)."""
        out = []
        base = paths.referrers(name, subject)
        for entry in sorted(self._children(base)):
            with contextlib.suppress(PathNotFound, ValueError):
                out.append(Descriptor.from_json(json.loads(self.driver.get_content(f"{base}/{entry}"))))
        return out

    def repository_size(self, name: str) -> int:
        """The bytes of the blobs and manifests ``name`` serves (for quotas)."""
        total = 0
        for d in {*self.layer_links(name), *self.revisions(name)}:
            with contextlib.suppress(BlobUnknown):
                total += self.blob_size(d)
        return total


def _blob_unknown(digest: Digest) -> BlobUnknown:
    return BlobUnknown(f"blob {digest} unknown", {"digest": str(digest)})


def _manifest_unknown(name: str, reference: str) -> ManifestUnknown:
    return ManifestUnknown(f"manifest unknown: {name}:{reference}", {"name": name, "reference": reference})


def _subject_of(raw: bytes) -> Digest | None:
    try:
        subject = json.loads(raw).get("subject")
        return Digest.parse(subject["digest"]) if subject else None
    except (ValueError, TypeError, KeyError, AttributeError, DigestInvalid):
        return None
