"""``inspect``: the document of any object by name, containers first, as docker looks them up."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from commands.errors import UsageError
from commands.formatting import found, inspect_each
from commands.parsing import OnlyVerb, Verbs
from engine import containers, images, networks, volumes
from imagefmt.records import TYPE_CHECKING
from imagefmt.store import Store
from runtime.container.store import ContainerStore
from runtime.network.bridge import NetworkStore
from runtime.volumes import VolumeStore

if TYPE_CHECKING:
    from typing import Any

VERBS = Verbs()

# Each kind's lookup (a document, or None when there is none by that name), in docker's order.
INSPECTORS: dict[str, Callable[[Path, str], dict[str, Any] | None]] = {
    "container": lambda root, name: containers.inspect(ContainerStore(root), name),
    "image": lambda root, name: images.inspect(Store(root), name),
    "volume": lambda root, name: volumes.inspect(VolumeStore(root), name),
    "network": lambda root, name: networks.inspect(NetworkStore(root), name),
}


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    p = sub.add_parser("inspect")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", default="")
    p.add_argument("--type", default="", choices=["", "image", "container", "volume", "network"])
    p.add_argument("-s", "--size", action="store_true")


@VERBS.command("inspect")
def cmd_inspect(args: argparse.Namespace) -> int:
    kind = args.type
    inspectors = [f for k, f in INSPECTORS.items() if not kind or k == kind]
    if not inspectors:
        raise UsageError(f'"{kind}" is not a valid value for --type')

    def lookup(name: str) -> dict[str, Any]:
        doc = next((d for f in inspectors if (d := f(args.root, name)) is not None), None)
        return found(doc, kind or "object", name)

    return inspect_each(args.names, lookup, args.format)
