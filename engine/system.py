"""The system documents: ``docker info`` and ``docker version``, and the machine's
architecture in Go's names."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine import API_VERSION, VERSION
from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from imagefmt.store import Store


def arch() -> str:
    """The machine's architecture as Go (GOARCH) and image configs name it."""
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def version() -> dict[str, Any]:
    """What ``docker version`` shows of its client (there is no daemon)."""
    return {
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        # platform.python_version()'s answer without importing platform (~2 ms)
        "PythonVersion": sys.version.split()[0],
        "Os": "linux",
        "Arch": arch(),
    }


def info(store: Store) -> dict[str, Any]:
    """``docker info``'s document (the fields dockyard has)."""
    from runtime.container.store import ContainerStore

    uname = os.uname()  # what platform.release(), machine() and node() read
    states = [c.status for c in ContainerStore(store.root).all()]
    running, paused = states.count("running"), states.count("paused")
    return {
        "Containers": len(states),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(states) - running - paused,
        "Images": len(store.images()),
        "Driver": "overlay2",
        "DockerRootDir": str(store.root),
        "CgroupVersion": "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1",
        "KernelVersion": uname.release,
        "OperatingSystem": os_name(),
        "OSType": "linux",
        "Architecture": uname.machine,
        "NCPU": os.cpu_count() or 1,
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "ServerVersion": VERSION,
        "Name": uname.nodename,
    }


def os_name() -> str:
    """/etc/os-release's PRETTY_NAME, else Linux."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"
