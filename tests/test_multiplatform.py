"""Another CPU's images: ``build --platform linux/arm64`` runs RUN steps under
qemu-user-static (binfmt_misc), ``--platform linux/amd64,linux/arm64`` builds both
and records an OCI index, ``push`` sends the index, ``run --platform`` picks."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from support.peers import Server
from tests.conftest import REPO, Ctl, need

ARM64_TAR = REPO / "fixtures/.cache/busybox-rootfs-arm64.tar"

pytestmark = pytest.mark.privileged


@pytest.fixture
def arm64(ctl: Ctl) -> Ctl:
    """``ctl``'s store with busybox for arm64 as bb-arm64 (and the host's as bb-amd64)."""
    if os.uname().machine != "x86_64":
        pytest.skip("these tests emulate arm64 on an x86_64 host")
    if not Path("/usr/bin/qemu-aarch64-static").exists():
        pytest.skip("qemu-user-static is not installed: scripts/setup.sh installs it")
    if not ARM64_TAR.exists():
        pytest.skip(f"{ARM64_TAR} is missing: scripts/setup.sh downloads busybox-static for arm64")
    ctl.ok("import", "--platform", "linux/arm64", "-c", 'CMD ["sh"]', str(ARM64_TAR), "bb-arm64")
    ctl.ok("tag", "busybox", "bb-amd64")
    return ctl


def _context(tmp_path: Path, dockerfile: str) -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return str(ctx)


def test_build_for_arm64_runs_its_steps_under_qemu(arm64: Ctl, tmp_path: Path) -> None:
    ctx = _context(tmp_path, 'FROM bb-arm64\nRUN uname -m > /arch\nCMD ["cat", "/arch"]\n')
    arm64.ok("build", "--platform", "linux/arm64", "-t", "arm:1", ctx)
    assert arm64.ok("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "arm:1") == "linux/arm64\n"
    r = arm64("run", "--rm", "arm:1")
    assert (r.code, r.out) == (0, "aarch64\n"), r.err
    # docker's warning for an image of another platform run without --platform
    assert "does not match the detected host platform (linux/amd64)" in r.err
    r = arm64("run", "--rm", "--platform", "linux/arm64", "arm:1")
    assert r.out == "aarch64\n" and "WARNING" not in r.err


def test_a_base_of_another_platform_is_refused_by_name(arm64: Ctl, tmp_path: Path) -> None:
    """FROM --platform=linux/arm64 of an amd64-only image whose registry (a closed
    loopback port) cannot give the arm64 one: both reasons in one line."""
    arm64.ok("tag", "busybox", "127.0.0.1:9/bb:1")
    ctx = _context(tmp_path, "FROM --platform=linux/arm64 127.0.0.1:9/bb:1\nRUN true\n")
    r = arm64("build", ctx)
    assert r.code == 1
    assert (
        "was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64"
        in r.err
    )
    assert "pulling it for linux/arm64 failed" in r.err


def test_multi_platform_build_push_pull_and_run(arm64: Ctl, tmp_path: Path, ours: Server) -> None:
    need("skopeo")
    ctx = _context(
        tmp_path, 'ARG TARGETARCH\nFROM bb-$TARGETARCH\nRUN uname -m > /arch\nCMD ["cat", "/arch"]\n'
    )
    out = arm64.ok("build", "--platform", "linux/amd64,linux/arm64", "-t", "multi:1", ctx)
    assert "[linux/amd64]" in out and "[linux/arm64]" in out and "Successfully tagged multi:1" in out
    assert arm64.ok("run", "--rm", "multi:1") == "x86_64\n"  # the host's platform under the tag
    assert arm64.ok("run", "--rm", "--platform", "linux/arm64", "multi:1") == "aarch64\n"
    listed = arm64.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert listed.count("multi:1") == 1 and "<none>:<none>" not in listed  # the arm64 one under it

    ref = f"{ours.host}/multi:1"
    arm64.ok("tag", "multi:1", ref)
    arm64.ok("push", ref)
    raw = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    index = json.loads(raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    seen = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--override-arch", "arm64", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(seen)["Architecture"] == "arm64"

    # a machine with an empty store: run --platform pulls the arm64 entry of the index
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    r = arm64("--root", str(fresh), "run", "--rm", "--platform", "linux/arm64", ref)
    assert (r.code, r.out) == (0, "aarch64\n"), r.err
    arm64.ok("--root", str(fresh), "rmi", ref)

    # rmi of the tag takes the other platform's image with it
    before = len(arm64.ok("images", "-a", "-q").split())
    arm64.ok("rmi", ref)
    lines = arm64.ok("rmi", "multi:1")
    assert lines.count("Deleted: sha256:") >= 2
    assert len(arm64.ok("images", "-a", "-q").split()) < before
