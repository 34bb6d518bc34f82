"""Free space on the store's filesystem: stop before it is full, and say so in one line.

A write that meets ENOSPC (or EDQUOT) anywhere in the store becomes
:class:`~imagefmt.errors.DiskFull` naming the store root and the fix, instead of
a traceback; the writer's own cleanup then removes what it half wrote.  Streams
whose size is not known in advance (an ``import`` tar, a layer being unpacked)
are read through :class:`GuardedReader`, which checks the free space as it goes
and stops while :data:`RESERVE` bytes are still free, so a decompression bomb
cannot fill the disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from imagefmt.errors import DiskFull

RESERVE = 16 << 20  # bytes left free on the store's filesystem when a stream is stopped
CHECK_EVERY = 4 << 20  # bytes between two free-space checks
FULL = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def full_message(root: Path, what: str) -> str:
    return (
        f"no space left on device in the store {root} ({what}): "
        "free space there, or use --root on a filesystem with more room"
    )


@contextlib.contextmanager
def reported(root: Path, what: str) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT raised inside into DiskFull naming ``root`` and ``what``."""
    try:
        yield
    except OSError as err:
        if err.errno not in FULL:
            raise
        raise DiskFull(full_message(root, f"{what}: {err.filename}" if err.filename else what)) from err


def check(root: Path, what: str, pending: int = 0) -> None:
    """Raise DiskFull unless ``pending`` more bytes fit with RESERVE to spare."""
    free = free_bytes(root)
    if free - pending < RESERVE:
        need = f"{pending} more bytes needed, " if pending else ""
        raise DiskFull(
            f"stopped {what}: the store {root} would fill up ({need}{free} free): "
            "free space there, or use --root on a filesystem with more room"
        )


class GuardedReader:
    """A reader that checks the store's free space every CHECK_EVERY bytes read:
    DiskFull once fewer than RESERVE bytes (plus ``factor - 1`` times what was
    read, for data that is to be written again) would remain."""

    def __init__(self, src: BinaryIO, root: Path, what: str, factor: int = 1) -> None:
        self._src = src
        self._root = root
        self._what = what
        self._factor = factor
        self.total = 0
        self._next = CHECK_EVERY

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self._count(len(data))
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        n = self._src.readinto(buf)  # type: ignore[attr-defined]
        self._count(n or 0)
        return n or 0

    def _count(self, n: int) -> None:
        self.total += n
        if self.total >= self._next:
            self._next = self.total + CHECK_EVERY
            check(self._root, self._what, (self._factor - 1) * self.total)
