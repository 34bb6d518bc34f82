"""registry/server/bodies.py against gunicorn's own readers: the same bytes, the
same trailers, the same refusals and the same bytes left for the next request,
over real sockets, for bodies framed every which way (hypothesis, derandomized)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.errors import NoMoreData, ParseException
from gunicorn.http.unreader import SocketUnreader
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.server.bodies import READ, FastChunked, FastLength

NEXT = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"  # a pipelined request after the body


class _Req:
    """What the readers use of gunicorn's Request."""

    limit_request_field_size = 8190
    max_buffer_headers = 8190 * 32

    def __init__(self) -> None:
        self.trailers: list[tuple[str, str]] | None = None

    def parse_headers(self, data: bytes, from_trailer: bool = False) -> list[tuple[str, str]]:
        out = []
        for line in data.split(b"\r\n"):
            name, _, value = line.partition(b":")
            out.append((name.decode().strip().upper(), value.decode().strip()))
        return out


def _read(wire: bytes, early: int, make: Callable[[_Req, SocketUnreader], Any]) -> tuple[Any, ...]:
    """Send ``wire`` over a socket pair (the first ``early`` bytes already buffered, as
    the worker's head read leaves them) and read the body to its end: (body, trailers,
    what the connection still holds) or (exception class name,)."""
    a, b = socket.socketpair()
    a.settimeout(5)

    def send() -> None:
        b.sendall(wire[early:])
        b.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        unreader = SocketUnreader(a)
        if early:
            unreader.unread(wire[:early])
        req = _Req()
        body = Body(make(req, unreader))
        got = []
        try:
            while data := body.read(65536):
                got.append(data)
        except (ParseException, NoMoreData) as err:
            return (type(err).__name__,)
        rest = unreader.read(None)
        while more := unreader.read(None):
            rest += more
        return b"".join(got), req.trailers, rest
    finally:
        sender.join()
        a.close()
        b.close()


def _gunicorn_chunked(req: _Req, unreader: SocketUnreader) -> Any:
    return ChunkedReader(req, unreader)


def _fast_chunked(req: _Req, unreader: SocketUnreader) -> Any:
    return FastChunked(req, unreader, req.limit_request_field_size, req.max_buffer_headers)


def _frame(data: bytes, sizes: list[int], ext: bytes, trailers: bytes) -> bytes:
    out, i, k = [], 0, 0
    while i < len(data):
        n = max(1, sizes[k % len(sizes)])
        piece = data[i : i + n]
        out.append(b"%x%s\r\n%s\r\n" % (len(piece), ext if k % 2 else b"", piece))
        i, k = i + n, k + 1
    return b"".join(out) + b"0\r\n" + trailers + b"\r\n"


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    data=st.binary(max_size=3000),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=6),
    ext=st.sampled_from([b"", b";a=b", b' ; name="q\\"x"', b";bad ext", b";a\rb"]),
    trailers=st.sampled_from([b"", b"X-Sum: 1\r\n", b"X-A: 1\r\nX-B: 2\r\n", b"bare\nLF\r\n"]),
    early=st.integers(0, 200),
    cut=st.sampled_from([0, 0, 0, 1, 3, 7]),
    pipelined=st.booleans(),
)
def test_chunked_bodies_read_as_gunicorn_reads_them(
    data: bytes, sizes: list[int], ext: bytes, trailers: bytes, early: int, cut: int, pipelined: bool
) -> None:
    wire = _frame(data, sizes, ext, trailers) + (NEXT if pipelined else b"")
    if cut:
        wire = wire[:-cut] if not pipelined else wire[: -len(NEXT) - cut]
    early = min(early, len(wire))
    assert _read(wire, early, _fast_chunked) == _read(wire, early, _gunicorn_chunked)


@pytest.mark.parametrize(
    "wire",
    [
        b"zz\r\nab\r\n0\r\n\r\n",  # not hex
        b"\r\nab\r\n0\r\n\r\n",  # no size
        b"2\r\nabXY0\r\n\r\n",  # data longer than its size
        b"2 \r\nab\r\n0\r\n\r\n",  # whitespace without an extension
        b"2;\r\nab\r\n0\r\n\r\n",  # an empty extension
        b"1" * 9000 + b"\r\n",  # a size line with no end
        b"2\r\nab\r\n0\r\n" + b"X-T: 1\r\n" * 40000 + b"\r\n",  # trailers over the limit
        b"5\r\nab",  # cut in the data
        b"",  # nothing at all
    ],
    ids=[
        "not-hex",
        "no-size",
        "long-data",
        "bws",
        "empty-ext",
        "endless-line",
        "huge-trailers",
        "cut",
        "empty",
    ],
)
def test_malformed_chunked_bodies_are_refused_as_gunicorn_refuses_them(wire: bytes) -> None:
    got = _read(wire, 0, _fast_chunked)
    assert len(got) == 1, got  # an exception's name, not a body
    assert got == _read(wire, 0, _gunicorn_chunked)


def test_chunked_body_in_large_chunks_across_reads() -> None:
    """Chunks bigger than one read, and a 32 KiB framing as Go clients send it."""
    data = bytes(range(256)) * (READ * 3 // 256 + 7)
    for size in (READ + 12345, 32768):
        wire = _frame(data, [size], b"", b"") + NEXT
        assert _read(wire, 100, _fast_chunked) == (data, None, NEXT)


@pytest.mark.parametrize("early", [0, 10, 5000])
def test_length_bodies_read_as_gunicorn_reads_them(early: int) -> None:
    data = bytes(range(256)) * 4096
    wire = data + NEXT

    def fast(req: _Req, unreader: SocketUnreader) -> Any:
        return FastLength(unreader, len(data))

    def slow(req: _Req, unreader: SocketUnreader) -> Any:
        return LengthReader(unreader, len(data))

    assert _read(wire, early, fast) == _read(wire, early, slow) == (data, None, NEXT)
    short = (data[:-5], None, b"")  # cut short: what came (the upload's size check refuses it)
    assert _read(data[:-5], early, fast) == _read(data[:-5], early, slow) == short
