"""Docker's events: the record (``events.Message``), its filters, ``--since``/``--until``
times, and reading the store's journal (imagefmt.journal) back, once or following it.

What ``docker events`` and the API's ``GET /events`` compute: ``append`` records an
event; ``read`` gives those recorded between two times that pass the filters;
``follow`` goes on with those recorded after, as they come.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import FilterInvalid
from imagefmt import journal
from imagefmt.errors import Invalid

TYPES = (
    "builder",
    "config",
    "container",
    "daemon",
    "image",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "volume",
)


class Event:
    """One record: docker's ``events.Message``, its Go field names as attributes (for
    ``--format``'s ``{{.Status}}``, ``{{.Actor.ID}}``), and its JSON (``to_json``,
    what ``{{json .}}`` and the API give) as recorded."""

    __slots__ = ("doc",)

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    @classmethod
    def new(
        cls, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None, from_: str = ""
    ) -> Event:
        """An event stamped now."""
        return cls(journal.message(type_, action, actor_id, dict(attributes or {}), from_=from_))

    def to_json(self) -> dict[str, Any]:
        return self.doc

    Status = property(lambda self: self.doc.get("status", ""))
    ID = property(lambda self: self.doc.get("id", ""))
    From = property(lambda self: self.doc.get("from", ""))
    Type = property(lambda self: self.doc.get("Type", ""))
    Action = property(lambda self: self.doc.get("Action", ""))
    Actor = property(lambda self: self.doc.get("Actor") or {"ID": "", "Attributes": {}})
    Scope = property(lambda self: self.doc.get("scope", ""))
    Time = property(lambda self: int(self.doc.get("time", 0)))
    TimeNano = property(lambda self: int(self.doc.get("timeNano", 0)))

    def __str__(self) -> str:
        """Go's %v of the struct, what ``--format '{{.}}'`` prints."""
        attrs = " ".join(f"{k}:{v}" for k, v in sorted(self.attributes.items()))
        return (
            f"{{{self.Status} {self.ID} {self.From} {self.Type} {self.Action} "
            f"{{{self.Actor.get('ID', '')} map[{attrs}]}} {self.Scope} {self.Time} {self.TimeNano}}}"
        )

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self.Actor.get("Attributes") or {})

    def line(self) -> str:
        """docker's default line: time (RFC 3339, nanoseconds, local zone), type, action,
        actor and its attributes sorted, ``2026-12-02T13:37:17.515580659Z volume create
        evv (driver=local)``."""
        ns = self.TimeNano
        tm = datetime.fromtimestamp(ns // 1_000_000_000, UTC).astimezone()
        off = tm.strftime("%z")
        zone = "Z" if off == "+0000" else f"{off[:3]}:{off[3:]}"
        out = f"{tm.strftime('%Y-%m-%dT%H:%M:%S')}.{ns % 1_000_000_000:09d}{zone} {self.Type} {self.Action} "
        out += str(self.Actor.get("ID", ""))
        attrs = self.attributes
        if attrs:
            out += " (" + ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())) + ")"
        return out


def append(root: Path, event: Event) -> None:
    """Record ``event`` in the journal of the store at ``root`` (imagefmt.journal.append:
    safe with concurrent writers, rotated by size, never fails the caller)."""
    journal.append(root, event.doc)


# ------------------------------------------------------------------ filters ---


def parse_filters(items: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """``--filter KEY=VALUE``… as docker's CLI and daemon read them. Raises
    FilterInvalid (a usage error) for an item without ``=``."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise FilterInvalid(f"bad format of filter (expected name=value): {item}")
        key = key.strip().lower()
        # dockerd 20.10 (API 1.41) ignores a key it does not know; it is kept, unused
        out.setdefault(key, []).append(value)
    return out


def _exact(filters: dict[str, list[str]], key: str, *sources: str) -> bool:
    values = filters.get(key)
    return values is None or any(s in values for s in sources)


def _fuzzy(filters: dict[str, list[str]], key: str, *sources: str) -> bool:
    values = filters.get(key)
    return values is None or any(s == v or (v and s.startswith(v)) for s in sources for v in values)


def _strip_tag(ref: str) -> str:
    """A reference without its tag (digest kept), as docker's stripTag."""
    name, _, tag = ref.rpartition(":")
    return name if name and "/" not in tag else ref


def matches(event: Event, filters: dict[str, list[str]]) -> bool:
    """Whether ``event`` passes ``filters`` (docker's daemon/events/filter.go Include):
    every key must match; within a key, any value (label: every value)."""
    if not filters:
        return True
    attrs = event.attributes
    actor, name = event.Actor.get("ID", ""), attrs.get("name", "")
    action = event.Action
    if any(v in ("health_status", "exec_create", "exec_start") for v in filters.get("event", ())):
        if not _fuzzy(filters, "event", action):  # docker: prefix match for these
            return False
    elif not _exact(filters, "event", action):
        return False
    if not (_exact(filters, "type", event.Type) and _exact(filters, "scope", event.Scope)):
        return False
    for key in ("container", "volume", "network", "plugin", "node", "service", "secret", "config"):
        if key in filters and not (event.Type == key and _fuzzy(filters, key, actor, name)):
            if not _fuzzy(filters, key, actor, name):
                return False
    image = attrs.get("name" if event.Type == "image" else "image", "")
    if not _exact(filters, "image", actor, image, _strip_tag(actor), _strip_tag(image)):
        return False
    for want in filters.get("label", ()):
        key, sep, value = want.partition("=")
        if key not in attrs or (sep and attrs[key] != value):
            return False
    return True


# -------------------------------------------------------------------- times ---

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_LAYOUTS = (
    "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d",
)  # fmt: skip


def parse_time(value: str, now: float | None = None) -> int:
    """A ``--since``/``--until`` value in nanoseconds since the epoch, as docker's
    timetypes.GetTimestamp reads it: a Go duration (``10m``, ``1h30m``: that long
    ago), Unix seconds (``1796218637.5``), or an RFC 3339 date or date-time (local
    time without a zone). Raises Invalid."""
    now = time.time() if now is None else now
    text = value.strip()
    if _DURATION.fullmatch(text.replace(" ", "")) or re.fullmatch(r"(?:" + _DURATION.pattern + r")+", text):
        secs = sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
        return int((now - secs) * 1_000_000_000)
    if re.fullmatch(r"\d+(\.\d{1,9})?", text):
        sec, _, frac = text.partition(".")
        return int(sec) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))
    iso = text.replace("Z", "+0000").replace("z", "+0000")
    iso = re.sub(r"([+-]\d\d):(\d\d)$", r"\1\2", iso)
    iso = re.sub(r"\.(\d{6})\d+", r".\1", iso)  # strptime's %f stops at microseconds
    for layout in _LAYOUTS:
        try:
            dt = datetime.strptime(iso, layout)
        except ValueError:
            continue
        if dt.tzinfo is None:
            dt = dt.astimezone()  # local time, as docker's CLI reads a date without a zone
        return int(dt.timestamp() * 1_000_000) * 1000
    raise Invalid(f'failed to parse value as time or duration: "{value}"')


# ------------------------------------------------------------------ reading ---


def _records(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int, int]:
    """The whole lines of ``path`` from ``offset``: their records, the offset after
    the last whole line, and the file's inode (0 when it is missing)."""
    try:
        with open(path, "rb") as fh:
            ino = os.fstat(fh.fileno()).st_ino
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], 0, 0
    end = data.rfind(b"\n") + 1
    out = []
    for raw in data[:end].splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue  # a line torn by a full disk: skipped
    return out, offset + end, ino


def _selected(
    docs: list[dict[str, Any]], since: int | None, until: int | None, filters: dict[str, list[str]]
) -> Iterator[Event]:
    for doc in docs:
        ev = Event(doc)
        ns = ev.TimeNano
        if since is not None and ns < since:
            continue
        if until is not None and ns > until:
            continue
        if matches(ev, filters):
            yield ev


class Reader:
    """The journal of the store at ``root`` read with ``docker events``' options:
    ``since``/``until`` in nanoseconds (None: unbounded; inclusive, as dockerd),
    ``filters`` from parse_filters.  ``read`` gives what is recorded; ``follow``
    then what is recorded after, until ``until`` passes or ``stop()`` is true."""

    def __init__(
        self,
        root: Path,
        since: int | None = None,
        until: int | None = None,
        filters: dict[str, list[str]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.since, self.until = since, until
        self.filters = filters or {}
        self.pos = (0, 0)  # (inode, offset) in events.log where read ended

    def read(self) -> Iterator[Event]:
        d = journal.directory(self.root)
        old, _, _ = _records(d / "events.log.1")
        yield from _selected(old, self.since, self.until, self.filters)
        cur, end, ino = _records(d / "events.log")
        self.pos = (ino, end)
        yield from _selected(cur, self.since, self.until, self.filters)

    def skip(self) -> None:
        """Start ``follow`` at the journal's end, as ``read`` would leave it."""
        _, end, ino = _records(journal.directory(self.root) / "events.log")
        self.pos = (ino, end)

    def follow(self, stop: Callable[[], bool] = lambda: False, interval: float = 0.1) -> Iterator[Event]:
        """Events recorded after ``read`` ended, as they come (across rotations)."""
        d = journal.directory(self.root)
        ino, offset = self.pos
        while not stop():
            if self.until is not None and time.time_ns() > self.until:
                return
            try:
                now_ino = (d / "events.log").stat().st_ino
            except FileNotFoundError:
                now_ino = 0
            docs: list[dict[str, Any]] = []
            if ino and now_ino != ino:  # rotated: the rest of the old file, then the new from its start
                rest, _, old_ino = _records(d / "events.log.1", offset)
                docs = rest if old_ino == ino else []
                offset = 0
            new, offset, ino = _records(d / "events.log", offset)
            docs += new
            self.pos = (ino, offset)
            yield from _selected(docs, self.since, self.until, self.filters)
            if not docs:
                time.sleep(interval)
