"""``volume create``, ``ls``, ``inspect`` and ``rm`` (``volume prune`` is in commands.prune)."""

from __future__ import annotations

import argparse

from commands.formatting import inspect_each, print_rows
from commands.output import err, print_docker_table
from commands.parsing import OnlyVerb, Verbs
from engine import volumes
from imagefmt import errors
from runtime.container.store import ContainerStore
from runtime.volumes import VolumeStore

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    vsub = sub.group("volume")
    p = vsub.add_parser("create")
    p.add_argument("name", nargs="?", default="")
    p.add_argument("--name", dest="name_flag", default="")
    p.add_argument("-d", "--driver", default="local")
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p = vsub.add_parser("ls", aliases=["list"])
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format", default="")
    p = vsub.add_parser("inspect")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", default="")
    p = vsub.add_parser("rm", aliases=["remove"])
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+")


@VERBS.command("volume create")
def cmd_volume_create(args: argparse.Namespace) -> int:
    labels = dict(item.partition("=")[::2] for item in args.label)
    opts = dict(item.partition("=")[::2] for item in args.opt)
    print(volumes.create(VolumeStore(args.root), args.name or args.name_flag, args.driver, labels, opts))
    return 0


@VERBS.command("volume ls", "volume list")
def cmd_volume_ls(args: argparse.Namespace) -> int:
    vstore = VolumeStore(args.root)
    names = volumes.list_volumes(vstore, ContainerStore(args.root), tuple(args.filter))
    if args.quiet and not args.format:  # docker: --format wins over -q here
        for n in names:
            print(n)
        return 0

    def labels(name: str) -> str:
        return ",".join(f"{k}={v}" for k, v in (vstore.get(name)["Labels"] or {}).items())

    rows = [
        {
            "Driver": "local",
            "Name": n,
            "Mountpoint": str(vstore.path(n)),
            "Scope": "local",
            "Labels": labels(n),
        }
        for n in names
    ]
    if print_rows(rows, args.format):
        return 0
    print_docker_table(["DRIVER", "VOLUME NAME"], [[r["Driver"], r["Name"]] for r in rows])
    return 0


@VERBS.command("volume inspect")
def cmd_volume_inspect(args: argparse.Namespace) -> int:
    vstore = VolumeStore(args.root)
    return inspect_each(args.names, vstore.get, args.format)


@VERBS.command("volume rm", "volume remove")
def cmd_volume_rm(args: argparse.Namespace) -> int:
    vstore = VolumeStore(args.root)
    users = volumes.users(ContainerStore(args.root))
    status = 0
    for name in args.names:
        try:
            vstore.remove(name, users.get(name, []), force=args.force)
            print(name)
        except errors.DockyardError as exc:
            err(str(exc))
            status = 1
    return status
