"""Artifacts that are not images: layer blobs, a small config document and a
manifest that lists them (the builder's registry cache is one).

The blobs go up as an image push sends them (``push._Pusher``: HEAD, mount,
then upload; local uncompressed layers gzip-compressed, the compressed digest
remembered per diff_id), the manifest last.
"""

from __future__ import annotations

import contextlib
import io
from concurrent.futures import ThreadPoolExecutor

from imagefmt import errors
from imagefmt.digest import Digest
from imagefmt.manifest import Descriptor, Manifest
from imagefmt.store import Store
from registry.client import progress as pg
from registry.client.metadata import Metadata
from registry.client.pull import fetch_blob
from registry.client.push import PushOptions, _Pusher
from registry.client.remote import Repository


def push_layers(
    store: Store,
    repo: Repository,
    layers: list[tuple[Descriptor, Digest]],
    options: PushOptions | None = None,
    progress: pg.ProgressFn = pg.ignore,
) -> dict[Digest, Descriptor]:
    """Push local layer blobs ``(blob, diff_id)``; map each local digest to the pushed descriptor."""
    options = options or PushOptions()
    metadata = Metadata(store)
    pusher = _Pusher(store, repo, metadata, options, progress)
    unique = {desc.digest: (desc, diff_id) for desc, diff_id in layers}
    with store.adding(), ThreadPoolExecutor(max(1, options.max_concurrent_uploads)) as pool:
        futures = {d: pool.submit(pusher.layer, desc, diff_id) for d, (desc, diff_id) in unique.items()}
        try:
            out = {d: f.result() for d, f in futures.items()}
        except BaseException:
            pusher.cancel.set()
            raise
    metadata.save()
    return out


def push_bytes(repo: Repository, data: bytes, media_type: str) -> Descriptor:
    """Push a small blob held in memory (a config document)."""
    desc = Descriptor(media_type, Digest.of(data), len(data))
    if repo.blob_size(desc.digest, push=True) is None:
        _, location = repo.start_upload()
        repo.upload(location, lambda: io.BytesIO(data), desc.digest, desc.size, len(data) + 1, None)
    return desc


def fetch_small_blob(repo: Repository, desc: Descriptor, limit: int) -> bytes:
    """A blob of at most ``limit`` bytes (a config document), verified."""
    if desc.size > limit:
        raise errors.SizeInvalid(f"pull {repo}: blob {desc.digest} is {desc.size} bytes, over {limit}")
    resp = repo.open_blob(desc.digest)
    with contextlib.closing(resp):
        body = resp.raw.read(limit + 1, decode_content=False)
    if len(body) > limit or Digest.of(body) != desc.digest:
        raise errors.DigestInvalid(f"pull {repo}: blob {desc.digest}: digest mismatch")
    return bytes(body)


def fetch_manifest(repo: Repository, reference: str) -> Manifest:
    raw, media_type, _ = repo.get_manifest(reference)
    return Manifest.parse(raw, media_type)


def fetch_into(store: Store, repo: Repository, desc: Descriptor) -> None:
    """Download one blob into the store (verified, resumable; nothing when it is there)."""
    fetch_blob(store, repo, desc)
