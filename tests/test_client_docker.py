"""Round trips of the busybox fixture image, and interop with the real Docker engine
(dockerd 20.10), through our registry and distribution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefmt.store import Store
from tests import client_fixtures as cf
from tests.conftest import Dockyard, docker
from tests.fakes import skopeo
from tests.test_client_pull_push import validate_image

docker_config = cf.docker_config
reg = cf.reg

pytestmark = pytest.mark.interop


def test_busybox_round_trip(reg: cf.Live, dy: Dockyard, busybox: str) -> None:
    ref = f"{reg.host}/library/busybox:1"
    dy.ok("tag", "busybox", ref)
    pushed = dy.ok("push", ref).splitlines()[-1].split()
    digest = pushed[2]
    assert (
        dy.ok("images", "--digests", "--format", "{{.Digest}}", f"{reg.host}/library/busybox")
        == digest + "\n"
    )
    dy.ok("rmi", ref)
    dy.ok("rmi", "busybox")
    assert dy.ok("images", "-q") == ""
    out = dy.ok("pull", ref).splitlines()
    assert f"Digest: {digest}" in out
    store = Store(dy.root)
    validate_image(store, ref)
    image = store.image(ref)
    assert str(image.id) == busybox  # the same config: the same image
    assert image.manifest.digest.hex == digest[7:]  # the bytes we pushed
    assert (store.snapshot_dir(image.chain_ids[-1]) / "bin/busybox").is_file()
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert info["Digest"] == digest and info["Os"] == "linux"


def test_docker_pulls_and_runs_what_we_push(
    reg: cf.Live, dy: Dockyard, busybox: str, docker_host: str
) -> None:
    ref = f"{reg.host}/fromdockyard/busybox:1"
    dy.ok("tag", "busybox", ref)
    digest = dy.ok("push", ref).splitlines()[-1].split()[2]
    docker(docker_host, "rmi", "-f", ref, check=False)
    out = docker(docker_host, "pull", ref).stdout
    assert f"Digest: {digest}" in out
    assert docker(docker_host, "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == busybox
    r = docker(docker_host, "run", "--rm", "--network", "none", ref, "sh", "-c", "echo pushed by dockyard")
    assert r.stdout.strip() == "pushed by dockyard"
    docker(docker_host, "rmi", "-f", ref, check=False)


def test_we_pull_what_docker_pushes(
    reg: cf.Live, dy: Dockyard, docker_host: str, busybox_tar: Path, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM dockyard-client-base:1\n"
        "RUN echo built by docker > /built && rm -rf /tmp\n"
        'CMD ["cat", "/built"]\n'
    )
    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "dockyard-client-base:1")
    ref = f"{reg.host}/fromdocker/app:1"
    docker(docker_host, "build", "-q", "-t", ref, str(ctx))
    out = docker(docker_host, "push", ref).stdout
    digest = next(
        w for line in out.splitlines() if "digest:" in line for w in line.split() if w.startswith("sha256:")
    )
    want_id = docker(docker_host, "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
    pulled = dy.ok("pull", ref).splitlines()
    assert f"Digest: {digest}" in pulled
    store = Store(dy.root)
    validate_image(store, ref)
    image = store.image(ref)
    assert str(image.id) == want_id
    assert image.manifest.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert (store.snapshot_dir(image.chain_ids[-1]) / "built").read_text() == "built by docker\n"
    # and back: pushing it to another repository keeps Docker's manifest bytes
    other = f"{reg.host}/fromdocker/copy:1"
    dy.ok("tag", ref, other)
    assert dy.ok("push", other).splitlines()[-1].split()[2] == digest
    for name in (ref, "dockyard-client-base:1"):
        docker(docker_host, "rmi", "-f", name, check=False)
