"""Docker's framings on the wire: the multiplexed stdout/stderr stream, JSON message
streams (pull/push progress, build output), and a producer thread whose output a
response streams."""

from __future__ import annotations

import json
import queue
import struct
import threading
from collections.abc import Callable, Generator
from typing import Any

from imagefmt import errors
from registry.client.progress import MOVING, Progress

STDIN, STDOUT, STDERR = 0, 1, 2
_MUX = struct.Struct(">BxxxL")


def mux(stream: int, data: bytes) -> bytes:
    """A frame of docker's multiplexed stream: [stream, 0, 0, 0, size (big-endian u32)] + data."""
    return _MUX.pack(stream, len(data)) + data


def message(**doc: Any) -> bytes:
    """One line of a JSON message stream."""
    return json.dumps(doc).encode() + b"\r\n"


def error_message(text: str) -> bytes:
    """The last line of a failed JSON message stream (the CLI prints ``text`` and exits 1)."""
    return message(errorDetail={"message": text}, error=text)


def progress_message(p: Progress) -> bytes:
    """A registry client's Progress as docker's JSON progress message."""
    doc: dict[str, Any] = {"status": p.status if not p.detail else f"{p.status} {p.detail}", "id": p.id}
    if p.status in MOVING and p.total:
        doc["progressDetail"] = {"current": p.current, "total": p.total}
        doc["progress"] = _bar(p.current, p.total)
    else:
        doc["progressDetail"] = {}
    return message(**doc)


def _bar(current: int, total: int) -> str:
    width = 50
    done = min(width, current * width // total) if total else 0
    arrow = ">" if done < width else ""
    return f"[{'=' * done}{arrow}{' ' * (width - done - len(arrow))}] {_size(current)}/{_size(total)}"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{n}B"
        n /= 1000  # type: ignore[assignment]
    return str(n)


class Gone(Exception):
    """The client stopped reading: the producer stops at its next write."""


_END = object()


def produce(
    fn: Callable[[Callable[[bytes], None]], None], on_error: Callable[[str], bytes] | None = error_message
) -> Generator[bytes, None, None]:
    """Run ``fn(write)`` in a thread and yield what it writes, as it writes it (a
    bounded queue: a slow client slows the producer).  A DockyardError from ``fn``
    ends the stream with ``on_error(message)`` (None: re-raised to the caller)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=16)
    gone = threading.Event()

    def write(data: bytes) -> None:
        while not gone.is_set():
            try:
                q.put(bytes(data), timeout=0.5)
                return
            except queue.Full:
                continue
        raise Gone

    def run() -> None:
        try:
            fn(write)
            outcome: Any = _END
        except Gone:
            return
        except errors.DockyardError as exc:
            outcome = exc
        except Exception as exc:  # a bug: the stream says so rather than hanging
            outcome = errors.DockyardError(f"{type(exc).__name__}: {exc}")
        while not gone.is_set():
            try:
                q.put(outcome, timeout=0.5)
                return
            except queue.Full:
                continue

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, errors.DockyardError):
                if on_error is None:
                    raise item
                yield on_error(str(item))
                return
            yield item
    finally:
        gone.set()
