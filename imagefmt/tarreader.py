"""Streaming reads of tar archives: ustar, GNU and PAX members, each with a
reader bounded to its content. The public entry point is ``tario.iter_tar``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO, cast

from imagefmt.errors import Invalid
from imagefmt.streams import Readable
from imagefmt.tarheader import (
    BLOCK,
    MAX_META,
    META_FLAGS,
    ZERO_BLOCK,
    TarEntry,
    check_block,
    compressed_hint,
    decode_header,
    decode_text,
    parse_number,
    parse_pax,
)

CHUNK = 1 << 20


class _Source:
    """Buffered reads from the tar stream, counting the offset for messages."""

    __slots__ = ("_src", "_buf", "_pos", "offset")

    def __init__(self, src: Readable) -> None:
        self._src = src
        self._buf = b""
        self._pos = 0
        self.offset = 0

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, fewer only at the end of the stream."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos >= n:
            self._pos = pos + n
            self.offset += n
            return buf[pos : pos + n]
        have = len(buf) - pos
        parts = [buf[pos:]] if have else []  # join() of a single bytes copies nothing
        self._buf, self._pos = b"", 0
        while have < n:
            chunk = self._src.read(max(CHUNK, n - have))
            if not chunk:
                break
            take = min(len(chunk), n - have)
            parts.append(chunk[:take] if take < len(chunk) else chunk)
            have += take
            if take < len(chunk):
                self._buf, self._pos = chunk, take
        self.offset += have
        return b"".join(parts)

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` (fewer bytes only at the end of the stream). Past what
        is buffered, large reads go straight from the source into ``view``."""
        n = len(view)
        buf, pos = self._buf, self._pos
        have = min(len(buf) - pos, n)
        view[:have] = buf[pos : pos + have]
        self._pos = pos + have
        readinto = getattr(self._src, "readinto", None)
        while have < n:
            if readinto is not None and n - have >= BLOCK * 8:
                got = readinto(view[have:]) or 0
            else:
                chunk = self.read(n - have)
                got = len(chunk)
                view[have : have + got] = chunk
                self.offset -= got  # read() counted it already
            if not got:
                break
            have += got
        self.offset += have
        return have

    def skip(self, n: int) -> int:
        """Discard up to ``n`` bytes; return how many were there."""
        done = 0
        while done < n:
            got = len(self.read(min(CHUNK, n - done)))
            if not got:
                break
            done += got
        return done


class _EntryReader(io.BufferedIOBase):
    """The content of one member: ``read`` stops at its end."""

    def __init__(self, source: _Source, size: int, name: str) -> None:
        self._source = source
        self.remaining = size
        self._name = name

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed tar member")
        if n is None or n < 0 or n > self.remaining:
            n = self.remaining
        if not n:
            return b""
        data = self._source.read(n)
        self.remaining -= len(data)
        if len(data) < n:
            raise _truncated(f"content of {self._name!r} ends {n - len(data)} bytes early", self._source)
        return data

    def read1(self, n: int = -1) -> bytes:
        return self.read(min(n, CHUNK) if n >= 0 else CHUNK)

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed tar member")
        view = memoryview(buf).cast("B")[: self.remaining]
        got = self._source.readinto(view) if len(view) else 0
        self.remaining -= got
        if got < len(view):
            raise _truncated(f"content of {self._name!r} ends {len(view) - got} bytes early", self._source)
        return got


def _truncated(what: str, source: _Source) -> Invalid:
    return Invalid(f"layer tar truncated: {what} (at byte {source.offset})")


def _read_meta(source: _Source, size: int, what: str) -> bytes:
    if size > MAX_META:
        raise Invalid(f"layer tar corrupt: {what} header of {size} bytes (limit {MAX_META})")
    data = source.read(size)
    if len(data) < size or source.skip(-size % BLOCK) < -size % BLOCK:
        raise _truncated(f"{what} header ends early", source)
    return data


def iter_tar(src: Readable) -> Iterator[tuple[TarEntry, BinaryIO]]:
    """Stream the members of a tar archive, each with a reader of its content.

    The reader is only valid until the next member is requested; content not
    read is skipped. Stops at the end-of-archive blocks (or at a clean end of
    stream between members, as Go's reader does) without reading further.
    Raises Invalid for a bad header checksum, a malformed number or PAX
    record, or a stream truncated inside a member ("layer tar truncated: …");
    Unsupported for sparse and other exotic member types."""
    source = _Source(src)
    global_records: dict[str, bytes] = {}
    while True:
        header = _next_header(source, global_records)
        if header is None:
            return
        entry, data_size = header
        reader = _EntryReader(source, data_size, entry.name)
        yield entry, cast(BinaryIO, reader)
        left = reader.remaining + (-data_size % BLOCK)
        reader.close()
        if source.skip(left) < left:
            raise _truncated(f"content of {entry.name!r} ends early", source)


def _next_header(source: _Source, global_records: dict[str, bytes]) -> tuple[TarEntry, int] | None:
    """Read meta headers (PAX, GNU long names) up to the next real member."""
    local: dict[str, bytes] = {}
    long_name = long_link = None
    while True:
        block = source.read(BLOCK)
        if not block and not local and long_name is None and long_link is None:
            return None
        if len(block) < BLOCK:
            raise _truncated(f"header is {len(block)} of {BLOCK} bytes{compressed_hint(block)}", source)
        if block == ZERO_BLOCK:
            return None
        at = source.offset - BLOCK
        check_block(block, at)
        flag = block[156:157]
        if flag not in META_FLAGS:
            entry = decode_header(block, _merge(global_records, local), long_name, long_link, at)
            return entry, entry.size
        data = _read_meta(source, parse_number(block[124:136], "size", at), flag.decode())
        if flag == b"x":
            local.update(parse_pax(data, at))
        elif flag == b"g":
            for key, value in parse_pax(data, at).items():
                if value:
                    global_records[key] = value
                else:
                    global_records.pop(key, None)
        elif flag == b"L":
            long_name = decode_text(data.partition(b"\0")[0])
        else:
            long_link = decode_text(data.partition(b"\0")[0])


def _merge(global_records: dict[str, bytes], local: dict[str, bytes]) -> dict[str, bytes]:
    """Local PAX records over global ones; an empty local value deletes (POSIX)."""
    if not local:
        return global_records
    merged = dict(global_records)
    for key, value in local.items():
        if value:
            merged[key] = value
        else:
            merged.pop(key, None)
    return merged
