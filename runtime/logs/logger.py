"""The log-driver interface, as moby's daemon/logger: a container's output becomes
Messages (a line each, or a piece of a longer one) that its LogDriver stores; a driver
that can give them back also has a LogReader.

A driver is a module with a ``DRIVER = Driver(...)`` and one line in
``runtime.logs.drivers.BUILTIN``.  ``LogDriver`` and ``LogReader`` exist for the type
checker only: typing costs a container start ~3.5 ms to import (imagefmt.records), and
nothing checks them at run time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from imagefmt.records import TYPE_CHECKING, NamedTuple

PARTIAL_MAX = 16 * 1024  # a line longer than this is logged in pieces, as docker's copier does


class LogInfo(NamedTuple):
    """What a driver knows of its container (moby's logger.Info): its ``--log-opt``
    ``config``, and what tags and extra attributes are made of."""

    config: dict[str, str]
    container_id: str
    container_name: str  # without docker's leading "/"
    container_created: str  # RFC 3339
    image_id: str
    image_name: str
    entrypoint: str  # the record's Path
    args: tuple[str, ...]
    env: tuple[str, ...]
    labels: dict[str, str]
    log_path: Path  # where a file driver writes: the record's LogPath
    daemon_name: str = "dockyard"


class Message(NamedTuple):
    """One line of output without its newline (moby's logger.Message); ``partial``
    when no newline ended it: a piece of a line longer than PARTIAL_MAX, or what the
    container wrote last without one."""

    line: bytes
    source: str  # "stdout" or "stderr"
    timestamp: int  # nanoseconds since the epoch
    partial: bool = False


class Entry(NamedTuple):
    """A message read back: its stream, RFC 3339 time and line (with its newline)."""

    stream: str
    time: str
    line: bytes


if TYPE_CHECKING:
    from typing import Protocol

    class LogDriver(Protocol):
        """Stores a container's messages; ``log`` is called from one thread, in order."""

        def log(self, msg: Message) -> None: ...

        def close(self) -> None:
            """The container's output ended (for this run): flush and let go."""

    class LogReader(Protocol):
        """Reads back what a driver stored."""

        def read(self) -> list[Entry]:
            """Every entry so far, oldest first; ``follow`` continues after the last."""

        def follow(self, running: Callable[[], bool]) -> Iterator[Entry]:
            """Entries written after those ``read`` gave, as they come, until
            ``running()`` is false and everything written has been read."""


class Driver(NamedTuple):
    """A log driver as registered (moby's RegisterLogDriver and RegisterLogOptValidator):
    ``new`` makes one for a container; ``validate`` checks its ``--log-opt`` values
    (raises BadSpec with docker's words); ``reader`` opens what it stored, None for a
    driver that cannot be read back."""

    name: str
    new: Callable[[LogInfo], LogDriver]
    validate: Callable[[dict[str, str]], None]
    reader: Callable[[LogInfo], LogReader] | None = None


class Copier:
    """Cuts a container's output into Messages for its driver (moby's logger.Copier):
    at newlines; a line without one is sent in PARTIAL_MAX pieces as it grows, and
    whatever is left when the output ends, as docker does."""

    def __init__(self, driver: LogDriver) -> None:
        self.driver = driver
        self.partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial.pop(stream, b"") + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        for line in lines:
            self._send(stream, line, False)
        while len(rest) >= PARTIAL_MAX:
            self._send(stream, rest[:PARTIAL_MAX], True)
            rest = rest[PARTIAL_MAX:]
        if rest:
            self.partial[stream] = rest

    def close(self) -> None:
        """The output ended: send what is left and close the driver."""
        for stream, rest in list(self.partial.items()):
            self._send(stream, rest, True)
        self.partial.clear()
        self.driver.close()

    def _send(self, stream: str, line: bytes, partial: bool) -> None:
        self.driver.log(Message(line, stream, time.time_ns(), partial))
