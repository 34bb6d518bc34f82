"""The container verbs (``run``, ``ps``, … and the same as ``container …``), one module
per group of verbs; what they share: declaring a verb at both places.  (This module
stays light: ``run`` imports it before its warm-migrations thread starts.)"""

from __future__ import annotations

from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from commands.parsing import OnlyVerb


def both(sub: OnlyVerb, name: str, aliases: tuple[str, ...] = (), add_help: bool = True) -> list[Any]:
    """The parsers of ``dockyard NAME`` and ``dockyard container NAME`` (their help
    lines are in cli's table of verbs)."""
    top = sub.add_parser(name, add_help=add_help)
    return [top, sub.group("container").add_parser(name, aliases=list(aliases), add_help=add_help)]
