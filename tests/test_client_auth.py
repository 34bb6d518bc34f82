"""Authentication and TLS against distribution: htpasswd (Basic), a Docker-Hub-like
token service (Bearer: anonymous pull, login to push), and certs.d CAs."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefmt.reference import Reference
from imagefmt.store import Store
from registry.client import Client, ClientOptions
from tests import client_fixtures as cf
from tests.conftest import Dockyard, need
from tests.registries import Distribution, TokenServer, htpasswd_auth, make_ca, make_cert

docker_config = cf.docker_config

pytestmark = pytest.mark.interop


def login(
    dy: Dockyard, monkeypatch: pytest.MonkeyPatch, host: str, user: str, password: str
) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    r = dy("login", "-u", user, "--password-stdin", host)
    return r.code, r.out + r.err


@pytest.fixture
def basic_dist(tmp_path: Path) -> Iterator[Distribution]:
    need("docker-registry")
    root = tmp_path / "basic"
    d = Distribution(root, auth=htpasswd_auth(root, {"alice": "wonderland"})).start()
    yield d
    d.stop()


@pytest.fixture
def token_dist(tmp_path: Path) -> Iterator[tuple[Distribution, TokenServer]]:
    need("docker-registry")
    tokens = TokenServer({"alice": "wonderland"}).start()
    root = tmp_path / "token"
    d = Distribution(root, auth=tokens.auth_section(root)).start()
    yield d, tokens
    d.stop()
    tokens.stop()


def test_basic_auth_login_push_logout(
    basic_dist: Distribution,
    dy: Dockyard,
    tmp_path: Path,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = basic_dist.host
    store = Store(dy.root)
    cf.local_image(store, tmp_path, f"{host}/team/app:1", seed=31, size=2000)
    r = dy("push", f"{host}/team/app:1")
    assert r.code == 4 and f"run 'dockyard login {host}'" in r.err
    code, text = login(dy, monkeypatch, host, "alice", "wrong")
    assert code == 4 and "refused the credentials of 'alice'" in text
    assert not docker_config.exists()
    code, text = login(dy, monkeypatch, host, "alice", "wonderland")
    assert code == 0 and "Login Succeeded" in text
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
    assert list(json.loads(docker_config.read_text())["auths"]) == [host]
    assert dy.ok("push", f"{host}/team/app:1").splitlines()[-1].startswith("1: digest: sha256:")
    assert dy.ok("logout", host).strip() == f"Removing login credentials for {host}"
    assert dy.ok("logout", host).strip() == f"Not logged in to {host}"
    assert dy("pull", f"{host}/team/app:1").code == 4


def test_token_auth_like_docker_hub(
    token_dist: tuple[Distribution, TokenServer],
    dy: Dockyard,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dist, tokens = token_dist
    host = dist.host
    store = Store(dy.root)
    cf.local_image(store, tmp_path, f"{host}/team/app:1", seed=41, size=2000)
    r = dy("push", f"{host}/team/app:1")
    assert r.code == 4 and f"run 'dockyard login {host}'" in r.err
    assert tokens.requests and tokens.requests[-1]["account"] is None  # asked anonymously first
    assert login(dy, monkeypatch, host, "alice", "nope")[0] == 4
    tokens.requests.clear()
    assert login(dy, monkeypatch, host, "alice", "wonderland")[0] == 0
    assert tokens.requests[-1]["account"] == "alice"
    out = dy.ok("push", f"{host}/team/app:1").splitlines()
    assert out[-1].startswith("1: digest: ")
    asked = {s for req in tokens.requests for s in req["scopes"]}
    assert "repository:team/app:pull,push" in asked
    assert {req["service"] for req in tokens.requests} == {tokens.service}
    # a push to another repository mounts, asking for pull on the source
    dy.ok("tag", f"{host}/team/app:1", f"{host}/team/copy:1")
    out = dy.ok("push", f"{host}/team/copy:1").splitlines()
    assert any(line.endswith(": Mounted from team/app") for line in out)
    assert any("repository:team/app:pull" in req["scopes"] for req in tokens.requests)
    # anonymous pull with an anonymous token, as from Docker Hub
    dy.ok("logout", host)
    tokens.requests.clear()
    other = Dockyard(tmp_path / "anon", capsys)
    other.ok("pull", f"{host}/team/app:1")
    assert tokens.requests and all(req["account"] is None for req in tokens.requests)
    assert ["repository:team/app:pull"] in [req["scopes"] for req in tokens.requests]


def test_tls_with_a_certs_d_ca(tmp_path: Path, dy: Dockyard) -> None:
    need("docker-registry")
    ca = make_ca()
    crt, key = make_cert(ca).write(tmp_path / "tls", "server")
    dist = Distribution(tmp_path / "tlsreg", tls=(crt, key)).start()
    try:
        store = Store(dy.root)
        cf.local_image(store, tmp_path, f"{dist.host}/tls/app:1", seed=51, size=2000)
        ref = Reference.parse(f"{dist.host}/tls/app:1")
        certs = tmp_path / "certs.d"
        verified = ClientOptions(secure_registries=(dist.host,), certs_dirs=(certs,), retries=0)
        with Client(verified) as client, pytest.raises(Exception, match=r"TLS error.*certs.d/") as info:
            client.push(store, store.image(str(ref)), ref)
        assert f"--insecure-registry {dist.host}" in str(info.value)
        ca.write(certs / dist.host, "ca")
        with Client(verified) as client:
            pushed = client.push(store, store.image(str(ref)), ref)
        # a loopback registry is insecure by default: HTTPS without verification, as dockerd
        with Client(ClientOptions(certs_dirs=())) as client:
            result = client.pull(Store(tmp_path / "other"), ref)
        assert result.digest == pushed.digest
    finally:
        dist.stop()
