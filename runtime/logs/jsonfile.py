"""The json-file log driver: one JSON object per line, rotated by size, and read back.

Each line is ``{"log": "hello\\n", "stream": "stdout", "time": "…Z"}`` as
Docker writes it; ``max-size``/``max-file`` rotate ``<id>-json.log`` to
``.1``, ``.2`` …  A partial message (a piece of a long line, or the last
output without a newline) is written without one, as Docker does.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from runtime.errors import SpecRefused
from runtime.logs.drivers import Driver, Entry, LogInfo, Message
from runtime.units import ram_in_bytes

OPTIONS = ("max-size", "max-file", "compress", "labels", "env", "tag")


def timestamp(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"
    )


class JsonFile:
    """The writer; the file is created on the first message (a silent container costs no file)."""

    def __init__(self, info: LogInfo) -> None:
        opts = info.config
        self.path = info.log_path
        self.max_size = ram_in_bytes(opts["max-size"]) if opts.get("max-size") else 0
        self.max_file = int(opts.get("max-file") or 1)
        self.fd: int | None = None
        self.size = 0

    def log(self, msg: Message) -> None:
        line = msg.line if msg.partial else msg.line + b"\n"
        entry = {
            "log": line.decode("utf-8", errors="replace"),
            "stream": msg.source,
            "time": timestamp(msg.timestamp),
        }
        raw = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self.size = os.fstat(self.fd).st_size
        if self.max_size and self.size and self.size + len(raw) > self.max_size:
            self._rotate()
        os.write(self.fd, raw)
        self.size += len(raw)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _rotate(self) -> None:
        assert self.fd is not None
        os.close(self.fd)
        if self.max_file > 1:
            for i in range(self.max_file - 1, 0, -1):
                src = self.path if i == 1 else self.path.with_name(f"{self.path.name}.{i - 1}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{i}"))
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        else:
            flags = os.O_WRONLY | os.O_TRUNC | os.O_CREAT | os.O_CLOEXEC
        self.fd = os.open(self.path, flags, 0o640)
        self.size = 0


def check_options(opts: dict[str, str], driver: str) -> None:
    """json-file's ``--log-opt`` keys and values. Raises BadSpec with docker's words."""
    for key, value in opts.items():
        if key not in OPTIONS:
            raise SpecRefused(f"unknown log opt '{key}' for {driver} log driver")
        if key == "max-size":
            ram_in_bytes(value, "--log-opt max-size")
        if key == "max-file" and (not value.isdigit() or int(value) < 1):
            raise SpecRefused("max-file cannot be less than 1")
    if "max-file" in opts and int(opts["max-file"]) > 1 and "max-size" not in opts:
        raise SpecRefused("max-file cannot be set without max-size")


def validate(opts: dict[str, str]) -> None:
    check_options(opts, "json-file")


class JsonFileReader:
    """Reads a container's json-file log: ``read``, then ``follow`` from where it ended."""

    def __init__(self, info: LogInfo) -> None:
        self.path = info.log_path
        self.pos = (0, 0)

    def read(self) -> list[Entry]:
        entries, self.pos = read(self.path)
        return entries

    def follow(self, running: Callable[[], bool]) -> Iterator[Entry]:
        return follow(self.path, self.pos, running)


def files(path: Path) -> list[Path]:
    """The log files, oldest first."""
    rotated = sorted(
        path.parent.glob(path.name + ".*"), key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0
    )
    return [*reversed(rotated), path]


def _parse(raw: bytes) -> Entry | None:
    try:
        doc = json.loads(raw)
        return Entry(doc["stream"], doc["time"], doc["log"].encode())
    except (ValueError, KeyError, TypeError):
        return None


def read(path: Path) -> tuple[list[Entry], tuple[int, int]]:
    """Every entry so far, oldest first, and where the current file ended
    (inode, offset): the place ``follow`` continues from."""
    out: list[Entry] = []
    pos = (0, 0)
    for f in files(path):
        try:
            with open(f, "rb") as fh:
                data = fh.read()
                if f == path:
                    end = data.rfind(b"\n") + 1
                    data = data[:end]
                    pos = (os.fstat(fh.fileno()).st_ino, end)
        except FileNotFoundError:
            continue
        out += [e for raw in data.splitlines() if (e := _parse(raw))]
    return out, pos


def follow(
    path: Path, pos: tuple[int, int], running: Callable[[], bool], interval: float = 0.05
) -> Iterator[Entry]:
    """Entries written after ``pos``, across rotations, until ``running()`` is
    false and everything written has been read."""
    ino, offset = pos
    pending = b""
    while True:
        alive = running()  # sampled before reading: output written before exit is never missed
        got = False
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                if st.st_ino != ino or st.st_size < offset:  # rotated: the new file from its start
                    ino, offset, pending = st.st_ino, 0, b""
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            got = True
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                if e := _parse(raw):
                    yield e
        if not got:
            if not alive:
                return
            time.sleep(interval)


DRIVER = Driver("json-file", JsonFile, validate, JsonFileReader)
