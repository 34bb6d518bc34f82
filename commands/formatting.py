"""--format: what list and inspect verbs print through a Go template, or without one
as docker's table or JSON."""

from __future__ import annotations

import json

from commands.gotemplate import render_template
from commands.output import print_docker_table
from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
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
