"""Docker credential helpers (``credsStore``/``credHelpers``) with a real helper
program: a small ``docker-credential-test`` that keeps secrets in a JSON file beside
it and speaks the docker-credential-helpers protocol (get/store/erase/list)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from imagefmt.store import Store
from registry.client import credentials
from registry.client.credentials import Credentials
from registry.client.credhelper import HelperError
from registry.client.registry_client import registry_key
from tests import client_fixtures as cf
from tests.conftest import Dockyard, docker, need
from tests.fakes import htpasswd_auth

docker_config = cf.docker_config

HELPER = """#!{python}
# A docker credential helper for tests: secrets in a JSON file beside it, each call logged.
import json, pathlib, sys
here = pathlib.Path(__file__).resolve().parent
db, log = here / "{name}.json", here / "{name}.log"
action, data = (sys.argv + [""])[1], sys.stdin.read()
creds = json.loads(db.read_text()) if db.exists() else {{}}
with log.open("a") as f:
    f.write(action + " " + (json.loads(data)["ServerURL"] if action == "store" else data) + "\\n")
if action == "get":
    if data not in creds:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": data, **creds[data]}}))
elif action == "store":
    doc = json.loads(data)
    creds[doc["ServerURL"]] = {{"Username": doc["Username"], "Secret": doc["Secret"]}}
    db.write_text(json.dumps(creds))
elif action == "erase":
    if creds.pop(data, None) is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    db.write_text(json.dumps(creds))
elif action == "list":
    print(json.dumps({{k: v["Username"] for k, v in creds.items()}}))
else:
    print(f"unknown action {{action!r}}", file=sys.stderr)
    sys.exit(2)
"""

BROKEN = "#!/bin/sh\necho 'gpg: decryption failed: No secret key' >&2\nexit 1\n"


@dataclass
class FileHelper:
    """One ``docker-credential-<name>`` program in ``bin``, with its secrets and call log."""

    bin: Path
    name: str

    def secrets(self) -> dict[str, dict[str, str]]:
        db = self.bin / f"{self.name}.json"
        return json.loads(db.read_text()) if db.exists() else {}

    def calls(self) -> list[str]:
        log = self.bin / f"{self.name}.log"
        return log.read_text().splitlines() if log.exists() else []


def write_helper(bin_dir: Path, name: str, text: str | None = None) -> FileHelper:
    bin_dir.mkdir(parents=True, exist_ok=True)
    program = bin_dir / f"docker-credential-{name}"
    program.write_text(text or HELPER.format(python=sys.executable, name=name))
    program.chmod(0o755)
    return FileHelper(bin_dir, name)


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FileHelper:
    """``docker-credential-test`` (and a failing ``docker-credential-broken``) on PATH."""
    bin_dir = tmp_path / "bin"
    write_helper(bin_dir, "broken", BROKEN)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return write_helper(bin_dir, "test")


def configure(path: Path, **doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


# ------------------------------------------------------------- library ---


def test_creds_store_keeps_the_secret_and_auths_an_empty_entry(
    helper: FileHelper, docker_config: Path
) -> None:
    configure(docker_config, credsStore="test", HttpHeaders={"X-A": "b"})
    assert credentials.load("127.0.0.1:5000") is None
    assert credentials.save("127.0.0.1:5000", Credentials("alice", "s3:cr=t")) is None
    assert helper.secrets() == {"127.0.0.1:5000": {"Username": "alice", "Secret": "s3:cr=t"}}
    doc = json.loads(docker_config.read_text())
    assert doc == {"credsStore": "test", "HttpHeaders": {"X-A": "b"}, "auths": {"127.0.0.1:5000": {}}}
    assert credentials.load("127.0.0.1:5000") == Credentials("alice", "s3:cr=t")
    assert credentials.erase("127.0.0.1:5000") is True
    assert helper.secrets() == {} and json.loads(docker_config.read_text())["auths"] == {}
    assert credentials.erase("127.0.0.1:5000") is False
    assert credentials.load("127.0.0.1:5000") is None


def test_helper_keys_are_dockers(helper: FileHelper, docker_config: Path) -> None:
    """Docker Hub is ``https://index.docker.io/v1/``, a registry ``host:port``."""
    configure(docker_config, credsStore="test")
    credentials.save(registry_key("index.docker.io"), Credentials("bob", "pw"))
    credentials.save(registry_key("https://reg.example.com:5000/v2/"), Credentials("carol", "pw2"))
    assert set(helper.secrets()) == {"https://index.docker.io/v1/", "reg.example.com:5000"}
    assert credentials.load("docker.io") == Credentials("bob", "pw")
    assert "get https://index.docker.io/v1/" in helper.calls()


def test_creds_store_hides_plain_auths_as_docker_does(helper: FileHelper, docker_config: Path) -> None:
    auth = {"auth": "YWxpY2U6cHc="}  # alice:pw, written before credsStore was set
    configure(docker_config, credsStore="test", auths={"127.0.0.1:5000": auth})
    assert credentials.load("127.0.0.1:5000") is None
    credentials.save("127.0.0.1:5000", Credentials("alice", "new"))
    assert json.loads(docker_config.read_text())["auths"] == {"127.0.0.1:5000": {}}  # the old secret is gone


def test_cred_helpers_win_over_creds_store(helper: FileHelper, docker_config: Path) -> None:
    configure(docker_config, credsStore="missing", credHelpers={"reg.example.com": "test"})
    credentials.save("reg.example.com", Credentials("alice", "pw"))
    assert helper.secrets() == {"reg.example.com": {"Username": "alice", "Secret": "pw"}}
    assert credentials.load("reg.example.com") == Credentials("alice", "pw")
    with pytest.raises(HelperError, match=r"docker-credential-missing not found in PATH"):
        credentials.load("other.example.com")  # credsStore for every other registry
    # credHelpers alone: other registries keep their secret in the file
    configure(docker_config, credHelpers={"reg.example.com": "test"})
    assert credentials.save("other.example.com", Credentials("bob", "pw2")) == docker_config
    assert "auth" in json.loads(docker_config.read_text())["auths"]["other.example.com"]
    assert credentials.load("other.example.com") == Credentials("bob", "pw2")
    assert "other.example.com" not in helper.secrets()


def test_identity_token_is_stored_as_docker_does(helper: FileHelper, docker_config: Path) -> None:
    configure(docker_config, credsStore="test")
    credentials.save("127.0.0.1:5000", Credentials("alice", "", identity_token="refresh-me"))
    assert helper.secrets() == {"127.0.0.1:5000": {"Username": "<token>", "Secret": "refresh-me"}}
    assert credentials.load("127.0.0.1:5000") == Credentials("", "", "refresh-me")
    # docker's file store: the user name and an identitytoken, no password
    configure(docker_config, auths={"127.0.0.1:5000": {"auth": "YWxpY2U6", "identitytoken": "t"}})
    assert credentials.load("127.0.0.1:5000") == Credentials("alice", "", "t")
    configure(docker_config, auths={"127.0.0.1:5000": {"identitytoken": "t"}})
    assert credentials.load("127.0.0.1:5000") == Credentials("", "", "t")


def test_missing_helper_names_the_helper_and_the_fix(helper: FileHelper, docker_config: Path) -> None:
    configure(docker_config, credsStore="pass")
    want = (
        f"credential helper docker-credential-pass not found in PATH: "
        f"install it or remove credsStore from {docker_config}"
    )
    for call in (
        lambda: credentials.load("127.0.0.1:5000"),
        lambda: credentials.save("127.0.0.1:5000", Credentials("a", "b")),
        lambda: credentials.erase("127.0.0.1:5000"),
    ):
        with pytest.raises(HelperError) as info:
            call()
        assert str(info.value) == want
    assert json.loads(docker_config.read_text()) == {"credsStore": "pass"}  # untouched
    configure(docker_config, credHelpers={"127.0.0.1:5000": "pass"})
    with pytest.raises(HelperError, match=r'remove credHelpers\["127.0.0.1:5000"\] from'):
        credentials.load("127.0.0.1:5000")


def test_failing_helper_is_one_clear_line(helper: FileHelper, docker_config: Path) -> None:
    configure(docker_config, credsStore="broken")
    with pytest.raises(HelperError) as info:
        credentials.load("127.0.0.1:5000")
    msg = str(info.value)
    assert msg.startswith("credential helper docker-credential-broken get: failed (exit status 1): gpg: ")
    assert msg.endswith(f"fix the helper or remove credsStore from {docker_config}") and "\n" not in msg
    for name in ("../bin/docker-credential-test", "/usr/bin/true"):  # a name on PATH, never a path
        configure(docker_config, credsStore=name)
        with pytest.raises(HelperError, match="name a helper"):
            credentials.load("127.0.0.1:5000")


# ----------------------------------------------------------------- CLI ---

USERS = {"alice": "wonderland"}


def auth_reg(tmp: Path, mode: str) -> cf.Live:
    """Our registry with htpasswd users, Basic or with its token server: nothing is
    readable anonymously."""
    section = htpasswd_auth(tmp / "auth", USERS)
    htpasswd = str(section["htpasswd"]["path"])
    extra = ("--htpasswd", htpasswd) + (("--token",) if mode == "token" else ())
    return cf.start_registry("dockyard", tmp / mode, extra=extra)


@pytest.fixture
def basic_reg(tmp_path: Path) -> Iterator[cf.Live]:
    r = auth_reg(tmp_path, "basic")
    yield r
    r.stop()


@pytest.fixture(params=["basic", "token"])
def any_reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[cf.Live, str]]:
    r = auth_reg(tmp_path, request.param)
    yield r, request.param
    r.stop()


def test_login_push_pull_logout_through_a_helper(
    helper: FileHelper,
    basic_reg: cf.Live,
    dy: Dockyard,
    tmp_path: Path,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = basic_reg.host
    configure(docker_config, credsStore="test")
    cf.local_image(Store(dy.root), tmp_path, f"{host}/team/app:1", seed=61, size=2000)
    code, text = cf.login(dy, monkeypatch, host, "alice", "wonderland")
    assert code == 0 and "Login Succeeded" in text
    assert "unencrypted" not in text  # docker warns only when the file keeps the password
    assert helper.secrets() == {host: {"Username": "alice", "Secret": "wonderland"}}
    assert json.loads(docker_config.read_text())["auths"] == {host: {}}
    assert "wonderland" not in docker_config.read_text()
    assert dy.ok("push", f"{host}/team/app:1").splitlines()[-1].startswith("1: digest: sha256:")
    other = Dockyard(tmp_path / "other", capsys)
    other.ok("pull", f"{host}/team/app:1")
    # a bare login reuses what the helper keeps
    r = dy("login", host)
    assert r.code == 0 and "[Username: alice]" in r.out
    assert dy.ok("logout", host).strip() == f"Removing login credentials for {host}"
    assert helper.secrets() == {} and json.loads(docker_config.read_text())["auths"] == {}
    assert dy.ok("logout", host).strip() == f"Not logged in to {host}"
    assert dy("pull", f"{host}/team/app:1").code == 1


def test_a_missing_helper_fails_the_cli_in_one_line(
    helper: FileHelper,
    basic_reg: cf.Live,
    dy: Dockyard,
    tmp_path: Path,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = basic_reg.host
    configure(docker_config, credsStore="pass")
    fix = (
        "credential helper docker-credential-pass not found in PATH: "
        f"install it or remove credsStore from {docker_config}"
    )
    code, text = cf.login(dy, monkeypatch, host, "alice", "wonderland")  # checked, then not stored
    assert code == 1 and text.strip().endswith(fix) and "Login Succeeded" not in text
    for args in (("login", host), ("logout", host)):
        r = dy(*args)
        assert r.code == 1 and r.err.strip().endswith(fix) and "Traceback" not in r.err, args
    # a pull goes on anonymously, as docker's does; the 401 names the helper's error
    r = dy("pull", f"{host}/team/app:1")
    assert r.code == 1 and "authentication required, but credential helper docker-credential-pass" in r.err
    assert r.err.count("\n") == 1


def refresh_token(host: str, user: str, password: str) -> str:
    """An identity token (OAuth2 refresh token) from our registry's token server."""
    challenge = requests.get(f"http://{host}/v2/", timeout=10).headers["WWW-Authenticate"]
    realm = challenge.split('realm="', 1)[1].split('"', 1)[0]
    service = challenge.split('service="', 1)[1].split('"', 1)[0]
    form = {"grant_type": "password", "username": user, "password": password}
    form |= {"service": service, "client_id": "test", "access_type": "offline"}
    r = requests.post(realm, data=form, timeout=10)
    r.raise_for_status()
    return str(r.json()["refresh_token"])


def test_an_identity_token_is_used_as_a_refresh_token(
    helper: FileHelper,
    tmp_path: Path,
    dy: Dockyard,
    docker_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docker stores one after a login to a token server that gives refresh tokens;
    we trade it for access tokens with the OAuth2 refresh_token grant."""
    reg = auth_reg(tmp_path, "token")
    try:
        host = reg.host
        configure(docker_config, credsStore="test")
        cf.local_image(Store(dy.root), tmp_path, f"{host}/team/app:1", seed=62, size=2000)
        token = refresh_token(host, "alice", "wonderland")
        credentials.save(host, Credentials("", "", identity_token=token))
        assert dy.ok("push", f"{host}/team/app:1").splitlines()[-1].startswith("1: digest: sha256:")
        Dockyard(tmp_path / "other", capsys).ok("pull", f"{host}/team/app:1")
        assert dy("login", host).code == 0  # a bare login checks the stored token
        credentials.save(host, Credentials("", "", identity_token=token[:-4] + "AAAA"))
        r = dy("pull", f"{host}/team/app:1")
        assert r.code == 1 and f"refused the stored identity token: run 'dockyard login {host}'" in r.err
    finally:
        reg.stop()


# ------------------------------------------------------- docker interop ---


def docker_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The docker CLI alone: login falls back to a client-side login when no daemon answers."""
    need("docker")
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/dockyard-no-daemon.sock"}
    return subprocess.run(["docker", *args], input=stdin, env=env, capture_output=True, text=True)


@pytest.mark.interop
def test_docker_login_and_logout_through_the_same_helper(
    helper: FileHelper,
    any_reg: tuple[cf.Live, str],
    dy: Dockyard,
    tmp_path: Path,
    docker_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host, mode = any_reg[0].host, any_reg[1]
    configure(docker_config, credsStore="test")
    cf.local_image(Store(dy.root), tmp_path, f"{host}/team/app:1", seed=63, size=2000)
    r = docker_cli("login", "-u", "alice", "--password-stdin", host, stdin="wonderland\n")
    assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
    assert json.loads(docker_config.read_text())["auths"] == {host: {}}
    kept = helper.secrets()[host]
    if mode == "token":  # our token server gives docker a refresh token: an identity token
        assert kept["Username"] == "<token>" and kept["Secret"].count(".") == 2
    else:
        assert kept == {"Username": "alice", "Secret": "wonderland"}
    assert dy.ok("push", f"{host}/team/app:1").splitlines()[-1].startswith("1: digest: sha256:")
    Dockyard(tmp_path / "other", capsys).ok("pull", f"{host}/team/app:1")
    r = docker_cli("logout", host)
    assert r.returncode == 0 and helper.secrets() == {}
    assert json.loads(docker_config.read_text())["auths"] == {}
    assert dy("pull", f"{host}/team/app:1").code == 1


@pytest.mark.interop
def test_docker_pulls_with_what_dockyard_login_stored(
    helper: FileHelper,
    basic_reg: cf.Live,
    dy: Dockyard,
    tmp_path: Path,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_host: str,
) -> None:
    host = basic_reg.host
    ref = f"{host}/team/fromdockyard:1"
    configure(docker_config, credsStore="test")
    cf.local_image(Store(dy.root), tmp_path, ref, seed=64, size=2000)
    assert cf.login(dy, monkeypatch, host, "alice", "wonderland")[0] == 0
    dy.ok("push", ref)
    try:
        out = docker(docker_host, "pull", ref).stdout  # the CLI asks the helper, the daemon pulls
        assert "Downloaded newer image" in out or "Image is up to date" in out
        assert f"get {host}" in helper.calls()
    finally:
        docker(docker_host, "rmi", "-f", ref, check=False)
