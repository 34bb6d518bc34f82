"""The container verbs (``run``, ``ps``, … and the same as ``container …``), one module
per group of verbs; what they share: declaring a verb at both places, and applying
an action to each container named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from commands.output import err
from commands.parsing import OnlyVerb
from imagefmt import errors
from imagefmt.records import TYPE_CHECKING
from runtime.containers import Container, ContainerStore

if TYPE_CHECKING:
    from typing import Any


def both(
    sub: OnlyVerb, name: str, help: str, aliases: tuple[str, ...] = (), add_help: bool = True
) -> list[Any]:
    """The parsers of ``dockyard NAME`` and ``dockyard container NAME``."""
    top = sub.add_parser(name, help=help, add_help=add_help)
    return [top, sub.group("container").add_parser(name, aliases=list(aliases), add_help=add_help)]


def each(
    root: Path,
    refs: list[str],
    action: Callable[[ContainerStore, Container], None],
    missing_ok: bool = False,
) -> int:
    """Apply ``action(store, container)`` to each ref, printing it as given (docker's echo);
    ``missing_ok``: an unknown container is said but is no failure (``rm -f``)."""
    cstore = ContainerStore(root)
    status = 0
    for ref in refs:
        try:
            action(cstore, cstore.get(ref))
            print(ref)
        except errors.DockyardError as exc:
            err(str(exc))
            if not (missing_ok and isinstance(exc, errors.NotFound)):
                status = 1
    return status
