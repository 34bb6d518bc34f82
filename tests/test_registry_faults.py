"""Faults on a live server: kill -9 in the middle of a chunk, bad names, bad digests."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from imagefmt.digest import Digest
from registry.server import gc
from registry.server.storage import paths
from registry.server.storage.drivers import filesystem_storage
from support.images import random_image, sha256, write_oci_layout
from support.peers import Server, need, start_ours

pytestmark = pytest.mark.interop


def send_partial_patch(server: Server, location: str, total: int, sent: bytes, start: int) -> socket.socket:
    """Open a PATCH announcing ``total`` bytes and send only ``sent``; leave it hanging."""
    host, port = server.host.split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {total}\r\nContent-Range: {start}-{start + total - 1}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def test_kill9_during_chunked_upload_then_resume(tmp_path: Path) -> None:
    root = tmp_path / "root"
    server = start_ours(root)
    data = os.urandom(3 << 20)
    chunk1, chunk2 = data[: 1 << 20], data[1 << 20 :]
    digest = sha256(data)
    try:
        r = requests.post(f"{server.url}/v2/faults/app/blobs/uploads/")
        r = requests.patch(
            server.url + r.headers["Location"], data=chunk1, headers={"Content-Range": f"0-{len(chunk1) - 1}"}
        )
        assert r.status_code == 202
        location = r.headers["Location"]
        sock = send_partial_patch(server, location, len(chunk2), chunk2[: 1 << 20], len(chunk1))
        upload_dir = next(root.glob("repositories/faults/app/_uploads/*"))
        deadline = time.time() + 10
        while (upload_dir / "data").stat().st_size <= len(chunk1) and time.time() < deadline:
            time.sleep(0.02)  # the server is writing the second chunk
        assert (upload_dir / "data").stat().st_size > len(chunk1)
        server.stop(signal.SIGKILL)
        sock.close()
    finally:
        server.stop()
    assert not list(root.glob("blobs/sha256/*/*"))  # nothing half-written became a blob

    port = int(server.host.split(":")[1])
    server = start_ours(root, port=port)
    try:
        assert requests.head(f"{server.url}/v2/faults/app/blobs/{digest}").status_code == 404
        r = requests.get(server.url + location)
        assert r.status_code == 204 and r.headers["Range"] == f"0-{len(chunk1) - 1}"  # the cut chunk is gone
        r = requests.patch(server.url + location, data=chunk2[:100], headers={"Content-Range": "0-99"})
        assert r.status_code == 416  # a chunk must start where the upload ends
        assert (upload_dir / "data").stat().st_size == len(chunk1)  # truncated to the last acknowledged byte
        r = requests.patch(server.url + location, data=chunk2,
                           headers={"Content-Range": f"{len(chunk1)}-{len(data) - 1}"})  # fmt: skip
        assert r.status_code == 202, r.text
        r = requests.put(server.url + r.headers["Location"], params={"digest": digest})
        assert r.status_code == 201, r.text
        r = requests.get(f"{server.url}/v2/faults/app/blobs/{digest}")
        assert r.status_code == 200 and r.content == data
    finally:
        server.stop()


def test_kill9_during_monolithic_upload_leaves_no_blob(tmp_path: Path) -> None:
    root = tmp_path / "root"
    server = start_ours(root)
    data = os.urandom(2 << 20)
    try:
        host, port = server.host.split(":")
        sock = socket.create_connection((host, int(port)))
        head = (
            f"POST /v2/faults/mono/blobs/uploads/?digest={sha256(data)} HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        sock.sendall(head.encode() + data[: 1 << 20])
        time.sleep(0.3)
        server.stop(signal.SIGKILL)
        sock.close()
    finally:
        server.stop()
    assert not list(root.glob("blobs/sha256/*/*"))
    server = start_ours(root)
    try:
        assert requests.head(f"{server.url}/v2/faults/mono/blobs/{sha256(data)}").status_code == 404
        r = requests.post(
            f"{server.url}/v2/faults/mono/blobs/uploads/", params={"digest": sha256(data)}, data=data
        )
        assert r.status_code == 201
        assert requests.get(f"{server.url}/v2/faults/mono/blobs/{sha256(data)}").content == data
    finally:
        server.stop()


@pytest.mark.parametrize(
    "path",
    [
        "/v2/a/../b/tags/list",
        "/v2/../etc/tags/list",
        "/v2/UPPER/tags/list",
        "/v2/a/B/manifests/latest",
        "/v2/a//b/tags/list",
        "/v2/-a/tags/list",
    ],
)
def test_bad_repository_names_refused(ours: Server, path: str) -> None:
    host, port = ours.host.split(":")
    conn = http.client.HTTPConnection(host, int(port))
    try:
        conn.request("GET", path)  # http.client sends the path as is, dots included
        r = conn.getresponse()
        body = r.read()
        assert r.status == 400 and b"NAME_INVALID" in body, (r.status, body)
        conn.request("POST", path.rsplit("/", 2)[0] + "/blobs/uploads/")
        r = conn.getresponse()
        assert r.status == 400 and b"NAME_INVALID" in r.read()
    finally:
        conn.close()


def test_wrong_digest_on_chunked_upload_discards_it(ours: Server) -> None:
    data = os.urandom(5000)
    r = requests.post(f"{ours.url}/v2/faults/wrong/blobs/uploads/")
    r = requests.patch(ours.url + r.headers["Location"], data=data)
    location = ours.url + r.headers["Location"]
    r = requests.put(location, params={"digest": sha256(b"not it")})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert requests.get(location).status_code == 404
    for d in (sha256(b"not it"), sha256(data)):
        assert requests.head(f"{ours.url}/v2/faults/wrong/blobs/{d}").status_code == 404
    r = requests.put(location, params={"digest": "sha256:zz"})
    assert r.status_code in (400, 404)


def test_gc_during_a_push_keeps_the_pushed_image(tmp_path: Path) -> None:
    """GC sweeps in a loop while skopeo pushes: the push succeeds whole, and an old
    orphan is collected all the same (registry/server/gc.py explains why this is safe)."""
    need("skopeo")
    root = tmp_path / "root"
    server = start_ours(root)
    storage = filesystem_storage(root)
    try:
        orphan = os.urandom(1000)
        r = requests.post(
            f"{server.url}/v2/gc/orphan/blobs/uploads/", params={"digest": sha256(orphan)}, data=orphan
        )
        assert r.status_code == 201
        old = time.time() - 7200
        os.utime(root / paths.blob(Digest.parse(sha256(orphan))).lstrip("/"), (old, old))
        image = random_image(4, 1 << 20)
        layout = write_oci_layout(tmp_path / "layout", image, "v1")
        stop = threading.Event()
        swept: list[Digest] = []

        def collect() -> None:
            while not stop.is_set():
                swept.extend(gc.collect(storage, grace=60).blobs)

        t = threading.Thread(target=collect)
        t.start()
        try:
            cmd = [
                "skopeo",
                "copy",
                "--dest-tls-verify=false",
                f"oci:{layout}:v1",
                f"docker://{server.host}/gc/app:v1",
            ]
            subprocess.run(cmd, check=True, capture_output=True)
        finally:
            stop.set()
            t.join()
        assert swept == [Digest.parse(sha256(orphan))]
        for digest, data in image.blobs().items():
            assert requests.get(f"{server.url}/v2/gc/app/blobs/{digest}").content == data
        assert requests.get(f"{server.url}/v2/gc/app/manifests/v1").content == image.manifest
    finally:
        server.stop()


def test_connection_stays_usable_after_a_refused_body(ours: Server) -> None:
    """A 416 PATCH or a 400 PUT must not leave the rest of its body on a kept-alive
    connection (gunicorn would drop the connection after saying keep-alive)."""
    with requests.Session() as s:
        r = s.post(f"{ours.url}/v2/faults/keepalive/blobs/uploads/")
        location = ours.url + r.headers["Location"]
        chunk = os.urandom(1 << 20)
        r = s.patch(location, data=chunk, headers={"Content-Range": f"5-{len(chunk) + 4}"})
        assert r.status_code == 416
        assert s.get(f"{ours.url}/v2/").status_code == 200
        r = s.put(location, params={"digest": sha256(b"x")}, data=chunk)
        assert r.status_code == 400
        assert s.get(f"{ours.url}/v2/").status_code == 200
