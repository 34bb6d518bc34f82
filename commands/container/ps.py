"""``ps`` and ``port`` (also as ``container ls``/``port``), and ``container inspect``:
what dockyard shows of containers."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

from commands.container import both
from commands.formatting import found, inspect_each, print_rows
from commands.output import IGNORING_FORMAT, go_time, human_size, print_docker_table
from commands.parsing import OnlyVerb, Verbs
from engine import containers
from engine.containers import ContainerRow, PsOptions, port_key
from imagefmt import errors
from runtime.container.store import ContainerStore, human_duration

VERBS = Verbs()

PS_COLUMNS = [
    ("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
    ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names"),
]  # fmt: skip


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    csub = sub.group("container")
    for p in (sub.add_parser("ps"), csub.add_parser("ls", aliases=["ps", "list"])):
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("-f", "--filter", action="append", default=[])
        p.add_argument("--format", default="")
        p.add_argument("-n", "--last", type=int, default=-1)
        p.add_argument("-l", "--latest", action="store_true")
        p.add_argument("-s", "--size", action="store_true")
    for p in both(sub, "port"):
        p.add_argument("container")
        p.add_argument("port", nargs="?")
    p = csub.add_parser("inspect")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", default="")
    p.add_argument("-s", "--size", action="store_true")


@VERBS.command("ps", "container ls", "container ps", "container list")
def cmd_ps(args: argparse.Namespace) -> int:
    now = time.time()
    opts = PsOptions(all=args.all, latest=args.latest, last=args.last, filters=tuple(args.filter))
    cstore = ContainerStore(args.root)
    cs = containers.list_containers(cstore, opts)
    if args.quiet:
        if args.format:
            print(IGNORING_FORMAT, file=sys.stderr)
        for c in cs:
            print(c.short_id if not args.no_trunc else c.id)
        return 0
    rows = [_ps_row(containers.row(c, now, cstore), not args.no_trunc, now) for c in cs]
    if args.size:
        # the image store (manifests, dataclasses) and engine.disk: only for -s, off ps's usual path
        from engine.disk import container_sizes
        from imagefmt.store import Store

        for row, (rw, virtual) in zip(rows, container_sizes(Store(args.root), cs), strict=True):
            row["Size"] = f"{human_size(rw)} (virtual {human_size(virtual)})"
    fmt = args.format
    if print_rows(rows, fmt):
        return 0
    columns = PS_COLUMNS + ([("SIZE", "Size")] if args.size else [])
    if fmt.startswith("table"):
        keys = re.findall(r"\{\{\s*\.(\w+)\s*\}\}", fmt)
        names = {k: h for h, k in PS_COLUMNS} | {"CreatedAt": "CREATED AT"}
        columns = [(names.get(k, k.upper()), k) for k in keys]
    print_docker_table([h for h, _ in columns], [[r[k] for _, k in columns] for r in rows])
    return 0


def _ps_row(r: ContainerRow, trunc: bool, now: float) -> dict[str, str]:
    """docker ps's columns (and --format's fields) as it prints them."""
    image = r.image
    if image.startswith("sha256:") and trunc:
        image = image[7:19]
    ports = ", ".join(
        f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.private}" if p.published else p.private for p in r.ports
    )
    return {
        "ID": r.id[:12] if trunc else r.id,
        "Image": image,
        "Command": json.dumps(_ellipsis(r.command, 20) if trunc else r.command, ensure_ascii=False),
        "CreatedAt": go_time(r.created),
        "RunningFor": human_duration(now - r.created) + " ago",
        "Ports": ports,
        "State": r.state,
        "Status": r.status,
        "Size": "0B",
        # docker's Names: its own, then (untruncated) the links' PARENT/ALIAS names
        "Names": ",".join([r.name] if trunc else [r.name, *r.link_names]),
        "Labels": ",".join(f"{k}={v}" for k, v in r.labels.items()),
        "Mounts": ",".join(_ellipsis(m, 15) if trunc else m for m in r.mounts),
        "Networks": r.network_mode,
        "LocalVolumes": str(r.local_volumes),
    }


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@VERBS.command("container inspect")
def cmd_container_inspect(args: argparse.Namespace) -> int:
    cstore = ContainerStore(args.root)
    return inspect_each(
        args.names, lambda n: found(containers.inspect(cstore, n), "container", n), args.format
    )


@VERBS.command("port", "container port")
def cmd_port(args: argparse.Namespace) -> int:
    c = ContainerStore(args.root).get(args.container)
    ports = c.network_settings().get("Ports") or {}
    want = args.port if not args.port or "/" in args.port else f"{args.port}/tcp"
    shown = False
    for key in sorted(ports, key=port_key):
        if want and key != want:
            continue
        for b in ports[key] or []:
            shown = True
            print(f"{b['HostIp']}:{b['HostPort']}" if want else f"{key} -> {b['HostIp']}:{b['HostPort']}")
    if want and not shown:
        raise errors.NotFound(f"No public port '{want}' published for {c.name}")
    return 0
