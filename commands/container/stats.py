"""``stats``, ``top`` and ``update`` (also as ``container …``): resource usage and limits."""

from __future__ import annotations

import argparse
import sys
import time

from commands.container import both
from commands.container.lifecycle import each
from commands.container.limits import limit_flags, limits
from commands.errors import UsageError
from commands.formatting import print_rows
from commands.output import print_docker_table
from commands.parsing import OnlyVerb, Verbs
from runtime.container.stats import Sample, cpu_percent, sample, top, update
from runtime.container.store import Container, ContainerStore
from runtime.kernel.cgroups import Limits
from runtime.units import human_size as units_size

VERBS = Verbs()

STATS_COLUMNS = [
    ("CONTAINER ID", "ID"), ("NAME", "Name"), ("CPU %", "CPUPerc"), ("MEM USAGE / LIMIT", "MemUsage"),
    ("MEM %", "MemPerc"), ("NET I/O", "NetIO"), ("BLOCK I/O", "BlockIO"), ("PIDS", "PIDs"),
]  # fmt: skip


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    for p in both(sub, "stats"):
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("--no-stream", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("--format", default="")
        p.add_argument("containers", nargs="*")
    for p in both(sub, "top"):
        p.add_argument("container")
        p.add_argument("ps_args", nargs=argparse.REMAINDER)
    for p in both(sub, "update"):
        limit_flags(p)
        p.add_argument("--blkio-weight", type=int, default=0)
        p.add_argument("--restart", default="")
        p.add_argument("containers", nargs="+")


def _stats_row(c: Container, a: Sample, b: Sample, trunc: bool) -> dict[str, str]:
    mem_pct = b.mem_usage / b.mem_limit * 100 if b.mem_limit else 0.0
    return {
        "Container": c.short_id if trunc else c.id,
        "ID": c.short_id if trunc else c.id,
        "Name": c.name,
        "CPUPerc": f"{cpu_percent(a, b):.2f}%",
        "MemUsage": f"{units_size(b.mem_usage, binary=True)} / {units_size(b.mem_limit, binary=True)}",
        "MemPerc": f"{mem_pct:.2f}%",
        "NetIO": f"{units_size(b.net_rx)} / {units_size(b.net_tx)}",
        "BlockIO": f"{units_size(b.blk_read)} / {units_size(b.blk_write)}",
        "PIDs": str(b.pids),
    }


@VERBS.command("stats", "container stats")
def cmd_stats(args: argparse.Namespace) -> int:
    cstore = ContainerStore(args.root)
    if args.containers:
        cs = [cstore.get(ref) for ref in args.containers]
    else:
        cs = [c for c in cstore.all() if args.all or c.running]
    first = True
    while True:
        before = {c.id: sample(c) for c in cs if c.running}
        time.sleep(0.5 if first else 1.0)
        rows = []
        for c in cs:
            c = cstore.load(c.id) if c.dir.exists() else c
            if c.id in before and c.running:
                rows.append(_stats_row(c, before[c.id], sample(c), not args.no_trunc))
            else:
                zero = {
                    "CPUPerc": "0.00%",
                    "MemUsage": "0B / 0B",
                    "MemPerc": "0.00%",
                    "NetIO": "0B / 0B",
                    "BlockIO": "0B / 0B",
                    "PIDs": "0",
                }
                rows.append({"Container": c.short_id, "ID": c.short_id, "Name": c.name, **zero})
        if not args.no_stream:
            print("\033[2J\033[H", end="")
        if not print_rows(rows, args.format):
            print_docker_table(
                [h for h, _ in STATS_COLUMNS], [[r[k] for _, k in STATS_COLUMNS] for r in rows]
            )
        sys.stdout.flush()
        if args.no_stream:
            return 0
        first = False


@VERBS.command("top", "container top")
def cmd_top(args: argparse.Namespace) -> int:
    header, rows = top(ContainerStore(args.root).get(args.container), list(args.ps_args))
    print_docker_table(header, rows, minwidth=20)
    return 0


@VERBS.command("update", "container update")
def cmd_update(args: argparse.Namespace) -> int:
    lim = limits(args, Limits())
    changes = {k: getattr(lim, k) for k in Limits._fields if getattr(lim, k) != getattr(Limits(), k)}
    if not changes and not args.restart:
        raise UsageError("you must provide one or more flags when using this command")
    return each(args.root, args.containers, lambda s, c: update(s, c, changes, args.restart))
