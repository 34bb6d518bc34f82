"""Hostile input against a live server (``registry serve`` under gunicorn): never a
500, never a hang.  Where distribution 2.8.2 answers the same input, the test asks
it too and expects the same status and code (issue 12)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from imagefmt.errors import Invalid
from registry.server.htpasswd import set_htpasswd_user
from support.images import sha256
from support.peers import PYTHON, ROOT, Distribution, Peer, Server, start_ours
from tests.conftest import need_root

pytestmark = pytest.mark.interop

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = b"{}"


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Our registry, no auth, shared by this module's tests."""
    server = start_ours(tmp_path_factory.mktemp("hardening") / "root")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def peers(plain: Server, distribution: Distribution) -> dict[str, Peer]:
    return {"dockyard": plain, "distribution": distribution}


def error_code(r: requests.Response) -> str:
    """The first OCI error code of a reply (fails the test on a body that is not one)."""
    return str(r.json()["errors"][0]["code"])


def push_config(peer: Peer, repo: str) -> str:
    """Push the config blob by POST + PUT (distribution has no monolithic POST)."""
    r = requests.post(f"{peer.url}/v2/{repo}/blobs/uploads/", timeout=30)
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    url = location if location.startswith("http") else peer.url + location
    digest = sha256(CONFIG)
    r = requests.put(url, params={"digest": digest}, data=CONFIG, timeout=30)
    assert r.status_code == 201, r.text
    return digest


def good_manifest(config_digest: str) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": 2,
        },
        "layers": [],
    }


def put_manifest(peer: Peer, repo: str, ref: str, body: bytes, media_type: str) -> requests.Response:
    return requests.put(
        f"{peer.url}/v2/{repo}/manifests/{ref}", data=body, headers={"Content-Type": media_type}, timeout=60
    )


# ------------------------------------------------------ 1. manifest types ---

Mutation = Callable[[dict[str, Any]], None]

BAD_MANIFESTS: dict[str, Mutation] = {
    "config annotations a list": lambda m: m["config"].update(annotations=["a"]),
    "config annotations [[1,2]]": lambda m: m["config"].update(annotations=[[1, 2]]),
    "config annotation value a number": lambda m: m["config"].update(annotations={"a": 1}),
    "manifest annotations [[1,2]]": lambda m: m.update(annotations=[[1, 2]]),
    "config urls a number": lambda m: m["config"].update(urls=5),
    "config urls a string": lambda m: m["config"].update(urls="http://example.com/x"),
    "config mediaType a number": lambda m: m["config"].update(mediaType=5),
    "config digest a number": lambda m: m["config"].update(digest=5),
    "config size a string": lambda m: m["config"].update(size="2"),
    "layers an object": lambda m: m.update(layers={"a": 1}),
    "layers holding a number": lambda m: m.update(layers=[1]),
    "schemaVersion a string": lambda m: m.update(schemaVersion="2"),
}


@pytest.mark.parametrize("kind", ["dockyard", "distribution"])
@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_wrongly_typed_manifest_is_manifest_invalid(peers: dict[str, Peer], kind: str, case: str) -> None:
    peer = peers[kind]
    manifest = good_manifest(push_config(peer, "hard/typed"))
    BAD_MANIFESTS[case](manifest)
    r = put_manifest(peer, "hard/typed", "bad", json.dumps(manifest).encode(), OCI_MANIFEST)
    assert (r.status_code, error_code(r)) == (400, "MANIFEST_INVALID"), r.text


BAD_INDEX_ENTRIES: dict[str, Mutation] = {
    "platform a string": lambda e: e.update(platform="linux/amd64"),
    "platform an array": lambda e: e.update(platform=["linux"]),
    "platform os a number": lambda e: e.update(platform={"os": 1, "architecture": "amd64"}),
    "platform features a string": lambda e: e.update(platform={"os": "linux", "os.features": "x"}),
    "annotations [[1,2]]": lambda e: e.update(annotations=[[1, 2]]),
    "urls a number": lambda e: e.update(urls=1),
}


@pytest.mark.parametrize("kind", ["dockyard", "distribution"])
@pytest.mark.parametrize("case", list(BAD_INDEX_ENTRIES))
def test_wrongly_typed_index_entry_is_manifest_invalid(peers: dict[str, Peer], kind: str, case: str) -> None:
    peer = peers[kind]
    raw = json.dumps(good_manifest(push_config(peer, "hard/index"))).encode()
    r = put_manifest(peer, "hard/index", "child", raw, OCI_MANIFEST)
    assert r.status_code == 201, r.text
    entry: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": sha256(raw), "size": len(raw)}
    BAD_INDEX_ENTRIES[case](entry)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    r = put_manifest(peer, "hard/index", "bad", json.dumps(index).encode(), OCI_INDEX)
    assert (r.status_code, error_code(r)) == (400, "MANIFEST_INVALID"), r.text


@pytest.mark.parametrize("kind", ["dockyard", "distribution"])
@pytest.mark.parametrize(
    "body",
    [b"[" * 100000, b'{"a":' * 50000, b"[" * 100000 + b"]" * 100000],
    ids=["open-arrays", "open-objects", "closed-arrays"],
)
def test_deeply_nested_manifest_is_manifest_invalid(peers: dict[str, Peer], kind: str, body: bytes) -> None:
    r = put_manifest(peers[kind], "hard/nested", "latest", body, OCI_MANIFEST)
    assert (r.status_code, error_code(r)) == (400, "MANIFEST_INVALID"), r.text[:300]


# ------------------------------------------------------------- 5, 6. auth ---


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hard-auth") / "htpasswd"
    set_htpasswd_user(path, "alice", "alice-secret")
    return path


@pytest.fixture(scope="module")
def basic_peers(htpasswd: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Peer]]:
    ours = start_ours(tmp_path_factory.mktemp("hard-basic") / "root", "--htpasswd", str(htpasswd))
    auth = {"htpasswd": {"realm": "dockyard", "path": str(htpasswd)}}
    theirs = Distribution(tmp_path_factory.mktemp("hard-basic-dist"), auth=auth)
    try:
        theirs.start()
        yield {"dockyard": ours, "distribution": theirs}
    finally:
        ours.stop()
        theirs.stop()


@pytest.fixture(scope="module")
def token_server(htpasswd: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_ours(
        tmp_path_factory.mktemp("hard-token") / "root", "--htpasswd", str(htpasswd), "--token"
    )
    yield server
    server.stop()


LONG = "p" * 73  # bcrypt's limit is 72 bytes; bcrypt 5 raises past it


@pytest.mark.parametrize("kind", ["dockyard", "distribution"])
@pytest.mark.parametrize("user", ["alice", "nobody"])
@pytest.mark.parametrize("password", [LONG, "é" * 40, "x" * 4096], ids=["73-bytes", "80-bytes-utf8", "4-KiB"])
def test_basic_auth_long_password_is_401_for_any_user(
    basic_peers: dict[str, Peer], kind: str, user: str, password: str
) -> None:
    r = requests.get(f"{basic_peers[kind].url}/v2/", headers=basic(user, password), timeout=30)
    assert (r.status_code, error_code(r)) == (401, "UNAUTHORIZED"), r.text


def test_htpasswd_refuses_to_store_a_password_bcrypt_would_cut(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="72 bytes"):
        set_htpasswd_user(tmp_path / "htpasswd", "bob", LONG)
    assert not (tmp_path / "htpasswd").exists()


@pytest.mark.parametrize("user", ["alice", "nobody"])
def test_token_endpoint_long_password_is_401_for_any_user(token_server: Server, user: str) -> None:
    url = f"{token_server.url}/auth/token"
    r = requests.get(url, headers=basic(user, LONG), params={"scope": "repository:a/b:pull"}, timeout=30)
    assert (r.status_code, error_code(r)) == (401, "UNAUTHORIZED"), r.text
    form = {"grant_type": "password", "username": user, "password": LONG}
    r = requests.post(url, data=form, timeout=30)
    assert (r.status_code, error_code(r)) == (401, "UNAUTHORIZED"), r.text


@pytest.mark.parametrize(
    "token",
    [
        "W10.e30.AAAA",  # header [] (not an object), claims {}
        "e30.W10.AAAA",  # claims [] (not an object)
        "IjEi.IjEi.AAAA",  # both a JSON string
        "bnVsbA.bnVsbA.AAAA",  # both null
        "W1tbW1s.e30.AAAA",  # header not even JSON
        "...",
        "a.b",
    ],
)
def test_token_mode_malformed_jwt_is_401(token_server: Server, token: str) -> None:
    r = requests.get(f"{token_server.url}/v2/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert (r.status_code, error_code(r)) == (401, "UNAUTHORIZED"), r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer ")


# ------------------------------------------------------------ 9. busy port ---


def test_serve_on_a_busy_port_fails_at_once_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        argv = [PYTHON, "-m", "cli", "registry", "serve", "--addr", addr, "--root", str(tmp_path / "root")]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"Error: cannot listen on {addr}: Address already in use: another server listens there; "
        "choose another with --addr"
    ]


# ------------------------------------------------------------- 8. access log ---


def access_entries(log: Path, count: int) -> list[dict[str, Any]]:
    """The first ``count`` JSON lines of the access log, waiting for the workers to write them."""
    deadline = time.monotonic() + 20
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


def test_access_log_counts_the_bytes_sendfile_sent(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    server = start_ours(tmp_path / "root", "--access-log", str(log))
    data = os.urandom(300_000)
    digest = sha256(data)
    url = f"{server.url}/v2/hard/log/blobs/{digest}"
    try:
        r = requests.post(f"{server.url}/v2/hard/log/blobs/uploads/", params={"digest": digest}, data=data)
        assert r.status_code == 201, r.text
        assert requests.get(url, timeout=30).content == data
        r = requests.get(url, headers={"Range": "bytes=10-1009"}, timeout=30)
        assert r.status_code == 206 and r.content == data[10:1010]
        r = requests.get(url, headers={"Range": "bytes=299000-"}, timeout=30)
        assert r.status_code == 206 and r.content == data[299000:]
        assert requests.head(url, timeout=30).status_code == 200
    finally:
        server.stop()
    blob = [
        (e["method"], e["status"], e["bytes"])
        for e in access_entries(log, 6)
        if "/blobs/sha256:" in e["path"]
    ]
    assert blob == [("GET", 200, 300_000), ("GET", 206, 1000), ("GET", 206, 1000), ("HEAD", 200, 0)]


# --------------------------------------------- 2, 3, 4. the connection level ---


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Our registry with short header and body timeouts (2 s)."""
    base = tmp_path_factory.mktemp("hard-tight")
    config = base / "config.json"
    config.write_text(json.dumps({"header_timeout": 2, "body_timeout": 2}))
    server = start_ours(base / "root", "--config", str(config))
    yield server
    server.stop()


def connect(peer: Peer) -> socket.socket:
    host, port = peer.host.split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)  # the bound on every test read
    return sock


def exchange(peer: Peer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read one reply: (status, headers, body)."""
    with connect(peer) as sock:
        sock.sendall(data)
        resp = http.client.HTTPResponse(sock)
        try:
            resp.begin()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            resp.close()


def oci_error(body: bytes) -> dict[str, Any]:
    """The first error of an OCI error body (fails the test on anything else)."""
    errors = json.loads(body)["errors"]
    assert isinstance(errors, list) and {"code", "message"} <= errors[0].keys()
    return dict(errors[0])


CHUNKED_BODIES = {
    "bad chunk size": b"ZZ\r\nabc\r\n0\r\n\r\n",
    "missing chunk terminator": b"3\r\nabcXX0\r\n\r\n",
    "chunk size not hex": b"-3\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("body", list(CHUNKED_BODIES))
@pytest.mark.parametrize(
    "target",
    [
        "POST /v2/hard/chunked/blobs/uploads/?digest=sha256:" + "0" * 64,
        "PUT /v2/hard/chunked/manifests/latest",
        "POST /auth/token",
    ],
    ids=["monolithic-upload", "manifest", "token-form"],
)
def test_malformed_chunked_body_is_400_with_an_oci_body(plain: Server, target: str, body: str) -> None:
    head = f"{target} HTTP/1.1\r\nHost: {plain.host}\r\nTransfer-Encoding: chunked\r\n"
    head += "Content-Type: application/x-www-form-urlencoded\r\n" if "token" in target else ""
    status, headers, reply = exchange(plain, f"{head}\r\n".encode() + CHUNKED_BODIES[body])
    if "token" in target:  # token auth is off here: refused before the body is read
        assert status == 405
        return
    assert status == 400, reply
    assert headers["content-type"] == "application/json"
    assert "malformed request body" in oci_error(reply)["message"]


def test_chunked_patch_with_a_bad_chunk_keeps_the_session(plain: Server) -> None:
    r = requests.post(f"{plain.url}/v2/hard/chunked/blobs/uploads/", timeout=30)
    location = r.headers["Location"]
    head = f"PATCH {location} HTTP/1.1\r\nHost: {plain.host}\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, _, reply = exchange(plain, head.encode() + b"3\r\nabc\r\nZZ\r\n")
    assert status == 400 and "malformed request body" in oci_error(reply)["message"]
    r = requests.get(plain.url + location, timeout=30)
    assert r.status_code == 204 and r.headers["Range"] == "0-0"  # nothing of the broken chunk kept


@pytest.mark.parametrize(
    "request_head, status",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (
            b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(200)) + b"\r\n",
            431,
        ),
        (b"GET /v2/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /v2/ HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400),
    ],
    ids=["request-line", "huge-header", "many-headers", "long-uri", "header-name"],
)
def test_gunicorn_refusals_carry_an_oci_body(plain: Server, request_head: bytes, status: int) -> None:
    got, headers, reply = exchange(plain, request_head)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert oci_error(reply)["code"] == "UNKNOWN"


def test_manifest_over_the_limit_is_413_before_its_body(plain: Server) -> None:
    """Content-Length 100 MiB and no body at all: the 413 comes at once (the read
    is bounded by connect()'s 30 s; it used to wait for 16 MiB of drain forever)."""
    head = (
        f"PUT /v2/hard/big/manifests/latest HTTP/1.1\r\nHost: {plain.host}\r\n"
        f"Content-Type: {OCI_MANIFEST}\r\nContent-Length: {100 << 20}\r\n\r\n"
    )
    with connect(plain) as sock:
        sock.sendall(head.encode())
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 413
        assert oci_error(resp.read())["code"] == "SIZE_INVALID"
        assert resp.getheader("Connection") == "close"  # the body is not read: the connection ends
        resp.close()
        assert sock.recv(1024) == b""


def test_manifest_body_that_never_comes_is_400_after_the_body_timeout(tight: Server) -> None:
    head = (
        f"PUT /v2/hard/slow/manifests/latest HTTP/1.1\r\nHost: {tight.host}\r\n"
        f"Content-Type: {OCI_MANIFEST}\r\nContent-Length: 1000\r\n\r\n"
    )
    status, _, reply = exchange(tight, head.encode() + b'{"schemaVersion"')
    assert status == 400
    assert "nothing received for 2 s" in oci_error(reply)["message"]


def test_a_head_that_never_ends_is_dropped_after_the_header_timeout(tight: Server) -> None:
    with connect(tight) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        assert sock.recv(1024) == b""  # closed by the server (bounded by connect()'s 30 s)


@pytest.mark.parametrize("kind", ["dockyard", "distribution"])
def test_slow_clients_do_not_starve_the_others(peers: dict[str, Peer], kind: str) -> None:
    """60 idle connections and 40 that trickle their headers, more than the 2 x 16
    threads: a normal client is still answered (each GET bounded by 30 s; it used
    to time out)."""
    peer = peers[kind]
    idle = [connect(peer) for _ in range(60)]
    slow = [connect(peer) for _ in range(40)]
    done = threading.Event()

    def trickle() -> None:
        for i, s in enumerate(slow):  # a quarter send a whole request first, and the next one's start with it
            s.sendall(
                b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n" * (i % 4 == 0) + b"GET /v2/ HTTP/1.1\r\nHost: x\r\n"
            )
        while not done.wait(0.5):
            for s in slow:
                with contextlib.suppress(OSError):
                    s.sendall(b"X-Slow: 1\r\n")

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        time.sleep(1)  # every slow client has started its head
        with requests.Session() as session:
            for _ in range(3):
                assert session.get(f"{peer.url}/v2/", timeout=30).status_code == 200
            for _ in range(3):
                assert requests.get(f"{peer.url}/v2/", timeout=30).status_code == 200  # new connections
    finally:
        done.set()
        thread.join()
        for s in idle + slow:
            s.close()


def test_a_tls_client_on_the_plain_port_is_refused_at_once(peers: dict[str, Peer]) -> None:
    """skopeo and docker try https first on an insecure registry and fall back to http
    when the handshake fails: the handshake must fail at once (as on distribution), not
    wait for a header timeout."""
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    for peer in peers.values():
        host, port = peer.host.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            with pytest.raises(ssl.SSLError):  # not socket.timeout: an answer came back within 5 s
                ctx.wrap_socket(raw, server_hostname=host)


@pytest.fixture(scope="module")
def tls_tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """Our registry over TLS with a 2 s header timeout, and its CA certificate."""
    from cli import main as cli_main

    base = tmp_path_factory.mktemp("hard-tls")
    assert cli_main(["registry", "gen-certs", str(base / "certs"), "--host", "127.0.0.1"]) == 0
    config = base / "config.json"
    config.write_text(json.dumps({"header_timeout": 2}))
    certs = base / "certs"
    tls = ["--tls-cert", str(certs / "server/server.crt"), "--tls-key", str(certs / "server/server.key")]
    ca = certs / "ca/ca.crt"
    server = start_ours(base / "root", "--config", str(config), *tls, scheme="https", verify=str(ca))
    yield server, ca
    server.stop()


def test_slow_tls_clients_do_not_starve_the_others(tls_tight: tuple[Server, Path]) -> None:
    """Over TLS too: 40 connections that never start their handshake, 20 that stop
    halfway through their ClientHello and 20 that finish the handshake then trickle
    their head, more than the 2 x 16 threads: an https client is still answered, and
    the stalled ones are dropped after the header timeout."""
    import ssl

    server, ca = tls_tight
    host, port = server.host.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(ca))
    idle = [connect(server) for _ in range(40)]
    halfway = [connect(server) for _ in range(20)]
    for sock in halfway:
        hello = ssl.MemoryBIO()
        client = ctx.wrap_bio(ssl.MemoryBIO(), hello, server_hostname=host)
        with contextlib.suppress(ssl.SSLWantReadError):
            client.do_handshake()
        sock.sendall(hello.read()[:40])
    trickling = [ctx.wrap_socket(connect(server), server_hostname=host) for _ in range(20)]
    for sock in trickling:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
    try:
        for _ in range(3):
            assert requests.get(f"{server.url}/v2/", verify=str(ca), timeout=30).status_code == 200
        for sock in [*idle, *halfway]:
            assert sock.recv(1024) == b""  # dropped (bounded by connect()'s 30 s)
        for tls in trickling:
            assert tls.recv(1024) == b""
    finally:
        for sock in [*idle, *halfway, *trickling]:
            sock.close()


# ------------------------------------------------------------- 7. disk full ---


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (the registry's root), and a file that can fill it: ``fill()``."""
    need_root()
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(path: Path) -> None:
    with open(path, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)


def test_full_disk_is_507_and_leaves_no_session_or_temp_file(full_disk: Path) -> None:
    server = start_ours(full_disk)  # its log is beside the mount, not on it
    filler = full_disk / "filler"
    url = f"{server.url}/v2/hard/full"
    data = os.urandom(300_000)
    try:
        r = requests.post(f"{url}/blobs/uploads/", timeout=30)
        assert r.status_code == 202  # a session made while there is room
        location = r.headers["Location"]
        fill(filler)
        for _ in range(3):
            r = requests.post(f"{url}/blobs/uploads/", timeout=30)
            assert r.status_code == 507 and "is full" in oci_error(r.content)["message"], r.text
        r = requests.post(f"{url}/blobs/uploads/", params={"digest": sha256(data)}, data=data, timeout=30)
        assert r.status_code == 507 and "is full" in oci_error(r.content)["message"], r.text
        r = requests.patch(server.url + location, data=data, timeout=30)
        assert r.status_code == 507 and "is full" in oci_error(r.content)["message"], r.text
        assert [p.name for p in (full_disk / "repositories/hard/full/_uploads").iterdir()] == [
            location.rsplit("/")[-1]
        ]
        assert list((full_disk / "tmp").iterdir()) == []

        filler.unlink()  # room again: the session goes on from where it was
        r = requests.get(server.url + location, timeout=30)
        assert r.status_code == 204 and r.headers["Range"] == "0-0"
        r = requests.put(server.url + location, params={"digest": sha256(data)}, data=data, timeout=30)
        assert r.status_code == 201, r.text
        assert requests.get(f"{url}/blobs/{sha256(data)}", timeout=30).content == data
    finally:
        server.stop()
