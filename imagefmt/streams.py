"""The stream protocols that layer, tar and compression code pass bytes through.

Apart from imagefmt.digest, which a container start imports: typing's Protocol
is not worth its import there (see imagefmt.records)."""

from __future__ import annotations

from typing import Protocol


class Readable(Protocol):
    """Where streamed bytes come from: a BinaryIO, a pipe, a HashingReader."""

    def read(self, n: int = -1, /) -> bytes: ...


class Writable(Protocol):
    """Where streamed bytes go: a BinaryIO, a compressor, a HashingWriter."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    def flush(self) -> None: ...
