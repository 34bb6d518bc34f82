"""Shared fixtures: the busybox rootfs and the runtime's leak checks."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")


def _privileged_reason() -> str | None:
    if os.geteuid() != 0:
        return "runtime tests need root (namespaces, overlay and cgroups)"
    if not BUSYBOX.exists():
        return "runtime tests need busybox-static at /bin/busybox"
    r = subprocess.run(["unshare", "-m", "-p", "-f", "-n", "true"], capture_output=True, text=True)
    if r.returncode:
        return f"unshare failed: {r.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def privileged() -> None:
    reason = _privileged_reason()
    if reason:
        pytest.skip(reason)


def make_busybox_rootfs(root: Path) -> Path:
    """A minimal busybox image root: /bin with every applet, passwd/group, /tmp 1777."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    for d in ("etc", "root", "home", "var/www", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "nobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (root / "etc/group").write_text("root:x:0:\ndaemon:x:1:\nwheel:x:10:root\nnogroup:x:65534:\n")
    return root


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory, privileged: None) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


def host_snapshot() -> dict[str, set[str]]:
    """What a container may leave behind on the host: mounts, cgroups, veths."""
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f}
    cgroups = set()
    for ctrl in Path("/sys/fs/cgroup").iterdir():
        d = ctrl / "dockyard"
        if d.is_dir():
            cgroups |= {str(p) for p in d.iterdir() if p.is_dir()}
    links = {p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(("veth", "dy"))}
    return {"mounts": mounts, "cgroups": cgroups, "links": links}


@pytest.fixture
def no_leaks(privileged: None) -> Iterator[None]:
    """Fail the test if it left mounts, cgroups or veths on the host."""
    before = host_snapshot()
    yield
    after = host_snapshot()
    leaked = {k: sorted(after[k] - before[k]) for k in after if after[k] - before[k]}
    assert not leaked, f"left behind on the host: {leaked}"
