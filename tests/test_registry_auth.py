"""Basic and token auth, ACLs and anonymous reads, in-process (werkzeug test client)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from registry.protocol import Challenge, Scope
from registry.server.app import create_app
from registry.server.auth import Acl, TokenIssuer, load_or_create_key
from registry.server.config import Config, TokenConfig
from registry.server.htpasswd import Htpasswd, htpasswd_entry, set_htpasswd_user
from support.images import sha256

ACL = [
    {"account": "alice", "name": "alice/*", "actions": ["*"]},
    {"account": "*", "name": "${account}/*", "actions": ["pull", "push"]},
    {"account": "*", "name": "shared/*", "actions": ["pull"]},
    {"account": "", "name": "public/*", "actions": ["pull"]},
    {"account": "admin", "type": "registry", "name": "catalog", "actions": ["*"]},
]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("auth")
    htpasswd = d / "htpasswd"
    for user in ("alice", "bob", "admin"):
        set_htpasswd_user(htpasswd, user, f"{user}-secret")
    acl = d / "acl.json"
    acl.write_text(json.dumps(ACL))
    return htpasswd, acl


def make_client(tmp_path: Path, users: tuple[Path, Path], token: bool, acl: bool = True) -> FlaskClient:
    htpasswd, acl_path = users
    cfg = Config(
        root=tmp_path / "root",
        htpasswd=htpasswd,
        acl=acl_path if acl else None,
        token=TokenConfig(service="test-registry") if token else None,
    )
    return create_app(cfg).test_client()


def upload(c: FlaskClient, name: str, headers: dict[str, str]) -> int:
    return c.post(f"/v2/{name}/blobs/uploads/", headers=headers).status_code


# ----------------------------------------------------------------- basic ---


def test_basic_auth_challenges_and_accepts(tmp_path: Path, users: tuple[Path, Path]) -> None:
    c = make_client(tmp_path, users, token=False, acl=False)
    r = c.post("/v2/alice/app/blobs/uploads/")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="dockyard"'
    assert r.json is not None and r.json["errors"][0]["code"] == "UNAUTHORIZED"
    assert upload(c, "alice/app", basic("alice", "wrong")) == 401
    assert upload(c, "alice/app", basic("nobody", "alice-secret")) == 401
    assert upload(c, "alice/app", basic("alice", "alice-secret")) == 202
    assert c.get("/v2/", headers=basic("bob", "bob-secret")).status_code == 200
    assert c.get("/v2/").status_code == 401


def test_basic_auth_with_acl(tmp_path: Path, users: tuple[Path, Path]) -> None:
    c = make_client(tmp_path, users, token=False)
    assert upload(c, "alice/app", basic("alice", "alice-secret")) == 202
    assert upload(c, "bob/app", basic("bob", "bob-secret")) == 202  # ${account}/*
    r = c.post("/v2/alice/app/blobs/uploads/", headers=basic("bob", "bob-secret"))
    assert r.status_code == 403 and r.json is not None and r.json["errors"][0]["code"] == "DENIED"
    # anonymous reads: public/* only
    assert c.get("/v2/public/x/tags/list").status_code == 404  # allowed, and unknown
    assert c.get("/v2/shared/x/tags/list").status_code == 401
    assert upload(c, "public/x", {}) == 401


# ----------------------------------------------------------------- token ---


def fetch_token(c: FlaskClient, scopes: list[str], headers: dict[str, str] | None = None) -> str:
    r = c.get(
        "/auth/token", query_string={"service": "test-registry", "scope": scopes}, headers=headers or {}
    )
    assert r.status_code == 200, r.text
    body = r.json
    assert body is not None and body["token"] == body["access_token"] and body["expires_in"] >= 60
    return str(body["token"])


def test_token_flow_like_docker(tmp_path: Path, users: tuple[Path, Path]) -> None:
    c = make_client(tmp_path, users, token=True)
    r = c.post("/v2/alice/app/blobs/uploads/")
    assert r.status_code == 401
    ch = Challenge.parse(r.headers["WWW-Authenticate"])
    assert ch.scheme == "Bearer"
    assert ch.get("realm") == "http://localhost/auth/token"
    assert ch.get("service") == "test-registry"
    assert ch.get("scope") == "repository:alice/app:pull,push"
    token = fetch_token(c, [ch.get("scope")], basic("alice", "alice-secret"))
    assert upload(c, "alice/app", bearer(token)) == 202
    assert c.get("/v2/", headers=bearer(token)).status_code == 200


def test_token_for_repo_a_cannot_push_repo_b(tmp_path: Path, users: tuple[Path, Path]) -> None:
    c = make_client(tmp_path, users, token=True)
    token = fetch_token(c, ["repository:alice/a:pull,push"], basic("alice", "alice-secret"))
    assert upload(c, "alice/a", bearer(token)) == 202
    r = c.post("/v2/alice/b/blobs/uploads/", headers=bearer(token))
    assert r.status_code == 401
    ch = Challenge.parse(r.headers["WWW-Authenticate"])
    assert ch.get("error") == "insufficient_scope" and ch.get("scope") == "repository:alice/b:pull,push"


def test_token_grants_the_intersection(tmp_path: Path, users: tuple[Path, Path]) -> None:
    c = make_client(tmp_path, users, token=True)
    token = fetch_token(
        c, ["repository:shared/x:pull,push", "repository:bob/x:push"], basic("bob", "bob-secret")
    )
    c.application.extensions["dockyard"].auth.issuer.verify(token)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["access"] == [
        {"type": "repository", "name": "shared/x", "actions": ["pull"]},
        {"type": "repository", "name": "bob/x", "actions": ["push"]},
    ]
    assert upload(c, "shared/x", bearer(token)) == 401
    assert c.get("/v2/shared/x/tags/list", headers=bearer(token)).status_code == 404  # pull allowed


def test_token_endpoint_refuses_bad_credentials(tmp_path: Path, users: tuple[Path, Path]) -> None:
    c = make_client(tmp_path, users, token=True)
    r = c.get("/auth/token", query_string={"service": "test-registry"}, headers=basic("alice", "nope"))
    assert r.status_code == 401
    r = c.get("/auth/token", query_string={"service": "other"})
    assert r.status_code == 400


def test_anonymous_token_reads_public_only(tmp_path: Path, users: tuple[Path, Path]) -> None:
    c = make_client(tmp_path, users, token=True)
    token = fetch_token(c, ["repository:public/x:pull", "repository:alice/x:pull"])
    assert c.get("/v2/", headers=bearer(token)).status_code == 200
    assert c.get("/v2/public/x/tags/list", headers=bearer(token)).status_code == 404
    assert c.get("/v2/alice/x/tags/list", headers=bearer(token)).status_code == 401


def test_catalog_needs_the_registry_scope(tmp_path: Path, users: tuple[Path, Path]) -> None:
    c = make_client(tmp_path, users, token=True)
    r = c.get("/v2/_catalog")
    assert Challenge.parse(r.headers["WWW-Authenticate"]).get("scope") == "registry:catalog:*"
    admin = fetch_token(c, ["registry:catalog:*"], basic("admin", "admin-secret"))
    alice = fetch_token(c, ["registry:catalog:*"], basic("alice", "alice-secret"))
    assert c.get("/v2/_catalog", headers=bearer(admin)).status_code == 200
    assert c.get("/v2/_catalog", headers=bearer(alice)).status_code == 401


def test_oauth_post_and_refresh_token(tmp_path: Path, users: tuple[Path, Path]) -> None:
    c = make_client(tmp_path, users, token=True)
    form = {"grant_type": "password", "username": "alice", "password": "alice-secret"}
    form |= {"service": "test-registry", "client_id": "docker", "access_type": "offline"}
    form["scope"] = "repository:alice/p:push"
    r = c.post("/auth/token", data=form)
    assert r.status_code == 200 and r.json is not None
    refresh = r.json["refresh_token"]
    assert upload(c, "alice/p", bearer(r.json["access_token"])) == 202
    assert upload(c, "alice/p", bearer(refresh)) == 401  # a refresh token is no access token
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "service": "test-registry",
            "client_id": "docker", "scope": "repository:alice/q:push"}  # fmt: skip
    r = c.post("/auth/token", data=form)
    assert r.status_code == 200 and r.json is not None
    assert upload(c, "alice/q", bearer(r.json["access_token"])) == 202
    bad = {**form, "refresh_token": r.json["access_token"]}
    assert c.post("/auth/token", data=bad).status_code == 401


# ----------------------------------------------------------- primitives ---


def test_jwt_signature_and_expiry(tmp_path: Path) -> None:
    issuer = TokenIssuer(load_or_create_key(tmp_path / "k.pem"), "iss", "svc", 60)
    token = issuer.issue("alice", [Scope("repository", "a", ("pull",))])
    assert issuer.verify(token).allows(Scope("repository", "a", ("pull",)))
    head, body, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged["access"][0]["name"] = "b"
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(Exception, match="bad signature"):
        issuer.verify(f"{head}.{forged_body}.{sig}")
    old = issuer.issue("alice", [], now=time.time() - 3600)
    with pytest.raises(Exception, match="expired"):
        issuer.verify(old)
    other = TokenIssuer(load_or_create_key(tmp_path / "other.pem"), "iss", "svc", 60)
    with pytest.raises(Exception, match="bad signature"):
        other.verify(token)
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600


def test_htpasswd_bcrypt_entries(tmp_path: Path) -> None:
    line = htpasswd_entry("carol", "pw")
    assert line.startswith("carol:$2y$10$")
    f = tmp_path / "htpasswd"
    f.write_text(f"# comment\n\n  {line}  \nbroken:notbcrypt\n")
    h = Htpasswd(f)
    assert h.verify("carol", "pw") and h.verify("carol", "pw")  # second from the cache
    assert not h.verify("carol", "wrong") and not h.verify("nobody", "pw") and not h.verify("broken", "x")


def test_acl_rules() -> None:
    from registry.server.auth import Rule

    acl = Acl([Rule(**{**r, "actions": frozenset(r["actions"])}) for r in ACL])  # type: ignore[arg-type]
    assert "*" in acl.allowed("alice", "repository", "alice/deep/name")
    assert acl.allowed("bob", "repository", "bob/x") == {"pull", "push"}
    assert acl.allowed("bob", "repository", "public/x") == {"pull"}
    assert acl.allowed(None, "repository", "public/x") == {"pull"}
    assert acl.allowed(None, "repository", "bob/x") == set()
    assert acl.grant("bob", Scope("repository", "shared/a", ("pull", "push"))) == ("pull",)


def test_digest_helper_is_sha256() -> None:
    assert sha256(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
