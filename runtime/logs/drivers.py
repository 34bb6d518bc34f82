"""The log-driver seam, as moby's daemon/logger: a container's output becomes Messages
(a line each, or a piece of a longer one) that its LogDriver stores; a driver that can
give them back also has a LogReader; drivers are found by name here, with their
``--log-opt`` validators (moby's RegisterLogDriver, RegisterLogOptValidator,
GetLogDriver, ValidateLogOpts).

A new driver is one module defining ``DRIVER = Driver(...)`` and one line in BUILTIN;
it is imported when a container names it, not before.  Every container start imports
this module, so it is cheap: ``LogDriver`` and ``LogReader`` exist for the type checker
only (typing costs a start ~3.5 ms to import, see imagefmt.records), and the records
are plain classes with slots (a quarter of a namedtuple's definition cost, which is
~0.1 ms each).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from imagefmt.errors import Unsupported
from imagefmt.records import TYPE_CHECKING
from runtime.errors import BadSpec, SpecRefused

PARTIAL_MAX = 16 * 1024  # a line longer than this is logged in pieces, as docker's copier does


class LogInfo:
    """What a driver knows of its container (moby's logger.Info, what its drivers read
    of it): the ``--log-opt`` ``config``, and what docker's tags (``{{.ID}}``,
    ``{{.Name}}``, ``{{.ImageName}}``…) and extra attributes (``labels``, ``env``) are
    made of."""

    __slots__ = (
        "config", "container_id", "container_name", "image_id", "image_name", "env", "labels", "log_path",
    )  # fmt: skip

    def __init__(
        self,
        config: dict[str, str],
        container_id: str,
        container_name: str,  # without docker's leading "/"
        image_id: str,
        image_name: str,
        env: tuple[str, ...],
        labels: dict[str, str],
        log_path: Path,  # where a file driver writes: the record's LogPath
    ) -> None:
        self.config = config
        self.container_id = container_id
        self.container_name = container_name
        self.image_id = image_id
        self.image_name = image_name
        self.env = env
        self.labels = labels
        self.log_path = log_path


class Message:
    """One line of output without its newline (moby's logger.Message); ``partial``
    when no newline ended it: a piece of a line longer than PARTIAL_MAX, or what the
    container wrote last without one."""

    __slots__ = ("line", "source", "timestamp", "partial")

    def __init__(self, line: bytes, source: str, timestamp: int, partial: bool = False) -> None:
        self.line = line
        self.source = source  # "stdout" or "stderr"
        self.timestamp = timestamp  # nanoseconds since the epoch
        self.partial = partial


class Entry:
    """A message read back: its stream, RFC 3339 time and line (with its newline)."""

    __slots__ = ("stream", "time", "line")

    def __init__(self, stream: str, time: str, line: bytes) -> None:
        self.stream = stream
        self.time = time
        self.line = line


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


class Driver:
    """A log driver as registered (moby's RegisterLogDriver and RegisterLogOptValidator):
    ``new`` makes one for a container; ``validate`` checks its ``--log-opt`` values
    (raises BadSpec with docker's words); ``reader`` opens what it stored, None for a
    driver that cannot be read back."""

    __slots__ = ("name", "new", "validate", "reader")

    def __init__(
        self,
        name: str,
        new: Callable[[LogInfo], LogDriver],
        validate: Callable[[dict[str, str]], None],
        reader: Callable[[LogInfo], LogReader] | None = None,
    ) -> None:
        self.name = name
        self.new = new
        self.validate = validate
        self.reader = reader


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


# ------------------------------------------------------------ the drivers by name ---

# name -> the module that defines its DRIVER
BUILTIN = {
    "json-file": "runtime.logs.jsonfile",
    "none": "runtime.logs.none",
}
DEFAULT = "json-file"

_registered: dict[str, Driver] = {}


def register(driver: Driver) -> None:
    """Make ``driver`` known by its name (replacing a driver of that name)."""
    _registered[driver.name] = driver


def get(name: str) -> Driver:
    """The driver called ``name``. Raises BadSpec, docker's words, for an unknown one."""
    driver = _registered.get(name)
    if driver is None and name in BUILTIN:
        # __import__ rather than importlib.import_module: a start imports no importlib
        driver = __import__(BUILTIN[name], fromlist=("DRIVER",)).DRIVER
        register(driver)
    if driver is None:
        raise SpecRefused(f'logger: no log driver named "{name}" is registered')
    return driver


def names() -> list[str]:
    """Every driver that can be named."""
    return sorted({*BUILTIN, *_registered})


def parse_options(name: str, opts: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--log-driver NAME --log-opt KEY=VALUE…``: the record's LogConfig.Config,
    checked by the driver's validator (a later KEY replaces an earlier one, as
    docker's flag map does). Raises BadSpec with docker's words."""
    driver = get(name)
    out: dict[str, str] = {}
    for item in opts:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadSpec(f"invalid key value pair format in log options: {item}")
        out[key] = value
    driver.validate(out)
    return out


def new_driver(name: str, info: LogInfo) -> LogDriver:
    """A ``name`` driver for the container ``info`` describes. Raises BadSpec."""
    return get(name).new(info)


def can_read(name: str) -> bool:
    """Whether ``logs`` can read what the ``name`` driver stored."""
    return get(name).reader is not None


def open_reader(name: str, info: LogInfo) -> LogReader:
    """A reader of what the ``name`` driver stored for the container ``info``
    describes. Raises Unsupported (docker's words) for a driver that cannot be read."""
    reader = get(name).reader
    if reader is None:
        raise Unsupported("configured logging driver does not support reading")
    return reader(info)
