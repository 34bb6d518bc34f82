"""``events`` (also ``system events``): the store's events journal, as ``docker events``
prints it: what was recorded since ``--since``, then what comes, until ``--until``
(or Ctrl-C)."""

from __future__ import annotations

import argparse
import sys

from commands.gotemplate import render_template
from commands.parsing import OnlyVerb, Verbs
from engine import events
from imagefmt.errors import Invalid

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    for p in (sub.add_parser("events"), sub.group("system").add_parser("events")):
        p.add_argument("--since", default="", help="show events created since this time")
        p.add_argument("--until", default="", help="stream events until this time")
        p.add_argument("-f", "--filter", action="append", default=[], help="filter output (KEY=VALUE)")
        p.add_argument("--format", default="", help="format the output using a Go template")


@VERBS.command("events", "system events")
def cmd_events(args: argparse.Namespace) -> int:
    filters = events.parse_filters(args.filter)
    try:
        since = events.parse_time(args.since) if args.since else None
        until = events.parse_time(args.until) if args.until else None
    except Invalid as exc:  # docker's CLI prints this one unprefixed
        print(exc, file=sys.stderr)
        return 1
    if since is not None and until is not None and since > until:
        raise Invalid(f"`since` time ({args.since}) cannot be after `until` time ({args.until})")
    reader = events.Reader(args.root, since, until, filters)
    if since is None and until is None:
        reader.skip()  # as dockerd: without a time, only the events to come
    else:
        for ev in reader.read():
            _show(ev, args.format)
    for ev in reader.follow():
        _show(ev, args.format)
    return 0


def _show(ev: events.Event, fmt: str) -> None:
    print(render_template(fmt, ev) if fmt else ev.line(), flush=True)
