"""Pull an image from a registry into the local store.

The manifest (an index is resolved to one platform) and the config come
first; then the layers the store lacks are downloaded in parallel, each
hashed while it streams and unpacked as soon as it is verified, so unpacking
overlaps the downloads.  The image is registered only when every blob and
snapshot verified: a failed pull leaves no image and no unverified blob.

A download streams into ``<store>/tmp/pull-<alg>-<hex>.partial`` under an
exclusive ``flock`` (a concurrent pull of the same blob waits for it).  If it
is interrupted, the partial file stays; the next pull re-hashes it and asks
for the rest with ``Range: bytes=N-`` (falling back to the whole blob when the
registry ignores the range).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import requests
import urllib3

from imagefmt import errors, space
from imagefmt import mediatypes as mt
from imagefmt.config import ImageConfig
from imagefmt.digest import CHUNK, Digest, chain_ids
from imagefmt.manifest import Descriptor, Index, Manifest, Platform, parse_any
from imagefmt.reference import Reference
from imagefmt.store import Store, StoredImage
from registry.client import progress as pg
from registry.client.remote import Repository
from registry.client.transport import Unavailable

CONFIG_MAX = 8 << 20


@dataclass(frozen=True)
class PullOptions:
    platform: Platform = Platform()
    max_concurrent_downloads: int = 3
    unpack_workers: int = 2
    retries: int = 4
    backoff: float = 0.5
    unpack: bool = True
    strict_platform: bool = False  # --platform given: a single-platform image must match it


@dataclass(frozen=True)
class PullResult:
    """What a pull did: ``digest`` is the top-level manifest's (an index's for a
    multi-platform image), the one ``Digest:`` shows and the repo digest records."""

    ref: Reference
    digest: Digest
    image: StoredImage
    updated: bool  # False when the name already pointed at this image ("Image is up to date")


class PullCancelled(errors.DockyardError):
    """Another layer failed (or Ctrl-C): this transfer stopped early."""


def resolve(repo: Repository, ref: Reference, platform: Platform) -> tuple[Digest, Manifest, Index | None]:
    """Fetch ``ref``'s manifest, resolving an index to ``platform``: (top digest, manifest, index)."""
    reference = str(ref.digest) if ref.digest else (ref.tag or "latest")
    raw, media_type, digest = repo.get_manifest(reference)
    if media_type in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
        raise errors.Unsupported(
            f"pull {ref.familiar()}: Docker schema 1 manifests are not supported: push the image again "
            "with a current client"
        )
    doc = parse_any(raw, media_type if media_type != "application/json" else "")
    if isinstance(doc, Manifest):
        return digest, doc, None
    entry = doc.select(platform)
    raw2, media_type2, _ = repo.get_manifest(str(entry.digest))
    return digest, Manifest.parse(raw2, media_type2 if media_type2 != "application/json" else ""), doc


def pull(
    store: Store,
    repo: Repository,
    ref: Reference,
    options: PullOptions | None = None,
    progress: pg.ProgressFn = pg.ignore,
) -> PullResult:
    """Pull ``ref`` (tag or digest) from ``repo`` into ``store`` and name it.

    Verified and all-or-nothing: raise DigestInvalid (corrupt content),
    ManifestUnknown, Unauthorized… and leave the store as it was (what this
    pull added is discarded).  Only when the registry became unreachable
    (Unavailable) or on Ctrl-C are the verified blobs and the partial file of
    the interrupted download kept, so that the next pull resumes."""
    options = options or PullOptions()
    top, manifest, index = resolve(repo, ref, options.platform)
    held = _held(store, manifest)
    if held is not None:
        return _name_held(store, ref, top, held, index is None, options)
    added = _Added()
    with store.adding():
        try:
            config = fetch_config(store, repo, manifest.config, added.blobs)
            if options.strict_platform and index is None:
                _check_platform(ref, config, options.platform)
            if len(config.diff_ids) != len(manifest.layers):
                raise errors.ManifestInvalid(
                    f"pull {ref.familiar()}: the config lists {len(config.diff_ids)} layers, "
                    f"the manifest {len(manifest.layers)}"
                )
            layers = list(zip(chain_ids(config.diff_ids), config.diff_ids, manifest.layers, strict=True))
            fetch_layers(store, repo, layers, options, progress, added)
        except errors.DockyardError as exc:
            if not isinstance(exc, Unavailable):  # keep what verified for the next attempt to resume
                store.discard(added.blobs, added.chains)
                drop_partials(store, (d.digest for d in manifest.layers))
            raise
        store.put_bytes(manifest.raw, manifest.media_type)
        if index is not None:
            store.put_bytes(index.raw, index.media_type)
        before = _current(store, ref)
        tags = [ref] if ref.tag and not ref.digest else []
        image, _ = store.add_image(manifest, tags, repo_digest=ref.with_tag(None).with_digest(top))
        if index is not None:
            extra = sorted({*image.record.get("extra_blobs", []), index.digest.hex})
            store.set_record(image, extra_blobs=extra)
    # docker's pull event names the reference, not the image
    store.event("pull", image, ref.familiar_repository, actor=ref.familiar())
    return PullResult(ref, top, image, updated=before != image.id)


def _held(store: Store, manifest: Manifest) -> StoredImage | None:
    """The image ``manifest`` describes, when the store has it already (its config,
    so its layers: built here and pushed, or pulled from elsewhere)."""
    try:
        return store.image(str(manifest.config.digest))
    except errors.NotFound:
        return None


def _name_held(
    store: Store, ref: Reference, top: Digest, held: StoredImage, single: bool, options: PullOptions
) -> PullResult:
    """Name an image the store has: nothing to download, no layer line (docker's
    pull: "if the image already exists locally, no need to pull anything"); its own
    layers stay its content, the registry's manifest is its repo digest."""
    if options.strict_platform and single:
        _check_platform(ref, held.config, options.platform)
    with store.adding():
        if options.unpack:
            for chain, diff_id, desc in zip(
                held.chain_ids, held.config.diff_ids, held.manifest.layers, strict=True
            ):
                store.unpack_layer(chain, diff_id, desc)
        before = _current(store, ref)
        tags = [ref] if ref.tag and not ref.digest else []
        image, _ = store.add_image(held.manifest, tags, repo_digest=ref.with_tag(None).with_digest(top))
    store.event("pull", image, ref.familiar_repository, actor=ref.familiar())
    return PullResult(ref, top, image, updated=before != image.id)


def _check_platform(ref: Reference, config: ImageConfig, want: Platform) -> None:
    have = Platform(
        config.os or "linux", config.architecture or "amd64", str(config.doc.get("variant") or "")
    )
    if not have.matches(want):
        raise errors.ManifestInvalid(
            f"image with reference {ref.familiar()} was found but does not match the specified "
            f"platform: wanted {want}, actual: {have}"
        )


class _Added:
    """Blobs and snapshots a pull created: what a failed pull rolls back."""

    def __init__(self) -> None:
        self.blobs: list[Digest] = []
        self.chains: list[Digest] = []
        self.lock = threading.Lock()


def _current(store: Store, ref: Reference) -> Digest | None:
    try:
        return store.image(str(ref)).id
    except errors.NotFound:
        return None


def fetch_config(
    store: Store, repo: Repository, desc: Descriptor, created: list[Digest] | None = None
) -> ImageConfig:
    """The image config blob, from the store or downloaded and verified into it
    (then appended to ``created``)."""
    if not store.has_blob(desc.digest):
        if desc.size > CONFIG_MAX:
            raise errors.SizeInvalid(f"pull {repo}: the image config is {desc.size} bytes, over {CONFIG_MAX}")
        resp = repo.open_blob(desc.digest)
        with resp:
            body = resp.raw.read(CONFIG_MAX + 1, decode_content=False)
        store.put_blob(io.BytesIO(body), desc.digest, desc.media_type, created)
    return ImageConfig.parse(store.read_blob(desc.digest))


def fetch_layers(
    store: Store,
    repo: Repository,
    layers: list[tuple[Digest, Digest, Descriptor]],
    options: PullOptions,
    progress: pg.ProgressFn,
    added: _Added | None = None,
) -> None:
    """Download the missing layer blobs in parallel and unpack each as it verifies;
    record what was created in ``added``.

    Raise the first failure after stopping the other transfers."""
    added = added or _Added()
    for _chain, _diff_id, desc in layers:
        have = store.has_blob(desc.digest)
        progress(pg.Progress(desc.digest.short, pg.ALREADY_EXISTS if have else pg.PULLING, 0, desc.size))
    cancel = threading.Event()
    downloads = ThreadPoolExecutor(max(1, options.max_concurrent_downloads), thread_name_prefix="pull")
    unpacks = ThreadPoolExecutor(max(1, options.unpack_workers), thread_name_prefix="unpack")

    def unpack(chain: Digest, diff_id: Digest, desc: Descriptor, fetched: bool) -> None:
        if cancel.is_set():
            raise PullCancelled("pull cancelled")
        if options.unpack and not store.has_snapshot(chain):
            if fetched:
                progress(pg.Progress(desc.digest.short, pg.EXTRACTING, 0, desc.size))
            if store.unpack_layer(chain, diff_id, desc):
                with added.lock:
                    added.chains.append(chain)
        if fetched:
            progress(pg.Progress(desc.digest.short, pg.PULL_COMPLETE, desc.size, desc.size))

    def job(chain: Digest, diff_id: Digest, desc: Descriptor) -> Future[None]:
        fetched = fetch_blob(store, repo, desc, progress, cancel, options)
        if fetched:
            with added.lock:
                added.blobs.append(desc.digest)
        return unpacks.submit(unpack, chain, diff_id, desc, fetched)

    try:
        pending = [downloads.submit(job, *layer) for layer in layers]
        unpacking = [f.result() for f in as_completed(pending)]
        for u in as_completed(unpacking):
            u.result()
    except BaseException:
        cancel.set()
        raise
    finally:
        downloads.shutdown(wait=True, cancel_futures=True)
        unpacks.shutdown(wait=True, cancel_futures=True)


def partial_path(store: Store, digest: Digest) -> Path:
    return store.tmp / f"pull-{digest.algorithm}-{digest.hex}.partial"


class _Partial:
    """A partial blob file and the hash of what it holds."""

    def __init__(self, f: BinaryIO, digest: Digest, size: int) -> None:
        self.f = f
        self.algorithm = digest.algorithm
        self.hasher = hashlib.new(self.algorithm)
        self.offset = 0
        while chunk := f.read(CHUNK):  # re-hash what an interrupted pull left
            self.hasher.update(chunk)
            self.offset += len(chunk)
        if self.offset > size:
            self.restart()

    def restart(self) -> None:
        self.f.seek(0)
        self.f.truncate(0)
        self.hasher = hashlib.new(self.algorithm)
        self.offset = 0

    def write(self, chunk: bytes) -> None:
        self.f.write(chunk)
        self.hasher.update(chunk)
        self.offset += len(chunk)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self.hasher.hexdigest())


@contextlib.contextmanager
def _locked_partial(path: Path) -> Iterator[BinaryIO]:
    """Open and exclusively lock a partial file, making sure the lock is on the
    file that is still at ``path`` (a holder may have renamed or removed it)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        f = os.fdopen(fd, "r+b", buffering=0)
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield f
                return
        finally:
            f.close()


def drop_partials(store: Store, digests: Iterable[Digest]) -> None:
    """Remove the partial files of ``digests`` that no other pull is writing."""
    for digest in digests:
        path = partial_path(store, digest)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        with os.fdopen(fd, "r+b", buffering=0) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(path)


def fetch_blob(
    store: Store,
    repo: Repository,
    desc: Descriptor,
    progress: pg.ProgressFn = pg.ignore,
    cancel: threading.Event | None = None,
    options: PullOptions | None = None,
) -> bool:
    """Download one blob into the store, verified; resume a partial download.

    Idempotent: False when the blob was already there.  Raise DigestInvalid
    (the partial file is removed) when the content does not match, and
    DockyardError when the registry stays unreachable (the partial file stays)."""
    options = options or PullOptions()
    digest = desc.digest
    if store.has_blob(digest):
        return False
    path = partial_path(store, digest)
    with _locked_partial(path) as f:  # another pull of this blob finishes first
        if store.has_blob(digest):
            return False
        part = _Partial(f, digest, desc.size)
        resumed = part.offset > 0
        what = f"pull {repo}: blob {digest.short}"
        space.check(store.root, what, desc.size - part.offset)  # before a byte is fetched
        with space.reported(store.root, what):
            _download(repo, desc, part, progress, cancel, options)
        progress(pg.Progress(digest.short, pg.VERIFYING, desc.size, desc.size))
        got = part.digest()
        if got != digest:
            os.unlink(path)
            if resumed:  # the kept prefix may have been the bad part: once more from scratch
                return fetch_blob(store, repo, desc, progress, cancel, options)
            raise errors.DigestInvalid(
                f"pull {repo}: blob {digest}: digest mismatch (got {got}): the registry sent corrupt "
                "content; nothing was stored"
            )
        store.commit_temp(path, digest)
    progress(pg.Progress(digest.short, pg.DOWNLOADED, desc.size, desc.size))
    return True


_STREAM_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


def _download(
    repo: Repository,
    desc: Descriptor,
    part: _Partial,
    progress: pg.ProgressFn,
    cancel: threading.Event | None,
    options: PullOptions,
) -> None:
    """Append the rest of the blob to ``part``, retrying broken streams from where they broke."""
    short = desc.digest.short
    failures = 0
    while part.offset < desc.size or desc.size == 0:
        resp = repo.open_blob(desc.digest, part.offset)
        try:
            if part.offset and resp.status_code != 206:  # the registry ignored Range: start over
                part.restart()
            progress(pg.Progress(short, pg.DOWNLOADING, part.offset, desc.size))
            for chunk in resp.raw.stream(CHUNK, decode_content=False):
                part.write(chunk)
                if part.offset > desc.size:
                    raise errors.SizeInvalid(f"pull {repo}: blob {desc.digest} is over {desc.size} bytes")
                progress(pg.Progress(short, pg.DOWNLOADING, part.offset, desc.size))
                if cancel is not None and cancel.is_set():
                    raise PullCancelled("pull cancelled")
            if part.offset == desc.size:
                return
            raise ConnectionError(f"the stream ended at byte {part.offset} of {desc.size}")
        except _STREAM_ERRORS as exc:
            failures += 1
            if failures > options.retries:
                raise Unavailable(
                    f"pull {repo}: blob {short}: download failed {failures} times, last at byte "
                    f"{part.offset} of {desc.size} ({exc}): run the pull again to resume"
                ) from exc
            delay = options.backoff * 2 ** (failures - 1)
            progress(pg.Progress(short, pg.RETRYING, part.offset, desc.size, f"in {delay:g}s"))
            time.sleep(delay)
        finally:
            resp.close()
