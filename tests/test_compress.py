"""imagefmt.compress: detection, streaming round trips, pipes, and the CLI tools' output."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from imagefmt.compress import COMPRESSIONS, detect, open_reader, open_writer
from imagefmt.digest import HashingWriter
from imagefmt.errors import Unsupported

DATA = os.urandom(300_000) + b"tar" * 400_000  # some incompressible, some not

CLI = {"gzip": ["gzip", "-c"], "zstd": ["zstd", "-q", "-c"], "bzip2": ["bzip2", "-c"], "xz": ["xz", "-c"]}


def compress(data: bytes, compression: str, level: int = 1) -> bytes:
    out = io.BytesIO()
    w = open_writer(out, compression, level)
    for i in range(0, len(data), 100_000):
        w.write(data[i : i + 100_000])
    w.close()
    assert not out.closed, "close() must not close dst"
    return out.getvalue()


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd"),
        (b"\x50\x2a\x4d\x18\x00\x00", "zstd"),  # a skippable frame first
        (b"BZh91AY", "bzip2"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"etc/passwd\x00", "none"),
        (b"", "none"),
    ],
)
def test_detect(head: bytes, name: str) -> None:
    assert detect(head) == name


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_round_trip_detected_and_named(compression: str) -> None:
    blob = compress(DATA, compression)
    assert detect(blob[:6]) == compression
    assert open_reader(io.BytesIO(blob)).read() == DATA
    assert open_reader(io.BytesIO(blob), compression).read() == DATA


@pytest.mark.parametrize("compression", ["gzip", "zstd", "bzip2", "xz"])
def test_reads_what_the_cli_tools_write_through_a_pipe(tmp_path: Path, compression: str) -> None:
    if shutil.which(CLI[compression][0]) is None:
        pytest.skip(f"{CLI[compression][0]} is not installed")
    src = tmp_path / "data"
    src.write_bytes(DATA)
    with subprocess.Popen([*CLI[compression], str(src)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        reader = open_reader(proc.stdout)  # a pipe: no seek, no peek
        got = b"".join(iter(lambda: reader.read(65536), b""))
    assert proc.returncode == 0
    assert got == DATA


def test_cli_tools_read_what_we_write(tmp_path: Path) -> None:
    for compression in ("gzip", "zstd"):
        blob = tmp_path / f"blob.{compression}"
        blob.write_bytes(compress(DATA, compression))
        out = subprocess.run([*CLI[compression][:-1], "-d", "-c", str(blob)], capture_output=True, check=True)
        assert out.stdout == DATA


def test_multi_member_gzip_and_multi_frame_zstd() -> None:
    parts = [b"first " * 1000, b"second " * 1000]
    assert open_reader(io.BytesIO(b"".join(gzip.compress(p) for p in parts))).read() == b"".join(parts)
    assert open_reader(io.BytesIO(b"".join(compress(p, "zstd") for p in parts))).read() == b"".join(parts)


def test_gzip_output_is_deterministic() -> None:
    one, two = compress(DATA, "gzip"), compress(DATA, "gzip")
    assert one == two
    assert one[4:8] == b"\0\0\0\0", "mtime must be 0"
    assert one[3] & 0x08 == 0, "no file name"


def test_none_writer_passes_through_and_keeps_dst_open() -> None:
    out = io.BytesIO()
    w = open_writer(out, "none")
    w.write(b"abc")
    w.close()
    assert out.getvalue() == b"abc" and not out.closed


def test_reader_does_not_close_its_source() -> None:
    src = io.BytesIO(compress(DATA, "gzip"))
    reader = open_reader(src)
    reader.read()
    reader.close()
    assert not src.closed


def test_writer_into_a_hashing_writer() -> None:
    out = io.BytesIO()
    hashed = HashingWriter(out)
    w = open_writer(hashed, "zstd", level=3)
    w.write(DATA)
    w.close()
    assert hashed.size == len(out.getvalue())
    assert str(hashed.digest()) == "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()


def test_levels_are_clamped_to_the_codec_range() -> None:
    assert open_reader(io.BytesIO(compress(DATA, "gzip", level=9))).read() == DATA
    assert open_reader(io.BytesIO(compress(DATA, "zstd", level=99))).read() == DATA


def test_unknown_compression_is_unsupported() -> None:
    with pytest.raises(Unsupported, match="lz4"):
        open_writer(io.BytesIO(), "lz4")
    with pytest.raises(Unsupported, match="lz4"):
        open_reader(io.BytesIO(b""), "lz4")
