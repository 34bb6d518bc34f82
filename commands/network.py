"""``network create``, ``ls``, ``rm``, ``inspect``, ``connect`` and ``disconnect``
(``network prune`` is in commands.prune)."""

from __future__ import annotations

import argparse

from commands.formatting import inspect_each, print_rows
from commands.output import err, print_docker_table
from commands.parsing import OnlyVerb, Verbs
from engine import endpoints, networks
from imagefmt import errors
from runtime.container.store import ContainerStore
from runtime.network.bridge import NetworkStore

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    nsub = sub.group("network")
    p = nsub.add_parser("create")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("--subnet", default="")
    p.add_argument("--ip-range", default="")
    p.add_argument("--gateway", default="")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--internal", action="store_true")
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("name")
    p = nsub.add_parser("ls", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format", default="")
    p = nsub.add_parser("rm", aliases=["remove"])
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+")
    p = nsub.add_parser("inspect")
    p.add_argument("-f", "--format", default="")
    p.add_argument("names", nargs="+")
    for verb in ("connect", "disconnect"):
        p = nsub.add_parser(verb)
        if verb == "connect":
            p.add_argument("--alias", action="append", default=[])
            p.add_argument("--ip", default="")
            p.add_argument("--link", action="append", default=[])
        else:
            p.add_argument("-f", "--force", action="store_true")
        p.add_argument("network")
        p.add_argument("container")


@VERBS.command("network create")
def cmd_network_create(args: argparse.Namespace) -> int:
    labels = dict(item.partition("=")[::2] for item in args.label)
    doc = NetworkStore(args.root).create(
        args.name,
        subnet=args.subnet,
        ip_range=args.ip_range,
        gateway=args.gateway,
        labels=labels,
        internal=args.internal,
        driver=args.driver,
    )
    print(doc["Id"])
    return 0


@VERBS.command("network ls", "network list")
def cmd_network_ls(args: argparse.Namespace) -> int:
    docs = networks.list_networks(NetworkStore(args.root), tuple(args.filter))
    ids = [d["Id"] if args.no_trunc else d["Id"][:12] for d in docs]
    if args.quiet and not args.format:  # docker: --format wins over -q here
        for i in ids:
            print(i)
        return 0
    rows = [
        {"ID": i, "Name": d["Name"], "Driver": d["Driver"], "Scope": d["Scope"]}
        for i, d in zip(ids, docs, strict=True)
    ]
    if print_rows(rows, args.format):
        return 0
    print_docker_table(
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
        [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows],
    )
    return 0


@VERBS.command("network rm", "network remove")
def cmd_network_rm(args: argparse.Namespace) -> int:
    nstore = NetworkStore(args.root)
    status = 0
    for name in args.names:
        try:
            nstore.remove(name)
            print(name)
        except errors.NotFound as exc:
            if not args.force:
                err(str(exc))
                status = 1
        except errors.DockyardError as exc:
            err(str(exc))
            status = 1
    return status


@VERBS.command("network inspect")
def cmd_network_inspect(args: argparse.Namespace) -> int:
    nstore = NetworkStore(args.root)
    return inspect_each(args.names, lambda n: networks.inspect_doc(nstore.get(n)), args.format)


@VERBS.command("network connect")
def cmd_network_connect(args: argparse.Namespace) -> int:
    cstore, nstore = ContainerStore(args.root), NetworkStore(args.root)
    endpoints.connect(
        args.root, cstore, nstore, args.container, args.network, tuple(args.alias), args.ip, tuple(args.link)
    )
    return 0


@VERBS.command("network disconnect")
def cmd_network_disconnect(args: argparse.Namespace) -> int:
    cstore, nstore = ContainerStore(args.root), NetworkStore(args.root)
    endpoints.disconnect(cstore, nstore, args.container, args.network, force=args.force)
    return 0
