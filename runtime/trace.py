"""Startup-latency tracing: ``DOCKYARD_TRACE=FILE`` appends ``<pid> <epoch> <label>`` lines.

Used by bench/ to see where ``run --rm busybox true`` spends its time across
the CLI, the monitor and the container's first process.  A no-op otherwise.
"""

from __future__ import annotations

import os
import time

_PATH = os.environ.get("DOCKYARD_TRACE")
_open: dict[int, tuple[int, int, int]] = {}  # pid -> (fd, st_dev, st_ino)


def mark(label: str) -> None:
    if _PATH:
        os.write(_fd(), f"{os.getpid()} {time.time():.6f} {label}\n".encode())


def _fd() -> int:
    """The trace file, opened once per process so that marks still land after a
    pivot_root; checked by inode, since a daemonizing process may close it."""
    assert _PATH
    known = _open.get(os.getpid())
    if known:
        try:
            st = os.fstat(known[0])
            if (st.st_dev, st.st_ino) == known[1:]:
                return known[0]
        except OSError:
            pass
    fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    st = os.fstat(fd)
    _open[os.getpid()] = (fd, st.st_dev, st.st_ino)
    return fd
