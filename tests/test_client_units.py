"""Client pieces that need no registry: credentials, insecure hosts, the error
round trip, challenges, Docker Hub naming."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from imagefmt import errors
from imagefmt.reference import Reference
from registry import protocol
from registry.client import credentials
from registry.client.credentials import Credentials
from registry.client.hosts import is_insecure
from registry.client.registry_client import ClientOptions, RegistryClient, endpoint_of, registry_key
from registry.client.remote import _with_query


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "dockercfg"
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d / "config.json"


def test_credentials_round_trip_in_docker_format(docker_config: Path) -> None:
    assert credentials.load("localhost:5000") is None
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"credsStore": "", "HttpHeaders": {"X-A": "b"}}))
    path = credentials.save("localhost:5000", Credentials("alice", "s3:cr=t"))
    assert path == docker_config
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["HttpHeaders"] == {"X-A": "b"}  # other keys survive
    assert base64.b64decode(doc["auths"]["localhost:5000"]["auth"]) == b"alice:s3:cr=t"
    assert credentials.load("localhost:5000") == Credentials("alice", "s3:cr=t")
    assert "s3:cr=t" not in repr(credentials.load("localhost:5000"))
    assert credentials.erase("localhost:5000") is True
    assert credentials.erase("localhost:5000") is False
    assert json.loads(path.read_text())["auths"] == {}


def test_docker_hub_key_and_url_keys(docker_config: Path) -> None:
    credentials.save(registry_key("index.docker.io"), Credentials("bob", "pw"))
    assert list(json.loads(docker_config.read_text())["auths"]) == ["https://index.docker.io/v1/"]
    assert credentials.load("docker.io") == Credentials("bob", "pw")
    doc = json.loads(docker_config.read_text())
    doc["auths"]["https://reg.example.com:5000/v2/"] = {"auth": base64.b64encode(b"c:d").decode()}
    docker_config.write_text(json.dumps(doc))
    assert credentials.load("reg.example.com:5000") == Credentials("c", "d")


def test_broken_config_is_a_clear_error(docker_config: Path) -> None:
    docker_config.parent.mkdir()
    docker_config.write_text("{nope")
    with pytest.raises(errors.Invalid, match="config.json"):
        credentials.load("x.example")


@pytest.mark.parametrize(
    ("host", "listed", "want"),
    [
        ("localhost:5000", (), True),
        ("127.0.0.1:5000", (), True),
        ("127.8.9.1", (), True),
        ("[::1]:5000", (), True),
        ("registry.example.com", (), False),
        ("registry.example.com:5000", ("registry.example.com:5000",), True),
        ("registry.example.com:5000", ("registry.example.com",), True),
        ("10.1.2.3:5000", ("10.0.0.0/8",), True),
        ("10.1.2.3:5000", ("192.168.0.0/16",), False),
    ],
)
def test_insecure_hosts_follow_docker(host: str, listed: tuple[str, ...], want: bool) -> None:
    assert is_insecure(host, listed) is want


def test_insecure_registries_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_INSECURE_REGISTRIES", "a.example:5000, b.example")
    opts = ClientOptions.from_env(insecure_registries=("c.example",))
    assert opts.insecure_registries == ("c.example", "a.example:5000", "b.example")


@pytest.mark.parametrize(
    "exc",
    [
        errors.BlobUnknown("blob unknown to registry", {"digest": "sha256:0"}),
        errors.ManifestUnknown("manifest unknown"),
        errors.NameUnknown("repository name not known to registry"),
        errors.DigestInvalid("provided digest did not match uploaded content"),
        errors.Unauthorized("authentication required"),
        errors.Denied("requested access to the resource is denied"),
        errors.ManifestBlobUnknown("blob unknown to registry"),
        errors.TooManyRequests("slow down"),
    ],
)
def test_error_round_trip(exc: errors.DockyardError) -> None:
    body = json.dumps(protocol.error_body(exc)).encode()
    back = protocol.error_from_response(protocol.status_for(exc), body, "push x")
    assert type(back) is type(exc)
    assert back.message == f"push x: {exc.message}" and back.detail == exc.detail
    with pytest.raises(type(exc)):
        protocol.raise_for_error(protocol.status_for(exc), body)
    protocol.raise_for_error(202, b"")


def test_error_without_a_body_goes_by_status() -> None:
    assert type(protocol.error_from_response(404, b"404 page not found", "pull")) is errors.NotFound
    assert type(protocol.error_from_response(401, b"", "pull")) is errors.Unauthorized
    assert type(protocol.error_from_response(502, b"<html>", "pull")) is errors.DockyardError


def test_bearer_challenge_parses() -> None:
    ch = protocol.Challenge.parse(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull",error="insufficient_scope"'
    )
    assert ch.scheme == "Bearer"
    assert ch.get("realm") == "https://auth.docker.io/token"
    assert ch.get("service") == "registry.docker.io"
    assert ch.get("scope") == "repository:library/busybox:pull"


def test_docker_hub_conventions() -> None:
    ref = Reference.parse("busybox")
    assert str(ref) == "docker.io/library/busybox:latest"
    assert endpoint_of("docker.io") == "registry-1.docker.io" == endpoint_of("index.docker.io")
    assert registry_key("https://index.docker.io/v1/") == "docker.io"
    with RegistryClient() as client:
        repo = client.repository(ref)
        assert repo.transport.host == "registry-1.docker.io"
        assert repo.name == "library/busybox"
        assert repo.pull_scopes == ("repository:library/busybox:pull",)
        assert repo.push_scopes == ("repository:library/busybox:pull,push",)
        assert not repo.transport.insecure  # Docker Hub is HTTPS only


def test_upload_location_keeps_its_state() -> None:
    url = _with_query("/v2/x/blobs/uploads/u1?_state=abc%3D", digest="sha256:00")
    assert url == "/v2/x/blobs/uploads/u1?_state=abc%3D&digest=sha256:00"


def test_progress_renders_bars_on_a_terminal_and_lines_elsewhere(capsys: pytest.CaptureFixture[str]) -> None:
    from commands.progress import LayerProgress
    from registry.client import progress as pg

    events = [
        pg.Progress("aaaaaaaaaaaa", pg.PULLING, 0, 100),
        pg.Progress("bbbbbbbbbbbb", pg.ALREADY_EXISTS, 0, 50),
        pg.Progress("aaaaaaaaaaaa", pg.DOWNLOADING, 40, 100),
        pg.Progress("aaaaaaaaaaaa", pg.DOWNLOADING, 100, 100),
        pg.Progress("aaaaaaaaaaaa", pg.VERIFYING, 100, 100),
        pg.Progress("aaaaaaaaaaaa", pg.DOWNLOADED, 100, 100),
        pg.Progress("aaaaaaaaaaaa", pg.EXTRACTING, 0, 100),
        pg.Progress("aaaaaaaaaaaa", pg.PULL_COMPLETE, 100, 100),
    ]
    plain = LayerProgress(tty=False)
    for ev in events:
        plain(ev)
    plain.close()
    assert capsys.readouterr().out.splitlines() == [
        "aaaaaaaaaaaa: Pulling fs layer",
        "bbbbbbbbbbbb: Already exists",
        "aaaaaaaaaaaa: Verifying Checksum",
        "aaaaaaaaaaaa: Download complete",
        "aaaaaaaaaaaa: Pull complete",
    ]
    bars = LayerProgress(tty=True)
    for ev in events:
        bars(ev)
    bars.close()
    out, err = capsys.readouterr()
    assert out == ""
    assert "aaaaaaaaaaaa: Pull complete" in err and "bbbbbbbbbbbb: Already exists" in err
    quiet = LayerProgress(enabled=False)
    for ev in events:
        quiet(ev)
    assert capsys.readouterr() == ("", "")
