"""--format: what list and inspect verbs print through a Go template, or without one
as docker's table or JSON."""

from __future__ import annotations

import json

from commands.gotemplate import render_template
from commands.output import err, print_docker_table
from imagefmt.errors import NotFound
from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any


def print_table(header: list[str], rows: list[list[str]], fmt: str = "") -> None:
    """Docker's tabwriter output (see print_docker_table), or a --format template."""
    if fmt and not fmt.startswith("table"):
        keys = header
        for row in rows:
            print(render_template(fmt, dict(zip(keys, row, strict=False))))
        return
    print_docker_table(header, rows)


def print_rows(rows: list[dict[str, str]], fmt: str) -> bool:
    """A list verb's rows through a --format template that is not a table: True when
    printed (the verb is done), False when the verb prints its table."""
    if not fmt or fmt.startswith("table"):
        return False
    for r in rows:
        print(render_template(fmt, r))
    return True


def print_inspect(docs: list[dict[str, Any]], fmt: str) -> None:
    if fmt:
        for d in docs:
            print(render_template(fmt, d))
    else:
        print(json.dumps(docs, indent=4))


def inspect_each(names: Iterable[str], lookup: Callable[[str], dict[str, Any]], fmt: str) -> int:
    """The inspect verbs: each name's document (``lookup`` raises NotFound for a
    missing one, which is reported on stderr as docker does, the others printed
    still), as one JSON array or through ``fmt``; 1 if any was missing, else 0."""
    docs, status = [], 0
    for name in names:
        try:
            docs.append(lookup(name))
        except NotFound as exc:
            err(str(exc))
            status = 1
    print_inspect(docs, fmt)
    return status


def found(doc: dict[str, Any] | None, what: str, name: str) -> dict[str, Any]:
    """``doc``, or NotFound with docker's "No such WHAT: NAME"."""
    if doc is None:
        raise NotFound(f"No such {what}: {name}")
    return doc
