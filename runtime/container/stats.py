"""``docker stats``, ``top`` and ``update``: cgroup accounting and live limit changes."""

from __future__ import annotations

import os
import subprocess

from imagefmt.records import NamedTuple
from runtime.container.hostconfig import limits_of, restart_policy, set_limits, validate_limits
from runtime.container.store import Container, ContainerStore
from runtime.errors import BadSpec, NotRunning, RuntimeFailure


class Sample(NamedTuple):
    """One reading; CPU % needs two (docker's formula over the host's CPU time)."""

    cpu_ns: int
    system_ns: int
    mem_usage: int
    mem_limit: int
    net_rx: int
    net_tx: int
    blk_read: int
    blk_write: int
    pids: int


def system_cpu_ns() -> int:
    """Host CPU time from /proc/stat, in nanoseconds (docker's SystemUsage)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _net(pid: int) -> tuple[int, int]:
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        cols = rest.split()
        rx += int(cols[0])
        tx += int(cols[8])
    return rx, tx


def sample(c: Container) -> Sample:
    s = c.cgroup().stats()
    rx, tx = _net(c.pid) if c.pid else (0, 0)
    limit = s["mem_limit"] or host_memory()
    return Sample(
        s["cpu_ns"], system_cpu_ns(), s["mem_usage"], limit, rx, tx, s["blk_read"], s["blk_write"], s["pids"]
    )


def cpu_percent(a: Sample, b: Sample) -> float:
    cpu, system = b.cpu_ns - a.cpu_ns, b.system_ns - a.system_ns
    if cpu <= 0 or system <= 0:
        return 0.0
    return cpu / system * (os.cpu_count() or 1) * 100.0


def top(c: Container, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
    """``docker top``: the host's ``ps`` (``-ef`` by default) for the container's
    processes only. Raises NotRunning or RuntimeFailure."""
    if not c.running:
        raise NotRunning(f"Container {c.id} is not running")
    pids = {str(p) for p in c.cgroup().pids()}
    try:
        out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise RuntimeFailure(f"ps: {getattr(err, 'stderr', '') or err}") from None
    lines = out.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise RuntimeFailure(f'Couldn\'t find PID field in ps output: "{lines[0]}"')
    col = header.index("PID")
    rows = []
    for line in lines[1:]:
        cells = line.split(None, len(header) - 1)
        if len(cells) > col and cells[col] in pids:
            rows.append(cells)
    return header, rows


def update(store: ContainerStore, c: Container, changes: dict[str, object], restart: str = "") -> None:
    """``docker update``: merge ``changes`` (Limits field names) into the
    container's limits, save them and apply them live if it runs; ``restart``
    replaces its restart policy (its monitor reads it at the next exit).  Raises BadSpec."""
    policy = restart_policy(restart) if restart else None
    with store.locked(c) as cur:
        if policy is not None:
            if policy["Name"] != "no" and cur.host_config.get("AutoRemove"):
                raise BadSpec(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container"
                )
            cur.host_config["RestartPolicy"] = policy
        old = limits_of(cur.host_config)
        new = old.merged(**changes)
        if (
            new.memory
            and not changes.get("memory_swap")
            and old.memory_swap > 0
            and new.memory > old.memory_swap
        ):
            raise BadSpec(
                "Memory limit should be smaller than already set memoryswap limit, "
                "update the memoryswap at the same time"
            )
        validate_limits(new)
        if cur.running:
            try:
                cur.cgroup().apply(new)
            except OSError as err:
                raise RuntimeFailure(f"Cannot update container {cur.id}: {err.strerror}") from None
        set_limits(cur.host_config, new)
        store.save_record(cur)
