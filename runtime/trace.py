"""Startup-latency tracing: ``DOCKYARD_TRACE=FILE`` appends ``<pid> <epoch> <label>`` lines.

Used by bench/ to see where ``run --rm busybox true`` spends its time across
the CLI, the monitor and the container's first process.  A no-op otherwise.
"""

from __future__ import annotations

import os
import time

_PATH = os.environ.get("DOCKYARD_TRACE")


def mark(label: str) -> None:
    if _PATH:
        fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.write(fd, f"{os.getpid()} {time.time():.6f} {label}\n".encode())
        os.close(fd)
