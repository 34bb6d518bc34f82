"""Resource limits, accounting and process tracking through cgroups v1 or v2.

Each container gets ``dockyard/<id>`` in every v1 controller hierarchy (cpu,
cpuacct, cpuset, memory, pids, blkio, freezer, devices), or one group in a
pure v2 tree.  A hybrid host (v1 controllers plus a unified mount that holds
only a stray controller, like this one) is driven through v1, as runc does;
crun's failure there comes from insisting on the unified tree.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from imagefmt.records import TYPE_CHECKING, NamedTuple
from runtime.errors import BadSpec, RuntimeFailure

if TYPE_CHECKING:
    from typing import Any

ROOT = Path("/sys/fs/cgroup")
PARENT = "dockyard"


def default_parent() -> str:
    """Where new containers' groups go: ``DOCKYARD_CGROUP_PARENT`` or "dockyard"
    (docker's --cgroup-parent, as a setting; the tests use their own)."""
    return os.environ.get("DOCKYARD_CGROUP_PARENT") or PARENT


def check_parent(parent: str) -> str:
    """A relative cgroup path without "..". Raises BadSpec."""
    parts = [p for p in parent.strip("/").split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise BadSpec(f"invalid cgroup parent {parent!r}")
    return "/".join(parts)


V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices")
V2_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
CPU_PERIOD = 100_000

# moby's default device cgroup rules (oci.DefaultLinuxSpec + AllowedDevices)
DEVICE_RULES = (
    "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm",
    "c 5:1 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm",
)  # fmt: skip


class Limits(NamedTuple):
    """Docker's HostConfig resource fields; 0 means unset.

    ``memory_swap`` is memory+swap as docker counts it (-1 unlimited, 0 twice
    ``memory``); ``nano_cpus`` is ``--cpus`` × 1e9; device limits are
    (device path, bytes per second)."""

    memory: int = 0
    memory_swap: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    cpu_period: int = 0
    cpu_quota: int = 0
    pids_limit: int = 0
    read_bps: tuple[tuple[str, int], ...] = ()
    write_bps: tuple[tuple[str, int], ...] = ()

    def merged(self, **changes: Any) -> Limits:
        """These limits with the non-None ``changes`` (Limits field names) applied."""
        return self._replace(**{k: v for k, v in changes.items() if v is not None})


class Hierarchy(NamedTuple):
    """Where the controllers are: v1 maps controller -> mount point; v2 has one root."""

    v1: dict[str, Path]
    v2: Path | None

    @classmethod
    def detect(cls) -> Hierarchy:
        v1: dict[str, Path] = {}
        v2: Path | None = None
        try:
            with open("/proc/self/mountinfo") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(rfields) < 3:
                continue
            mnt = Path(fields[4])
            if rfields[0] == "cgroup2" and mnt == ROOT:
                v2 = mnt
            elif rfields[0] == "cgroup":
                for opt in rfields[2].split(","):
                    if opt in V1_CONTROLLERS:
                        v1.setdefault(opt, mnt)
        return cls(v1, None if v1 else v2)


_HIERARCHY: Hierarchy | None = None


def hierarchy() -> Hierarchy:
    global _HIERARCHY
    if _HIERARCHY is None:
        _HIERARCHY = Hierarchy.detect()
    return _HIERARCHY


def keep_migrations_warm(limit: float = 0.5) -> Callable[[], None]:
    """Keep cgroup migrations fast while a container starts; returns the stop switch.

    Every write to a cgroup.procs takes a global rwsem that, when idle, makes its
    first writer wait an RCU grace period (6-15 ms here) and falls idle again a
    grace period after the last writer.  A thread re-joining our own current
    group (a no-op move) every 2 ms pays the first wait in the background, while
    the CLI imports and creates, and keeps the rwsem ready for the monitor's real
    migration: what the kernel's ``favordynmods`` mount option does for good, for
    the ``limit`` seconds at most that a start needs.  Errors stop it (not root)."""
    import _thread

    h = hierarchy()
    mount = h.v2 or next(iter(h.v1.values()), None)
    stop: list[bool] = []
    if mount is not None:
        _thread.start_new_thread(_rejoin_own_group, (mount, stop, time.monotonic() + limit))
    return lambda: stop.append(True)


def _rejoin_own_group(mount: Path, stop: list[bool], deadline: float) -> None:
    try:
        procs = _own_group(mount) / "cgroup.procs"
        while not stop and time.monotonic() < deadline:
            _write(procs, str(os.getpid()))
            time.sleep(0.002)
    except (OSError, StopIteration, ValueError):
        pass


def _own_group(mount: Path) -> Path:
    """This process's group in the hierarchy mounted at ``mount``."""
    with open("/proc/self/mountinfo") as f:
        root = next(ln.split()[3] for ln in f if ln.split()[4] == str(mount))
    wanted = mount.name.split(",")
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers.split(",") == wanted or (not controllers and mount == ROOT):
                return mount / os.path.relpath(path, root)
    raise ValueError(f"not in a group of {mount}")


def available_cpus() -> str:
    """The CPUs containers may be given, as a cpuset list (``0-1``): the root cpuset's
    (v2's effective set, v1's cpuset.cpus), else the CPUs online."""
    for path in (
        Path("/sys/fs/cgroup/cpuset.cpus.effective"),
        Path("/sys/fs/cgroup/cpuset/cpuset.cpus"),
        Path("/sys/devices/system/cpu/online"),
    ):
        text = _read(path).strip()
        if text:
            return text
    return f"0-{(os.cpu_count() or 1) - 1}"


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: Path) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _kv(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


class Cgroup:
    """The cgroup(s) of one container, ``<parent>/<name>`` (parent "dockyard")."""

    def __init__(self, name: str, parent: str = PARENT, h: Hierarchy | None = None) -> None:
        self.name = name
        self.parent = parent
        self.h = h or hierarchy()

    def dirs(self) -> dict[str, Path]:
        """Controller -> group directory (v2: every controller -> the one group)."""
        if self.h.v2:
            return {"unified": self.h.v2 / self.parent / self.name}
        return {ctrl: mnt / self.parent / self.name for mnt, ctrl in self._v1_mounts().items()}

    def views(self) -> tuple[tuple[str, str], ...]:
        """What the container is shown at /sys/fs/cgroup, as (name, group dir):
        this group of each v1 hierarchy under the hierarchy's mount name, or
        ("", the group) on v2 (docker's read-only cgroup mounts)."""
        if self.h.v2:
            return (("", str(self.h.v2 / self.parent / self.name)),)
        return tuple((mnt.name, str(mnt / self.parent / self.name)) for mnt in self._v1_mounts())

    def _v1_mounts(self) -> dict[Path, str]:
        """Each v1 hierarchy's mount, once, with its first controller (cpu,cpuacct share one)."""
        seen: dict[Path, str] = {}
        for ctrl, mnt in self.h.v1.items():
            seen.setdefault(mnt, ctrl)
        return seen

    def _dir(self, ctrl: str) -> Path | None:
        if self.h.v2:
            return self.h.v2 / self.parent / self.name
        mnt = self.h.v1.get(ctrl)
        return mnt / self.parent / self.name if mnt else None

    def create(self, limits: Limits) -> tuple[str, ...]:
        """Make the groups and apply ``limits``; return the cgroup.procs files a
        process writes to join.  Raises RuntimeFailure; undoes itself on error."""
        try:
            self._make_parents()
            for d in self.dirs().values():
                d.mkdir(exist_ok=True)
            if not self.h.v2:
                self._devices()
            self.apply(limits)
        except OSError as err:
            self.remove()
            raise RuntimeFailure(f"cgroup {self.parent}/{self.name}: {err}") from err
        return tuple(str(d / "cgroup.procs") for d in self.dirs().values())

    def _make_parents(self) -> None:
        """Each level of the parent path, once (v2: controllers enabled down the path;
        v1 cpusets start empty: copy the level above, then let children inherit)."""
        levels = self.parent.split("/")
        if self.h.v2:
            avail = set(_read(self.h.v2 / "cgroup.controllers").split())
            want = " ".join(f"+{c}" for c in V2_CONTROLLERS if c in avail)
            d = self.h.v2
            for level in levels:
                if not (d / level).is_dir():
                    try:
                        _write(d / "cgroup.subtree_control", want)
                    except OSError:
                        pass
                    (d / level).mkdir(exist_ok=True)
                d = d / level
            try:
                _write(d / "cgroup.subtree_control", want)
            except OSError:
                pass
            return
        for ctrl, group in self.dirs().items():
            d = group.parents[len(levels)]  # the controller's mount
            for level in levels:
                d = d / level
                if d.is_dir():
                    continue
                d.mkdir(exist_ok=True)
                if ctrl == "cpuset":
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        _write(d / f, _read(d.parent / f).strip())
                    _write(d / "cgroup.clone_children", "1")

    def _devices(self) -> None:
        d = self._dir("devices")
        if d and d.is_dir():
            _write(d / "devices.deny", "a")
            for rule in DEVICE_RULES:
                _write(d / "devices.allow", rule)

    def apply(self, limits: Limits) -> None:
        """Write ``limits`` (also to a running container: ``docker update``). Raises OSError."""
        if self.h.v2:
            self._apply_v2(limits)
        else:
            self._apply_v1(limits)

    def _apply_v1(self, lim: Limits) -> None:
        mem = self._dir("memory")
        if mem and (lim.memory or lim.memory_swap):
            limit = lim.memory or -1
            swap = lim.memory_swap if lim.memory_swap else (2 * lim.memory if lim.memory else -1)
            memsw = mem / "memory.memsw.limit_in_bytes"
            # memsw must stay >= limit: raise memsw first when growing, limit first when shrinking
            cur = int(_read(mem / "memory.limit_in_bytes").strip() or 0)
            order = [(memsw, swap), (mem / "memory.limit_in_bytes", limit)]
            if limit != -1 and (cur == -1 or limit < cur):
                order.reverse()
            for path, value in order:
                if path.exists():
                    _write(path, str(value))
        cpu = self._dir("cpu")
        if cpu:
            period, quota = _cpu_quota(lim)
            if period:
                _write(cpu / "cpu.cfs_period_us", str(period))
            if quota:
                _write(cpu / "cpu.cfs_quota_us", str(quota))
            if lim.cpu_shares:
                _write(cpu / "cpu.shares", str(lim.cpu_shares))
        cs = self._dir("cpuset")
        if cs and lim.cpuset_cpus:
            _write(cs / "cpuset.cpus", lim.cpuset_cpus)
        pids = self._dir("pids")
        if pids and lim.pids_limit:
            _write(pids / "pids.max", "max" if lim.pids_limit < 0 else str(lim.pids_limit))
        blk = self._dir("blkio")
        if blk:
            for fname, rules in (("read_bps_device", lim.read_bps), ("write_bps_device", lim.write_bps)):
                for dev, rate in rules:
                    _write(blk / f"blkio.throttle.{fname}", f"{device_number(dev)} {rate}")

    def _apply_v2(self, lim: Limits) -> None:
        d = self.h.v2 / self.parent / self.name  # type: ignore[operator]
        if lim.memory:
            _write(d / "memory.max", str(lim.memory))
        if lim.memory_swap and (d / "memory.swap.max").exists():
            swap = "max" if lim.memory_swap < 0 else str(max(lim.memory_swap - lim.memory, 0))
            _write(d / "memory.swap.max", swap)
        period, quota = _cpu_quota(lim)
        if quota or period:
            _write(d / "cpu.max", f"{quota if quota > 0 else 'max'} {period or CPU_PERIOD}")
        if lim.cpu_shares:  # runc's conversion of shares [2, 262144] to weight [1, 10000]
            _write(d / "cpu.weight", str(1 + ((lim.cpu_shares - 2) * 9999) // 262142))
        if lim.cpuset_cpus:
            _write(d / "cpuset.cpus", lim.cpuset_cpus)
        if lim.pids_limit:
            _write(d / "pids.max", "max" if lim.pids_limit < 0 else str(lim.pids_limit))
        rules: dict[str, list[str]] = {}
        for key, items in (("rbps", lim.read_bps), ("wbps", lim.write_bps)):
            for dev, rate in items:
                rules.setdefault(device_number(dev), []).append(f"{key}={rate}")
        for dev, kv in rules.items():
            _write(d / "io.max", f"{dev} {' '.join(kv)}")

    def pids(self) -> list[int]:
        """Host pids of every process in the container (including exec'd ones)."""
        d = self._dir("pids") or self._dir("memory") or self._dir("freezer")
        return [int(p) for p in _read(d / "cgroup.procs").split()] if d else []

    def kill(self, sig: int = signal.SIGKILL) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def freeze(self, frozen: bool) -> None:
        if self.h.v2:
            _write(self.h.v2 / self.parent / self.name / "cgroup.freeze", "1" if frozen else "0")
            return
        d = self._dir("freezer")
        if d:
            _write(d / "freezer.state", "FROZEN" if frozen else "THAWED")

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the groups, killing what is left in them. Idempotent."""
        deadline = time.monotonic() + timeout
        for d in self.dirs().values():
            while d.is_dir():
                try:
                    d.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    self.kill()
                    time.sleep(0.005)

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs().values())

    def oom_killed(self) -> bool:
        d = self._dir("memory") if not self.h.v2 else self.h.v2 / self.parent / self.name
        if not d:
            return False
        name = "memory.events" if self.h.v2 else "memory.oom_control"
        return _kv(_read(d / name)).get("oom_kill", 0) > 0

    def stats(self) -> dict[str, int]:
        """cpu_ns, mem_usage (minus inactive file, as docker), mem_limit, pids, blk_read, blk_write."""
        out = {"cpu_ns": 0, "mem_usage": 0, "mem_limit": 0, "pids": 0, "blk_read": 0, "blk_write": 0}
        if self.h.v2:
            d = self.h.v2 / self.parent / self.name
            out["cpu_ns"] = _kv(_read(d / "cpu.stat")).get("usage_usec", 0) * 1000
            inactive = _kv(_read(d / "memory.stat")).get("inactive_file", 0)
            out["mem_usage"] = max(int(_read(d / "memory.current").strip() or 0) - inactive, 0)
            max_text = _read(d / "memory.max").strip()
            out["mem_limit"] = int(max_text) if max_text.isdigit() else 0
            out["pids"] = int(_read(d / "pids.current").strip() or 0)
            for line in _read(d / "io.stat").splitlines():
                kv = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
                out["blk_read"] += int(kv.get("rbytes", 0))
                out["blk_write"] += int(kv.get("wbytes", 0))
            return out
        if acct := self._dir("cpuacct"):
            out["cpu_ns"] = int(_read(acct / "cpuacct.usage").strip() or 0)
        if mem := self._dir("memory"):
            inactive = _kv(_read(mem / "memory.stat")).get("total_inactive_file", 0)
            out["mem_usage"] = max(int(_read(mem / "memory.usage_in_bytes").strip() or 0) - inactive, 0)
            limit = int(_read(mem / "memory.limit_in_bytes").strip() or 0)
            out["mem_limit"] = 0 if limit >= 1 << 62 else limit
        if pids := self._dir("pids"):
            out["pids"] = int(_read(pids / "pids.current").strip() or 0)
        if blk := self._dir("blkio"):
            for line in _read(blk / "blkio.throttle.io_service_bytes_recursive").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] in ("Read", "Write"):
                    out["blk_read" if parts[1] == "Read" else "blk_write"] += int(parts[2])
        return out


def _cpu_quota(lim: Limits) -> tuple[int, int]:
    """(period, quota) from --cpus or --cpu-period/--cpu-quota; 0 where unset."""
    if lim.nano_cpus:
        period = lim.cpu_period or CPU_PERIOD
        return period, lim.nano_cpus * period // 1_000_000_000
    return lim.cpu_period, lim.cpu_quota


def device_number(path: str) -> str:
    """``major:minor`` of a block device path, for blkio/io limits. Raises BadSpec."""
    import stat

    try:
        st = os.stat(path)
    except OSError as err:
        raise BadSpec(f"invalid device path {path!r}: {err.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise BadSpec(f"{path!r} is not a block device")
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def host_cpus() -> int:
    return os.cpu_count() or 1
