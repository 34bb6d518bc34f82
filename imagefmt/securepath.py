"""Paths resolved inside a root directory, never outside it: the one resolver of dockyard.

A layer, an image or a build context may hold symlinks such as ``etc -> /../../etc``
or ``data -> ../../../host``; a path followed through them naively leads a write, a
mount or a read out of the root and onto the host.  Every path of ours that comes
from such a tree is resolved here, with directory fds, as if the root were ``/``:
by the kernel's openat2(RESOLVE_IN_ROOT) where it has it (Linux 5.6+), else by the
same walk done one component at a time with O_NOFOLLOW (umoci's SecureJoin, with
fds instead of strings).  ``..`` stops at the root; an absolute link starts again
at the root; more than MAX_SYMLINKS links is ELOOP.

Users: imagefmt.extractor (layer entries), runtime.process.rootfs (mount points in
a container's root: the mount goes onto the resolved fd, so nothing can swap a
component for a symlink between the lookup and the mount), builder.context (COPY
sources in a build context).  builder.rootview resolves over a stack of layers with
overlayfs's rules (whiteouts, opaque directories), a different question; it follows
the same rules for ``..`` and links.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

from imagefmt.errors import Invalid, UnsafeLayer
from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

MAX_SYMLINKS = 40  # the kernel's limit too
DIR_FLAGS = os.O_DIRECTORY | os.O_CLOEXEC
_SYS_OPENAT2 = 437  # the same number on every architecture
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10

openat2_usable: bool | None = None
"""Whether openat2 works here; probed on first use. False forces the walk (tests set it)."""

_openat2_call: list[Any] = []  # the ctypes function and struct, made on first use


def _openat2(dirfd: int, path: str, flags: int) -> int:
    import ctypes  # not on a container start's path: only a resolution needs it

    if not _openat2_call:

        class OpenHow(ctypes.Structure):
            _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

        syscall = ctypes.CDLL(None, use_errno=True).syscall
        syscall.restype = ctypes.c_long
        _openat2_call[:] = [syscall, OpenHow]
    syscall, how_type = _openat2_call
    how = how_type(flags, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = int(
        syscall(
            ctypes.c_long(_SYS_OPENAT2), ctypes.c_long(dirfd), ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)),
        )
    )  # fmt: skip
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def probe_openat2(dirfd: int) -> bool:
    """Whether openat2 with RESOLVE_IN_ROOT works here (asked once per process)."""
    global openat2_usable
    if openat2_usable is None:
        try:
            os.close(_openat2(dirfd, ".", os.O_PATH | DIR_FLAGS))
            openat2_usable = True
        except OSError:  # ENOSYS before 5.6, EPERM under some seccomp profiles
            openat2_usable = False
    return openat2_usable


def components(name: str, entry: str) -> tuple[str, ...]:
    """The path ``name`` as components below the root, cleaned lexically.

    A leading ``/`` is dropped (GNU tar does the same); a ``..`` that would
    climb above the root raises UnsafeLayer, naming ``entry``."""
    if "\0" in name:
        raise Invalid(f"layer entry {entry!r}: NUL byte in a path")
    split = name.split("/")
    if "" not in split and "." not in split and ".." not in split:
        return tuple(split)  # already clean: the usual case
    parts: list[str] = []
    for part in split:
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts:
            parts.pop()
        else:
            raise UnsafeLayer(f"layer entry {entry!r}: path escapes the layer root")
    return tuple(parts)


class Root:
    """A directory fd standing for ``/`` while resolving paths; the caller owns ``fd``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Root:
        """The directory ``path`` as a root (close it with ``close``)."""
        return cls(os.open(path, os.O_PATH | DIR_FLAGS))

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_dir(self, parts: Sequence[str], flags: int = os.O_PATH) -> int:
        """A new fd of the directory ``parts`` resolved inside the root.

        Symlinks on the way are followed with the root as ``/``; ``..`` stops at
        the root. Raises FileNotFoundError, NotADirectoryError or OSError(ELOOP)."""
        if not parts:
            return os.open(".", flags | DIR_FLAGS, dir_fd=self.fd)
        if probe_openat2(self.fd):
            for _ in range(16):
                try:
                    return _openat2(self.fd, "/".join(parts), flags | DIR_FLAGS)
                except BlockingIOError:  # EAGAIN: a rename raced the lookup; retry
                    continue
        fd, missing = self._walk(parts, strict=True)
        try:
            return os.open(".", flags | DIR_FLAGS, dir_fd=fd)
        finally:
            if fd != self.fd:
                os.close(fd)

    def resolve(self, path: str) -> tuple[int, list[str]]:
        """The deepest directory of ``path`` that exists, resolved inside the root, as a
        new O_PATH fd, and the components below it that do not exist (or are not
        directories: a file is the last of them).  Every symlink that exists on the
        way is followed, the last one too; missing components are cleaned lexically
        (``..`` drops one).  Never raises for a dangling or looping link: a loop stops
        resolution where it is (ELOOP is left for whoever opens the result)."""
        fd, missing = self._walk([p for p in path.split("/") if p not in ("", ".")], strict=False)
        if fd == self.fd:
            fd = os.open(".", os.O_PATH | DIR_FLAGS, dir_fd=self.fd)
        return fd, missing

    def _walk(self, parts: Sequence[str], strict: bool) -> tuple[int, list[str]]:
        """The component walk: the fd of the deepest directory reached and what is left.
        ``strict``: every component must be a directory that exists (raise otherwise)."""
        fds = [self.fd]
        todo = list(reversed(parts))
        missing: list[str] = []
        links = 0
        try:
            while todo:
                comp = todo.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if missing:
                        missing.pop()
                    elif len(fds) > 1:
                        os.close(fds.pop())
                    continue
                if missing:  # below something missing nothing exists: lexical from here
                    missing.append(comp)
                    continue
                try:
                    fd = os.open(comp, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fds[-1])
                except FileNotFoundError:
                    if strict:
                        raise
                    missing.append(comp)
                    continue
                mode = os.fstat(fd).st_mode
                if stat.S_ISDIR(mode):
                    fds.append(fd)
                    continue
                os.close(fd)
                if stat.S_ISLNK(mode) and links < MAX_SYMLINKS:
                    links += 1
                    link = os.readlink(comp, dir_fd=fds[-1])
                    if link.startswith("/"):
                        while len(fds) > 1:  # an absolute link starts again at the root
                            os.close(fds.pop())
                    todo.extend(reversed(link.split("/")))
                    continue
                if strict:
                    if stat.S_ISLNK(mode):
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), comp)
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), comp)
                missing.append(comp)  # a file, or a link loop: the rest is below it
            return fds.pop(), missing
        finally:
            for fd in fds[1:]:
                os.close(fd)

    def make(self, path: str, is_dir: bool, mode: int = 0o755) -> int:
        """An O_PATH fd of ``path`` inside the root, made if missing: its missing parent
        directories (0755) and itself (a directory of ``mode``, or an empty file 0644).
        What exists is used as it is, symlinks followed inside the root; what is made is
        made with *at() calls under the resolved parent, so nothing on the way can lead
        out of the root (runc mounts onto such fds for the same reason)."""
        fd, missing = self.resolve(path)
        try:
            for i, name in enumerate(missing):
                last = i == len(missing) - 1
                if last and not is_dir:
                    nxt = self._make_file(fd, name)
                else:
                    try:
                        os.mkdir(name, mode if last else 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass  # made since, or a file in the way: opening it says which
                    nxt = os.open(name, os.O_PATH | os.O_NOFOLLOW | DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _make_file(dirfd: int, name: str) -> int:
        """An O_PATH fd of the file (or whatever is there) ``name`` under ``dirfd``, an
        empty file made if nothing is.  What exists is never opened for writing: on an
        overlay that would copy it up into the container's layer."""
        try:
            return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        except FileNotFoundError:
            pass
        try:
            os.close(
                os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                    dir_fd=dirfd,
                )
            )
        except FileExistsError:
            pass  # made since
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)

    def host_path(self, fd: int) -> str:
        """Where the kernel says the fd ``fd`` (resolved under this root) is."""
        return os.readlink(f"/proc/self/fd/{fd}")


def secure_join(root: str, unsafe: str) -> str:
    """``root`` + ``unsafe`` with every existing symlink resolved as if ``root`` were
    "/" (filepath-securejoin's SecureJoin, done with fds): always a path inside
    ``root``; components that do not exist are kept as they are.  For a single
    lookup; to act on the result without a race, use Root.resolve or Root.make."""
    root = os.path.abspath(root)
    with Root.open(root) as r:
        fd, missing = r.resolve(unsafe)
        try:
            inside = os.path.relpath(r.host_path(fd), r.host_path(r.fd))
        finally:
            os.close(fd)
    return os.path.normpath(os.path.join(root, inside, *missing))
