"""The builder's CI features (issue 13): the registry cache, --output, --push,
remote contexts, COPY --parents and --ssh, against our registry, distribution
2.8.2, skopeo and the docker engine."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefmt.store import Store
from support.peers import Distribution, Server
from tests.buildhelp import build, build_ok, make_context, read
from tests.conftest import Dockyard, docker, need

pytestmark = pytest.mark.privileged

USAGE = (125, 2)  # docker's 125 for a flag error; 2 until h12cli's exit-code table lands in main

MULTI = """\
FROM busybox AS tools
RUN echo tool > /tool
FROM busybox
COPY a.txt /a.txt
RUN echo built-$(cat /a.txt) > /b.txt
ENV STAGE=final
COPY --from=tools /tool /tool
RUN cat /a.txt /b.txt /tool > /all.txt
"""


@pytest.fixture
def second(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Dockyard]:
    """A second machine: another store root, empty."""
    root = tmp_path / "machine2"
    root.mkdir()
    yield Dockyard(root, capsys)


def _share_base(dy: Dockyard, other: Dockyard, host: str) -> None:
    """The base image reaches the second machine through the registry (same image ID)."""
    dy.ok("tag", "busybox:latest", f"{host}/base/busybox:latest")
    dy.ok("push", f"{host}/base/busybox:latest")
    other.ok("pull", f"{host}/base/busybox:latest")
    other.ok("tag", f"{host}/base/busybox:latest", "busybox:latest")


def _steps_cached(out: str) -> int:
    return out.count(" ---> Using cache")


def _cache_round_trip(dy: Dockyard, other: Dockyard, tmp_path: Path, peer: Server | Distribution) -> None:
    ctx = make_context(tmp_path / "ctx", MULTI, {"a.txt": "alpha\n"})
    ref = f"{peer.host}/cache/multi:buildcache"
    out = build_ok(dy, ctx, "-t", "app:1", "--cache-to", f"type=registry,ref={ref},mode=max")
    assert f"exporting cache to {ref}: 6 steps" in out, out
    first = Store(dy.root).image("app:1")

    _share_base(dy, other, peer.host)
    out = build_ok(other, ctx, "-t", "app:1", "--cache-from", f"type=registry,ref={ref}")
    assert _steps_cached(out) == 6, out  # every step of both stages hit, no RUN ran
    assert "built-alpha" not in out
    again = Store(other.root).image("app:1")
    assert again.id == first.id
    assert again.config.diff_ids == first.config.diff_ids
    assert read(other, "app:1", "/all.txt") == "alpha\nbuilt-alpha\ntool\n"


def test_registry_cache_on_an_empty_store_hits_every_step(
    dy: Dockyard, busybox: str, second: Dockyard, ours: Server, tmp_path: Path
) -> None:
    _cache_round_trip(dy, second, tmp_path, ours)


def test_registry_cache_is_accepted_by_distribution(
    dy: Dockyard, busybox: str, second: Dockyard, distribution: Distribution, tmp_path: Path
) -> None:
    _cache_round_trip(dy, second, tmp_path, distribution)
    # the artifact as distribution serves it: an OCI manifest with our config type
    import urllib.request

    req = urllib.request.Request(
        f"{distribution.url}/v2/cache/multi/manifests/buildcache",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(req) as resp:
        doc = json.loads(resp.read())
    assert doc["config"]["mediaType"] == "application/vnd.dockyard.buildcache.config.v0+json"
    assert doc["artifactType"] == "application/vnd.dockyard.buildcache.v0"
    assert all("containerd.io/uncompressed" in la["annotations"] for la in doc["layers"])


def test_registry_cache_min_mode_and_a_changed_step(
    dy: Dockyard, busybox: str, second: Dockyard, ours: Server, tmp_path: Path
) -> None:
    ctx = make_context(tmp_path / "ctx", MULTI, {"a.txt": "alpha\n"})
    ref = f"{ours.host}/cache/min:latest"
    out = build_ok(dy, ctx, "--cache-to", f"type=registry,ref={ref}")
    assert f"exporting cache to {ref}: 5 steps" in out, out  # the final stage's steps only
    _share_base(dy, second, ours.host)
    (ctx / "a.txt").write_text("beta\n")
    out = build_ok(second, ctx, "--cache-from", f"type=registry,ref={ref}")
    # the tools stage was not exported: it runs; COPY a.txt changed: it and all after it run
    assert _steps_cached(out) == 0, out
    assert "built-beta" not in out  # RUN output is not printed by the classic builder, the files are
    missing = build(second, ctx, "--cache-from", f"type=registry,ref={ours.host}/cache/none:latest")
    assert missing.code == 0
    assert f"WARNING: failed to import cache {ours.host}/cache/none:latest: not found" in missing.out


def test_cache_flags_are_checked(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\n")
    r = build(dy, ctx, "--cache-to", "type=local,dest=/tmp/x")
    assert r.code in USAGE and "type=local is not supported" in r.err
    r = build(dy, ctx, "--cache-to", "type=registry")
    assert r.code in USAGE and "ref=HOST/REPO:TAG is required" in r.err
    r = build(dy, ctx, "--cache-to", "type=registry,ref=127.0.0.1:1/x,mode=all")
    assert r.code in USAGE and "mode=all" in r.err


# ------------------------------------------------------------------ --output ---

SMALL = """\
FROM busybox
COPY a.txt /a.txt
RUN echo made > /b.txt && rm /bin/true
"""


def test_output_local_dir_and_tar(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", SMALL, {"a.txt": "alpha\n"})
    out_dir = tmp_path / "out"
    build_ok(dy, ctx, "-o", str(out_dir))
    assert (out_dir / "a.txt").read_text() == "alpha\n"
    assert (out_dir / "b.txt").read_text() == "made\n"
    assert (out_dir / "bin/sh").exists() and not (out_dir / "bin/true").exists()  # the RUN's whiteout applied
    tar = tmp_path / "fs.tar"
    build_ok(dy, ctx, "--output", f"type=tar,dest={tar}")
    with tarfile.open(tar) as t:
        names = set(t.getnames())
        assert t.extractfile("b.txt").read() == b"made\n"  # type: ignore[union-attr]
    assert {"a.txt", "bin/sh"} <= names and "bin/true" not in names
    assert not any(n.startswith(".wh.") or "/.wh." in n for n in names)
    piped = dy.run("build", "-o", "-", str(ctx), text=False)  # buildx: a tar on stdout, the log on stderr
    assert piped.returncode == 0, piped.stderr
    assert b"Successfully built" in piped.stderr
    with tarfile.open(fileobj=io.BytesIO(piped.stdout)) as t:
        assert t.extractfile("a.txt").read() == b"alpha\n"  # type: ignore[union-attr]
    r = build(dy, ctx, "--output", "type=registry,dest=x")
    assert r.code in USAGE and "type=registry is not supported" in r.err


def test_output_oci_and_docker_tarballs_load_in_skopeo_and_docker(
    dy: Dockyard, busybox: str, tmp_path: Path, docker_host: str
) -> None:
    need("skopeo")
    ctx = make_context(tmp_path / "ctx", SMALL, {"a.txt": "alpha\n"})
    oci, dock = tmp_path / "img.oci.tar", tmp_path / "img.docker.tar"
    tag = f"ci-output-{uuid.uuid4().hex[:8]}:1"
    build_ok(dy, ctx, "-t", tag, "-o", f"type=oci,dest={oci}", "--output", f"type=docker,dest={dock}")
    ours = Store(dy.root).image(tag)
    for transport, path in (("oci-archive", oci), ("docker-archive", dock)):
        got = subprocess.run(["skopeo", "inspect", f"{transport}:{path}"], capture_output=True, text=True)
        assert got.returncode == 0, got.stderr
        doc = json.loads(got.stdout)
        assert len(doc["Layers"]) == len(ours.manifest.layers) == 3
    loaded = docker(docker_host, "load", "-i", str(dock)).stdout
    assert f"Loaded image: {tag}" in loaded
    try:
        their_id = docker(docker_host, "image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
        assert their_id == str(ours.id)
        made = docker(docker_host, "run", "--rm", "--network", "none", tag, "cat", "/b.txt", check=False)
        assert made.stdout == "made\n", made.stderr
    finally:
        docker(docker_host, "rmi", "-f", tag, check=False)


def test_push_after_the_build(dy: Dockyard, busybox: str, ours: Server, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", SMALL, {"a.txt": "alpha\n"})
    ref = f"{ours.host}/ci/pushed:v1"
    out = build_ok(dy, ctx, "-t", ref, "--push")
    assert f"The push refers to repository [{ours.host}/ci/pushed]" in out
    assert re.search(r"v1: digest: sha256:[0-9a-f]{64} size: \d+", out), out
    image_id = Store(dy.root).image(ref).id
    dy.ok("rmi", ref)
    dy.ok("pull", ref)
    assert Store(dy.root).image(ref).id == image_id
    r = build(dy, ctx, "--push")
    assert r.code in USAGE and "tag is needed when pushing to registry" in r.err
