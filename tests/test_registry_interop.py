"""Real clients against our registry: skopeo (plain, Basic, token, TLS, mutual
TLS) and the Docker engine (push, pull, run; ``docker login`` with Basic and token)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import cli
from registry.server.htpasswd import set_htpasswd_user
from support.images import random_image, write_oci_layout
from support.peers import REGISTRY_TESTS_DOCKERD, Server, need, start_dockerd, start_ours

pytestmark = pytest.mark.interop

ACL = [
    {"account": "alice", "name": "alice/*", "actions": ["*"]},
    {"account": "alice", "name": "public/*", "actions": ["pull", "push"]},
    {"account": "", "name": "public/*", "actions": ["pull"]},
]


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("accounts")
    set_htpasswd_user(d / "htpasswd", "alice", "alice-pw")
    set_htpasswd_user(d / "htpasswd", "bob", "bob-pw")
    (d / "acl.json").write_text(json.dumps(ACL))
    return d / "htpasswd", d / "acl.json"


@pytest.fixture(scope="module")
def basic_server(tmp_path_factory: pytest.TempPathFactory, accounts: tuple[Path, Path]) -> Iterator[Server]:
    server = start_ours(tmp_path_factory.mktemp("basic") / "root", "--htpasswd", str(accounts[0]))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory, accounts: tuple[Path, Path]) -> Iterator[Server]:
    htpasswd, acl = accounts
    root = tmp_path_factory.mktemp("token") / "root"
    server = start_ours(root, "--htpasswd", str(htpasswd), "--acl", str(acl), "--token")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    assert cli.main(["registry", "gen-certs", str(d), "--host", "127.0.0.1", "--host", "registry.test"]) == 0
    return d


def tls_server(root: Path, certs: Path, *extra: str) -> Server:
    tls = ["--tls-cert", str(certs / "server/server.crt"), "--tls-key", str(certs / "server/server.key")]
    return start_ours(root, *tls, *extra, scheme="https", verify=str(certs / "ca/ca.crt"))


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([need("skopeo"), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def layout_digest(path: Path) -> str:
    return str(json.loads((path / "index.json").read_text())["manifests"][0]["digest"])


# ---------------------------------------------------------------- skopeo ---


def test_skopeo_round_trip(ours: Server, tmp_path: Path) -> None:
    image = random_image(3, 256 << 10)
    src = write_oci_layout(tmp_path / "src", image, "v1")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:v1", f"docker://{ours.host}/interop/skopeo:v1")
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{ours.host}/interop/skopeo:v1",
        f"oci:{tmp_path / 'out'}:v1",
    )
    assert layout_digest(tmp_path / "out") == image.digest
    for layer in image.layers:
        hx = hashlib.sha256(layer).hexdigest()
        assert (tmp_path / "out/blobs/sha256" / hx).read_bytes() == layer
    tags = skopeo("list-tags", "--tls-verify=false", f"docker://{ours.host}/interop/skopeo")
    assert json.loads(tags.stdout)["Tags"] == ["v1"]


def test_skopeo_multi_arch_index(ours: Server, tmp_path: Path) -> None:
    amd64, arm64 = random_image(1, 1000), random_image(1, 1000)
    src = write_oci_layout(tmp_path / "src", amd64, "v1")
    write_oci_layout(tmp_path / "src", arm64, "arm")  # adds its blobs; index.json is rewritten below
    entries = []
    for image, arch in ((amd64, "amd64"), (arm64, "arm64")):
        entry: dict[str, object] = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.digest,
        }
        entry |= {"size": len(image.manifest), "platform": {"os": "linux", "architecture": arch}}
        entries.append(entry)
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    )
    index_digest = "sha256:" + hashlib.sha256(index.encode()).hexdigest()
    (src / "blobs/sha256" / index_digest[7:]).write_text(index)
    top: dict[str, object] = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest}
    top["size"] = len(index)
    top["annotations"] = {"org.opencontainers.image.ref.name": "multi"}
    (src / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    dest = f"docker://{ours.host}/interop/multi:v1"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{src}:multi", dest)
    raw = skopeo("inspect", "--raw", "--tls-verify=false", dest).stdout
    assert raw == index
    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", "--override-arch", "arm64", dest, f"oci:{out}:v1")
    assert layout_digest(out) == arm64.digest


def test_skopeo_basic_auth(basic_server: Server, tmp_path: Path) -> None:
    src = write_oci_layout(tmp_path / "src", random_image(1), "v1")
    dest = f"docker://{basic_server.host}/alice/app:v1"
    r = skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:v1", dest, check=False)
    assert r.returncode != 0 and "authentication required" in r.stderr
    r = skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", "alice:wrong", f"oci:{src}:v1", dest, check=False
    )
    assert r.returncode != 0
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:alice-pw", f"oci:{src}:v1", dest)
    skopeo("copy", "--src-tls-verify=false", "--src-creds", "bob:bob-pw", dest, f"oci:{tmp_path / 'out'}:v1")


def test_skopeo_token_auth(token_server: Server, tmp_path: Path) -> None:
    image = random_image(2)
    src = write_oci_layout(tmp_path / "src", image, "v1")
    flags = ["--dest-tls-verify=false", "--dest-creds", "alice:alice-pw"]
    skopeo("copy", *flags, f"oci:{src}:v1", f"docker://{token_server.host}/alice/app:v1")
    skopeo("copy", *flags, f"oci:{src}:v1", f"docker://{token_server.host}/public/app:v1")
    r = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "bob:bob-pw", f"oci:{src}:v1",
               f"docker://{token_server.host}/alice/stolen:v1", check=False)  # fmt: skip
    assert r.returncode != 0 and ("denied" in r.stderr or "unauthorized" in r.stderr.lower())
    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", f"docker://{token_server.host}/public/app:v1", f"oci:{out}:v1")
    assert layout_digest(out) == image.digest
    r = skopeo("copy", "--src-tls-verify=false", f"docker://{token_server.host}/alice/app:v1",
               f"oci:{tmp_path / 'denied'}:v1", check=False)  # fmt: skip
    assert r.returncode != 0


def test_skopeo_tls_with_generated_ca(tmp_path: Path, certs: Path) -> None:
    server = tls_server(tmp_path / "root", certs)
    try:
        src = write_oci_layout(tmp_path / "src", random_image(1), "v1")
        dest = f"docker://{server.host}/tls/app:v1"
        r = skopeo("copy", f"oci:{src}:v1", dest, check=False)
        assert r.returncode != 0 and "certificate" in r.stderr
        ca_only = tmp_path / "ca-only"
        ca_only.mkdir()
        (ca_only / "ca.crt").write_bytes((certs / "ca/ca.crt").read_bytes())
        skopeo("copy", "--dest-cert-dir", str(ca_only), f"oci:{src}:v1", dest)
        skopeo("copy", "--src-cert-dir", str(ca_only), dest, f"oci:{tmp_path / 'out'}:v1")
    finally:
        server.stop()


def test_skopeo_mutual_tls(tmp_path: Path, certs: Path) -> None:
    server = tls_server(tmp_path / "root", certs, "--tls-client-ca", str(certs / "ca/ca.crt"))
    try:
        src = write_oci_layout(tmp_path / "src", random_image(1), "v1")
        dest = f"docker://{server.host}/mtls/app:v1"
        ca_only = tmp_path / "ca-only"
        ca_only.mkdir()
        (ca_only / "ca.crt").write_bytes((certs / "ca/ca.crt").read_bytes())
        r = skopeo("copy", "--dest-cert-dir", str(ca_only), f"oci:{src}:v1", dest, check=False)
        assert r.returncode != 0
        skopeo("copy", "--dest-cert-dir", str(certs / "client"), f"oci:{src}:v1", dest)
    finally:
        server.stop()


# ---------------------------------------------------------------- docker ---


@pytest.fixture(scope="module")
def docker_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    dockerd = start_dockerd(REGISTRY_TESTS_DOCKERD)
    config = tmp_path_factory.mktemp("docker-config")
    yield {**os.environ, "DOCKER_HOST": dockerd.host, "DOCKER_CONFIG": str(config)}
    dockerd.stop()


def docker(
    env: dict[str, str], *args: str, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    r = subprocess.run(["docker", *args], env=env, input=stdin, capture_output=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr.decode()
    return r


def busybox_tar() -> bytes:
    if not Path("/bin/busybox").exists():
        pytest.skip("no /bin/busybox for a runnable image")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add("/bin/busybox", "bin/busybox")
        for applet in ("sh", "echo"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tf.addfile(info)
        marker = os.urandom(8).hex().encode()
        info = tarfile.TarInfo("marker")
        info.size = len(marker)
        tf.addfile(info, io.BytesIO(marker))
    return buf.getvalue()


def import_image(env: dict[str, str], ref: str) -> None:
    docker(env, "import", "-c", 'CMD ["/bin/sh"]', "-", ref, stdin=busybox_tar())


def test_docker_push_pull_run(ours: Server, docker_env: dict[str, str]) -> None:
    ref = f"{ours.host}/interop/busybox:v1"
    other = f"{ours.host}/interop/copy:v1"
    import_image(docker_env, ref)
    docker(docker_env, "push", ref)
    docker(docker_env, "tag", ref, other)
    assert b"Mounted from interop/busybox" in docker(docker_env, "push", other).stdout  # cross-repo mount
    docker(docker_env, "rmi", ref, other)
    docker(docker_env, "pull", ref)
    r = docker(docker_env, "run", "--rm", "--network", "none", ref, "echo", "hello from dockyard")
    assert r.stdout.decode().strip() == "hello from dockyard"
    docker(docker_env, "rmi", ref)


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_docker_login_push_pull(
    mode: str, request: pytest.FixtureRequest, docker_env: dict[str, str]
) -> None:
    server: Server = request.getfixturevalue(f"{mode}_server")
    ref = f"{server.host}/alice/busybox:{mode}"
    import_image(docker_env, ref)
    r = docker(docker_env, "push", ref, check=False)
    assert r.returncode != 0
    assert (
        b"no basic auth credentials" in r.stderr or b"requested access to the resource is denied" in r.stderr
    )
    r = docker(
        docker_env, "login", "-u", "alice", "--password-stdin", server.host, stdin=b"wrong", check=False
    )
    assert r.returncode != 0
    docker(docker_env, "login", "-u", "alice", "--password-stdin", server.host, stdin=b"alice-pw")
    docker(docker_env, "push", ref)
    docker(docker_env, "rmi", ref)
    docker(docker_env, "pull", ref)
    docker(docker_env, "logout", server.host)
    docker(docker_env, "rmi", ref)
    r = docker(docker_env, "pull", ref, check=False)
    assert r.returncode != 0
