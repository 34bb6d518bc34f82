"""Writing layer tar entries inside a target directory, and never outside it.

Every parent directory is resolved inside the target as if the target were
``/``, by imagefmt.securepath's Root (openat2 RESOLVE_IN_ROOT, or its walk with
O_NOFOLLOW, umoci's SecureJoin with fds). The entry itself is then made
relative to its parent's fd with *at() calls that never follow a final
symlink, so neither ``..``, nor absolute names, nor symlinks planted by this
layer or a lower one can lead a write out of the target.
"""

from __future__ import annotations

import errno
import io
import math
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

from imagefmt.errors import Invalid, UnsafeLayer
from imagefmt.securepath import DIR_FLAGS as _DIR_FLAGS
from imagefmt.securepath import Root, components
from imagefmt.tario import TarEntry

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE = "trusted.overlay.opaque"
CHUNK = 1 << 20
SMALL_CONTENT = 256 << 10  # read at once; larger files stream through a reused buffer

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_IGNORED_XATTR_ERRORS = (errno.ENOTSUP, errno.EOPNOTSUPP)
T = TypeVar("T")


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _ns(entry: TarEntry) -> int:
    if type(entry.mtime) is int:  # whole seconds straight from a ustar header
        return entry.mtime * 1_000_000_000
    whole = math.floor(entry.mtime)  # keep the fraction exact: 1.6e18 ns is 256 ns coarse as a float
    return whole * 1_000_000_000 + round((entry.mtime - whole) * 1_000_000_000)


class Extractor:
    """Apply tar entries to a target directory; see ``layer.extract_layer``.

    ``apply`` selects the whiteout semantics: False makes overlayfs whiteouts
    (0/0 char devices, the opaque xattr), True deletes from the target."""

    def __init__(self, target: Path, *, apply: bool) -> None:
        target.mkdir(parents=True, exist_ok=True)
        self._root = Root(os.open(target, os.O_PATH | _DIR_FLAGS))
        self._apply = apply
        self._written: set[str] = set()  # apply mode: paths this layer made
        self._dir_times: dict[tuple[str, ...], int] = {}
        self._cache_key: tuple[str, ...] | None = None
        self._cache_fd = -1
        self._is_root = os.geteuid() == 0
        self._buffer: memoryview | None = None
        self.entries = 0
        self.bytes = 0

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop_cache()
        os.close(self._root.fd)

    def extract(self, entry: TarEntry, content: BinaryIO) -> None:
        """Apply one entry; ``content`` is read for regular files."""
        self.entries += 1
        parts = components(entry.name, entry.name)
        if not parts:
            self._root_dir(entry)
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(entry, parts)
            return
        pfd = self._parent(parts[:-1], entry.name)
        kind = entry.type
        if kind == "file":
            self._file(pfd, base, entry, content)
        elif kind == "dir":
            self._dir(pfd, base, entry)
            self._dir_times[parts] = _ns(entry)
        elif kind == "symlink":
            self._symlink(pfd, base, entry)
        elif kind == "hardlink":
            self._hardlink(pfd, base, entry, parts)
        else:
            self._node(pfd, base, entry)
        if kind != "dir":
            self._dir_times.pop(parts, None)  # a directory this layer made, replaced since
        if self._apply:
            self._written.add("/".join(parts))

    def finish(self) -> None:
        """Set directory mtimes, deepest first (creating children changed them)."""
        for parts in sorted(self._dir_times, key=len, reverse=True):
            ns = self._dir_times[parts]
            try:
                pfd = self._root.open_dir(parts[:-1])
            except (FileNotFoundError, NotADirectoryError):
                continue  # whited out later in the layer
            name = parts[-1] if parts else "."
            try:
                if stat.S_ISDIR(os.lstat(name, dir_fd=pfd).st_mode):  # not replaced since
                    os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            finally:
                os.close(pfd)

    # -- parents --------------------------------------------------------------------------------

    def _parent(self, parts: tuple[str, ...], entry: str) -> int:
        """The O_PATH fd of an entry's parent, created if missing; cached for the
        next entry, which is usually its sibling."""
        if parts != self._cache_key:
            self._drop_cache()
            self._cache_fd = self._open_dir(parts, entry)
            self._cache_key = parts
        return self._cache_fd

    def _drop_cache(self) -> None:
        if self._cache_key is not None:
            os.close(self._cache_fd)
        self._cache_key, self._cache_fd = None, -1

    def _resolve(self, parts: Sequence[str], entry: str, flags: int) -> int:
        try:
            return self._root.open_dir(parts, flags)
        except NotADirectoryError:
            raise Invalid(f"layer entry {entry!r}: a parent of it is not a directory") from None
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise
            raise Invalid(f"layer entry {entry!r}: too many levels of symbolic links") from None

    def _open_dir(self, parts: tuple[str, ...], entry: str, flags: int = os.O_PATH) -> int:
        """Like Root.open_dir, but missing directories are made (0755, as Docker does)."""
        try:
            return self._resolve(parts, entry, flags)
        except FileNotFoundError:
            if not parts:
                raise
        pfd = self._open_dir(parts[:-1], entry)
        try:
            os.mkdir(parts[-1], 0o755, dir_fd=pfd)
            os.chmod(parts[-1], 0o755, dir_fd=pfd, follow_symlinks=False)  # whatever the umask
            if self._apply:
                self._written.add("/".join(parts))
        except FileExistsError:
            pass  # a dangling symlink: reported just below
        finally:
            os.close(pfd)
        try:
            return self._resolve(parts, entry, flags)
        except FileNotFoundError:
            raise Invalid(f"layer entry {entry!r}: {'/'.join(parts)!r} is a dangling symlink") from None

    # -- entries --------------------------------------------------------------------------------

    def _make(self, pfd: int, base: str, make: Callable[[], T]) -> T:
        """``make()`` the entry; if the name is taken, remove what is there and retry."""
        try:
            return make()
        except FileExistsError:
            self._remove(pfd, base, os.lstat(base, dir_fd=pfd))
            return make()

    def _remove(self, pfd: int, base: str, st: os.stat_result) -> None:
        if pfd != self._cache_fd:
            self._drop_cache()  # the cached parent may lie inside what goes
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(base, dir_fd=pfd)
        else:
            os.unlink(base, dir_fd=pfd)

    def _file(self, pfd: int, base: str, entry: TarEntry, content: BinaryIO) -> None:
        try:
            fd = os.open(base, _NEW_FILE, 0o600, dir_fd=pfd)
        except FileExistsError:
            fd = self._make(pfd, base, lambda: os.open(base, _NEW_FILE, 0o600, dir_fd=pfd))
        try:
            if entry.size <= SMALL_CONTENT:
                _write_all(fd, content.read(entry.size))
            else:
                self._copy_large(fd, entry, content)
            self.bytes += entry.size
            self._chown(fd, entry)
            os.fchmod(fd, entry.mode)  # after chown, which clears setuid/setgid
            if entry.xattrs:
                self._setxattrs(fd, entry)
            ns = _ns(entry)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _copy_large(self, fd: int, entry: TarEntry, content: BinaryIO) -> None:
        """Stream a large file's content through one reused buffer, no copies."""
        if self._buffer is None:
            self._buffer = memoryview(bytearray(CHUNK))
        left = entry.size
        while left:
            view = self._buffer[: min(CHUNK, left)]
            got = cast(io.BufferedIOBase, content).readinto(view)  # iter_tar's readers have it
            if not got:
                raise Invalid(f"layer tar truncated: content of {entry.name!r} ends early")
            _write_all(fd, view[:got])
            left -= got

    def _dir(self, pfd: int, base: str, entry: TarEntry) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.lstat(base, dir_fd=pfd)
            if not stat.S_ISDIR(st.st_mode):
                self._remove(pfd, base, st)
                os.mkdir(base, 0o700, dir_fd=pfd)
                if not self._apply and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    # over this layer's own whiteout: a new directory, hiding the lower one's
                    # children, as overlayfs itself marks a directory made where one was removed
                    self._set_opaque(pfd, base)
        self._attrs_at(pfd, base, entry, utime=False)

    def _symlink(self, pfd: int, base: str, entry: TarEntry) -> None:
        if not entry.linkname:
            raise Invalid(f"layer entry {entry.name!r}: symlink with an empty target")
        self._make(pfd, base, lambda: os.symlink(entry.linkname, base, dir_fd=pfd))
        self._attrs_at(pfd, base, entry, chmod=False)
        self.bytes += len(entry.linkname.encode())  # a symlink's st_size, which docker's sizes count

    def _hardlink(self, pfd: int, base: str, entry: TarEntry, parts: tuple[str, ...]) -> None:
        """Link to an entry already in the target (this layer's or, in apply
        mode, a lower one's); the link target is resolved inside the root."""
        target = components(entry.linkname, entry.name)
        if not target:
            raise UnsafeLayer(f"layer entry {entry.name!r}: hardlink to the layer root")
        if target == parts:
            return
        missing = Invalid(f"layer entry {entry.name!r}: hardlink target {entry.linkname!r} does not exist")
        try:
            lfd = self._resolve(target[:-1], entry.name, os.O_PATH)
        except FileNotFoundError:
            raise missing from None
        try:
            try:
                st = os.lstat(target[-1], dir_fd=lfd)
            except FileNotFoundError:
                raise missing from None
            if stat.S_ISDIR(st.st_mode):
                raise Invalid(f"layer entry {entry.name!r}: hardlink to a directory")
            link = target[-1]
            self._make(
                pfd, base, lambda: os.link(link, base, src_dir_fd=lfd, dst_dir_fd=pfd, follow_symlinks=False)
            )
        finally:
            os.close(lfd)

    def _node(self, pfd: int, base: str, entry: TarEntry) -> None:
        if entry.type == "fifo":
            self._make(pfd, base, lambda: os.mkfifo(base, 0o600, dir_fd=pfd))
        else:
            kind = stat.S_IFCHR if entry.type == "char" else stat.S_IFBLK
            dev = os.makedev(entry.devmajor, entry.devminor)
            self._make(pfd, base, lambda: os.mknod(base, kind | 0o600, dev, dir_fd=pfd))
        self._attrs_at(pfd, base, entry)

    def _root_dir(self, entry: TarEntry) -> None:
        if entry.type != "dir":
            raise UnsafeLayer(
                f"layer entry {entry.name!r}: refusing to replace the layer root with a {entry.type}"
            )
        self._attrs_at(self._root.fd, ".", entry, utime=False)
        self._dir_times[()] = _ns(entry)

    # -- attributes -----------------------------------------------------------------------------

    def _attrs_at(
        self, pfd: int, base: str, entry: TarEntry, *, chmod: bool = True, utime: bool = True
    ) -> None:
        try:
            os.chown(base, entry.uid, entry.gid, dir_fd=pfd, follow_symlinks=False)
        except PermissionError:
            if self._is_root:
                raise
        if chmod:
            os.chmod(base, entry.mode, dir_fd=pfd, follow_symlinks=False)
        if entry.xattrs:
            # no fd-relative lsetxattr: go through the parent's /proc magic link
            self._setxattrs(f"/proc/self/fd/{pfd}/{base}", entry)
        if utime:
            ns = _ns(entry)
            os.utime(base, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def _chown(self, fd: int, entry: TarEntry) -> None:
        try:
            os.fchown(fd, entry.uid, entry.gid)
        except PermissionError:
            if self._is_root:
                raise

    def _setxattrs(self, where: int | str, entry: TarEntry) -> None:
        for name, value in entry.xattrs.items():
            if name.startswith("trusted.overlay."):
                continue  # a layer must not steer overlayfs (redirects, metacopy, opaque)
            try:
                if isinstance(where, int):
                    os.setxattr(where, name, value)
                else:
                    os.setxattr(where, name, value, follow_symlinks=False)
            except OSError as err:
                if err.errno in _IGNORED_XATTR_ERRORS:
                    continue
                # EPERM: user.* xattrs exist only on files and directories (and not as non-root
                # for trusted.*); tar skips those too.
                if err.errno == errno.EPERM and (not self._is_root or name.startswith("user.")):
                    continue
                raise

    # -- whiteouts ------------------------------------------------------------------------------

    def _whiteout(self, entry: TarEntry, parts: tuple[str, ...]) -> None:
        base = parts[-1]
        if base == OPAQUE_MARKER:
            self._opaque(parts[:-1], entry)
            return
        name = base[len(WHITEOUT_PREFIX) :]
        # '.wh.' hides nothing, '.wh..' and '.wh...' would hide the directory or
        # its parent, '.wh..wh.*' are AUFS metadata names ('.wh..bashrc' is fine).
        if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise UnsafeLayer(f"layer entry {entry.name!r}: invalid whiteout name {base!r}")
        if not self._apply:
            self._overlay_whiteout(entry, parts[:-1], name)
            return
        try:
            pfd = self._resolve(parts[:-1], entry.name, os.O_PATH)
        except FileNotFoundError:
            return  # nothing below to hide
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            os.close(pfd)
            return
        try:
            self._hide(pfd, name, "/".join(parts[:-1] + (name,)), st)
        finally:
            os.close(pfd)

    def _overlay_whiteout(self, entry: TarEntry, parent: tuple[str, ...], name: str) -> None:
        """A 0/0 char device, unless this layer (the snapshot was empty) already
        put something there: a whiteout hides lower layers only, so a file of
        ours stays, and a directory of ours becomes opaque."""
        pfd = self._parent(parent, entry.name)
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            os.mknod(name, stat.S_IFCHR, 0, dir_fd=pfd)
            try:
                os.chown(name, entry.uid, entry.gid, dir_fd=pfd, follow_symlinks=False)
            except PermissionError:
                if self._is_root:
                    raise
            return
        if stat.S_ISDIR(st.st_mode):
            self._set_opaque(pfd, name)

    def _set_opaque(self, pfd: int, name: str) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | _DIR_FLAGS, dir_fd=pfd)
        try:
            os.setxattr(fd, OVERLAY_OPAQUE, b"y")
        finally:
            os.close(fd)

    def _opaque(self, parts: tuple[str, ...], entry: TarEntry) -> None:
        fd = self._open_dir(parts, entry.name, os.O_RDONLY)
        try:
            if self._apply:
                self._hide_children(fd, "/".join(parts))
            else:
                os.setxattr(fd, OVERLAY_OPAQUE, b"y")
        finally:
            os.close(fd)

    def _hide(self, pfd: int, name: str, rel: str, st: os.stat_result) -> None:
        """Remove what lower layers put at ``rel``, keeping what this layer wrote."""
        if rel not in self._written:
            self._remove(pfd, name, st)
        elif stat.S_ISDIR(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | _DIR_FLAGS, dir_fd=pfd)
            try:
                self._hide_children(fd, rel)
            finally:
                os.close(fd)

    def _hide_children(self, dfd: int, rel: str) -> None:
        for child in os.listdir(dfd):
            path = f"{rel}/{child}" if rel else child
            self._hide(dfd, child, path, os.lstat(child, dir_fd=dfd))
