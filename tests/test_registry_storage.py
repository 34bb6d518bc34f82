"""Storage, upload sessions, garbage collection and the wire protocol, without HTTP."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from imagefmt import errors
from imagefmt.digest import Digest
from registry import protocol
from registry.protocol import Challenge, Scope
from registry.server import gc
from registry.server.config import Config
from registry.server.storage import paths
from registry.server.storage.drivers import DRIVERS, filesystem_storage
from registry.server.storage.filesystem import FilesystemDriver
from registry.server.storage.inmemory import InMemoryDriver
from registry.server.storage.store import Storage
from registry.server.uploads import Uploads
from support.images import make_image, random_image
from tests.conftest import s3_settings


def D(data: bytes) -> Digest:
    return Digest.of(data)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return filesystem_storage(tmp_path / "root")


def local(storage: Storage, path: str) -> Path:
    """Where the filesystem driver keeps ``path``."""
    assert isinstance(storage.driver, FilesystemDriver)
    return storage.driver.local_path(path)


def put(storage: Storage, name: str, data: bytes) -> Digest:
    d = D(data)
    storage.put_blob(io.BytesIO(data), d, len(data))
    storage.link_blob(name, d)
    return d


def push_image(storage: Storage, name: str, image: object, tag: str | None = "latest") -> Digest:
    for blob in [image.config, *image.layers]:  # type: ignore[attr-defined]
        put(storage, name, blob)
    raw = image.manifest  # type: ignore[attr-defined]
    d = D(raw)
    storage.put_manifest(name, raw, "application/vnd.oci.image.manifest.v1+json", d)
    if tag:
        storage.tag(name, tag, d)
    return d


# ----------------------------------------------------------------- blobs ---


def test_filesystem_storage_implements_the_protocol(storage: Storage) -> None:
    backend: Storage = storage  # checked by mypy --strict
    assert backend.repositories() == []


def test_put_blob_is_verified_atomic_and_idempotent(storage: Storage) -> None:
    data = os.urandom(3 << 20)
    with pytest.raises(errors.DigestInvalid):
        storage.put_blob(io.BytesIO(data), D(b"other"))
    with pytest.raises(errors.SizeInvalid):
        storage.put_blob(io.BytesIO(data), D(data), len(data) + 1)
    assert not list(local(storage, paths.BLOBS).rglob("*")) or not any(
        p.is_file() for p in local(storage, paths.BLOBS).rglob("*")
    )
    assert not list(local(storage, paths.TMP).iterdir())  # no temp file left behind
    assert storage.put_blob(io.BytesIO(data), D(data)) == len(data)
    assert storage.put_blob(io.BytesIO(data), D(data)) == len(data)
    with storage.open_blob(D(data)) as f:
        assert f.read() == data
    with pytest.raises(errors.BlobUnknown):
        storage.linked_blob_size("a", D(data))
    storage.link_blob("a", D(data))
    assert storage.linked_blob_size("a", D(data)) == len(data)
    storage.unlink_blob("a", D(data))
    with pytest.raises(errors.BlobUnknown):
        storage.unlink_blob("a", D(data))


def test_manifests_tags_and_referrers(storage: Storage) -> None:
    image = random_image(1, 100)
    d = push_image(storage, "lib/app", image, "v1")
    storage.tag("lib/app", "v2", d)
    assert storage.manifest("lib/app", "v1").raw == image.manifest
    assert storage.manifest("lib/app", str(d)).digest == d
    assert storage.tags("lib/app") == ["v1", "v2"]
    assert storage.repositories() == ["lib/app"]
    with pytest.raises(errors.NameUnknown):
        storage.tags("lib/other")
    from imagefmt.manifest import Descriptor

    ref = Descriptor(
        "application/vnd.oci.image.manifest.v1+json", D(b"ref"), 3, {"a": "b"}, artifact_type="x/y"
    )
    storage.add_referrer("lib/app", d, ref)
    assert [r.digest for r in storage.referrers("lib/app", d)] == [ref.digest]
    storage.untag("lib/app", "v2")
    assert storage.tags("lib/app") == ["v1"]
    storage.delete_manifest("lib/app", d)
    for reference in ("v1", str(d)):
        with pytest.raises(errors.ManifestUnknown):
            storage.manifest("lib/app", reference)
    assert storage.tags("lib/app") == []


# --------------------------------------------------------------- uploads ---


def test_upload_resumes_in_a_new_process(storage: Storage) -> None:
    data = os.urandom(2 << 20)
    first = Uploads(storage)
    s = first.start("a")
    first.append("a", s.uuid, io.BytesIO(data[:1000]), 0, 1000)
    # a "restart": a fresh Uploads resumes the hash saved with the session
    second = Uploads(storage)
    assert second.status("a", s.uuid).offset == 1000
    with pytest.raises(protocol.RangeNotSatisfiable):
        second.append("a", s.uuid, io.BytesIO(data[1000:]), 999)
    second.append("a", s.uuid, io.BytesIO(data[1000:]), 1000)
    assert Uploads(storage).finish("a", s.uuid, D(data)) == len(
        data
    )  # no re-hash: the digest is in state.json
    assert storage.linked_blob_size("a", D(data)) == len(data)
    with pytest.raises(errors.BlobUploadUnknown):
        second.status("a", s.uuid)


class ReadCounting(InMemoryDriver):
    """The in-memory driver, counting what is read back through ``reader``."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        self.reads.append(path)
        return super().reader(path, offset)


def test_upload_hash_state_travels_with_the_session() -> None:
    """Each chunk continues the hash saved in state.json (as any other process
    would): no upload byte is read back, from the first PATCH to the blob."""
    driver = ReadCounting()
    storage = Storage(driver)
    data = os.urandom(3 << 20)
    s = Uploads(storage).start("a")
    for i in range(0, len(data), 1 << 20):
        Uploads(storage).append("a", s.uuid, io.BytesIO(data[i : i + (1 << 20)]), i)
    state = json.loads(driver.get_content(paths.upload_state("a", s.uuid)))
    assert state["offset"] == len(data) and state["sha256"] == D(data).hex and state["sha256_state"]
    assert Uploads(storage).finish("a", s.uuid, D(data), io.BytesIO(b""), None, 0) == len(data)
    assert driver.reads == [] and driver.get_content(paths.blob(D(data))) == data


def test_a_session_without_hash_state_is_rehashed(storage: Storage) -> None:
    """A session written before the hash state was kept (or where libcrypto was
    missing) continues by hashing its data once."""
    data = os.urandom(100_000)
    uploads = Uploads(storage)
    s = uploads.start("a")
    uploads.append("a", s.uuid, io.BytesIO(data[:40_000]))
    key = paths.upload_state("a", s.uuid)
    doc = json.loads(storage.driver.get_content(key))
    del doc["sha256_state"]
    storage.driver.put_content(key, json.dumps(doc).encode())
    uploads.append("a", s.uuid, io.BytesIO(data[40_000:]), 40_000)
    assert uploads.finish("a", s.uuid, D(data)) == len(data)


def test_filesystem_reader_is_a_real_file(storage: Storage) -> None:
    """The fast path of a blob GET: gunicorn sends a real file with sendfile."""
    d = put(storage, "a", b"bytes on disk")
    with storage.open_blob(d, 6) as f:
        assert os.fstat(f.fileno()).st_size == 13 and f.read() == b"on disk"


def test_a_cut_chunk_is_dropped_whole(storage: Storage) -> None:
    uploads = Uploads(storage)
    s = uploads.start("a")
    uploads.append("a", s.uuid, io.BytesIO(b"x" * 100))
    with pytest.raises(errors.SizeInvalid):
        uploads.append("a", s.uuid, io.BytesIO(b"y" * 50), 100, 80)  # the client hung up after 50 of 80
    assert uploads.status("a", s.uuid).offset == 100
    data_file = local(storage, paths.upload_data("a", s.uuid))
    with open(data_file, "ab") as f:
        f.write(b"garbage of a killed server")
    uploads.append("a", s.uuid, io.BytesIO(b"z" * 10), 100)
    assert data_file.read_bytes() == b"x" * 100 + b"z" * 10


def test_finish_with_wrong_digest_stores_nothing(storage: Storage) -> None:
    uploads = Uploads(storage)
    s = uploads.start("a")
    with pytest.raises(errors.DigestInvalid):
        uploads.finish("a", s.uuid, D(b"other"), io.BytesIO(b"data"))
    with pytest.raises(errors.BlobUnknown):
        storage.blob_size(D(b"data"))
    with pytest.raises(errors.BlobUploadUnknown):
        uploads.status("a", s.uuid)


def test_sha512_uploads(storage: Storage) -> None:
    uploads = Uploads(storage)
    s = uploads.start("a")
    d = Digest.of(b"hello", "sha512")
    assert uploads.finish("a", s.uuid, d, io.BytesIO(b"hello")) == 5
    assert storage.linked_blob_size("a", d) == 5


def test_bad_upload_ids(storage: Storage) -> None:
    for uuid in ("../../x", "nope", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(errors.BlobUploadUnknown):
            Uploads(storage).status("a", uuid)


# -------------------------------------------------------------------- gc ---


def test_gc_mark_and_sweep(storage: Storage) -> None:
    kept = push_image(storage, "a", random_image(2, 100), "v1")
    untagged = push_image(storage, "a", random_image(1, 100), None)
    orphan = put(storage, "a", b"orphan blob")
    shared_layer = os.urandom(100)
    img_b = make_image([{"f": shared_layer}])
    push_image(storage, "b", img_b, "v1")
    dry = gc.collect(storage, dry_run=True, grace=0)
    assert dry.blobs == [orphan] and not dry.manifests
    assert storage.blob_size(orphan)
    result = gc.collect(storage, grace=0)
    assert result.blobs == [orphan]
    with pytest.raises(errors.BlobUnknown):
        storage.blob_size(orphan)
    assert orphan not in storage.layer_links("a")  # the dangling link went with it
    result = gc.collect(storage, delete_untagged=True, grace=0)
    assert result.manifests == [("a", untagged)]
    assert len(result.blobs) == 3  # its manifest, config and layer
    assert storage.manifest("a", "v1").digest == kept
    for d in [D(x) for x in [img_b.config, *img_b.layers]]:
        storage.blob_size(d)


def test_gc_keeps_index_children_and_referrers(storage: Storage) -> None:
    child = push_image(storage, "a", random_image(1, 100), None)
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": str(child), "size": 1}
    entry["platform"] = {"os": "linux", "architecture": "amd64"}
    index_doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry],
    }
    index = json.dumps(index_doc).encode()
    storage.put_manifest("a", index, "application/vnd.oci.image.index.v1+json", D(index))
    storage.tag("a", "multi", D(index))
    sig = random_image(1, 10)
    doc = json.loads(sig.manifest)
    doc["subject"] = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": str(D(index)),
        "size": 1,
    }
    sig.manifest = json.dumps(doc).encode()
    referrer = push_image(storage, "a", sig, None)
    result = gc.collect(storage, delete_untagged=True, grace=0)
    assert result.manifests == [] and result.blobs == []
    assert {child, referrer, D(index)} <= set(storage.revisions("a"))


def test_gc_spares_fresh_blobs_and_waits_for_pushes(storage: Storage) -> None:
    fresh = put(storage, "a", b"uploaded just now, manifest to come")
    assert gc.collect(storage, grace=3600).blobs == []
    storage.blob_size(fresh)
    # a push in progress holds the lock shared: the sweep waits for it
    done = threading.Event()
    with storage.push_lock():

        def run() -> None:
            gc.collect(storage, grace=0)
            done.set()

        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.2)
        assert not done.is_set()
    t.join(5)
    assert done.is_set()


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_gc_on_every_driver(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    config = Config(root=tmp_path / "store")
    if name == "s3":  # radosgw of scripts/start-s3.sh, a fresh prefix
        config = Config(storage="s3", s3=s3_settings(request.getfixturevalue("ceph")))
    storage = Storage(DRIVERS[name](config))
    kept = push_image(storage, "a/b", random_image(1, 100), "v1")
    orphan = put(storage, "a/b", b"orphan blob")
    s = Uploads(storage).start("c")
    assert storage.repositories() == ["a/b"]
    assert gc.collect(storage, grace=3600).blobs == []  # fresh: spared
    result = gc.collect(storage, grace=-1, upload_max_age=-1)
    assert result.blobs == [orphan] and result.uploads == [("c", s.uuid)]
    assert storage.manifest("a/b", "v1").digest == kept
    assert orphan not in storage.layer_links("a/b")
    with pytest.raises(errors.BlobUploadUnknown):
        Uploads(storage).status("c", s.uuid)


def test_gc_purges_abandoned_uploads(storage: Storage) -> None:
    s = Uploads(storage).start("a")
    path = local(storage, paths.upload("a", s.uuid))
    old = time.time() - 30 * 86400
    for p in [path, *path.iterdir()]:
        os.utime(p, (old, old))
    assert gc.collect(storage).uploads == [("a", s.uuid)]
    assert not path.exists()


# -------------------------------------------------------------- protocol ---


@pytest.mark.parametrize("cls", [cls for _, cls in sorted(errors.BY_CODE.items())])
def test_error_body_round_trip(cls: type[errors.DockyardError]) -> None:
    exc = cls("something failed", {"digest": "sha256:ab"})
    body = json.dumps(protocol.error_body(exc)).encode()
    back = protocol.error_from_response(protocol.status_for(exc), body)
    assert type(back) is cls and back.message == "something failed" and back.detail == {"digest": "sha256:ab"}


def test_status_table() -> None:
    assert protocol.status_for(errors.BlobUnknown("x")) == 404
    assert protocol.status_for(errors.ManifestBlobUnknown("x")) == 400
    assert protocol.status_for(errors.Unauthorized("x")) == 401
    assert protocol.status_for(errors.Denied("x")) == 403
    assert protocol.status_for(errors.Unsupported("x")) == 405
    assert protocol.status_for(protocol.RangeNotSatisfiable("x")) == 416
    assert protocol.status_for(protocol.ManifestTooLarge("x")) == 413
    assert protocol.status_for(errors.Invalid("x")) == 400
    assert type(protocol.error_from_response(404, b"404 page not found")) is errors.NotFound


def test_content_range_and_links() -> None:
    assert protocol.parse_content_range("0-99") == (0, 99)
    assert protocol.parse_content_range("bytes 100-199/*") == (100, 199)
    for bad in ("", "5-1", "a-b", "-5"):
        with pytest.raises(protocol.RangeNotSatisfiable):
            protocol.parse_content_range(bad)
    assert protocol.upload_range(0) == "0-0" and protocol.upload_range(10) == "0-9"
    link = protocol.next_link("/v2/a/tags/list", 2, "t1")
    assert protocol.parse_next_link(link) == "/v2/a/tags/list?n=2&last=t1"


def test_challenges_and_scopes() -> None:
    ch = Challenge(
        "Bearer", (("realm", "https://a/token"), ("service", "reg"), ("scope", "repository:x/y:pull,push"))
    )
    assert str(ch) == 'Bearer realm="https://a/token",service="reg",scope="repository:x/y:pull,push"'
    assert Challenge.parse(str(ch)) == ch
    assert Scope.parse("repository:host:5000/x:pull") == Scope("repository", "host:5000/x", ("pull",))
    assert str(Scope.parse("registry:catalog:*")) == "registry:catalog:*"
    with pytest.raises(errors.Invalid):
        Scope.parse("nonsense")
