"""The MessagePack subset the fluentd forward protocol needs, encoded as Go's msgp
(tinylib/msgp, what docker's fluent-logger-golang uses) encodes it: strings as fixstr,
str8, str16 or str32 by length; integers in the smallest *signed* form (a positive
time is int32, 0xd2, not uint32); maps and arrays with fix, 16- or 32-bit headers;
EventTime as the fixext8 of type 0.  And a decoder, for readers and tests.
"""

from __future__ import annotations

import struct
from typing import Any


class EventTime:
    """Fluentd's EventTime (ext type 0): seconds and nanoseconds."""

    __slots__ = ("seconds", "nanoseconds")

    def __init__(self, seconds: int, nanoseconds: int) -> None:
        self.seconds, self.nanoseconds = seconds, nanoseconds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventTime) and (self.seconds, self.nanoseconds) == (
            other.seconds,
            other.nanoseconds,
        )

    def __hash__(self) -> int:
        return hash((self.seconds, self.nanoseconds))


def encode(value: Any) -> bytes:
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _encode(v: Any, out: bytearray) -> None:
    if v is None:
        out.append(0xC0)
    elif v is True or v is False:
        out.append(0xC3 if v else 0xC2)
    elif isinstance(v, int):
        _int(v, out)
    elif isinstance(v, str):
        _str(v.encode(), out)
    elif isinstance(v, (bytes, bytearray)):
        _header(len(v), out, None, 0xC4, 0xC5, 0xC6)
        out += v
    elif isinstance(v, EventTime):
        out += b"\xd7\x00" + struct.pack(">II", v.seconds, v.nanoseconds)
    elif isinstance(v, dict):
        _header(len(v), out, 0x80, None, 0xDE, 0xDF, fix_max=15)
        for key, item in v.items():
            _encode(key, out)
            _encode(item, out)
    elif isinstance(v, (list, tuple)):
        _header(len(v), out, 0x90, None, 0xDC, 0xDD, fix_max=15)
        for item in v:
            _encode(item, out)
    else:
        raise TypeError(f"msgpack: cannot encode {type(v).__name__}")


def _str(raw: bytes, out: bytearray) -> None:
    _header(len(raw), out, 0xA0, 0xD9, 0xDA, 0xDB, fix_max=31)
    out += raw


def _header(
    n: int, out: bytearray, fix: int | None, b8: int | None, b16: int, b32: int, fix_max: int = -1
) -> None:
    if fix is not None and n <= fix_max:
        out.append(fix | n)
    elif b8 is not None and n < 1 << 8:
        out += bytes((b8, n))
    elif n < 1 << 16:
        out += bytes((b16,)) + struct.pack(">H", n)
    else:
        out += bytes((b32,)) + struct.pack(">I", n)


def _int(i: int, out: bytearray) -> None:
    if 0 <= i <= 0x7F or -32 <= i < 0:
        out += struct.pack(">b", i) if i < 0 else bytes((i,))
    elif -(1 << 7) <= i < 1 << 7:
        out += b"\xd0" + struct.pack(">b", i)
    elif -(1 << 15) <= i < 1 << 15:
        out += b"\xd1" + struct.pack(">h", i)
    elif -(1 << 31) <= i < 1 << 31:
        out += b"\xd2" + struct.pack(">i", i)
    else:
        out += b"\xd3" + struct.pack(">q", i)


def decode(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """One value from ``data`` at ``pos``; the value and where it ended. Raises
    ValueError on bytes that are not (this subset of) MessagePack, or cut short."""
    if pos >= len(data):
        raise ValueError("msgpack: truncated")
    b = data[pos]
    pos += 1
    if b <= 0x7F:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0x80 <= b <= 0x8F:
        return _map(data, pos, b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return _array(data, pos, b & 0x0F)
    if 0xA0 <= b <= 0xBF:
        return _raw(data, pos, b & 0x1F, True)
    simple = {0xC0: None, 0xC2: False, 0xC3: True}
    if b in simple:
        return simple[b], pos
    sized = {
        0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
        0xCA: ">f", 0xCB: ">d",
    }  # fmt: skip
    if b in sized:
        fmt = sized[b]
        n = struct.calcsize(fmt)
        _need(data, pos, n)
        return struct.unpack_from(fmt, data, pos)[0], pos + n
    lengths = {0xD9: (">B", True), 0xDA: (">H", True), 0xDB: (">I", True),
               0xC4: (">B", False), 0xC5: (">H", False), 0xC6: (">I", False)}  # fmt: skip
    if b in lengths:
        fmt, text = lengths[b]
        n = struct.calcsize(fmt)
        _need(data, pos, n)
        return _raw(data, pos + n, struct.unpack_from(fmt, data, pos)[0], text)
    if b in (0xDC, 0xDD, 0xDE, 0xDF):
        fmt = ">H" if b in (0xDC, 0xDE) else ">I"
        n = struct.calcsize(fmt)
        _need(data, pos, n)
        count = struct.unpack_from(fmt, data, pos)[0]
        return (_array if b in (0xDC, 0xDD) else _map)(data, pos + n, count)
    if b == 0xD7:
        _need(data, pos, 9)
        if data[pos] == 0:
            sec, nsec = struct.unpack_from(">II", data, pos + 1)
            return EventTime(sec, nsec), pos + 9
    raise ValueError(f"msgpack: unsupported type byte 0x{b:02x}")


def _need(data: bytes, pos: int, n: int) -> None:
    if pos + n > len(data):
        raise ValueError("msgpack: truncated")


def _raw(data: bytes, pos: int, n: int, text: bool) -> tuple[Any, int]:
    _need(data, pos, n)
    raw = data[pos : pos + n]
    return (raw.decode("utf-8", errors="surrogateescape") if text else raw), pos + n


def _map(data: bytes, pos: int, n: int) -> tuple[dict[Any, Any], int]:
    out = {}
    for _ in range(n):
        key, pos = decode(data, pos)
        out[key], pos = decode(data, pos)
    return out, pos


def _array(data: bytes, pos: int, n: int) -> tuple[list[Any], int]:
    out = []
    for _ in range(n):
        item, pos = decode(data, pos)
        out.append(item)
    return out, pos
