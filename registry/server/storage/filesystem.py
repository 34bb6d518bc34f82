"""The ``filesystem`` storage driver: each path a file under a root directory.

``put_content`` writes a hidden temp file beside the target and renames it over
it; ``move`` is a rename; a writer writes the file in place (its bytes are
visible before the commit) and ``commit`` fsyncs it when ``fsync`` is on, so a
blob is durable against power loss before it is renamed into place.  ``reader``
returns the open file itself, which gunicorn sends with sendfile.  Locks are
``flock`` on the file at the lock's path, shared by every process on the root.
Names starting with ``.`` are this driver's temp files: ``list`` and ``walk``
skip them, and paths cannot name them.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from stat import S_ISDIR
from typing import BinaryIO

from registry.server.storage.driver import FileInfo, InvalidOffset, UnsupportedMethod, check_path, not_found


class FilesystemDriver:
    """:class:`~registry.server.storage.driver.StorageDriver` on the directory ``root``."""

    name = "filesystem"

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)

    def local_path(self, path: str, root_ok: bool = False) -> Path:
        """The file that holds ``path`` (for tools and tests that look at the disk);
        the root directory itself for ``/`` only with ``root_ok``."""
        check_path(path, root_ok=root_ok)
        return self.root / path[1:] if path != "/" else self.root

    def get_content(self, path: str) -> bytes:
        try:
            with open(self.local_path(path), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise not_found(path) from None

    def put_content(self, path: str, content: bytes) -> None:
        target = self.local_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not content:  # creating or truncating a file is atomic already (a link: no rename)
            with open(target, "wb"):
                return
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "xb") as f:
                f.write(content)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        if offset < 0:
            raise InvalidOffset(f"read {path} at offset {offset}")
        try:
            f = open(self.local_path(path), "rb")  # the caller streams and closes it
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise not_found(path) from None
        if offset:
            f.seek(offset)
        return f

    def writer(self, path: str, append: bool = False) -> FilesystemWriter:
        target = self.local_path(path)
        f: BinaryIO
        if append:
            try:
                f = open(target, "r+b")
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise not_found(path) from None
            f.seek(0, os.SEEK_END)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            f = open(target, "wb")
        return FilesystemWriter(target, f, self.fsync)

    def exists(self, path: str) -> bool:
        return os.path.isfile(self.local_path(path))

    def stat(self, path: str) -> FileInfo:
        try:
            st = os.stat(self.local_path(path, root_ok=True))
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(path) from None
        is_dir = S_ISDIR(st.st_mode)
        return FileInfo(path, 0 if is_dir else st.st_size, st.st_mtime, is_dir)

    def list(self, path: str) -> builtins.list[str]:
        prefix = "" if path == "/" else path
        try:
            names = [
                e.name for e in os.scandir(self.local_path(path, root_ok=True)) if not e.name.startswith(".")
            ]
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(path) from None
        return [f"{prefix}/{n}" for n in sorted(names)]

    def move(self, source: str, dest: str) -> None:
        target = self.local_path(dest)
        src = self.local_path(source)
        if not src.is_file():
            raise not_found(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, target)
        except FileNotFoundError:
            raise not_found(source) from None

    def delete(self, path: str) -> None:
        target = self.local_path(path)
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(path) from None

    def delete_many(self, paths: builtins.list[str]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                self.local_path(path).unlink()

    def touch(self, path: str) -> None:
        try:
            os.utime(self.local_path(path))
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(path) from None

    def url_for(self, path: str, method: str = "GET", expires: float = 1200.0) -> str:
        raise UnsupportedMethod("the filesystem driver has no URLs: the registry serves the bytes")

    def walk(self, path: str) -> Iterator[FileInfo]:
        base = self.local_path(path, root_ok=True)
        if not base.is_dir():
            raise not_found(path)
        yield from _walk(str(base), "" if path == "/" else path)

    def mutex(self, path: str) -> contextlib.AbstractContextManager[None]:
        return self.lock(path, exclusive=True)

    @contextlib.contextmanager
    def lock(self, path: str, exclusive: bool) -> Iterator[None]:
        try:
            fd = os.open(self.local_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(path) from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                    break
                except OSError as err:  # EINTR on signal delivery
                    if err.errno != errno.EINTR:
                        raise
            yield
        finally:
            os.close(fd)


class FilesystemWriter:
    """A file written in place (a :class:`~registry.server.storage.driver.FileWriter`)."""

    def __init__(self, path: Path, f: BinaryIO, fsync: bool) -> None:
        self.path = path
        self._f = f
        self._fsync = fsync
        self._size = f.tell()

    def write(self, data: bytes) -> int:
        self._f.write(data)
        self._size += len(data)
        return len(data)

    def size(self) -> int:
        return self._size

    def truncate(self, size: int) -> None:
        self._f.flush()
        self._f.truncate(size)
        self._f.seek(size)
        self._size = size

    def commit(self) -> None:
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())
        self._f.close()

    def cancel(self) -> None:
        with contextlib.suppress(OSError):  # a full disk fails the flush in close: the file goes anyway
            self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        self._f.close()


def _walk(directory: str, prefix: str) -> Iterator[FileInfo]:
    """The files below ``directory`` in lexical order of their paths: siblings
    sorted with a directory's name as ``name/``, which is how its files compare."""
    try:
        entries = [e for e in os.scandir(directory) if not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):  # removed while we walk
        return
    keyed = []
    for e in entries:
        try:
            is_dir = e.is_dir(follow_symlinks=False)
        except OSError:
            continue
        keyed.append((e.name + "/" if is_dir else e.name, e, is_dir))
    for _, e, is_dir in sorted(keyed, key=lambda k: k[0]):
        if is_dir:
            yield from _walk(e.path, f"{prefix}/{e.name}")
            continue
        try:
            st = e.stat()
        except FileNotFoundError:
            continue
        yield FileInfo(f"{prefix}/{e.name}", st.st_size, st.st_mtime, False)
