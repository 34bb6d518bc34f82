"""``logs`` (also ``container logs``): a container's output as its log driver kept it."""

from __future__ import annotations

import argparse
import sys
import time

from commands.container import both
from commands.errors import UsageError
from commands.parsing import OnlyVerb, Verbs
from engine.events import parse_time as parse_timestamp
from imagefmt import errors
from runtime.container.launchspec import log_reader
from runtime.container.store import ContainerStore, parse_time
from runtime.logs.drivers import Entry

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    for p in both(sub, "logs"):
        p.add_argument("-f", "--follow", action="store_true")
        p.add_argument("--tail", "-n", default="all")
        p.add_argument("--since", default="")
        p.add_argument("--until", default="")
        p.add_argument("-t", "--timestamps", action="store_true")
        p.add_argument("--details", action="store_true")
        p.add_argument("container")


def _since(text: str, now: float, what: str = "since") -> float:
    """docker's --since/--until (timetypes.GetTimestamp, as ``events`` reads them): RFC 3339
    with or without a zone, a date alone (2025-01-01), Unix seconds, or a duration ago."""
    if not text:
        return 0.0
    try:
        return parse_timestamp(text, now) / 1e9
    except errors.Invalid as err:
        raise errors.Invalid(f'invalid value for "{what}": {err}') from None


@VERBS.command("logs", "container logs")
def cmd_logs(args: argparse.Namespace) -> int:
    cstore = ContainerStore(args.root)
    c = cstore.get(args.container)
    reader = log_reader(c)  # Unsupported for a driver that cannot be read back
    now = time.time()
    since, until = _since(args.since, now), _since(args.until, now, "until")
    if args.tail != "all" and not str(args.tail).lstrip("-").isdigit():
        raise UsageError(f"invalid value for --tail: {args.tail}")
    entries = reader.read()
    entries = [
        e
        for e in entries
        if (not since or parse_time(e.time) >= since) and (not until or parse_time(e.time) <= until)
    ]
    if args.tail != "all" and int(args.tail) >= 0:
        entries = entries[len(entries) - int(args.tail) :] if int(args.tail) else []
    out, errout = sys.stdout.buffer, sys.stderr.buffer

    def emit(e: Entry) -> None:
        stream = errout if e.stream == "stderr" else out
        details = b" " if args.details else b""  # docker: the extra attributes (none), a space
        stream.write((e.time.encode() + b" " if args.timestamps else b"") + details + e.line)
        stream.flush()

    for e in entries:
        emit(e)
    if args.follow and not until:
        running = lambda: cstore.load(c.id).running if c.dir.exists() else False  # noqa: E731
        for e in reader.follow(running):
            emit(e)
    return 0
