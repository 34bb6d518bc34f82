"""Storage, upload sessions, garbage collection and the wire protocol, without HTTP."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest

from imagefmt import errors
from imagefmt.digest import Digest
from registry import protocol
from registry.protocol import Challenge, Scope
from registry.server import gc
from registry.server.storage import FilesystemStorage, Storage
from registry.server.uploads import Uploads
from support.images import make_image, random_image


def D(data: bytes) -> Digest:
    return Digest.of(data)


@pytest.fixture
def storage(tmp_path: Path) -> FilesystemStorage:
    return FilesystemStorage(tmp_path / "root")


def put(storage: FilesystemStorage, name: str, data: bytes) -> Digest:
    d = D(data)
    storage.put_blob(io.BytesIO(data), d, len(data))
    storage.link_blob(name, d)
    return d


def push_image(storage: FilesystemStorage, name: str, image: object, tag: str | None = "latest") -> Digest:
    for blob in [image.config, *image.layers]:  # type: ignore[attr-defined]
        put(storage, name, blob)
    raw = image.manifest  # type: ignore[attr-defined]
    d = D(raw)
    storage.put_manifest(name, raw, "application/vnd.oci.image.manifest.v1+json", d)
    if tag:
        storage.tag(name, tag, d)
    return d


# ----------------------------------------------------------------- blobs ---


def test_filesystem_storage_implements_the_protocol(storage: FilesystemStorage) -> None:
    backend: Storage = storage  # checked by mypy --strict
    assert backend.repositories() == []


def test_put_blob_is_verified_atomic_and_idempotent(storage: FilesystemStorage) -> None:
    data = os.urandom(3 << 20)
    with pytest.raises(errors.DigestInvalid):
        storage.put_blob(io.BytesIO(data), D(b"other"))
    with pytest.raises(errors.SizeInvalid):
        storage.put_blob(io.BytesIO(data), D(data), len(data) + 1)
    assert not list(storage.layout.blobs().rglob("*")) or not any(
        p.is_file() for p in storage.layout.blobs().rglob("*")
    )
    assert not list(storage.layout.tmp.iterdir())  # no temp file left behind
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


def test_manifests_tags_and_referrers(storage: FilesystemStorage) -> None:
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


def test_upload_resumes_in_a_new_process(storage: FilesystemStorage) -> None:
    data = os.urandom(2 << 20)
    first = Uploads(storage)
    s = first.start("a")
    first.append("a", s.uuid, io.BytesIO(data[:1000]), 0, 1000)
    # a "restart": a fresh Uploads holds no hasher, so it re-hashes the 1000 bytes
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


def test_a_cut_chunk_is_dropped_whole(storage: FilesystemStorage) -> None:
    uploads = Uploads(storage)
    s = uploads.start("a")
    uploads.append("a", s.uuid, io.BytesIO(b"x" * 100))
    with pytest.raises(errors.SizeInvalid):
        uploads.append("a", s.uuid, io.BytesIO(b"y" * 50), 100, 80)  # the client hung up after 50 of 80
    assert uploads.status("a", s.uuid).offset == 100
    data_file = storage.layout.upload("a", s.uuid) / "data"
    with open(data_file, "ab") as f:
        f.write(b"garbage of a killed server")
    uploads.append("a", s.uuid, io.BytesIO(b"z" * 10), 100)
    assert data_file.read_bytes() == b"x" * 100 + b"z" * 10


def test_finish_with_wrong_digest_stores_nothing(storage: FilesystemStorage) -> None:
    uploads = Uploads(storage)
    s = uploads.start("a")
    with pytest.raises(errors.DigestInvalid):
        uploads.finish("a", s.uuid, D(b"other"), io.BytesIO(b"data"))
    with pytest.raises(errors.BlobUnknown):
        storage.blob_size(D(b"data"))
    with pytest.raises(errors.BlobUploadUnknown):
        uploads.status("a", s.uuid)


def test_sha512_uploads(storage: FilesystemStorage) -> None:
    uploads = Uploads(storage)
    s = uploads.start("a")
    d = Digest.of(b"hello", "sha512")
    assert uploads.finish("a", s.uuid, d, io.BytesIO(b"hello")) == 5
    assert storage.linked_blob_size("a", d) == 5


def test_bad_upload_ids(storage: FilesystemStorage) -> None:
    for uuid in ("../../x", "nope", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(errors.BlobUploadUnknown):
            Uploads(storage).status("a", uuid)


# -------------------------------------------------------------------- gc ---


def test_gc_mark_and_sweep(storage: FilesystemStorage) -> None:
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


def test_gc_keeps_index_children_and_referrers(storage: FilesystemStorage) -> None:
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


def test_gc_spares_fresh_blobs_and_waits_for_pushes(storage: FilesystemStorage) -> None:
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


def test_gc_purges_abandoned_uploads(storage: FilesystemStorage) -> None:
    s = Uploads(storage).start("a")
    path = storage.layout.upload("a", s.uuid)
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
