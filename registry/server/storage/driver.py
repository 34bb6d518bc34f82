"""The storage driver seam: the small key/value interface that the registry's
storage, upload sessions and garbage collector are written over, after
distribution's ``registry/storage/driver/storagedriver.go``.

A driver keeps byte strings under paths like ``/blobs/sha256/ab/ab12…``:
components of ``[A-Za-z0-9_][A-Za-z0-9._-]*`` joined by ``/`` (:func:`check_path`;
no ``.`` or ``..``, nothing hidden).  Directories are implied by the paths below
them, as in an object store.  Every method raises :class:`PathNotFound` for a
missing path, :class:`InvalidPath` for a malformed one, and nothing else of its
own; it is safe to call from several threads and, for the filesystem driver,
from several processes on one store.

Writing: ``put_content`` replaces a small object atomically (a reader sees the
old bytes or the new, never a mix).  A big one goes through ``writer``: bytes
written, then ``commit`` (complete and durable) or ``cancel``; ``close`` without
either leaves what was written for ``writer(path, append=True)`` to continue,
in this process or another one (the S3 driver keeps a multipart upload open and
resumes it there).  What a reader sees at ``path`` before the commit is up to
the driver: the filesystem and in-memory drivers show the bytes written so far.

Optional fast paths: a ``reader`` may return a real file (the filesystem
driver does), whose ``fileno`` lets gunicorn answer a blob GET with sendfile;
``url_for`` may hand out a URL that serves the object directly (the S3 driver:
a presigned GET to redirect to), or raise :class:`UnsupportedMethod`.

``lock`` is the one primitive beyond distribution's interface: a reader/writer
lock named by a path, held across the processes that share the store.  The
filesystem driver flocks a file at the path; the in-memory driver, whose data
lives in one process, locks in that process.  A driver for a shared object
store needs a lock service of its own (or leases made with conditional PUTs):
pushes hold ``/gc.lock`` shared while the garbage collector sweeps under it
exclusively, and an upload session is locked while a chunk is written.

To add a driver: one module implementing :class:`StorageDriver`, and one line in
``drivers.DRIVERS``; tests/test_storage_drivers.py then runs the contract on it.
"""

from __future__ import annotations

import builtins
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from imagefmt.errors import Invalid, NotFound, Unsupported

_PATH = re.compile(r"^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$")


class PathNotFound(NotFound):
    """Nothing is stored at the path (a file, or a directory for list, walk and delete)."""


class InvalidPath(Invalid):
    """A path that is not ``/component/…`` as :func:`check_path` requires."""


class InvalidOffset(Invalid):
    """A negative read offset."""


class UnsupportedMethod(Unsupported):
    """The driver does not do this (``url_for`` on a driver that has no URLs)."""


def check_path(path: str, root_ok: bool = False) -> str:
    """Return ``path`` if it is a valid driver path (``/`` itself only with ``root_ok``)."""
    if (root_ok and path == "/") or _PATH.fullmatch(path):
        return path
    raise InvalidPath(f"invalid storage path {path!r}")


def not_found(path: str) -> PathNotFound:
    return PathNotFound(f"storage path {path} not found", {"path": path})


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What ``stat`` and ``walk`` tell of a path."""

    path: str
    size: int  # bytes of a file; 0 for a directory
    mtime: float  # seconds since the epoch (a directory's: the driver's notion)
    is_dir: bool


class FileWriter(Protocol):
    """Content being written to one path (see the module docstring)."""

    def write(self, data: bytes) -> int:
        """Append ``data``; return its length."""
        ...

    def size(self) -> int:
        """The bytes written so far, by this writer and by the ones it continues."""
        ...

    def truncate(self, size: int) -> None:
        """Drop what was written past ``size``, a size this path had when a writer
        of it was last closed (a resume point; drivers that keep bytes in fixed
        parts need no more); later writes follow it."""
        ...

    def commit(self) -> None:
        """Make the content complete and durable at the path; the writer is done."""
        ...

    def cancel(self) -> None:
        """Discard the content, committed parts and all; the writer is done."""
        ...

    def close(self) -> None:
        """Release the writer, keeping its bytes for ``writer(path, append=True)``."""
        ...


class StorageDriver(Protocol):
    """Byte strings by path; see the module docstring for the shared contract."""

    name: str

    def get_content(self, path: str) -> bytes:
        """The whole content of a file (meant for small ones)."""
        ...

    def put_content(self, path: str, content: bytes) -> None:
        """Store ``content`` at ``path``, replacing it atomically."""
        ...

    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        """A stream of the file from byte ``offset`` (empty at or past its end;
        InvalidOffset when negative).  The caller closes it."""
        ...

    def writer(self, path: str, append: bool = False) -> FileWriter:
        """A writer of ``path``: new content, or with ``append`` the continuation of
        the uncommitted content a closed writer left (PathNotFound if none)."""
        ...

    def exists(self, path: str) -> bool:
        """Whether a file is stored at ``path`` (never a directory): the one
        cheap question a push asks of links and blobs (one HEAD on S3)."""
        ...

    def stat(self, path: str) -> FileInfo:
        """Size, modification time and kind of a file or a directory (``/`` too)."""
        ...

    def list(self, path: str) -> builtins.list[str]:
        """The full paths of the direct children of a directory (``/`` too), sorted."""
        ...

    def move(self, source: str, dest: str) -> None:
        """Move a file to ``dest``, replacing what is there, atomically where the
        medium allows (a rename on a filesystem, a server-side copy on S3)."""
        ...

    def delete(self, path: str) -> None:
        """Remove a file, or a directory and everything below it."""
        ...

    def delete_many(self, paths: builtins.list[str]) -> None:
        """Remove files, missing ones being no error (the garbage collector's sweep;
        the s3 driver deletes 1,000 a request)."""
        ...

    def touch(self, path: str) -> None:
        """Set a file's modification time to now (GC spares recently used blobs)."""
        ...

    def url_for(self, path: str, method: str = "GET", expires: float = 1200.0) -> str:
        """A URL serving ``path`` directly for ``expires`` seconds; UnsupportedMethod
        when the driver has none."""
        ...

    def walk(self, path: str) -> Iterator[FileInfo]:
        """Every file below a directory (``/`` too), at any depth, in lexical order."""
        ...

    def lock(self, path: str, exclusive: bool) -> contextlib.AbstractContextManager[None]:
        """Hold the lock named ``path``, shared or exclusive, across every process
        on the store.  The directory of ``path`` must exist (PathNotFound)."""
        ...

    def mutex(self, path: str) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock that nobody takes shared (an upload session's), which
        a driver may make cheaper than ``lock`` (the s3 driver: no listing).  The
        directory of ``path`` may be missing (then PathNotFound, or the lock taken
        and nothing of it left there once released)."""
        ...
