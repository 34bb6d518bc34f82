"""``system check [--repair]``: the store's consistency check, the tool to run after
a crash (imagefmt.fsck says what it checks and what a repair does)."""

from __future__ import annotations

import argparse

from commands.parsing import OnlyVerb, Verbs
from imagefmt.fsck import check
from imagefmt.store import Store

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    p = sub.group("system").add_parser("check")
    p.add_argument(
        "--repair",
        action="store_true",
        help="remove what is corrupt, unreferenced or stale; untag images whose content is gone",
    )


@VERBS.command("system check")
def cmd_system_check(args: argparse.Namespace) -> int:
    """One line per problem; exit 0 when the store is clean (after --repair: once
    repaired), 1 when problems are found (or remain after --repair)."""
    store = Store(args.root, reclaim=False)  # stale temp state is reported, not silently removed
    problems = check(store, repair=args.repair)
    for p in problems:
        print(p.line(repaired=args.repair))
    if not args.repair or not problems:
        return 1 if problems else 0
    left = check(store)
    for p in left:
        print(f"still: {p.line()}")
    return 1 if left else 0
