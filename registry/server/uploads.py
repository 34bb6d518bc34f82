"""Upload sessions: a blob pushed in chunks, kept in storage so it survives a
restart and can be continued by any process on the store.

A session is ``repositories/<name>/_uploads/<uuid>/`` (registry/server/storage/paths.py):
``data``, the bytes so far, written through the driver's writer, and
``state.json``::

    {"offset": 1048576, "sha256": "<hex of sha256(data[:offset])>",
     "sha256_state": "<base64 of the running hash>", "started_at": 1700000000.0}

``state.json`` is the commit point of every chunk: it is replaced only after the
chunk was written whole and its writer closed.  Bytes of ``data`` past
``offset`` (a chunk cut short by a disconnect or kill -9) are truncated away on
the next request, so a resumed upload continues from the last acknowledged byte.

The running sha256 travels with the session (``sha256_state``,
registry/server/storage/sha256state.py): the process that takes the next chunk,
a gunicorn worker, a restarted server or another host, resumes the hash and
never reads the upload back; the digest of ``data[:offset]`` is there too, so
finishing with an empty body hashes nothing.  A session without a saved state
(older ones, or no libcrypto to resume from) is re-hashed from ``data`` once.  A
session lock (the driver's lock on ``lock``) serialises concurrent requests on
one session, across processes.  Finishing commits the writer and moves
``data`` to its blob in one driver ``move``: no byte is read again (but for a
digest other than sha256, hashed from the committed bytes).  The last chunk,
sent with the closing PUT, is not acknowledged in ``state.json``: a PUT cut
short is retried whole.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import time
import uuid as uuidlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from imagefmt.digest import Digest
from imagefmt.errors import BlobUploadUnknown, DigestInvalid, SizeInvalid
from registry.protocol import RangeNotSatisfiable
from registry.server.storage import paths, sha256state
from registry.server.storage.driver import FileWriter, PathNotFound
from registry.server.storage.store import CHUNK, Storage, copy_hashing

_POOL = ThreadPoolExecutor(16, thread_name_prefix="upload")  # a session's independent storage calls
_LOCKING = ThreadPoolExecutor(32, thread_name_prefix="push-lock")  # waits out a GC's sweep: not in _POOL
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
    sha256_state: bytes | None = None  # sha256state.Sha256.state() of data[:offset]

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {"offset": self.offset, "sha256": self.sha256, "started_at": self.started_at}
        if self.sha256_state is not None:
            doc["sha256_state"] = base64.b64encode(self.sha256_state).decode()
        return json.dumps(doc).encode()


class Uploads:
    """The upload sessions of a :class:`~registry.server.storage.store.Storage`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.driver = storage.driver

    def start(self, name: str) -> UploadStatus:
        """Open a new empty session."""
        uuid = str(uuidlib.uuid4())
        hasher = _new_sha256()
        state = _State(0, hasher.hexdigest(), time.time(), _saved(hasher))
        try:  # the data comes with the first chunk (_session)
            self.driver.put_content(paths.upload_state(name, uuid), state.to_json())
        except BaseException:  # a full disk: no session half made
            self._discard(name, uuid)
            raise
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
        with self._session(name, uuid) as (w, state):
            hasher = self._append(name, uuid, w, state, src, start, length)
            w.close()  # the chunk is stored before state.json says so
            self._save(name, uuid, state, hasher)
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
        data = paths.upload_data(name, uuid)
        with _meanwhile(self.storage.push_lock()) as push_locked, self._session(name, uuid) as (w, state):
            if src is not None and (length is None or length > 0):
                state.sha256 = self._append(name, uuid, w, state, src, start, length).hexdigest()
            uncommitted: FileWriter | None = w
            if digest.algorithm != "sha256":  # read back below: committed bytes are readable on every driver
                w.commit()
                uncommitted = None
            got = self._digest_of(name, uuid, state, digest.algorithm)
            if got != digest:
                self._discard(name, uuid)
                raise DigestInvalid(f"blob digest mismatch: expected {digest}, got {got}", str(digest))
            push_locked.result()
            self.storage.store_blob(data, digest, uncommitted)
            self.storage.link_blob(name, digest, stored=True)
            size = state.offset
            discarding = _POOL.submit(self._discard, name, uuid)  # while the locks are let go
        discarding.result()
        return size

    def cancel(self, name: str, uuid: str) -> None:
        """Discard a session; BlobUploadUnknown if there is none."""
        self._read_state(name, uuid)
        self._discard(name, uuid)

    def sessions(self, name: str) -> list[UploadStatus]:
        """Every session of ``name`` (for GC of abandoned uploads)."""
        out = []
        try:
            found = self.driver.list(paths.uploads(name))
        except PathNotFound:
            return []
        for p in found:
            with contextlib.suppress(BlobUploadUnknown):
                out.append(self.status(name, p.rsplit("/", 1)[1]))
        return out

    # ---------------------------------------------------------- internals ---

    def _unknown(self, name: str, uuid: str, why: str = "") -> BlobUploadUnknown:
        return BlobUploadUnknown(f"blob upload {uuid} unknown to repository {name}{why}", {"uuid": uuid})

    def _read_state(self, name: str, uuid: str) -> _State:
        if not _UUID.match(uuid):
            raise self._unknown(name, uuid)
        try:
            doc: dict[str, Any] = json.loads(self.driver.get_content(paths.upload_state(name, uuid)))
        except PathNotFound:
            raise self._unknown(name, uuid) from None
        except ValueError as err:
            raise self._unknown(name, uuid, f": unreadable state ({err})") from err
        try:
            saved = doc.get("sha256_state")
            return _State(
                int(doc["offset"]),
                str(doc["sha256"]),
                float(doc["started_at"]),
                base64.b64decode(saved, validate=True) if isinstance(saved, str) else None,
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as err:
            raise self._unknown(name, uuid, f": unreadable state ({err})") from err

    @contextlib.contextmanager
    def _session(self, name: str, uuid: str) -> Iterator[tuple[FileWriter, _State]]:
        """The session locked, its state read under the lock, and a writer
        continuing its data from the last acknowledged byte (the two read at once:
        on S3 each is a round trip)."""
        if not _UUID.match(uuid):  # a bad id takes no lock; an unknown one finds no directory
            raise self._unknown(name, uuid)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.driver.mutex(paths.upload_lock(name, uuid)))
                opening = _POOL.submit(self.driver.writer, paths.upload_data(name, uuid), True)
                try:
                    state = self._read_state(name, uuid)
                except BaseException:
                    if opening.exception() is None:
                        opening.result().close()
                    raise
                try:
                    w = opening.result()
                except PathNotFound:
                    if state.offset:
                        raise
                    w = self.driver.writer(paths.upload_data(name, uuid))  # no chunk yet: data starts here
                stack.callback(w.close)
            except PathNotFound:  # no such session, or it went away (cancelled, finished, purged)
                raise self._unknown(name, uuid) from None
            size = w.size()
            if size > state.offset:  # a chunk cut short before its commit
                w.truncate(state.offset)
            elif size < state.offset:  # the state outlived its data (power loss): trust the data
                hasher = self._rehash(name, uuid, size, "sha256")
                state = _State(size, hasher.hexdigest(), state.started_at, _saved(hasher))
            yield w, state

    def _append(
        self,
        name: str,
        uuid: str,
        w: FileWriter,
        state: _State,
        src: IO[bytes],
        start: int | None,
        length: int | None,
    ) -> Any:
        """Write one chunk after ``state.offset``, hashing it; advance ``state``
        and return the hasher (the caller saves both once the chunk is stored)."""
        if start is not None and start != state.offset:
            raise RangeNotSatisfiable(
                f"blob upload {uuid}: chunk starts at {start}, upload has {state.offset} bytes",
                {"offset": state.offset},
            )
        hasher = self._hasher(name, uuid, state)
        try:
            n = copy_hashing(src, w, hasher, length)
            if length is not None and n != length:
                raise SizeInvalid(f"blob upload {uuid}: chunk of {n} bytes, Content-Length said {length}")
        except BaseException:
            w.truncate(state.offset)
            raise
        state.offset += n
        return hasher

    def _save(self, name: str, uuid: str, state: _State, hasher: Any) -> None:
        state.sha256 = hasher.hexdigest()
        state.sha256_state = _saved(hasher)
        self.driver.put_content(paths.upload_state(name, uuid), state.to_json())

    def _hasher(self, name: str, uuid: str, state: _State) -> Any:
        """The sha256 of ``data[:offset]``, resumed from the state, else re-hashed."""
        if state.sha256_state is not None and sha256state.AVAILABLE:
            with contextlib.suppress(ValueError):
                resumed = sha256state.Sha256.resume(state.sha256_state)
                if resumed.length == state.offset:
                    return resumed
        return self._rehash(name, uuid, state.offset, "sha256")

    def _rehash(self, name: str, uuid: str, size: int, algorithm: str) -> Any:
        """Hash ``data[:size]`` as stored (needs a driver that shows uncommitted bytes)."""
        h: Any = _new_sha256() if algorithm == "sha256" else hashlib.new(algorithm)
        with self.driver.reader(paths.upload_data(name, uuid)) as f:
            left = size
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
        return h

    def _digest_of(self, name: str, uuid: str, state: _State, algorithm: str) -> Digest:
        if algorithm == "sha256":
            return Digest("sha256", state.sha256)
        return Digest(algorithm, self._rehash(name, uuid, state.offset, algorithm).hexdigest())

    def _discard(self, name: str, uuid: str) -> None:
        with contextlib.suppress(PathNotFound):
            self.driver.delete(paths.upload(name, uuid))


@contextlib.contextmanager
def _meanwhile(lock: contextlib.AbstractContextManager[None]) -> Iterator[Future[None]]:
    """Take ``lock`` from the pool while the caller goes on (the push lock is taken
    while the session's lock and state are read); wait on the future before relying
    on it.  Released on the way out, once taken."""
    taking = _LOCKING.submit(lock.__enter__)
    try:
        yield taking
    finally:
        if taking.exception() is None:
            lock.__exit__(None, None, None)


def _new_sha256() -> Any:
    return sha256state.Sha256() if sha256state.AVAILABLE else hashlib.sha256()


def _saved(hasher: Any) -> bytes | None:
    return hasher.state() if isinstance(hasher, sha256state.Sha256) else None
