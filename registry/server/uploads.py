"""Upload sessions: a blob pushed in chunks, kept on disk so it survives a restart.

A session is ``repositories/<name>/_uploads/<uuid>/`` (see registry/storage.py)
holding ``data``, the bytes so far, and ``state.json``::

    {"offset": 1048576, "sha256": "<hex of sha256(data[:offset])>", "started_at": 1700000000.0}

``state.json`` is the commit point of every chunk: it is replaced atomically
only after the chunk was written whole.  Bytes of ``data`` past ``offset`` (a
chunk cut short by a disconnect or kill -9) are truncated away on the next
request, so a resumed upload continues from the last acknowledged byte.

hashlib cannot persist a hash state, so each worker process keeps the running
hasher of the sessions it served in memory; a request for a session it does
not hold (after a restart, or on another worker) re-hashes ``data[:offset]``
from disk once.  Finishing with an empty body needs no re-hash at all: the
digest of ``data[:offset]`` is in ``state.json``.  A session lock (flock on
``data``) serialises concurrent requests on one session, across workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from imagefmt.digest import Digest
from imagefmt.errors import BlobUploadUnknown, DigestInvalid, SizeInvalid
from registry.protocol import RangeNotSatisfiable
from registry.server.storage import CHUNK, FilesystemStorage, copy_hashing, write_atomic

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True, slots=True)
class UploadStatus:
    name: str
    uuid: str
    offset: int  # bytes received and acknowledged
    started_at: float


@dataclass
class _State:
    offset: int
    sha256: str
    started_at: float

    def to_json(self) -> bytes:
        return json.dumps(
            {"offset": self.offset, "sha256": self.sha256, "started_at": self.started_at}
        ).encode()


class Uploads:
    """The upload sessions of a :class:`FilesystemStorage`."""

    def __init__(self, storage: FilesystemStorage) -> None:
        self.storage = storage
        self.layout = storage.layout
        self._hashers: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, name: str) -> UploadStatus:
        """Open a new empty session."""
        uuid = str(uuidlib.uuid4())
        path = self.layout.upload(name, uuid)
        path.mkdir(parents=True)
        (path / "data").touch()
        state = _State(0, hashlib.sha256().hexdigest(), time.time())
        write_atomic(path / "state.json", state.to_json(), self.layout.tmp)
        return UploadStatus(name, uuid, 0, state.started_at)

    def status(self, name: str, uuid: str) -> UploadStatus:
        """The acknowledged size of a session; BlobUploadUnknown."""
        state = self._read_state(name, uuid)
        return UploadStatus(name, uuid, state.offset, state.started_at)

    def append(
        self, name: str, uuid: str, src: IO[bytes], start: int | None = None, length: int | None = None
    ) -> UploadStatus:
        """Append a chunk read from ``src``.

        ``start`` (from Content-Range) must equal the current size, else
        RangeNotSatisfiable; ``length`` (from Content-Length) must be what arrives,
        else SizeInvalid and the chunk is dropped whole.  BlobUploadUnknown."""
        with self._session(name, uuid) as (f, state):
            self._append(name, uuid, f, state, src, start, length)
            return UploadStatus(name, uuid, state.offset, state.started_at)

    def finish(
        self,
        name: str,
        uuid: str,
        digest: Digest,
        src: IO[bytes] | None = None,
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """Append an optional last chunk, verify the whole blob against ``digest``,
        move it into the blob store, link it into ``name`` and close the session.

        Return the blob's size.  On a digest mismatch the session is discarded and
        DigestInvalid raised: nothing unverified is ever stored."""
        with self._session(name, uuid) as (f, state):
            if src is not None and (length is None or length > 0):
                self._append(name, uuid, f, state, src, start, length)
            got = self._digest_of(f, state, digest.algorithm)
            if got != digest:
                self._forget(uuid)
                shutil.rmtree(self.layout.upload(name, uuid), ignore_errors=True)
                raise DigestInvalid(f"blob digest mismatch: expected {digest}, got {got}", str(digest))
            with self.storage.push_lock():
                self.storage.commit_file(self.layout.upload(name, uuid) / "data", digest)
                self.storage.link_blob(name, digest)
            size = state.offset
        self.cancel(name, uuid)
        return size

    def cancel(self, name: str, uuid: str) -> None:
        """Discard a session; BlobUploadUnknown if there is none."""
        path = self._path(name, uuid)
        self._forget(uuid)
        shutil.rmtree(path, ignore_errors=True)

    def sessions(self, name: str) -> list[UploadStatus]:
        """Every session of ``name`` (for GC of abandoned uploads)."""
        out = []
        for p in sorted(self.layout.uploads(name).glob("*")):
            with contextlib.suppress(BlobUploadUnknown):
                out.append(self.status(name, p.name))
        return out

    # ---------------------------------------------------------- internals ---

    def _path(self, name: str, uuid: str) -> Path:
        path = self.layout.upload(name, uuid)
        if not _UUID.match(uuid) or not (path / "state.json").exists():
            raise BlobUploadUnknown(f"blob upload {uuid} unknown to repository {name}", {"uuid": uuid})
        return path

    def _read_state(self, name: str, uuid: str) -> _State:
        path = self._path(name, uuid)
        try:
            doc: dict[str, Any] = json.loads((path / "state.json").read_bytes())
            return _State(int(doc["offset"]), str(doc["sha256"]), float(doc["started_at"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise BlobUploadUnknown(f"blob upload {uuid}: unreadable state ({err})", {"uuid": uuid}) from err

    @contextlib.contextmanager
    def _session(self, name: str, uuid: str) -> Iterator[tuple[BinaryIO, _State]]:
        path = self._path(name, uuid)
        try:
            f = open(path / "data", "r+b")
        except FileNotFoundError:
            raise BlobUploadUnknown(f"blob upload {uuid} unknown", {"uuid": uuid}) from None
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            state = self._read_state(name, uuid)  # re-read under the lock
            size = os.fstat(f.fileno()).st_size
            if size > state.offset:  # a chunk cut short before its commit
                f.truncate(state.offset)
            elif size < state.offset:  # the state outlived its data (power loss): trust the data
                state = _State(size, self._rehash(f, size, "sha256").hexdigest(), state.started_at)
                self._forget(uuid)
            yield f, state

    def _append(
        self,
        name: str,
        uuid: str,
        f: BinaryIO,
        state: _State,
        src: IO[bytes],
        start: int | None,
        length: int | None,
    ) -> None:
        if start is not None and start != state.offset:
            raise RangeNotSatisfiable(
                f"blob upload {uuid}: chunk starts at {start}, upload has {state.offset} bytes",
                {"offset": state.offset},
            )
        hasher = self._hasher(uuid, f, state.offset)
        f.seek(state.offset)
        try:
            n = copy_hashing(src, f, hasher, length)
            if length is not None and n != length:
                raise SizeInvalid(f"blob upload {uuid}: chunk of {n} bytes, Content-Length said {length}")
            f.flush()
        except BaseException:
            self._forget(uuid)
            f.truncate(state.offset)
            raise
        state.offset += n
        state.sha256 = hasher.copy().hexdigest()
        write_atomic(self.layout.upload(name, uuid) / "state.json", state.to_json(), self.layout.tmp)
        with self._lock:
            self._hashers[uuid] = (state.offset, hasher)
            self._hashers.move_to_end(uuid)
            while len(self._hashers) > 256:
                self._hashers.popitem(last=False)

    def _hasher(self, uuid: str, f: BinaryIO, offset: int) -> hashlib._Hash:
        with self._lock:
            held = self._hashers.pop(uuid, None)
        if held is not None and held[0] == offset:
            return held[1]
        return self._rehash(f, offset, "sha256")

    @staticmethod
    def _rehash(f: BinaryIO, size: int, algorithm: str) -> hashlib._Hash:
        h = hashlib.new(algorithm)
        f.seek(0)
        left = size
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        return h

    def _digest_of(self, f: BinaryIO, state: _State, algorithm: str) -> Digest:
        if algorithm == "sha256":
            return Digest("sha256", state.sha256)
        return Digest(algorithm, self._rehash(f, state.offset, algorithm).hexdigest())

    def _forget(self, uuid: str) -> None:
        with self._lock:
            self._hashers.pop(uuid, None)
