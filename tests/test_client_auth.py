"""Authentication and TLS against our registry and distribution: htpasswd (Basic),
bearer tokens (ours: its built-in /auth/token; distribution: a Docker-Hub-like token
service), anonymous pull, login/logout, 403s, and certs.d CAs."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefmt.reference import Reference
from imagefmt.store import Store
from registry.client.registry_client import ClientOptions, RegistryClient
from tests import client_fixtures as cf
from tests.conftest import Dockyard
from tests.fakes import TokenServer, htpasswd_auth, make_ca, make_cert

docker_config = cf.docker_config

pytestmark = pytest.mark.interop

USERS = {"alice": "wonderland", "bob": "builder"}
ACL = [
    {"account": "alice", "name": "*", "actions": ["*"]},
    {"account": "bob", "name": "bob/*", "actions": ["*"]},
    {"account": "", "name": "*", "actions": ["pull"]},
]


def _users(path: Path) -> tuple[dict[str, object], Path]:
    section = htpasswd_auth(path, USERS)
    acl = path / "acl.json"
    acl.write_text(json.dumps(ACL))
    return section, acl


@pytest.fixture(params=cf.KINDS)
def basic_reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[cf.Live]:
    section, _ = _users(tmp_path / "auth")
    htpasswd = str(section["htpasswd"]["path"])  # type: ignore[index]
    r = cf.start_registry(request.param, tmp_path / "basic", auth=section, extra=("--htpasswd", htpasswd))
    yield r
    r.stop()


@pytest.fixture(params=cf.KINDS)
def token_reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[cf.Live, TokenServer | None]]:
    """Token auth: distribution with a Docker-Hub-like token service, ours with its own."""
    section, acl = _users(tmp_path / "auth")
    if request.param == "distribution":
        tokens = TokenServer(USERS).start()
        r = cf.start_registry("distribution", tmp_path / "token", auth=tokens.auth_section(tmp_path / "auth"))
        yield r, tokens
        r.stop()
        tokens.stop()
        return
    htpasswd = str(section["htpasswd"]["path"])  # type: ignore[index]
    extra = ("--htpasswd", htpasswd, "--acl", str(acl), "--token")
    r = cf.start_registry("dockyard", tmp_path / "token", extra=extra)
    yield r, None
    r.stop()


def test_basic_auth_login_push_logout(
    basic_reg: cf.Live,
    dy: Dockyard,
    tmp_path: Path,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = basic_reg.host
    store = Store(dy.root)
    cf.local_image(store, tmp_path, f"{host}/team/app:1", seed=31, size=2000)
    r = dy("push", f"{host}/team/app:1")
    assert r.code == 1 and f"run 'dockyard login {host}'" in r.err
    code, text = cf.login(dy, monkeypatch, host, "alice", "wrong")
    assert code == 1 and "refused the credentials of 'alice'" in text
    assert not docker_config.exists()
    code, text = cf.login(dy, monkeypatch, host, "alice", "wonderland")
    assert code == 0 and "Login Succeeded" in text
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
    assert list(json.loads(docker_config.read_text())["auths"]) == [host]
    assert dy.ok("push", f"{host}/team/app:1").splitlines()[-1].startswith("1: digest: sha256:")
    assert dy.ok("logout", host).strip() == f"Removing login credentials for {host}"
    assert dy.ok("logout", host).strip() == f"Not logged in to {host}"
    assert dy("pull", f"{host}/team/app:1").code == 1


def test_denied_names_the_fix(tmp_path: Path, dy: Dockyard, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our registry answers 403 DENIED to an account the ACL refuses (Basic + ACL)."""
    section, acl = _users(tmp_path / "auth")
    htpasswd = str(section["htpasswd"]["path"])  # type: ignore[index]
    r = cf.start_registry("dockyard", tmp_path / "acl", extra=("--htpasswd", htpasswd, "--acl", str(acl)))
    try:
        store = Store(dy.root)
        cf.local_image(store, tmp_path, f"{r.host}/team/app:1", seed=33, size=2000)
        assert cf.login(dy, monkeypatch, r.host, "bob", "builder")[0] == 0
        res = dy("push", f"{r.host}/team/app:1")
        assert res.code == 1
        assert "denied" in res.err and "check the repository name" in res.err and r.host in res.err
        dy.ok("tag", f"{r.host}/team/app:1", f"{r.host}/bob/app:1")
        assert dy.ok("push", "-q", f"{r.host}/bob/app:1") == f"{r.host}/bob/app:1\n"
    finally:
        r.stop()


def test_token_auth_like_docker_hub(
    token_reg: tuple[cf.Live, TokenServer | None],
    dy: Dockyard,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reg, tokens = token_reg
    host = reg.host
    store = Store(dy.root)
    cf.local_image(store, tmp_path, f"{host}/team/app:1", seed=41, size=2000)
    r = dy("push", f"{host}/team/app:1")
    assert r.code == 1 and f"run 'dockyard login {host}'" in r.err
    if tokens:
        assert tokens.requests and tokens.requests[-1]["account"] is None  # asked anonymously first
    assert cf.login(dy, monkeypatch, host, "alice", "nope")[0] == 1
    if tokens:
        tokens.requests.clear()
    assert cf.login(dy, monkeypatch, host, "alice", "wonderland")[0] == 0
    if tokens:
        assert tokens.requests[-1]["account"] == "alice"
    out = dy.ok("push", f"{host}/team/app:1").splitlines()
    assert out[-1].startswith("1: digest: ")
    if tokens:
        asked = {s for req in tokens.requests for s in req["scopes"]}
        assert "repository:team/app:pull,push" in asked
        assert {req["service"] for req in tokens.requests} == {tokens.service}
    # a push to another repository mounts, asking for pull on the source
    dy.ok("tag", f"{host}/team/app:1", f"{host}/team/copy:1")
    out = dy.ok("push", f"{host}/team/copy:1").splitlines()
    assert any(line.endswith(": Mounted from team/app") for line in out)
    if tokens:
        assert any("repository:team/app:pull" in req["scopes"] for req in tokens.requests)
    # anonymous pull with an anonymous token, as from Docker Hub
    dy.ok("logout", host)
    if tokens:
        tokens.requests.clear()
    other = Dockyard(tmp_path / "anon", capsys)
    other.ok("pull", f"{host}/team/app:1")
    if tokens:
        assert tokens.requests and all(req["account"] is None for req in tokens.requests)
        assert ["repository:team/app:pull"] in [req["scopes"] for req in tokens.requests]


@pytest.mark.parametrize("kind", cf.KINDS)
def test_tls_with_a_certs_d_ca(kind: str, tmp_path: Path, dy: Dockyard) -> None:
    ca = make_ca()
    crt, key = make_cert(ca).write(tmp_path / "tls", "server")
    ca_crt, _ = ca.write(tmp_path / "ca", "ca")
    reg = cf.start_registry(kind, tmp_path / "tlsreg", tls=(crt, key), ca=ca_crt)
    try:
        store = Store(dy.root)
        cf.local_image(store, tmp_path, f"{reg.host}/tls/app:1", seed=51, size=2000)
        ref = Reference.parse(f"{reg.host}/tls/app:1")
        certs = tmp_path / "certs.d"
        verified = ClientOptions(secure_registries=(reg.host,), certs_dirs=(certs,), retries=0)
        with (
            RegistryClient(verified) as client,
            pytest.raises(Exception, match=r"TLS error.*certs.d/") as info,
        ):
            client.push(store, store.image(str(ref)), ref)
        assert f"--insecure-registry {reg.host}" in str(info.value)
        ca.write(certs / reg.host, "ca")
        with RegistryClient(verified) as client:
            pushed = client.push(store, store.image(str(ref)), ref)
        # a loopback registry is insecure by default: plain HTTP fails, HTTPS unverified works
        with RegistryClient(ClientOptions(certs_dirs=())) as client:
            result = client.pull(Store(tmp_path / "other"), ref)
        assert result.digest == pushed.digest
    finally:
        reg.stop()
