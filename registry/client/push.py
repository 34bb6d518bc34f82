"""Push an image from the local store to a registry.

Layers go up in parallel.  For each blob: ``HEAD`` first (the repository may
have it), then a cross-repository mount when another repository of the same
registry is known to hold it, else an upload (one ``PUT`` for blobs up to
``chunk_size``, ``PATCH`` chunks beyond).  The config follows, the manifest
last, so the registry never sees a manifest whose blobs are missing.

Local layers that dockyard made are stored uncompressed; they are pushed as
gzip (isal level 1, mtime 0: deterministic) compressed into a temp file
while hashing, since the digest must be known before the upload is closed.
The compressed digest is remembered per diff_id (``metadata.py``), so the next
push of the layer needs no recompression when the registry has it.  Layers
already compressed are pushed as they are, and then the manifest bytes are
the local ones, so the digest is the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from imagefmt import errors
from imagefmt import mediatypes as mt
from imagefmt.compress import open_writer
from imagefmt.digest import CHUNK, Digest, HashingWriter
from imagefmt.manifest import Descriptor, Index, Manifest
from imagefmt.reference import Reference
from imagefmt.store import Store, StoredImage, image_platform
from registry.client import progress as pg
from registry.client.metadata import Compressed, Metadata
from registry.client.remote import Repository
from registry.client.transport import Unavailable


@dataclass(frozen=True)
class PushOptions:
    max_concurrent_uploads: int = 5
    chunk_size: int = 64 << 20  # larger blobs are sent in PATCH chunks of this size
    retries: int = 4
    backoff: float = 0.5
    compression_level: int = 1


@dataclass(frozen=True)
class PushResult:
    """``digest`` and ``size`` are the pushed manifest's (docker's ``digest: … size: …`` line)."""

    ref: Reference
    digest: Digest
    size: int
    manifest: Manifest = field(repr=False)


def push(
    store: Store,
    repo: Repository,
    image: StoredImage,
    ref: Reference,
    metadata: Metadata | None = None,
    options: PushOptions | None = None,
    progress: pg.ProgressFn = pg.ignore,
) -> PushResult:
    """Push ``image`` to ``repo`` under ``ref.tag``; record the repo digest locally.

    Raise Unauthorized/Denied (with the fix), Unavailable when the registry
    keeps failing, or the registry's error for the manifest."""
    options = options or PushOptions()
    metadata = metadata or Metadata(store)
    tag = ref.tag or "latest"
    pusher = _Pusher(store, repo, metadata, options, progress)
    manifest, digest = _push_image(store, repo, image, ref, tag, pusher)
    return PushResult(ref.with_tag(tag), digest, len(manifest.raw), manifest)


def push_platforms(
    store: Store,
    repo: Repository,
    images: list[StoredImage],
    ref: Reference,
    metadata: Metadata | None = None,
    options: PushOptions | None = None,
    progress: pg.ProgressFn = pg.ignore,
) -> PushResult:
    """Push a multi-platform build: each platform's image by digest, then the index
    of what was pushed (a Docker manifest list when every entry is a Docker
    manifest, else an OCI index) under ``ref.tag``.  ``manifest`` of the result is
    the last image's; ``digest`` and ``size`` are the index's."""
    options = options or PushOptions()
    metadata = metadata or Metadata(store)
    tag = ref.tag or "latest"
    pusher = _Pusher(store, repo, metadata, options, progress)
    entries: list[Descriptor] = []
    manifest = images[0].manifest
    for image in images:
        manifest, digest = _push_image(store, repo, image, ref, None, pusher)
        entries.append(
            Descriptor(manifest.media_type, digest, len(manifest.raw), platform=image_platform(image))
        )
    docker = all(e.media_type == mt.DOCKER_MANIFEST for e in entries)
    index = Index.build(entries, mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX)
    digest = repo.put_manifest(tag, index.raw, index.media_type)
    store.event("push", None, ref.familiar_repository, actor=ref.with_tag(tag).familiar())
    return PushResult(ref.with_tag(tag), digest, len(index.raw), manifest)


def _push_image(
    store: Store, repo: Repository, image: StoredImage, ref: Reference, tag: str | None, pusher: _Pusher
) -> tuple[Manifest, Digest]:
    """The blobs, then the manifest under ``tag`` (by its digest when None)."""
    layers = list(zip(image.manifest.layers, image.config.diff_ids, strict=True))
    for desc, diff_id in layers:
        pusher.progress(pg.Progress(diff_id.short, pg.PREPARING, 0, desc.size))
    with store.adding():  # no removal may free a blob while it is being pushed
        pushed = _push_blobs(store, image, pusher, pusher.options)
        manifest = image.manifest
        if pushed != list(manifest.layers):
            annotations = manifest.annotations or None
            manifest = Manifest.build(manifest.config, pushed, manifest.media_type, annotations)
        digest = repo.put_manifest(tag or str(manifest.digest), manifest.raw, manifest.media_type)
        pusher.metadata.save()
        store.add_image(image.manifest, [], repo_digest=ref.with_tag(None).with_digest(digest))
    if tag is not None:  # a multi-platform build's entries go by digest: its index is the push
        store.event("push", image, ref.familiar_repository, actor=ref.with_tag(tag).familiar())
    return manifest, digest


def _push_blobs(store: Store, image: StoredImage, pusher: _Pusher, options: PushOptions) -> list[Descriptor]:
    """Push the layers (each distinct blob once) and the config in parallel; return
    the layer descriptors of the manifest to push."""
    pool = ThreadPoolExecutor(max(1, options.max_concurrent_uploads), thread_name_prefix="push")
    try:
        futures: dict[Digest, Future[Descriptor]] = {}
        for desc, diff_id in zip(image.manifest.layers, image.config.diff_ids, strict=True):
            if desc.digest not in futures:
                futures[desc.digest] = pool.submit(pusher.layer, desc, diff_id)
        config = image.manifest.config
        cfg_future = pool.submit(pusher.blob, config, lambda: store.open_blob(config.digest), "")
        pushed = [futures[desc.digest].result() for desc in image.manifest.layers]
        cfg_future.result()
        return pushed
    except BaseException:
        pusher.cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Pusher:
    """The per-push state shared by the upload threads."""

    def __init__(
        self,
        store: Store,
        repo: Repository,
        metadata: Metadata,
        options: PushOptions,
        progress: pg.ProgressFn,
    ) -> None:
        self.store = store
        self.repo = repo
        self.metadata = metadata
        self.options = options
        self.progress = progress
        self.cancel = threading.Event()

    def layer(self, desc: Descriptor, diff_id: Digest) -> Descriptor:
        """Push one layer; return the descriptor the pushed manifest lists."""
        short = diff_id.short
        if mt.compression(desc.media_type) != "none":
            self.blob(desc, lambda: self.store.open_blob(desc.digest), short)
            return desc
        docker = desc.media_type == mt.DOCKER_LAYER
        media_type = mt.layer_type("gzip", docker=docker)
        known = self.metadata.compressed(diff_id)
        if known is not None:
            gz = Descriptor(media_type, known.digest, known.size, dict(desc.annotations))
            if self._exists(gz, short) or self._mount(gz, short):
                return gz
        path, blob = self._compress(desc, short)
        try:
            gz = Descriptor(media_type, blob.digest, blob.size, dict(desc.annotations))
            self.metadata.set_compressed(diff_id, blob)
            if known is None or known.digest != blob.digest:
                if self._exists(gz, short) or self._mount(gz, short):
                    return gz
            self._upload(gz, lambda: open(path, "rb"), short)
            return gz
        finally:
            path.unlink(missing_ok=True)

    def blob(self, desc: Descriptor, opener: Callable[[], IO[bytes]], short: str) -> None:
        """Make sure ``repo`` has the blob: HEAD, mount, or upload."""
        if self._exists(desc, short) or self._mount(desc, short):
            return
        self._upload(desc, opener, short)

    def _exists(self, desc: Descriptor, short: str) -> bool:
        if self.repo.blob_size(desc.digest, push=True) is None:
            return False
        self.metadata.add_source(desc.digest, str(self.repo))
        if short:
            self.progress(pg.Progress(short, pg.LAYER_EXISTS, desc.size, desc.size))
        return True

    def _mount(self, desc: Descriptor, short: str) -> bool:
        host = self.repo.transport.host + "/"
        for source in self.metadata.sources(desc.digest):
            if not source.startswith(host) or source == str(self.repo):
                continue
            name = source[len(host) :]
            mounted, location = self.repo.start_upload(mount=desc.digest, source=name)
            if mounted:
                self.metadata.add_source(desc.digest, str(self.repo))
                if short:
                    self.progress(pg.Progress(short, pg.MOUNTED, desc.size, desc.size, name))
                return True
            self.repo.cancel_upload(location)
            return False  # the registry would not mount it (no access, or it lost the blob)
        return False

    def _upload(self, desc: Descriptor, opener: Callable[[], IO[bytes]], short: str) -> None:
        """Upload in a new session; a failed session is abandoned and the upload restarted."""
        failures = 0
        while True:
            if self.cancel.is_set():
                raise errors.DockyardError("push cancelled")
            tick = self._ticker(desc, short)
            _, location = self.repo.start_upload()
            try:
                self.repo.upload(location, opener, desc.digest, desc.size, self.options.chunk_size, tick)
                break
            except Unavailable as exc:
                failures += 1
                self.repo.cancel_upload(location)
                if failures > self.options.retries:
                    raise
                delay = self.options.backoff * 2 ** (failures - 1)
                if short:
                    self.progress(pg.Progress(short, pg.RETRYING, 0, desc.size, f"in {delay:g}s ({exc})"))
                time.sleep(delay)
        self.metadata.add_source(desc.digest, str(self.repo))
        if short:
            self.progress(pg.Progress(short, pg.PUSHED, desc.size, desc.size))

    def _ticker(self, desc: Descriptor, short: str) -> Callable[[int], None]:
        """A callback for bytes sent that reports ``Pushing`` progress."""
        sent = 0

        def tick(n: int) -> None:
            nonlocal sent
            sent += n
            if short:
                self.progress(pg.Progress(short, pg.PUSHING, min(sent, desc.size), desc.size))

        return tick

    def _compress(self, desc: Descriptor, short: str) -> tuple[Path, Compressed]:
        """gzip an uncompressed layer blob into a temp file, hashing the output."""
        path, out = self.store.temp_file()
        try:
            with out, self.store.open_blob(desc.digest) as src:
                hashing = HashingWriter(out)
                gz = open_writer(hashing, "gzip", self.options.compression_level)
                done = 0
                while chunk := src.read(CHUNK):
                    gz.write(chunk)
                    done += len(chunk)
                    if short:
                        self.progress(pg.Progress(short, pg.COMPRESSING, done, desc.size))
                    if self.cancel.is_set():
                        raise errors.DockyardError("push cancelled")
                gz.close()
            return path, Compressed(hashing.digest(), hashing.size)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
