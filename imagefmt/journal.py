"""The events journal: docker's event records (its ``events.Message``), one JSON line
each, appended to ``<root>/events/events.log`` by every command that changes the
store, and read back by ``dockyard events`` (engine.events) and the API's /events.

It lives here, at the bottom of the layers, because the records are made at every
level: the image store tags and deletes, the runtime creates and kills, a container's
monitor reports its death.  The layout::

    <root>/events/
        events.log      the current file, one record a line, oldest first
        events.log.1    the previous file (rotated at MAX_SIZE: the journal never
                        holds more than twice that)
        lock            flock'ed by each writer for its append (and a rotation)

Concurrent writers are safe: each append holds the lock while it checks the size,
rotates if needed, and writes its line with one ``write`` on an O_APPEND descriptor.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

MAX_SIZE = 4 << 20  # bytes per file; one rotated file is kept
# the types whose records carry docker's legacy status/id/from fields too
LEGACY_TYPES = ("container", "image")


def directory(root: Path) -> Path:
    return Path(root) / "events"


def message(
    type_: str,
    action: str,
    actor_id: str,
    attributes: dict[str, str],
    time_ns: int | None = None,
    from_: str = "",
) -> dict[str, Any]:
    """A record as docker's daemon makes it (``events.Message``, JSON key order
    kept): containers and images also carry the legacy ``status``/``id`` (and a
    container its image as ``from``); attributes are sorted, as Go's map encoder does."""
    ns = time.time_ns() if time_ns is None else time_ns
    doc: dict[str, Any] = {}
    if type_ in LEGACY_TYPES:
        doc["status"], doc["id"] = action, actor_id
        if type_ == "container":
            doc["from"] = from_
    doc["Type"] = type_
    doc["Action"] = action
    doc["Actor"] = {"ID": actor_id, "Attributes": dict(sorted(attributes.items()))}
    doc["scope"] = "local"
    doc["time"] = ns // 1_000_000_000
    doc["timeNano"] = ns
    return doc


def append(root: Path, record: dict[str, Any], max_size: int = MAX_SIZE) -> None:
    """Append ``record`` to the journal of the store at ``root`` (made on first use),
    rotating first when the current file would grow past ``max_size``.  Safe with
    concurrent writers (see the module's docstring); a journal that cannot be written
    (a read-only store) is skipped silently: an event never fails the command."""
    line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    d = directory(root)
    try:
        d.mkdir(parents=True, exist_ok=True)
        lock = os.open(d / "lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = d / "events.log"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(line) > max_size:
            os.replace(path, d / "events.log.1")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass
    finally:
        os.close(lock)  # closing the last descriptor releases the flock


def emit(
    root: Path,
    type_: str,
    action: str,
    actor_id: str,
    attributes: dict[str, str] | None = None,
    from_: str = "",
) -> None:
    """Make a record stamped now and append it (see message and append)."""
    append(root, message(type_, action, actor_id, dict(attributes or {}), from_=from_))


def files(root: Path) -> list[Path]:
    """The journal's files, oldest first (those that exist)."""
    d = directory(root)
    return [p for p in (d / "events.log.1", d / "events.log") if p.exists()]
