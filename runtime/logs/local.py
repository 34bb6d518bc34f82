"""The local log driver, docker's own format: ``local-logs/container.log`` in the
container's directory, each message a protobuf ``LogEntry`` (moby's
api/types/plugins/logdriver/entry.proto) between two big-endian uint32 copies of its
length; rotated by ``max-size`` (20m) into ``max-file`` (5) files, the older ones
gzipped unless ``compress=false``.  Its reader also reads docker's files.

    message LogEntry { string source = 1; int64 time_nano = 2; bytes line = 3;
                       bool partial = 4; PartialLogEntryMetadata partial_log_metadata = 5; }
    message PartialLogEntryMetadata { bool last = 1; string id = 2; int32 ordinal = 3; }
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from runtime.errors import SpecRefused
from runtime.logs.drivers import Driver, Entry, LogInfo, Message
from runtime.logs.jsonfile import timestamp
from runtime.units import ram_in_bytes

OPTIONS = ("max-size", "max-file", "compress")
DEFAULT_MAX_SIZE = 20 << 20
DEFAULT_MAX_FILE = 5


def log_file(info: LogInfo) -> Path:
    return info.log_path.parent / "local-logs" / "container.log"


# ------------------------------------------------------------ protobuf, by hand ---


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64s as two's complement, as protobuf does
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _bytes(number: int, raw: bytes) -> bytes:
    return _field(number, 2, _varint(len(raw)) + raw)


def encode_entry(msg: Message) -> bytes:
    """A message's LogEntry, framed: proto3 rules (zero values left out, fields in
    order), as gogo-protobuf marshals it."""
    body = bytearray()
    if msg.source:
        body += _bytes(1, msg.source.encode())
    if msg.timestamp:
        body += _field(2, 0, _varint(msg.timestamp))
    if msg.line:
        body += _bytes(3, msg.line)
    if msg.partial_id:
        body += _field(4, 0, b"\x01")
        meta = bytearray()
        if msg.last:
            meta += _field(1, 0, b"\x01")
        meta += _bytes(2, msg.partial_id.encode())
        if msg.ordinal:
            meta += _field(3, 0, _varint(msg.ordinal))
        body += _bytes(5, bytes(meta))
    size = struct.pack(">I", len(body))
    return size + bytes(body) + size


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            yield number, value
        elif wire == 2:
            n, pos = _read_varint(data, pos)
            yield number, data[pos : pos + n]
            pos += n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            yield number, data[pos : pos + n]
            pos += n
        else:
            raise ValueError(f"unsupported wire type {wire}")


def decode_entry(body: bytes) -> Message:
    """A LogEntry's message. Raises ValueError for bytes that are not one."""
    msg = Message(b"", "", 0)
    for number, value in _fields(body):
        if number == 1 and isinstance(value, bytes):
            msg.source = value.decode()
        elif number == 2 and isinstance(value, int):
            msg.timestamp = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 3 and isinstance(value, bytes):
            msg.line = value
        elif number == 4 and isinstance(value, int):
            msg.partial = bool(value)
        elif number == 5 and isinstance(value, bytes):
            for n, v in _fields(value):
                if n == 1 and isinstance(v, int):
                    msg.last = bool(v)
                elif n == 2 and isinstance(v, bytes):
                    msg.partial_id = v.decode()
                elif n == 3 and isinstance(v, int):
                    msg.ordinal = v
    return msg


def to_entry(msg: Message) -> Entry:
    """As ``logs`` shows it: a whole line, or a line's last piece, ends with a newline."""
    newline = not msg.partial or msg.last
    return Entry(msg.source, timestamp(msg.timestamp), msg.line + (b"\n" if newline else b""))


def split_entries(data: bytes) -> tuple[list[Message], int]:
    """The whole framed entries at the start of ``data`` and the bytes they take."""
    out, pos = [], 0
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from(">I", data, pos)
        end = pos + 4 + size + 4
        if end > len(data):
            break
        out.append(decode_entry(data[pos + 4 : pos + 4 + size]))
        pos = end
    return out, pos


# ------------------------------------------------------------------- writing ---


def _options(opts: dict[str, str]) -> tuple[int, int, bool]:
    size = ram_in_bytes(opts["max-size"], "--log-opt max-size") if opts.get("max-size") else DEFAULT_MAX_SIZE
    files = opts.get("max-file") or str(DEFAULT_MAX_FILE)
    if not files.lstrip("-").isdigit() or int(files) < 1:
        raise SpecRefused("max-file cannot be less than 1")
    compress = (opts.get("compress") or "true").lower()
    if compress not in ("true", "false", "1", "0", "t", "f"):
        raise SpecRefused(
            f'error reading compress log option: strconv.ParseBool: parsing "{compress}": invalid syntax'
        )
    return size, int(files), compress in ("true", "1", "t")


def validate(opts: dict[str, str]) -> None:
    for key in opts:
        if key not in OPTIONS:
            raise SpecRefused(f"unknown log opt '{key}' for log driver local")
    size, _, _ = _options(opts)
    if size <= 0:
        raise SpecRefused("max-size must be a positive number")


class Local:
    def __init__(self, info: LogInfo) -> None:
        self.path = log_file(info)
        self.max_size, self.max_file, self.compress = _options(info.config)
        self.fd: int | None = None
        self.size = 0

    def log(self, msg: Message) -> None:
        raw = encode_entry(msg)
        if self.fd is None:
            self.path.parent.mkdir(exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self.size = os.fstat(self.fd).st_size
        if self.size >= self.max_size:  # docker's LogFile: rotate once the file reached it
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
        ext = ".gz" if self.compress else ""
        if self.max_file > 1:
            for i in range(self.max_file - 1, 1, -1):
                src = self.path.with_name(f"{self.path.name}.{i - 1}{ext}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{i}{ext}"))
            first = self.path.with_name(f"{self.path.name}.1")
            os.replace(self.path, first)
            if self.compress:
                with open(first, "rb") as src_f, gzip.open(f"{first}.gz.tmp", "wb") as dst:
                    shutil.copyfileobj(src_f, dst)
                os.replace(f"{first}.gz.tmp", f"{first}.gz")
                first.unlink()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = 0


# ------------------------------------------------------------------- reading ---


def files(path: Path) -> list[Path]:
    """The log's files, oldest first: container.log.N[.gz] … container.log."""
    rotated = []
    for p in path.parent.glob(path.name + ".*"):
        num = p.name[len(path.name) + 1 :].removesuffix(".gz")
        if num.isdigit():
            rotated.append((int(num), p))
    return [p for _, p in sorted(rotated, reverse=True)] + [path]


class LocalReader:
    def __init__(self, info: LogInfo) -> None:
        self.path = log_file(info)
        self.pos = (0, 0)

    def read(self) -> list[Entry]:
        out: list[Entry] = []
        for f in files(self.path):
            try:
                opener = gzip.open if f.suffix == ".gz" else open
                with opener(f, "rb") as fh:
                    data = fh.read()
                    if f == self.path:
                        self.pos = (os.fstat(fh.fileno()).st_ino, 0)
            except FileNotFoundError:
                continue
            msgs, used = split_entries(data)
            if f == self.path:
                self.pos = (self.pos[0], used)
            out += [to_entry(m) for m in msgs]
        return out

    def follow(self, running: Callable[[], bool], interval: float = 0.05) -> Iterator[Entry]:
        ino, offset = self.pos
        while True:
            alive = running()
            chunk = b""
            try:
                with open(self.path, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    if st.st_ino != ino or st.st_size < offset:
                        ino, offset = st.st_ino, 0
                    fh.seek(offset)
                    chunk = fh.read()
            except FileNotFoundError:
                pass
            msgs, used = split_entries(chunk)
            offset += used
            yield from (to_entry(m) for m in msgs)
            if not msgs:
                if not alive:
                    return
                time.sleep(interval)


DRIVER = Driver("local", Local, validate, LocalReader)
