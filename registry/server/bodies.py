"""Request bodies read straight off the socket, in reads of up to 1 MiB.

gunicorn reads a chunked body one chunk at a time and at least one ``recv`` per
chunk, copying each byte through three buffers on the way.  skopeo and the other
Go clients send a pushed layer in 32 KiB chunks: 1,280 of them for a 40 MiB
layer, and every ``recv`` gives the GIL up, which the threads sending the parts
on to S3 then hold for up to ``sys.getswitchinterval()``.  The readers here
parse the framing out of large reads (one ``recv`` for ~30 chunks) and hand each
chunk's bytes on as memoryview slices joined once: one copy from the kernel to
the caller.  They refuse what gunicorn refuses, with gunicorn's exceptions (so
registry/server/worker.py turns them into the same 400s), and leave the bytes
after the body (a pipelined request) to the connection's unreader.

:func:`install` swaps them in for gunicorn's readers of a request not read yet.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.http.errors import (
    ChunkMissingTerminator,
    InvalidChunkExtension,
    InvalidChunkSize,
    InvalidHeader,
    LimitRequestHeaders,
    NoMoreData,
)

READ = 1 << 20  # the largest recv
_HEX = re.compile(rb"[0-9a-fA-F]+")
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_EXTENSIONS = re.compile(
    rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*"
)


def install(req: Any, unreader: Any) -> None:
    """Give ``req`` a fast reader of its body, if gunicorn's has not begun reading."""
    body = req.body
    reader = body.reader
    if body.buf.tell():
        return
    if isinstance(reader, ChunkedReader) and inspect.getgeneratorstate(reader.parser) == "GEN_CREATED":
        body.reader = FastChunked(req, unreader, reader.limit_chunk_size_line, reader.limit_trailer_section)
    elif type(reader) is LengthReader and reader.length > READ // 16:
        body.reader = FastLength(unreader, reader.length)


class FastLength:
    """The next ``length`` bytes of the connection."""

    def __init__(self, unreader: Any, length: int) -> None:
        self._unreader = unreader
        self._sock = unreader.sock
        self.length = length
        self._first = True

    def read(self, size: int) -> bytes:
        size = min(size, self.length)
        if size <= 0:
            return b""
        if self._first:  # what the head's read took of the body
            self._first = False
            early: bytes = self._unreader.take_buffered()
            if len(early) > size:
                self._unreader.unread(early[size:])
                early = early[:size]
            if early:
                self.length -= len(early)
                return early
        data: bytes = self._sock.recv(min(size, READ))
        self.length = self.length - len(data) if data else 0  # cut short: the end, as gunicorn has it
        return data


class FastChunked:
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 section 7.1)."""

    def __init__(self, req: Any, unreader: Any, line_limit: int, trailer_limit: int) -> None:
        self._req = req
        self._unreader = unreader
        self._sock = unreader.sock
        self._line_limit = line_limit
        self._trailer_limit = trailer_limit
        self._buf = b""  # received, not parsed yet from _pos on
        self._pos = 0
        self._left = 0  # bytes of the current chunk still to come
        self._state = "size"  # size, data, crlf, trailers, done
        self._started = False

    def _fill(self) -> None:
        if not self._started:  # what the head's read took of the body comes first
            self._started = True
            early = self._unreader.take_buffered()
            if early:
                self._buf = self._buf[self._pos :] + early
                self._pos = 0
                return
        data = self._sock.recv(READ)
        if not data:
            raise NoMoreData(self._buf[self._pos :])
        self._buf = self._buf[self._pos :] + data if self._pos < len(self._buf) else data
        self._pos = 0

    def read(self, size: int) -> bytes:
        out: list[Any] = []
        want = size
        while want > 0 and self._state != "done":
            if self._state == "data":
                if self._pos == len(self._buf):
                    self._fill()
                take = min(self._left, len(self._buf) - self._pos, want)
                out.append(memoryview(self._buf)[self._pos : self._pos + take])
                self._pos += take
                self._left -= take
                want -= take
                if not self._left:
                    self._state = "crlf"
            elif self._state == "crlf":
                if len(self._buf) - self._pos < 2:
                    try:
                        self._fill()
                    except NoMoreData:
                        raise ChunkMissingTerminator(self._buf[self._pos :]) from None
                    continue
                if self._buf[self._pos : self._pos + 2] != b"\r\n":
                    raise ChunkMissingTerminator(self._buf[self._pos : self._pos + 2])
                self._pos += 2
                self._state = "size"
            elif self._state == "size":
                self._size_line()
            else:
                self._trailers()
        return b"".join(out)

    def _size_line(self) -> None:
        end = self._buf.find(b"\r\n", self._pos, self._pos + self._line_limit + 2)
        if end < 0:
            if len(self._buf) - self._pos > self._line_limit:
                raise InvalidChunkSize(b"line over %d bytes with no terminator" % self._line_limit)
            self._fill()
            return
        line = self._buf[self._pos : end]
        size, semicolon, ext = line.partition(b";")
        if semicolon:
            if b"\r" in ext:
                raise InvalidChunkExtension("bare CR not allowed")
            size = size.rstrip(b" \t")
        if not _HEX.fullmatch(size):
            raise InvalidChunkSize(size)
        if semicolon and not _EXTENSIONS.fullmatch(b";" + ext):
            raise InvalidChunkExtension("invalid chunk extension")
        self._pos = end + 2
        self._left = int(size, 16)
        self._state = "data" if self._left else "trailers"

    def _trailers(self) -> None:
        rest = self._buf[self._pos :]
        if rest[:2] == b"\r\n":  # no trailers
            self._finish(self._pos + 2)
            return
        end = self._buf.find(b"\r\n\r\n", self._pos)
        if end < 0 or end - self._pos > self._trailer_limit:
            if len(rest) > self._trailer_limit:
                raise LimitRequestHeaders("limit request trailer section size")
            if rest.count(b"\n") != rest.count(b"\r\n"):
                raise InvalidHeader("bare LF as line terminator")
            try:
                self._fill()
            except NoMoreData:
                raise ChunkMissingTerminator(b"") from None
            return
        section = self._buf[self._pos : end]
        self._finish(end + 4)
        self._req.trailers = self._req.parse_headers(section, from_trailer=True)

    def _finish(self, pos: int) -> None:
        """The body is over: what follows it is the next request's."""
        self._state = "done"
        if pos < len(self._buf):
            self._unreader.unread(self._buf[pos:])
        self._buf, self._pos = b"", 0
