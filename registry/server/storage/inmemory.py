"""The ``inmemory`` storage driver: files in a dict, for tests and one-process use.

Everything lives in this process and is gone when it ends: one gunicorn worker
at most.  Directories are implied by the paths below them (one exists while a
file does); a writer's bytes are visible as they are written; locks are
reader/writer locks of this process.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from registry.server.storage.driver import FileInfo, InvalidOffset, UnsupportedMethod, check_path, not_found


@dataclass
class _File:
    data: bytearray = field(default_factory=bytearray)
    mtime: float = field(default_factory=time.time)


class InMemoryDriver:
    """:class:`~registry.server.storage.driver.StorageDriver` in this process's memory."""

    name = "inmemory"

    def __init__(self) -> None:
        self._files: dict[str, _File] = {}
        self._mutex = threading.Lock()
        self._locks: dict[str, _RWLock] = {}

    def _file(self, path: str) -> _File:
        check_path(path)
        found = self._files.get(path)
        if found is None:
            raise not_found(path)
        return found

    def _below(self, path: str) -> builtins.list[str]:
        prefix = "/" if path == "/" else path + "/"
        return sorted(p for p in self._files if p.startswith(prefix))

    def get_content(self, path: str) -> bytes:
        with self._mutex:
            return bytes(self._file(path).data)

    def put_content(self, path: str, content: bytes) -> None:
        check_path(path)
        with self._mutex:
            self._files[path] = _File(bytearray(content))

    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        if offset < 0:
            raise InvalidOffset(f"read {path} at offset {offset}")
        with self._mutex:
            return io.BytesIO(bytes(self._file(path).data[offset:]))

    def writer(self, path: str, append: bool = False) -> InMemoryWriter:
        check_path(path)
        with self._mutex:
            if append:
                f = self._file(path)
            else:
                f = self._files[path] = _File()
        return InMemoryWriter(self, path, f)

    def exists(self, path: str) -> bool:
        check_path(path)
        with self._mutex:
            return path in self._files

    def stat(self, path: str) -> FileInfo:
        check_path(path, root_ok=True)
        with self._mutex:
            f = self._files.get(path)
            if f is not None:
                return FileInfo(path, len(f.data), f.mtime, False)
            below = self._below(path)
            if not below and path != "/":
                raise not_found(path)
            mtime = max((self._files[p].mtime for p in below), default=0.0)
            return FileInfo(path, 0, mtime, True)

    def list(self, path: str) -> builtins.list[str]:
        check_path(path, root_ok=True)
        with self._mutex:
            below = self._below(path)
        if not below and path != "/":
            raise not_found(path)
        prefix = "" if path == "/" else path
        children = {p[len(prefix) + 1 :].split("/", 1)[0] for p in below}
        return [f"{prefix}/{name}" for name in sorted(children)]

    def move(self, source: str, dest: str) -> None:
        check_path(dest)
        with self._mutex:
            f = self._file(source)
            del self._files[source]
            self._files[dest] = f

    def delete(self, path: str) -> None:
        check_path(path)
        with self._mutex:
            doomed = [path] if path in self._files else self._below(path)
            if not doomed:
                raise not_found(path)
            for p in doomed:
                del self._files[p]

    def delete_many(self, paths: builtins.list[str]) -> None:
        for path in paths:
            check_path(path)
        with self._mutex:
            for path in paths:
                self._files.pop(path, None)

    def touch(self, path: str) -> None:
        with self._mutex:
            self._file(path).mtime = time.time()

    def url_for(self, path: str, method: str = "GET", expires: float = 1200.0) -> str:
        raise UnsupportedMethod("the inmemory driver has no URLs: the registry serves the bytes")

    def walk(self, path: str) -> Iterator[FileInfo]:
        check_path(path, root_ok=True)
        with self._mutex:
            below = [(p, len(self._files[p].data), self._files[p].mtime) for p in self._below(path)]
        if not below and path != "/":
            raise not_found(path)
        for p, size, mtime in below:
            yield FileInfo(p, size, mtime, False)

    def mutex(self, path: str) -> contextlib.AbstractContextManager[None]:
        return self.lock(path, exclusive=True)

    @contextlib.contextmanager
    def lock(self, path: str, exclusive: bool) -> Iterator[None]:
        check_path(path)
        parent = path.rsplit("/", 1)[0]
        with self._mutex:
            if parent and parent not in self._files and not self._below(parent):
                raise not_found(path)
            rw = self._locks.setdefault(path, _RWLock())
        with rw.hold(exclusive):
            yield


class InMemoryWriter:
    """Bytes appended to a :class:`_File` (a :class:`~registry.server.storage.driver.FileWriter`)."""

    def __init__(self, driver: InMemoryDriver, path: str, f: _File) -> None:
        self._driver = driver
        self._path = path
        self._file = f

    def write(self, data: bytes) -> int:
        with self._driver._mutex:
            self._file.data += data
            self._file.mtime = time.time()
        return len(data)

    def size(self) -> int:
        return len(self._file.data)

    def truncate(self, size: int) -> None:
        with self._driver._mutex:
            del self._file.data[size:]

    def commit(self) -> None:
        with self._driver._mutex:
            self._file.mtime = time.time()

    def cancel(self) -> None:
        with self._driver._mutex:
            if self._driver._files.get(self._path) is self._file:
                del self._driver._files[self._path]

    def close(self) -> None:
        pass


class _RWLock:
    """Many shared holders or one exclusive one (no fairness: the sweep waits for pushes)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextlib.contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        with self._cond:
            if exclusive:
                self._cond.wait_for(lambda: not self._exclusive and self._shared == 0)
                self._exclusive = True
            else:
                self._cond.wait_for(lambda: not self._exclusive)
                self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                if exclusive:
                    self._exclusive = False
                else:
                    self._shared -= 1
                self._cond.notify_all()
