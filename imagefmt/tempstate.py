"""Temp state in the store, named after its owner, so that what a killed process
left can be told from what a live one is writing.

Every temp file and directory the store makes (``tmp/…``, ``snapshots/tmp-…``) is
named ``<kind>-<pid>-<start>-<boot>-<pidns>-<random>[suffix]``: the owner's pid,
its start time (clock ticks after boot, field 22 of ``/proc/<pid>/stat``), the
first 8 hex digits of the boot id and the inode of its pid namespace.  The owner
is dead when the boot differs, or when ``/proc/<pid>`` is gone, is a zombie or
started at another time (the pid was reused).  An owner in another pid namespace
cannot be seen from here, so its temp state is left alone.

Pull's resumable ``tmp/pull-<alg>-<hex>.partial`` files carry no owner: a pull
that writes one holds its ``flock``, so one that can be locked is not in use.
Temp state of any other name (left by an older dockyard) has no known owner and
counts as stale once it is an hour old.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from imagefmt.records import NamedTuple

_OWNER_RE = re.compile(r"-(\d+)-(\d+)-([0-9a-f]{8})-(\d+)-[0-9a-f]{8,32}")
_owner: tuple[int, str] | None = None  # (pid, token) of this process: recomputed after a fork
UNKNOWN_OWNER_AGE = 3600.0  # seconds after which temp state of no known owner is stale


def _proc_start(pid: int | str) -> tuple[str, str] | None:
    """(start time, state) of a process from /proc, or None when there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19], fields[0]  # starttime is field 22, state field 3


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip().replace("-", "")[:8]
    except OSError:
        return "00000000"


def _pidns() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def owner() -> str:
    """This process's token: ``<pid>-<start>-<boot>-<pidns>``."""
    global _owner
    pid = os.getpid()
    if _owner is None or _owner[0] != pid:
        found = _proc_start(pid)
        _owner = (pid, f"{pid}-{found[0] if found else 0}-{_boot_id()}-{_pidns()}")
    return _owner[1]


def owned_name(kind: str, suffix: str = "") -> str:
    """A new temp name owned by this process: ``<kind>-<owner>-<random><suffix>``."""
    return f"{kind}-{owner()}-{os.urandom(8).hex()}{suffix}"


def owner_alive(name: str) -> bool | None:
    """Whether the process that owns the temp ``name`` lives: None when the name
    carries no owner, True when it lives or cannot be judged (another pid namespace)."""
    m = _OWNER_RE.search(name)
    if m is None:
        return None
    pid, start, boot, ns = m.groups()
    me = owner().split("-")
    if boot != me[2]:
        return False  # written before the last reboot
    if ns != me[3]:
        return True  # a process of another pid namespace: not ours to judge
    found = _proc_start(pid)
    return found is not None and found[0] == start and found[1] not in ("Z", "X")


class TempEntry(NamedTuple):
    """A temp file or directory in the store, and whether its owner is gone."""

    path: Path
    size: int
    stale: bool


def _size(path: Path) -> int:
    """Bytes of a temp file, or of the files under a temp tree (as catalog.tree_size)."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size
    except OSError:
        return 0
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _partial_in_use(path: Path) -> bool:
    """True when a pull holds the partial file's lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _stale(path: Path, now: float, unknown_age: float) -> bool:
    alive = owner_alive(path.name)
    if alive is not None:
        return not alive
    if path.name.startswith("pull-") and path.name.endswith(".partial"):
        return not _partial_in_use(path)
    try:
        return now - path.lstat().st_mtime > unknown_age
    except OSError:
        return False


def _candidates(tmp: Path, snapshots: Path) -> list[Path]:
    found: list[Path] = []
    with contextlib.suppress(OSError):
        found += [Path(e.path) for e in os.scandir(tmp)]
    with contextlib.suppress(OSError):
        found += [Path(e.path) for e in os.scandir(snapshots) if e.name.startswith("tmp-")]
    return found


def entries(tmp: Path, snapshots: Path, unknown_age: float = UNKNOWN_OWNER_AGE) -> Iterator[TempEntry]:
    """Every temp file or directory under ``tmp`` and ``snapshots`` (its ``tmp-*``)."""
    now = time.time()
    for p in _candidates(tmp, snapshots):
        yield TempEntry(p, _size(p), _stale(p, now, unknown_age))


def remove(path: Path) -> None:
    """Remove a temp file or tree; what is already gone is no error."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


def reclaim(
    tmp: Path, snapshots: Path, owned_only: bool = False, unknown_age: float = UNKNOWN_OWNER_AGE
) -> tuple[list[Path], int]:
    """Remove stale temp state: whose owner is dead and, unless ``owned_only``,
    unlocked pull partials and unowned temp state older than ``unknown_age``.
    Never what a live process owns.  Returns the paths removed and their bytes."""
    removed: list[Path] = []
    freed = 0
    now = time.time()
    for p in _candidates(tmp, snapshots):
        alive = owner_alive(p.name)
        if alive or (alive is None and (owned_only or not _stale(p, now, unknown_age))):
            continue
        freed += _size(p)
        remove(p)
        removed.append(p)
    return removed, freed
