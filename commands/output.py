"""What the commands print, as docker prints it: error lines, prompts, sizes, times,
tables (Go's tabwriter as docker sets it up) and prune reports.  (What --format
templates print is in commands.formatting: it loads the template engine and json,
which ``run`` does not need.)"""

from __future__ import annotations

import sys
import time

IGNORING_FORMAT = "WARNING: Ignoring custom format, because both --format and --quiet are set."


def err(message: str) -> None:
    print(f"Error: {message}", file=sys.stderr)


def confirm(warning: str) -> bool:
    """A prune's prompt: the warning, then "Are you sure…"; yes only for y or yes."""
    print(warning)
    print("Are you sure you want to continue? [y/N] ", end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def human_size(size: float, precision: int = 3) -> str:
    """Docker's units.HumanSizeWithPrecision: decimal units, ``precision`` significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def go_time(ts: float) -> str:
    """A time as Go's time.Time prints it in UTC (docker's CreatedAt columns)."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(ts))


def print_docker_table(header: list[str], rows: list[list[str]], minwidth: int = 10) -> None:
    """Go tabwriter as docker sets it up (minwidth 10, or 20 for ``top``; padding 3):
    every column but the last is as wide as its widest cell plus 3, and at least minwidth."""
    widths = [max(minwidth, max(len(r[i]) for r in [header, *rows]) + 3) for i in range(len(header))]
    for row in [header, *rows]:
        print("".join(c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)).rstrip())


def print_pruned(title: str, lines: list[str]) -> None:
    """A prune command's section ("Deleted Images:", one line each, a blank line), as docker prints it."""
    if lines:
        print(f"{title}:")
        for line in lines:
            print(line)
        print()


def print_reclaimed(freed: int) -> None:
    print(f"Total reclaimed space: {human_size(freed)}")
