"""Content digests (``sha256:<hex>``), hashing while streaming, and chain IDs."""

from __future__ import annotations

import re
from collections.abc import Iterable

from imagefmt.errors import DigestInvalid
from imagefmt.records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import hashlib
    from typing import BinaryIO

    from imagefmt.streams import Writable


_HEX = {"sha256": 64, "sha512": 128}
_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
CHUNK = 1 << 20


def _hasher(algorithm: str) -> hashlib._Hash:
    """hashlib, imported on first use: it costs ~3 ms of a start-up that may not hash."""
    import hashlib

    return hashlib.new(algorithm)


class Digest(NamedTuple):
    """A content digest; ``str(Digest.parse(s)) == s`` for every valid ``s``.

    A NamedTuple (immutable, hashable, ordered) rather than a dataclass: the
    dataclasses module costs ~9 ms to import, a tenth of a container start."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``alg:hex``; raise DigestInvalid for anything else."""
        m = _RE.match(text or "")
        if not m:
            raise DigestInvalid(f"invalid digest {text!r}: expected sha256:<64 hex digits>")
        alg, hx = m.groups()
        want = _HEX.get(alg)
        if want is None:
            raise DigestInvalid(f"unsupported digest algorithm {alg!r} in {text!r}: use sha256")
        if len(hx) != want or not re.fullmatch(r"[0-9a-f]+", hx):
            raise DigestInvalid(f"invalid digest {text!r}: expected {want} lowercase hex digits")
        return cls(alg, hx)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        h = _hasher(algorithm)
        h.update(data)
        return cls(algorithm, h.hexdigest())

    @classmethod
    def of_stream(cls, src: BinaryIO, algorithm: str = "sha256") -> tuple[Digest, int]:
        """Hash a stream to its end; return (digest, size)."""
        h = _hasher(algorithm)
        n = 0
        while chunk := src.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
        return cls(algorithm, h.hexdigest()), n

    def new_hasher(self) -> hashlib._Hash:
        return _hasher(self.algorithm)

    @property
    def short(self) -> str:
        """The 12-hex-digit ID docker prints."""
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def chain_ids(diff_ids: Iterable[Digest]) -> list[Digest]:
    """ChainID(L0)=DiffID(L0); ChainID(L0..Ln)=sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))."""
    out: list[Digest] = []
    for d in diff_ids:
        out.append(d if not out else Digest.of(f"{out[-1]} {d}".encode()))
    return out


class HashingReader:
    """Wrap a reader, hashing and counting what passes through.

    ``verify(expected)`` raises DigestInvalid when the bytes read differ."""

    def __init__(self, src: BinaryIO, algorithm: str = "sha256") -> None:
        self._src = src
        self._h = _hasher(algorithm)
        self.algorithm = algorithm
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self._h.update(data)
        self.size += len(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        n = self._src.readinto(buf)  # type: ignore[attr-defined]
        if n:
            self._h.update(memoryview(buf)[:n])
            self.size += n
        return n or 0

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._h.hexdigest())

    def verify(self, expected: Digest, what: str = "content") -> None:
        got = self.digest()
        if got != expected:
            raise DigestInvalid(f"{what}: digest mismatch: expected {expected}, got {got}")

    def close(self) -> None:
        self._src.close()


class HashingWriter:
    """Wrap a writer, hashing and counting what passes through.

    ``size`` is the number of bytes written so far and ``digest()`` their
    digest; ``close()`` does not close the wrapped writer."""

    def __init__(self, dst: Writable, algorithm: str = "sha256") -> None:
        self._dst = dst
        self._h = _hasher(algorithm)
        self.algorithm = algorithm
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._dst.write(data)
        self._h.update(data)
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        self.size += n
        return n

    def flush(self) -> None:
        self._dst.flush()

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._h.hexdigest())

    def close(self) -> None:
        """Nothing to release: the wrapped writer stays open."""
