"""Several ``registry serve`` processes on one S3 bucket (Ceph radosgw, scripts/start-s3.sh),
behind no balancer: what one is sent, the other serves; an upload begun on one is
continued and finished on the other (its URL carries state signed with the shared
secret); a process killed -9 mid-upload loses nothing acknowledged; garbage
collection runs beside pushes; abandoned uploads are purged with their S3
multipart uploads."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from imagefmt.reference import Reference
from imagefmt.store import Store
from registry.server import gc
from registry.server.config import Config
from registry.server.storage import paths
from registry.server.storage.drivers import open_driver
from registry.server.storage.s3 import S3Driver
from registry.server.storage.store import Storage
from support.images import random_image, sha256, write_oci_layout
from support.peers import Ceph, Server, start_ours
from tests import client_fixtures as cf
from tests.conftest import Dockyard, s3_settings
from tests.test_registry_interop import layout_digest, skopeo

pytestmark = pytest.mark.interop
MiB = 1 << 20


class Pair:
    def __init__(self, ceph: Ceph, prefix: str, a: Server, b: Server) -> None:
        self.ceph, self.prefix, self.a, self.b = ceph, prefix, a, b

    def storage(self) -> Storage:
        """The store of the pair, opened in this process (a third one on the bucket)."""
        return Storage(open_driver(Config(storage="s3", s3=s3_settings(self.ceph, self.prefix))))


@pytest.fixture(scope="module")
def pair(ceph: Ceph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    prefix = f"pair-{uuid.uuid4().hex[:8]}"
    base = tmp_path_factory.mktemp("s3-pair")
    a = start_ours(base / "a", *ceph.serve_flags(prefix))
    try:
        b = start_ours(base / "b", *ceph.serve_flags(prefix))
    except BaseException:
        a.stop()
        raise
    yield Pair(ceph, prefix, a, b)
    a.stop()
    b.stop()


def on(server: Server, location: str) -> str:
    """An upload Location another server handed out, sent to ``server`` instead."""
    parts = urlsplit(location)
    return server.url + parts.path + (f"?{parts.query}" if parts.query else "")


def start_upload(server: Server, name: str) -> str:
    r = requests.post(f"{server.url}/v2/{name}/blobs/uploads/")
    assert r.status_code == 202, r.text
    assert "_state=" in r.headers["Location"]
    return str(r.headers["Location"])


def patch(server: Server, location: str, data: bytes, start: int) -> requests.Response:
    headers = {
        "Content-Range": f"{start}-{start + len(data) - 1}",
        "Content-Type": "application/octet-stream",
    }
    r = requests.patch(on(server, location), data=data, headers=headers)
    assert r.status_code == 202, r.text
    assert r.headers["Range"] == f"0-{start + len(data) - 1}"
    return r


# ------------------------------------------------------------------ clients ---


def test_skopeo_pushes_to_one_and_pulls_from_the_other(pair: Pair, tmp_path: Path) -> None:
    image = random_image(3, 2 * MiB)
    src = write_oci_layout(tmp_path / "src", image, "v1")
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{src}:v1", f"docker://{pair.a.host}/s3/skopeo:v1")
    out = tmp_path / "out"
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{pair.b.host}/s3/skopeo:v1", f"oci:{out}:v1")
    assert layout_digest(out) == image.digest
    for layer in image.layers:
        assert (out / "blobs/sha256" / hashlib.sha256(layer).hexdigest()).read_bytes() == layer
    tags = skopeo("list-tags", "--tls-verify=false", f"docker://{pair.b.host}/s3/skopeo")
    assert json.loads(tags.stdout)["Tags"] == ["v1"]


def test_dockyard_pushes_to_one_and_pulls_from_the_other(pair: Pair, dy: Dockyard, tmp_path: Path) -> None:
    cf.local_image(Store(dy.root), tmp_path, f"{pair.a.host}/s3/dockyard:1", seed=41, size=3 * MiB)
    dy.ok("push", "-q", f"{pair.a.host}/s3/dockyard:1")
    pushed = json.loads(dy.ok("image", "inspect", f"{pair.a.host}/s3/dockyard:1"))[0]
    with cf.quick_client() as client:
        pulled = client.pull(Store(tmp_path / "again"), Reference.parse(f"{pair.b.host}/s3/dockyard:1"))
    assert f"{pair.a.host}/s3/dockyard@{pulled.digest}" in pushed["RepoDigests"]


# ------------------------------------------------------------------ uploads ---


def test_chunked_upload_patched_on_one_and_put_on_the_other(pair: Pair) -> None:
    data = os.urandom(13 * MiB + 12345)
    cuts = [0, 6 * MiB, 7 * MiB, 7 * MiB + 100, 12 * MiB, len(data)]  # parts and tails across both
    location = start_upload(pair.a, "s3/chunked")
    servers = [pair.a, pair.b, pair.a, pair.b]
    for server, (lo, hi) in zip(servers, zip(cuts[:-2], cuts[1:-1], strict=True), strict=True):
        location = patch(server, location, data[lo:hi], lo).headers["Location"]
    last = cuts[-2]
    r = requests.put(
        on(pair.b, location),
        params={"digest": sha256(data)},
        data=data[last:],
        headers={"Content-Range": f"{last}-{len(data) - 1}", "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    url = f"/v2/s3/chunked/blobs/{sha256(data)}"
    r = requests.get(pair.a.url + url, allow_redirects=False)
    assert r.status_code == 307 and r.headers["Location"].startswith(pair.ceph.endpoint)
    assert requests.get(pair.a.url + url).content == data  # through the presigned URL
    r = requests.get(pair.b.url + url, headers={"Range": f"bytes={7 * MiB}-{7 * MiB + 99}"})
    assert r.status_code == 206 and r.content == data[7 * MiB : 7 * MiB + 100]
    mpus = pair.ceph.client().list_multipart_uploads(Bucket=pair.ceph.bucket, Prefix=pair.prefix + "/")
    assert not mpus.get("Uploads")  # completed, none left open


def test_upload_state_must_be_signed_by_the_shared_secret(pair: Pair) -> None:
    first = start_upload(pair.a, "s3/signed")
    second = start_upload(pair.b, "s3/signed")
    bare = on(pair.b, first).split("?", 1)[0]
    state = parse_qs(urlsplit(first).query)["_state"][0]
    payload = state.split(".", 1)[0]
    forged = payload + "." + hmac.new(b"another secret", payload.encode(), hashlib.sha256).hexdigest()
    other = parse_qs(urlsplit(second).query)["_state"][0]
    for url in (bare, f"{bare}?_state={forged}", f"{bare}?_state={other}"):
        r = requests.patch(url, data=b"x", headers={"Content-Type": "application/octet-stream"})
        assert r.status_code in (400, 404), r.text
        assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    assert requests.get(on(pair.b, first)).status_code == 204  # the signed URL works on either


def test_kill_9_mid_upload_then_finish_on_the_other(pair: Pair, tmp_path: Path) -> None:
    doomed = start_ours(tmp_path / "doomed", *pair.ceph.serve_flags(pair.prefix))
    try:
        data = os.urandom(16 * MiB)
        location = start_upload(doomed, "s3/killed")
        location = patch(doomed, location, data[: 7 * MiB], 0).headers["Location"]
        sent = threading.Event()

        def body() -> Iterator[bytes]:
            yield data[7 * MiB : 11 * MiB]  # completes a part on the server, then stalls
            sent.set()
            time.sleep(30)
            yield b""

        def stalled() -> None:
            headers = {
                "Content-Range": f"{7 * MiB}-{16 * MiB - 1}",
                "Content-Type": "application/octet-stream",
            }
            try:
                requests.patch(on(doomed, location), data=body(), headers=headers, timeout=40)
            except requests.RequestException:
                pass  # the server died under it

        t = threading.Thread(target=stalled, daemon=True)
        t.start()
        assert sent.wait(30)
        time.sleep(1.0)  # the server reads and sends what came
        doomed.stop(signal.SIGKILL)
    finally:
        doomed.stop(signal.SIGKILL)
    r = requests.get(on(pair.b, location))
    assert r.status_code == 204 and r.headers["Range"] == f"0-{7 * MiB - 1}"  # only what was acknowledged
    location = patch(pair.b, location, data[7 * MiB : 12 * MiB], 7 * MiB).headers["Location"]
    r = requests.put(
        on(pair.b, location),
        params={"digest": sha256(data)},
        data=data[12 * MiB :],
        headers={"Content-Range": f"{12 * MiB}-{16 * MiB - 1}", "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    assert requests.get(f"{pair.a.url}/v2/s3/killed/blobs/{sha256(data)}").content == data


# ---------------------------------------------------------------------- gc ---


def _backdate(pair: Pair, storage: Storage, path: str, seconds: float) -> None:
    driver = storage.driver
    assert isinstance(driver, S3Driver)
    key = driver.key(path)
    pair.ceph.client().copy_object(
        Bucket=pair.ceph.bucket,
        Key=key,
        CopySource={"Bucket": pair.ceph.bucket, "Key": key},
        MetadataDirective="REPLACE",
        Metadata={"mtime": repr(time.time() - seconds)},
    )


def test_gc_on_one_while_the_other_takes_pushes(pair: Pair, tmp_path: Path) -> None:
    storage = pair.storage()
    garbage = [os.urandom(1000 + i) for i in range(30)]
    for blob in garbage:
        r = requests.post(
            f"{pair.a.url}/v2/s3/garbage/blobs/uploads/", params={"digest": sha256(blob)}, data=blob
        )
        assert r.status_code == 201, r.text
    from imagefmt.digest import Digest

    for blob in garbage:
        _backdate(pair, storage, paths.blob(Digest.parse(sha256(blob))), 7200)
    images = [random_image(2, 300_000) for _ in range(4)]
    layouts = [write_oci_layout(tmp_path / f"img{i}", img, "v1") for i, img in enumerate(images)]
    errors: list[BaseException] = []

    def push() -> None:
        try:
            for i, lay in enumerate(layouts):
                dest = f"docker://{pair.b.host}/s3/during-gc{i}:v1"
                skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{lay}:v1", dest)
        except BaseException as err:
            errors.append(err)

    pusher = threading.Thread(target=push)
    pusher.start()
    results = []
    while pusher.is_alive():  # collect again and again while the pushes go on
        results.append(gc.collect(storage, grace=3600))
    pusher.join()
    results.append(gc.collect(storage, grace=3600))
    assert not errors, errors
    swept = {d for res in results for d in res.blobs}
    assert {sha256(b) for b in garbage} <= {str(d) for d in swept}
    for i, (img, _lay) in enumerate(zip(images, layouts, strict=True)):
        out = tmp_path / f"out{i}"
        skopeo(
            "copy",
            "-q",
            "--src-tls-verify=false",
            f"docker://{pair.a.host}/s3/during-gc{i}:v1",
            f"oci:{out}:v1",
        )
        assert layout_digest(out) == img.digest
        for layer in img.layers:
            assert (out / "blobs/sha256" / hashlib.sha256(layer).hexdigest()).read_bytes() == layer


def test_gc_purges_abandoned_uploads_and_their_multipart_uploads(pair: Pair) -> None:
    location = start_upload(pair.a, "s3/abandoned")
    patch(pair.a, location, os.urandom(11 * MiB), 0)  # a 10 MiB part sent: an open multipart upload
    session = urlsplit(location).path.rsplit("/", 1)[1]
    s3 = pair.ceph.client()
    prefix = f"{pair.prefix}{paths.upload('s3/abandoned', session)}/"
    assert s3.list_multipart_uploads(Bucket=pair.ceph.bucket, Prefix=prefix).get("Uploads")
    result = gc.collect(pair.storage(), grace=3600, upload_max_age=0)
    assert ("s3/abandoned", session) in result.uploads
    assert not s3.list_multipart_uploads(Bucket=pair.ceph.bucket, Prefix=prefix).get("Uploads")
    assert not s3.list_objects_v2(Bucket=pair.ceph.bucket, Prefix=prefix).get("Contents")
    assert requests.get(on(pair.b, location)).status_code == 404


def test_garbage_collect_command_takes_the_s3_flags(pair: Pair, dy: Dockyard) -> None:
    out = dy.ok("registry", "garbage-collect", "--dry-run", *pair.ceph.serve_flags(pair.prefix))
    assert " marked, " in out.splitlines()[-1] and "would delete" in out.splitlines()[-1]
    r = dy("registry", "garbage-collect", "--storage", "s3", "--s3-chunk-size", "1000")
    assert r.code == 125 and "5 MiB" in r.err
    r = dy("registry", "garbage-collect", "--storage", "nosuch")
    assert r.code != 0 and "unknown storage driver 'nosuch'" in r.err
