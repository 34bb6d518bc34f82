"""Streaming (de)compression of layer blobs: gzip through isal, zstd through
zstandard, bzip2 and xz through the standard library.

Readers and writers never hold a whole stream in memory, work on
non-seekable pipes, and never close the stream they wrap.
"""

from __future__ import annotations

import bz2
import io
import lzma
from typing import BinaryIO, cast

import zstandard
from isal import igzip

from imagefmt.errors import Unsupported
from imagefmt.streams import Readable, Writable

CHUNK = 1 << 20
COMPRESSIONS = ("none", "gzip", "zstd", "bzip2", "xz")

_GZIP_LEVELS = (0, 3)  # isal's range; 1 is its fastest useful level
_ZSTD_LEVELS = (1, 22)
_BZIP2_LEVELS = (1, 9)
_XZ_LEVELS = (0, 9)
_HEAD = 6  # the longest magic number (xz)


def detect(head: bytes) -> str:
    """Name the compression of a stream from its first bytes.

    Returns 'gzip', 'zstd', 'bzip2', 'xz' or 'none'; six bytes are enough.
    A zstd stream may start with a skippable frame (magic 0x184D2A5?)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18":
        return "zstd"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return "none"


class _Prefixed(io.RawIOBase):
    """``head`` then the rest of ``src``: a peek that works on pipes.

    Closing it does not close ``src``."""

    def __init__(self, head: bytes, src: Readable) -> None:
        self._head = memoryview(head)
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._src.read(len(buf))
        buf[: len(data)] = data
        return len(data)


class _NoClose(io.BufferedIOBase):
    """A pass-through writer whose ``close()`` flushes but keeps ``dst`` open."""

    def __init__(self, dst: Writable) -> None:
        self._dst = dst

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._dst.write(data)
        return len(data)

    def flush(self) -> None:
        if not self.closed:
            self._dst.flush()


def _read_head(src: Readable) -> bytes:
    head = b""
    while len(head) < _HEAD:
        more = src.read(_HEAD - len(head))
        if not more:
            break
        head += more
    return head


def _clamp(level: int, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], level))


def open_reader(src: Readable, compression: str | None = None) -> BinaryIO:
    """A streaming, decompressing reader over ``src``.

    ``compression`` None means detect it from the magic bytes, peeking through
    a buffer so that pipes work. Multi-member gzip and multi-frame zstd
    streams are read to their end. Closing the reader does not close ``src``.
    Raises Unsupported for an unknown compression name; a corrupt stream
    raises the codec's own error (OSError, EOFError, zstandard.ZstdError)
    when read."""
    if compression is None:
        head = _read_head(src)
        compression = detect(head)
        raw: io.RawIOBase = _Prefixed(head, src)
    else:
        raw = _Prefixed(b"", src)
    buffered = cast(BinaryIO, io.BufferedReader(raw, CHUNK))
    if compression == "none":
        return buffered
    if compression == "gzip":
        return cast(BinaryIO, igzip.IGzipFile(fileobj=buffered, mode="rb"))  # type: ignore[no-untyped-call]
    if compression == "zstd":
        dctx = zstandard.ZstdDecompressor()
        reader = dctx.stream_reader(buffered, read_size=CHUNK, read_across_frames=True, closefd=False)
        return cast(BinaryIO, reader)
    if compression == "bzip2":
        return cast(BinaryIO, bz2.BZ2File(buffered, "rb"))
    if compression == "xz":
        return cast(BinaryIO, lzma.LZMAFile(buffered, "rb"))
    raise Unsupported(f"open layer reader: unsupported compression {compression!r}")


def open_writer(dst: Writable, compression: str, level: int = 1) -> BinaryIO:
    """A streaming compressor writing into ``dst``.

    ``close()`` finishes the compressed stream but does not close ``dst``.
    ``level`` is clamped to the codec's range (isal gzip 0-3, zstd 1-22,
    bzip2 1-9, xz 0-9). Gzip output is deterministic: mtime 0, no file name.
    'none' returns a pass-through writer. Raises Unsupported for an unknown
    compression name."""
    if compression == "none":
        return cast(BinaryIO, _NoClose(dst))
    sink = cast(BinaryIO, dst)  # the codecs only call write() and flush()
    if compression == "gzip":
        gz = igzip.IGzipFile(  # type: ignore[no-untyped-call]
            filename="", mode="wb", compresslevel=_clamp(level, _GZIP_LEVELS), fileobj=sink, mtime=0
        )
        return cast(BinaryIO, gz)
    if compression == "zstd":
        cctx = zstandard.ZstdCompressor(level=_clamp(level, _ZSTD_LEVELS))
        return cast(BinaryIO, cctx.stream_writer(sink, closefd=False))
    if compression == "bzip2":
        return cast(BinaryIO, bz2.BZ2File(sink, "wb", compresslevel=_clamp(level, _BZIP2_LEVELS)))
    if compression == "xz":
        return cast(BinaryIO, lzma.LZMAFile(sink, "wb", preset=_clamp(level, _XZ_LEVELS)))
    raise Unsupported(f"open layer writer: unsupported compression {compression!r}")
