"""``container prune``, ``volume prune`` and ``network prune``, with docker's --filter.

They live apart from their nouns' other verbs because they need the runtime's
lifecycle and the duration parser, which ``ps``, ``volume ls`` and the like should
not load.  (``image``, ``builder`` and ``system prune`` are in commands.disk.)"""

from __future__ import annotations

import argparse

from commands.output import confirm, print_pruned, print_reclaimed
from commands.parsing import OnlyVerb, Verbs
from engine import prune

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    p = sub.group("container").add_parser("prune")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    p = sub.group("volume").add_parser("prune")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    p = sub.group("network").add_parser("prune")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])


@VERBS.command("container prune")
def cmd_container_prune(args: argparse.Namespace) -> int:
    if not args.force and not confirm("WARNING! This will remove all stopped containers."):
        return 0
    removed, freed = prune.prune_containers(args.root, tuple(args.filter))
    print_pruned("Deleted Containers", removed)
    print_reclaimed(freed)
    return 0


@VERBS.command("volume prune")
def cmd_volume_prune(args: argparse.Namespace) -> int:
    if not args.force and not confirm(
        "WARNING! This will remove all local volumes not used by at least one container."
    ):
        return 0
    names, freed = prune.prune_volumes(args.root, tuple(args.filter))
    print_pruned("Deleted Volumes", names)
    print_reclaimed(freed)
    return 0


@VERBS.command("network prune")
def cmd_network_prune(args: argparse.Namespace) -> int:
    if not args.force and not confirm(
        "WARNING! This will remove all custom networks not used by at least one container."
    ):
        return 0
    removed = prune.prune_networks(args.root, tuple(args.filter))
    if removed:  # docker prints no blank line and no total here
        print("Deleted Networks:")
        for name in removed:
            print(name)
    return 0
