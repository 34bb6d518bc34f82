"""Layer tar streams: a fast writer, and (from ``imagefmt.tarreader``) a
streaming reader.

The writer emits what Go's archive/tar emits for Docker and BuildKit layers
(ustar, with PAX headers only where a field does not fit; see
``imagefmt.tarheader``); the reader parses ustar, GNU and PAX archives as
GNU tar, Go, Docker, BuildKit and Python's tarfile write them. Neither ever
holds a whole file in memory.
"""

from __future__ import annotations

import errno
import io
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

from imagefmt.errors import Invalid, Unsupported
from imagefmt.streams import Readable, Writable
from imagefmt.tarheader import (
    BLOCK,
    FLAGS,
    HEADER,
    MAX7,
    MAX11,
    NS,
    USTAR_MAGIC,
    ZERO_BLOCK,
    TarEntry,
    checksummed,
    decode_text,
    encode_header,
    encode_text,
)
from imagefmt.tarreader import iter_tar  # re-exported: tario is the public face of both

__all__ = ["TarEntry", "TarWriter", "iter_tar", "read_xattrs"]

CHUNK = 1 << 20
SMALL_FILE = 64 << 10  # read into the output buffer; larger files are copied by the kernel
_ZERO8 = b"%07o\0" % 0


def read_xattrs(path: bytes | str) -> dict[str, bytes]:
    """The extended attributes of ``path`` itself (symlinks are not followed).

    A file system without xattr support gives an empty dict."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as err:
        if err.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in sorted(names):
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as err:  # removed meanwhile
            if err.errno != errno.ENODATA:
                raise
    return out


class TarWriter:
    """Write a tar stream to ``dst`` in ustar form, with PAX headers when needed.

    Output is buffered and written to ``dst`` in ~1 MiB pieces. When ``dst``
    is a plain file (io.FileIO, or a BufferedWriter/BufferedRandom over one)
    the content of large files is copied by the kernel (copy_file_range,
    else sendfile); any other writer (a pipe, a compressor, a HashingWriter)
    gets plain writes. ``mtime_clamp`` (SOURCE_DATE_EPOCH) caps every mtime;
    without ``precise_mtime`` mtimes are truncated to whole seconds, as Docker
    does. ``xattr_filter(name)`` returning False drops an xattr. ``close()``
    writes the end-of-archive blocks and neither flushes nor closes ``dst``.
    Raises Invalid when a file changes size while it is being archived."""

    def __init__(
        self,
        dst: Writable,
        *,
        mtime_clamp: int | None = None,
        precise_mtime: bool = False,
        xattr_filter: Callable[[str], bool] | None = None,
    ) -> None:
        self._dst = dst
        self._fd = _regular_file_fd(dst)
        self._copy_file_range = True
        self._clamp_ns = None if mtime_clamp is None else mtime_clamp * NS
        self._precise = precise_mtime
        self._xattr_filter = xattr_filter
        self._out = bytearray()
        self._links: dict[tuple[int, int], bytes] = {}
        self._octal7: dict[int, bytes] = {}
        self._closed = False
        self.entries = 0

    def __enter__(self) -> TarWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()

    # -- public entry points --------------------------------------------------------------------

    def add(self, path: Path, arcname: str) -> None:
        """Archive one file system object (no recursion) under ``arcname``.

        Regular files, directories, symlinks, char/block devices and fifos;
        a file with several links seen before becomes a hardlink entry;
        sockets are skipped, as Docker does."""
        raw = os.fsencode(path)
        self.add_stat(raw, encode_text(arcname), os.lstat(raw))

    def add_stat(
        self, path: bytes, arcname: bytes, st: os.stat_result, xattrs: dict[str, bytes] | None = None
    ) -> int:
        """``add`` for tree walkers: bytes paths, an lstat already taken, xattrs
        already read (None: read them here). Returns the entries written (0 or 1)."""
        mode = st.st_mode
        if (
            stat.S_ISREG(mode)
            and st.st_nlink == 1
            and st.st_size <= SMALL_FILE
            and self._add_plain_file(path, arcname, st, xattrs)
        ):
            return 1
        fmt = stat.S_IFMT(mode)
        if fmt == stat.S_IFSOCK:
            return 0
        if fmt != stat.S_IFDIR and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self._links.get(key)
            if first is not None:
                self._header(arcname, b"1", mode, st.st_uid, st.st_gid, 0, st.st_mtime_ns, first)
                return 1
            self._links[key] = arcname
        if xattrs is None:
            xattrs = read_xattrs(path)
        if fmt == stat.S_IFREG:
            self._add_file(path, arcname, st, xattrs)
        elif fmt == stat.S_IFDIR:
            name = arcname if arcname.endswith(b"/") else arcname + b"/"
            self._header(name, b"5", mode, st.st_uid, st.st_gid, 0, st.st_mtime_ns, xattrs=xattrs)
        elif fmt == stat.S_IFLNK:
            self._header(
                arcname, b"2", mode, st.st_uid, st.st_gid, 0, st.st_mtime_ns, os.readlink(path), xattrs=xattrs
            )
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            flag = b"3" if fmt == stat.S_IFCHR else b"4"
            dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
            self._header(arcname, flag, mode, st.st_uid, st.st_gid, 0, st.st_mtime_ns, b"", dev, xattrs)
        elif fmt == stat.S_IFIFO:
            self._header(arcname, b"6", mode, st.st_uid, st.st_gid, 0, st.st_mtime_ns, xattrs=xattrs)
        else:
            raise Unsupported(f"archive {decode_text(path)!r}: unsupported file type {oct(fmt)}")
        return 1

    def add_bytes(
        self, arcname: str, data: bytes, mode: int = 0o644, mtime: float = 0, uid: int = 0, gid: int = 0
    ) -> None:
        """Archive ``data`` as a regular file."""
        self._header(encode_text(arcname), b"0", mode, uid, gid, len(data), _to_ns(mtime))
        self._emit_content(data)

    def add_dir(self, arcname: str, mode: int = 0o755, mtime: float = 0, uid: int = 0, gid: int = 0) -> None:
        """Archive a directory entry (a trailing slash is added)."""
        name = encode_text(arcname.rstrip("/") + "/")
        self._header(name, b"5", mode, uid, gid, 0, _to_ns(mtime))

    def add_entry(self, entry: TarEntry, content: Readable | None = None) -> None:
        """Archive ``entry``; a file's ``entry.size`` bytes are read from ``content``.

        Raises Invalid when ``content`` is missing or shorter than the size."""
        flag = FLAGS.get(entry.type)
        if flag is None:
            raise Invalid(f"tar entry {entry.name!r}: unknown type {entry.type!r}")
        name = entry.name.rstrip("/") + "/" if entry.type == "dir" else entry.name
        size = entry.size if entry.type == "file" else 0
        dev = (entry.devmajor, entry.devminor)
        link = encode_text(entry.linkname)
        self._header(
            encode_text(name), flag, entry.mode, entry.uid, entry.gid, size, _to_ns(entry.mtime), link, dev,
            entry.xattrs,
        )  # fmt: skip
        if size:
            if content is None:
                raise Invalid(f"tar entry {entry.name!r}: {size} bytes of content expected, none given")
            self._copy_stream(content, size, entry.name)

    def close(self) -> None:
        """Write the two zero blocks that end the archive; ``dst`` stays open."""
        if self._closed:
            return
        self._closed = True
        self._out += ZERO_BLOCK + ZERO_BLOCK
        self._flush()

    # -- headers --------------------------------------------------------------------------------

    def _header(
        self,
        name: bytes,
        flag: bytes,
        mode: int,
        uid: int,
        gid: int,
        size: int,
        mtime_ns: int,
        link: bytes = b"",
        dev: tuple[int, int] = (0, 0),
        xattrs: dict[str, bytes] | None = None,
    ) -> None:
        """Append one member's header blocks to the buffer, applying the clamp,
        the mtime precision and the xattr filter."""
        if self._clamp_ns is not None and mtime_ns > self._clamp_ns:
            mtime_ns = self._clamp_ns
        secs, frac = divmod(mtime_ns, NS)
        if xattrs and self._xattr_filter is not None:
            xattrs = {k: v for k, v in xattrs.items() if self._xattr_filter(k)}
        self.entries += 1
        self._out += encode_header(
            name, flag, mode, uid, gid, size, secs, frac if self._precise else 0, link, dev, xattrs
        )

    # -- content --------------------------------------------------------------------------------

    def _add_plain_file(
        self, path: bytes, arcname: bytes, st: os.stat_result, xattrs: dict[str, bytes] | None
    ) -> bool:
        """The hot path of write_layer: a small file that needs nothing but a
        ustar header, packed here in one go. False (having written nothing)
        when the file needs more, for the general path."""
        if xattrs is None:
            try:
                if os.listxattr(path, follow_symlinks=False):
                    return False
            except OSError:
                return False
        elif xattrs:
            return False
        mtime_ns = st.st_mtime_ns
        if self._clamp_ns is not None and mtime_ns > self._clamp_ns:
            mtime_ns = self._clamp_ns
        secs = mtime_ns // NS
        uid, gid = st.st_uid, st.st_gid
        if (
            len(arcname) > 100
            or not arcname.isascii()
            or uid > MAX7
            or gid > MAX7
            or not 0 <= secs <= MAX11
            or (self._precise and mtime_ns % NS)
        ):
            return False
        data = b""
        if st.st_size:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                data = os.read(fd, st.st_size)  # the header gets the size actually read
            finally:
                os.close(fd)
        octal = self._octal7  # a few distinct modes and ids: format each once
        mode = st.st_mode & 0o7777
        block = HEADER.pack(
            arcname, octal.get(mode) or self._cache_octal(mode), octal.get(uid) or self._cache_octal(uid),
            octal.get(gid) or self._cache_octal(gid), b"%011o\0" % len(data), b"%011o\0" % secs, b"        ",
            b"0", b"", USTAR_MAGIC, b"", b"", _ZERO8, _ZERO8, b"",
        )  # fmt: skip
        self.entries += 1
        out = self._out
        out += checksummed(block)
        out += data
        if len(data) % BLOCK:
            out += ZERO_BLOCK[len(data) % BLOCK :]
        if len(out) >= CHUNK:
            self._flush()
        return True

    def _cache_octal(self, value: int) -> bytes:
        text = self._octal7[value] = b"%07o\0" % value
        return text

    def _add_file(self, path: bytes, arcname: bytes, st: os.stat_result, xattrs: dict[str, bytes]) -> None:
        size = st.st_size
        if size == 0:
            self._header(arcname, b"0", st.st_mode, st.st_uid, st.st_gid, 0, st.st_mtime_ns, xattrs=xattrs)
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if size <= SMALL_FILE:
                # The header is written after the read, with the size actually read,
                # so a file that changes meanwhile still gives a well-formed tar.
                data = os.read(fd, size)
                self._header(
                    arcname, b"0", st.st_mode, st.st_uid, st.st_gid, len(data), st.st_mtime_ns, xattrs=xattrs
                )
                self._emit_content(data)
            else:
                self._header(
                    arcname, b"0", st.st_mode, st.st_uid, st.st_gid, size, st.st_mtime_ns, xattrs=xattrs
                )
                self._copy_fd(fd, size, decode_text(arcname))
        finally:
            os.close(fd)

    def _emit_content(self, data: bytes) -> None:
        out = self._out
        out += data
        if len(data) % BLOCK:
            out += ZERO_BLOCK[len(data) % BLOCK :]
        if len(out) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._out:
            out, self._out = self._out, bytearray()
            self._dst.write(out)

    def _copy_fd(self, fd: int, size: int, name: str) -> None:
        """Copy ``size`` bytes of file ``fd`` (then padding) into the archive."""
        self._flush()
        if self._fd is not None:
            self._dst.flush()
            self._copy_in_kernel(fd, size, name)
            # resynchronise a buffered dst with the file offset the kernel moved
            cast(BinaryIO, self._dst).seek(os.lseek(self._fd, 0, os.SEEK_CUR))
        else:
            left = size
            while left:
                chunk = os.read(fd, min(CHUNK, left))
                if not chunk:
                    raise Invalid(f"archive {name!r}: file shrank while being archived")
                self._dst.write(chunk)
                left -= len(chunk)
        if size % BLOCK:
            self._out += ZERO_BLOCK[size % BLOCK :]

    def _copy_in_kernel(self, fd: int, size: int, name: str) -> None:
        assert self._fd is not None
        offset = 0
        while offset < size:
            if self._copy_file_range:
                try:
                    n = os.copy_file_range(fd, self._fd, size - offset, offset)
                except OSError as err:
                    if err.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                        raise
                    self._copy_file_range = False  # e.g. across file systems: use sendfile
                    continue
            else:
                n = os.sendfile(self._fd, fd, offset, size - offset)
            if n == 0:
                raise Invalid(f"archive {name!r}: file shrank while being archived")
            offset += n

    def _copy_stream(self, src: Readable, size: int, name: str) -> None:
        left = size
        while left:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise Invalid(f"tar entry {name!r}: content ends {left} bytes before its size {size}")
            self._out += chunk
            left -= len(chunk)
            if len(self._out) >= CHUNK:
                self._flush()
        if size % BLOCK:
            self._out += ZERO_BLOCK[size % BLOCK :]


def _to_ns(seconds: float) -> int:
    """Float seconds to ns, rounding only the fraction (a float near 1.6e18 is 256 ns coarse)."""
    whole = math.floor(seconds)
    return whole * NS + round((seconds - whole) * NS)


def _regular_file_fd(dst: object) -> int | None:
    """The fd under ``dst`` if it is a plain (possibly buffered) regular file.

    Wrappers such as GzipFile also answer fileno(), so only these exact
    classes qualify: writing to their fd directly is what writing to them does."""
    raw = dst.raw if isinstance(dst, io.BufferedWriter | io.BufferedRandom) else dst
    if not isinstance(raw, io.FileIO):
        return None
    fd = raw.fileno()
    return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
