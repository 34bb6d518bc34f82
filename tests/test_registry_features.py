"""Read-only mode, quotas, webhooks, content negotiation, limits, tags, logs, the CLI."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

import cli
from registry.server.app import create_app
from registry.server.config import Config, WebhookEndpoint, load
from support.images import push_image, random_image, sha256
from support.peers import ROOT, Server, start_ours, wait_http

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def push_blob(c: FlaskClient, name: str, data: bytes) -> int:
    return c.post(f"/v2/{name}/blobs/uploads/", query_string={"digest": sha256(data)}, data=data).status_code


def push_test_image(c: FlaskClient, name: str, tag: str, media_type: str = OCI_MANIFEST) -> bytes:
    image = random_image(1, 100)
    for data in [image.config, *image.layers]:
        assert push_blob(c, name, data) == 201
    doc = json.loads(image.manifest)
    doc["mediaType"] = media_type
    raw = json.dumps(doc).encode()
    r = c.put(f"/v2/{name}/manifests/{tag}", data=raw, content_type=media_type)
    assert r.status_code == 201, r.text
    return raw


def test_read_only_mode(tmp_path: Path) -> None:
    writable = create_app(Config(root=tmp_path)).test_client()
    push_test_image(writable, "ro/app", "v1")
    c = create_app(Config(root=tmp_path, read_only=True)).test_client()
    r = c.post("/v2/ro/app/blobs/uploads/")
    assert r.status_code == 405 and r.json is not None and r.json["errors"][0]["code"] == "UNSUPPORTED"
    assert c.delete("/v2/ro/app/manifests/v1").status_code == 405
    assert c.get("/v2/ro/app/manifests/v1").status_code == 200


def test_repository_quota(tmp_path: Path) -> None:
    c = create_app(Config(root=tmp_path, quotas=(("small/*", 1000),))).test_client()
    assert push_blob(c, "small/a", b"x" * 600) == 201
    r = c.post("/v2/small/a/blobs/uploads/", query_string={"digest": sha256(b"y" * 600)}, data=b"y" * 600)
    assert r.status_code == 403 and r.json is not None and r.json["errors"][0]["code"] == "DENIED"
    session = c.post("/v2/small/a/blobs/uploads/").headers["Location"]
    assert c.patch(session, data=b"z" * 600).status_code == 403
    assert push_blob(c, "small/b", b"y" * 600) == 201  # quotas are per repository
    assert push_blob(c, "big/a", b"y" * 5000) == 201


def test_deletes_can_be_disabled_and_manifest_size_limited(tmp_path: Path) -> None:
    c = create_app(Config(root=tmp_path, delete_enabled=False, max_manifest_bytes=500)).test_client()
    raw = push_test_image(c, "lim/app", "v1")
    assert len(raw) < 500
    assert c.delete("/v2/lim/app/manifests/v1").status_code == 405
    assert c.delete(f"/v2/lim/app/blobs/{sha256(b'x')}").status_code == 405
    r = c.put("/v2/lim/app/manifests/big", data=b"{" + b" " * 600 + b"}", content_type=OCI_MANIFEST)
    assert r.status_code == 413


def test_content_negotiation_of_a_manifest_list(client: FlaskClient) -> None:
    child = push_test_image(client, "neg/app", "child", DOCKER_MANIFEST)
    entry = {"mediaType": DOCKER_MANIFEST, "digest": sha256(child), "size": len(child)}
    entry["platform"] = {"architecture": "amd64", "os": "linux"}
    lst = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [entry]}).encode()
    r = client.put("/v2/neg/app/manifests/multi", data=lst, content_type=DOCKER_LIST)
    assert r.status_code == 201
    r = client.get("/v2/neg/app/manifests/multi", headers={"Accept": f"{DOCKER_LIST}, {DOCKER_MANIFEST}"})
    assert r.data == lst and r.headers["Content-Type"] == DOCKER_LIST
    r = client.get("/v2/neg/app/manifests/multi", headers={"Accept": DOCKER_MANIFEST})
    assert r.data == child and r.headers["Docker-Content-Digest"] == sha256(child)
    r = client.get("/v2/neg/app/manifests/multi", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 404 and r.json is not None and r.json["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    r = client.head("/v2/neg/app/manifests/multi")
    assert r.status_code == 200 and r.data == b"" and int(r.headers["Content-Length"]) == len(lst)
    bad = json.dumps(
        {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [{**entry, "digest": sha256(b"?")}]}
    )
    r = client.put("/v2/neg/app/manifests/bad", data=bad, content_type=DOCKER_LIST)
    assert (
        r.status_code == 400 and r.json is not None and r.json["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    )


def test_tags_order_pagination_and_put_with_tags(client: FlaskClient) -> None:
    raw = push_test_image(client, "tags/app", "b")
    r = client.put(f"/v2/tags/app/manifests/{sha256(raw)}?tag=c&tag=a", data=raw, content_type=OCI_MANIFEST)
    assert r.status_code == 201 and r.headers.getlist("OCI-Tag") == ["c", "a"]
    assert client.get("/v2/tags/app/tags/list").json == {"name": "tags/app", "tags": ["a", "b", "c"]}
    r = client.get("/v2/tags/app/tags/list?n=2")
    assert r.json is not None and r.json["tags"] == ["a", "b"]
    assert r.headers["Link"] == '</v2/tags/app/tags/list?n=2&last=b>; rel="next"'
    r = client.get("/v2/tags/app/tags/list?n=2&last=b")
    assert r.json is not None and r.json["tags"] == ["c"] and "Link" not in r.headers
    r = client.get("/v2/tags/app/tags/list?n=0")
    assert r.json is not None and r.json["tags"] == [] and "Link" not in r.headers
    assert client.get("/v2/tags/app/tags/list?n=x").status_code == 400
    assert client.put("/v2/tags/app/manifests/-bad-", data=raw, content_type=OCI_MANIFEST).status_code == 400


def test_unknown_routes_answer_oci_errors(client: FlaskClient) -> None:
    r = client.get("/v2/a/nothing-here/x")
    assert r.status_code == 404 and r.json is not None and "errors" in r.json
    r = client.post("/v2/a/manifests/x")
    assert r.status_code == 405 and r.json is not None and r.json["errors"][0]["code"] == "UNSUPPORTED"
    assert client.get("/v2/").headers["Docker-Distribution-API-Version"] == "registry/2.0"


# --------------------------------------------------------------- webhooks ---


class Receiver:
    """A webhook endpoint on 127.0.0.1 that fails its first ``fail`` requests."""

    def __init__(self, fail: int = 0, delay: float = 0.0) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's method name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                outer.calls += 1
                if outer.calls <= fail:
                    self.send_response(500)
                else:
                    outer.events.append((self.headers["Content-Type"], json.loads(body)))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.time() + timeout
        while len(self.events) < n and time.time() < deadline:
            time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=2)
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_webhooks_are_retried_with_backoff(tmp_path: Path, receiver: Receiver) -> None:
    cfg = Config(root=tmp_path, notifications=(WebhookEndpoint(receiver.url, attempts=4, backoff=0.05),))
    c = create_app(cfg).test_client()
    raw = push_test_image(c, "hooks/app", "v1")
    receiver.wait(3)  # config + layer + manifest; the first event needed three attempts
    assert receiver.calls >= 5
    pushes = [ev for ct, body in receiver.events for ev in body["events"]]  # type: ignore[attr-defined]
    assert all(ct == "application/vnd.docker.distribution.events.v2+json" for ct, _ in receiver.events)
    manifest_events = [e for e in pushes if e["target"]["mediaType"] == OCI_MANIFEST]
    assert manifest_events and manifest_events[0]["action"] == "push"
    target = manifest_events[0]["target"]
    assert target["repository"] == "hooks/app" and target["tag"] == "v1" and target["digest"] == sha256(raw)
    c.delete("/v2/hooks/app/manifests/v1")
    receiver.wait(4)
    assert any(e["action"] == "delete" for _, body in receiver.events for e in body["events"])  # type: ignore[attr-defined]


def test_a_slow_webhook_never_blocks_a_push(tmp_path: Path) -> None:
    slow = Receiver(delay=2.0)
    try:
        c = create_app(
            Config(root=tmp_path, notifications=(WebhookEndpoint(slow.url, timeout=5),))
        ).test_client()
        started = time.time()
        push_test_image(c, "hooks/slow", "v1")
        assert time.time() - started < 1.0
    finally:
        slow.server.shutdown()
        slow.server.server_close()


# ------------------------------------------------------------ live server ---


def test_access_log_is_json_lines(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    server: Server = start_ours(tmp_path / "root", "--access-log", str(log))
    try:
        push_image(server.url, "logs/app", random_image(1, 1000))
        requests.get(f"{server.url}/v2/logs/app/manifests/latest")
    finally:
        server.stop()
    entries = [json.loads(line) for line in log.read_text().splitlines()]  # two workers: any order
    get = next(e for e in entries if e["method"] == "GET" and e["path"] == "/v2/logs/app/manifests/latest")
    assert get["status"] == 200 and get["bytes"] > 0
    assert {"time", "remote", "account", "bytes", "duration_ms", "user_agent"} <= get.keys()


# -------------------------------------------------------------------- CLI ---


def test_cli_htpasswd_gen_certs_and_gc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert cli.main(["registry", "htpasswd", str(tmp_path / "htpasswd"), "dave"]) == 0
    assert (tmp_path / "htpasswd").read_text().startswith("dave:$2y$")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert cli.main(["registry", "htpasswd", str(tmp_path / "htpasswd"), "erin"]) == 1
    assert cli.main(["registry", "gen-certs", str(tmp_path / "certs"), "--host", "10.1.2.3"]) == 0
    assert {p.name for p in (tmp_path / "certs/client").iterdir()} == {"ca.crt", "client.cert", "client.key"}
    c = create_app(Config(root=tmp_path / "reg")).test_client()
    push_blob(c, "gc/app", b"orphan")
    capsys.readouterr()
    args = ["registry", "garbage-collect", "--root", str(tmp_path / "reg"), "--grace", "0"]
    assert cli.main([*args, "--dry-run"]) == 0
    assert f"would delete blob {sha256(b'orphan')}" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert f"deleted blob {sha256(b'orphan')}" in capsys.readouterr().out
    assert cli.main(["registry", "serve", "--root", str(tmp_path), "--token"]) == 1


def test_config_file(tmp_path: Path) -> None:
    f = tmp_path / "registry.toml"
    f.write_text(
        'root = "/srv/reg"\nread_only = true\n[auth]\nhtpasswd = "/etc/h"\n[auth.token]\nservice = "svc"\n'
        '[tls]\ncert = "c.crt"\nkey = "c.key"\n[quotas]\n"team/*" = 10\n[[notifications]]\nurl = "http://h/x"\n'
    )
    cfg = load(f)
    assert cfg.root == Path("/srv/reg") and cfg.read_only and cfg.htpasswd == Path("/etc/h")
    assert cfg.token is not None and cfg.token.service == "svc" and cfg.tls_cert == Path("c.crt")
    assert cfg.quota_for("team/a") == 10 and cfg.quota_for("other") is None
    assert cfg.notifications[0].url == "http://h/x"
    assert Config().addr == "0.0.0.0:5000"
    (tmp_path / "bad.json").write_text('{"nonsense": 1}')
    with pytest.raises(Exception, match="unknown keys"):
        load(tmp_path / "bad.json")


def test_serve_defaults_to_port_5000(tmp_path: Path) -> None:
    """``dockyard registry serve`` with no --addr: ``curl localhost:5000/v2/`` answers."""
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", 5000))
        except OSError:
            pytest.skip("port 5000 is taken on this machine")
    args = [sys.executable, "-m", "cli", "registry", "serve", "--root", str(tmp_path / "root")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    server = Server("dockyard", "http://localhost:5000", proc, tmp_path / "root")
    try:
        wait_http("http://localhost:5000/v2/", proc)
        r = requests.get("http://localhost:5000/v2/")
        assert r.status_code == 200 and r.json() == {}
        assert r.headers["Server"] == "gunicorn"  # a production server, not werkzeug's
    finally:
        server.stop()
    assert b'"path": "/v2/"' in (tmp_path / "log").read_bytes()  # access log on stderr by default
