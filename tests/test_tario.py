"""imagefmt.tario against GNU tar and Python's tarfile, in both directions, and on broken input."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from imagefmt.compress import open_reader, open_writer
from imagefmt.errors import Invalid
from imagefmt.streams import Writable
from imagefmt.tario import TarEntry, TarWriter, iter_tar
from tests.trees import IS_ROOT, LONG_150, LONG_DIRS, make_tree, snapshot

pytestmark = pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")

GNU_X = ["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"]


def write_tree(root: Path, dst: Writable, **options: Any) -> int:
    """Archive root with TarWriter.add, sorted depth first (what write_layer does, by hand)."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + filenames:
            paths.append(Path(dirpath, name))
    with TarWriter(dst, **options) as w:
        for p in sorted(paths, key=lambda p: p.relative_to(root).parts):
            w.add(p, str(p.relative_to(root)))
    return w.entries


def read_all(data: bytes) -> list[tuple[TarEntry, bytes]]:
    return [(e, r.read()) for e, r in iter_tar(io.BytesIO(data))]


def tarfile_view(data: bytes) -> list[tuple[str, str, int, int, int, int, str, str]]:
    """What Python's tarfile makes of an archive, in our vocabulary."""
    kinds = {b"0": "file", b"1": "hardlink", b"2": "symlink", b"3": "char", b"4": "block", b"5": "dir"}
    kinds |= {b"6": "fifo", b"\0": "file"}
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf:
            body = tf.extractfile(m).read() if m.isreg() else b""  # type: ignore[union-attr]
            kind = kinds[m.type]
            out.append(
                (m.name.rstrip("/"), kind, m.mode, m.uid, m.gid, m.size if m.isreg() else 0, m.linkname,
                 hashlib.sha256(body).hexdigest())
            )  # fmt: skip
    return out


def our_view(data: bytes) -> list[tuple[str, str, int, int, int, int, str, str]]:
    return [
        (e.name, e.type, e.mode, e.uid, e.gid, e.size, e.linkname, hashlib.sha256(body).hexdigest())
        for e, body in read_all(data)
    ]


# --- our writer, read by others --------------------------------------------------------------------


def test_gnu_tar_extracts_our_output_identically(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    out = io.BytesIO()
    write_tree(src, out)
    (tmp_path / "layer.tar").write_bytes(out.getvalue())
    listing = subprocess.run(
        ["tar", "-tvf", tmp_path / "layer.tar"], capture_output=True, text=True, check=True
    )
    assert "bin/sh -> big" in listing.stdout
    assert "etc/passwd link to bin/passwd-hardlink" in listing.stdout  # sorted: bin/ first
    assert LONG_DIRS + "/" + LONG_150 in listing.stdout
    dst = tmp_path / "dst"
    dst.mkdir()
    subprocess.run([*GNU_X, tmp_path / "layer.tar", "-C", dst], check=True)
    assert snapshot(dst) == snapshot(src)


def test_tarfile_reads_our_output(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    out = io.BytesIO()
    write_tree(src, out)
    assert tarfile_view(out.getvalue()) == our_view(out.getvalue())
    names = [e.name for e, _ in read_all(out.getvalue())]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert not any(n.startswith(("/", "./")) for n in names)


def test_headers_are_plain_ustar_unless_a_field_overflows() -> None:
    out = io.BytesIO()
    with TarWriter(out) as w:
        w.add_bytes("etc/hostname", b"box\n", mtime=1_600_000_000)
        w.add_dir("etc", mtime=1_600_000_000)
    data = out.getvalue()
    assert data[257:265] == b"ustar\x0000"
    assert data[156:157] == b"0" and data[:12] == b"etc/hostname"
    assert data[148:156] == b"%06o\0 " % (sum(data[:148]) + 256 + sum(data[156:512]))
    assert data[1024 + 156 : 1024 + 157] == b"5" and data[1024 : 1024 + 5] == b"etc/\0"
    assert len(data) == 512 * 5  # 2 headers, 1 content block, 2 end blocks


def test_pax_records_for_big_ids_long_names_and_subsecond_mtimes(tmp_path: Path) -> None:
    out = io.BytesIO()
    name = "x/" + "y" * 300
    with TarWriter(out, precise_mtime=True) as w:
        w.add_entry(
            TarEntry(name, "file", 0o600, 3_000_000, 4_000_000, 3, 1_600_000_000.25), io.BytesIO(b"abc")
        )
        w.add_entry(TarEntry("old", "file", mtime=-86400.5))
        w.add_entry(TarEntry("link", "symlink", linkname="t" * 200))
    data = out.getvalue()
    (entry, body), (old, _), (link, _) = read_all(data)
    assert (entry.name, entry.uid, entry.gid, body) == (name, 3_000_000, 4_000_000, b"abc")
    assert entry.mtime == 1_600_000_000.25
    assert old.mtime == -86400.5
    assert link.linkname == "t" * 200
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        first = tf.next()
        assert first is not None and first.name == name and first.uid == 3_000_000
        assert first.pax_headers["mtime"] == "1600000000.25"
    (tmp_path / "t.tar").write_bytes(data)
    listing = subprocess.run(
        ["tar", "--numeric-owner", "-tvf", tmp_path / "t.tar"], capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert "3000000/4000000" in listing.stdout


def test_sizes_beyond_8_gib_use_a_pax_size_record() -> None:
    size = 9 << 30

    class Zeros(io.RawIOBase):
        """9 GiB of zeros that nobody wants: stop after the first megabytes."""

        served = 0

        def read(self, n: int = -1) -> bytes:
            if self.served > 4 << 20:
                raise _Enough
            self.served += n
            return bytes(n)

    class Head(io.RawIOBase):
        data = bytearray()

        def write(self, b: bytes | bytearray | memoryview, /) -> int:  # type: ignore[override]
            if len(self.data) < 8192:
                self.data += bytes(b)[: 8192 - len(self.data)]
            return len(b)

    head = Head()
    with pytest.raises(_Enough):
        TarWriter(head).add_entry(TarEntry("huge.img", size=size), Zeros())
    assert b"size=%d\n" % size in head.data
    entries = iter_tar(io.BytesIO(bytes(head.data)))
    entry, _ = next(entries)
    assert (entry.name, entry.size) == ("huge.img", size)
    with pytest.raises(Invalid, match="layer tar truncated"):
        next(entries)  # skipping the 9 GiB hits the end of the stream
    with tarfile.open(fileobj=io.BytesIO(bytes(head.data)), mode="r|") as tf:
        member = tf.next()
        assert member is not None and member.size == size


class _Enough(Exception):
    pass


def test_mtime_clamp_makes_output_byte_identical(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", devices=False)
    first, second = io.BytesIO(), io.BytesIO()
    write_tree(src, first, mtime_clamp=1_000_000)
    for p in src.rglob("*"):
        os.utime(p, follow_symlinks=False)  # now: newer than the clamp
    write_tree(src, second, mtime_clamp=1_000_000)
    assert first.getvalue() == second.getvalue()
    assert {e.mtime for e, _ in read_all(first.getvalue())} == {1_000_000}


def test_kernel_copy_plain_writes_and_compressors_give_the_same_tar(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", devices=False)
    (src / "bin/huge").write_bytes(os.urandom(3 << 20))
    plain = io.BytesIO()
    write_tree(src, plain)
    with open(tmp_path / "file.tar", "wb") as f:  # a BufferedWriter: copy_file_range/sendfile
        write_tree(src, f)
    assert (tmp_path / "file.tar").read_bytes() == plain.getvalue()
    shm = Path("/dev/shm")
    if shm.is_dir():  # across file systems copy_file_range fails and sendfile takes over
        with open(shm / f"dockyard-test-{os.getpid()}.tar", "w+b") as f:
            try:
                write_tree(src, f)
                f.seek(0)
                assert f.read() == plain.getvalue()
            finally:
                os.unlink(f.name)
    gz = io.BytesIO()
    w = open_writer(gz, "gzip")
    write_tree(src, w)
    w.close()
    assert open_reader(io.BytesIO(gz.getvalue())).read() == plain.getvalue()


def test_sockets_are_skipped(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    sock.close()
    out = io.BytesIO()
    with TarWriter(out) as w:
        w.add(tmp_path / "sock", "sock")
    assert read_all(out.getvalue()) == [] and w.entries == 0


def test_add_entry_needs_all_its_content() -> None:
    with pytest.raises(Invalid, match="content ends 7 bytes before its size 10"):
        TarWriter(io.BytesIO()).add_entry(TarEntry("f", size=10), io.BytesIO(b"abc"))
    with pytest.raises(Invalid, match="unknown type"):
        TarWriter(io.BytesIO()).add_entry(TarEntry("f", "socket"))


# --- others' output, read by us --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["gnu", "posix", "oldgnu", "ustar", "v7"])
def test_we_read_what_gnu_tar_writes(tmp_path: Path, fmt: str) -> None:
    src = make_tree(tmp_path / "src", devices=fmt != "v7")
    if fmt in ("ustar", "v7"):  # no room for long names or big ids in these formats
        shutil.rmtree(src / LONG_DIRS.split("/")[0])
        (src / LONG_150).unlink()
        (src / "caf\u00e9.txt").unlink()
        os.chown(src / "tmp", 0, 0)
    if fmt == "v7":
        (src / "fifo").unlink()
    args = ["--xattrs", "--xattrs-include=*"] if fmt == "posix" else []
    tar = tmp_path / "gnu.tar"
    subprocess.run(["tar", f"--format={fmt}", *args, "-cf", tar, "-C", src, "."], check=True)
    data = tar.read_bytes()
    assert our_view(data) == tarfile_view(data)
    if fmt == "posix":
        xattrs = {e.name: e.xattrs for e, _ in read_all(data)}
        assert xattrs["./etc/passwd"]["user.comment"] == b"hello\0binary\xff"


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_we_read_what_python_tarfile_writes(tmp_path: Path, fmt: int) -> None:
    src = make_tree(tmp_path / "src", devices=IS_ROOT)
    if fmt == tarfile.USTAR_FORMAT:
        shutil.rmtree(src / LONG_DIRS.split("/")[0])
        (src / LONG_150).unlink()
        (src / "tmp").rmdir()  # uid beyond ustar
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tf:
        tf.add(src, arcname=".")
    assert our_view(out.getvalue()) == tarfile_view(out.getvalue())


def pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n"
    n = len(body) + 2
    return f"{n}{body}".encode() if len(str(n)) + len(body) == n else f"{n + 1}{body}".encode()


def test_global_pax_headers_apply_to_the_members_after_them() -> None:
    def member(info: tarfile.TarInfo, body: bytes = b"") -> bytes:
        pad = b"\0" * (-len(body) % 512)
        return info.tobuf(format=tarfile.USTAR_FORMAT) + body + pad

    records = pax_record("uid", "123456789") + pax_record("comment", "abcd")
    glob = tarfile.TarInfo("pax_global_header")
    glob.type, glob.size = tarfile.XGLTYPE, len(records)
    a, b = tarfile.TarInfo("a"), tarfile.TarInfo("b")
    local = pax_record("uid", "42")
    pax = tarfile.TarInfo("PaxHeaders/b")
    pax.type, pax.size = tarfile.XHDTYPE, len(local)
    data = member(glob, records) + member(a) + member(pax, local) + member(b) + bytes(1024)
    assert [(e.name, e.uid) for e, _ in read_all(data)] == [("a", 123456789), ("b", 42)]


def test_unread_content_is_skipped_and_stale_readers_refuse() -> None:
    out = io.BytesIO()
    with TarWriter(out) as w:
        w.add_bytes("one", b"1" * 5000)
        w.add_bytes("two", b"2" * 3)
    entries = iter_tar(io.BytesIO(out.getvalue()))
    first, reader = next(entries)
    assert reader.read(10) == b"1" * 10
    second, reader2 = next(entries)
    assert (second.name, reader2.read()) == ("two", b"222")
    with pytest.raises(ValueError, match="closed"):
        reader.read()


# --- broken input ----------------------------------------------------------------------------------


def small_tar() -> bytes:
    out = io.BytesIO()
    with TarWriter(out) as w:
        w.add_bytes("a/" + "x" * 200, b"content" * 200)  # a PAX header, then 1400 bytes
        w.add_bytes("b", b"b")
    return out.getvalue()


@pytest.mark.parametrize("cut", [100, 512, 700, 1024 + 100, 1536 + 1000, 3072 + 10])
def test_truncated_tar_is_invalid(cut: int) -> None:
    with pytest.raises(Invalid, match="layer tar truncated"):
        read_all(small_tar()[:cut])


def test_missing_end_blocks_are_tolerated_as_go_does() -> None:
    data = small_tar()
    assert [e.name for e, _ in read_all(data[:-1024])] == ["a/" + "x" * 200, "b"]


def test_bad_checksum_is_invalid() -> None:
    data = bytearray(small_tar())
    second = len(data) - 2048  # header, one content block, two end blocks
    assert data[second : second + 2] == b"b\0"
    data[second] ^= 1
    with pytest.raises(Invalid, match=f"bad header checksum at byte {second}"):
        read_all(bytes(data))


def test_compressed_input_gets_a_hint() -> None:
    gz = io.BytesIO()
    w = open_writer(gz, "gzip")
    w.write(small_tar())
    w.close()
    with pytest.raises(Invalid, match="compressed"):
        read_all(gz.getvalue())
    with pytest.raises(Invalid, match="compressed"):
        read_all(gz.getvalue() + os.urandom(1000))


def test_garbage_numbers_and_pax_records_are_invalid() -> None:
    info = tarfile.TarInfo("f")
    block = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    block[124:136] = b"12345678x90\0"  # size
    block[148:156] = b"%06o\0 " % (sum(block[:148]) + 256 + sum(block[156:]))
    with pytest.raises(Invalid, match="bad size field"):
        read_all(bytes(block) + bytes(1024))
    pax = tarfile.TarInfo("PaxHeaders/f")
    pax.type, pax.size = tarfile.XHDTYPE, 12
    data = pax.tobuf(format=tarfile.USTAR_FORMAT) + b"99 path=f\n\0\0".ljust(512, b"\0") + bytes(1024)
    with pytest.raises(Invalid, match="bad PAX record"):
        read_all(data)


class _ReadOnly:
    """A source with read() alone, in small uneven pieces, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def read(self, n: int = -1, /) -> bytes:
        return self._src.read(min(n, 70_001) if n >= 0 else 70_001)


@pytest.mark.parametrize("source", ["bytesio", "read-only", "gzip"])
def test_large_members_read_whole_or_into_buffers(source: str) -> None:
    big, odd = os.urandom(3 << 20), os.urandom(1_000_003)
    out = io.BytesIO()
    with TarWriter(out) as w:
        w.add_bytes("small", b"s" * 700)
        w.add_bytes("big", big)
        w.add_bytes("odd", odd)
    data = out.getvalue()
    if source == "gzip":
        gz = io.BytesIO()
        writer = open_writer(gz, "gzip")
        writer.write(data)
        writer.close()
        src: Any = open_reader(io.BytesIO(gz.getvalue()))
    else:
        src = io.BytesIO(data) if source == "bytesio" else _ReadOnly(data)
    got = {}
    for entry, reader in iter_tar(src):
        if entry.name == "odd":
            got[entry.name] = reader.read()
            continue
        buf = bytearray(1 << 20)
        parts = []
        while n := reader.readinto(buf):  # type: ignore[attr-defined]
            parts.append(bytes(buf[:n]))
        got[entry.name] = b"".join(parts)
    assert got == {"small": b"s" * 700, "big": big, "odd": odd}
