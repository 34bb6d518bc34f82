"""imagefmt.layer: directory diffs to tars and back, whiteouts both ways, a real overlayfs, hostile tars."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefmt.compress import open_reader
from imagefmt.digest import HashingReader, HashingWriter
from imagefmt.errors import Invalid, UnsafeLayer, Unsupported
from imagefmt.layer import ExtractStats, extract_layer, write_layer
from imagefmt.tario import TarEntry, TarWriter, iter_tar
from tests.trees import IS_ROOT, LONG_150, LONG_DIRS, make_tree, snapshot

needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="needs root: chown, mknod, trusted.* xattrs, overlay mounts"
)
GNU_X = ["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"]


def tar_of(*members: TarEntry | tuple[TarEntry, bytes]) -> bytes:
    out = io.BytesIO()
    with TarWriter(out) as w:
        for m in members:
            entry, body = m if isinstance(m, tuple) else (m, b"")
            if entry.type == "file" and entry.size != len(body):
                entry = dataclasses.replace(entry, size=len(body))
            w.add_entry(entry, io.BytesIO(body))
    return out.getvalue()


def F(name: str, body: bytes = b"x", **kw: object) -> tuple[TarEntry, bytes]:  # noqa: N802
    return TarEntry(name, "file", size=len(body), **kw), body  # type: ignore[arg-type]


def D(name: str, **kw: object) -> TarEntry:  # noqa: N802
    return TarEntry(name, "dir", **{"mode": 0o755, **kw})  # type: ignore[arg-type]


def L(name: str, target: str) -> TarEntry:  # noqa: N802
    return TarEntry(name, "symlink", mode=0o777, linkname=target)


def H(name: str, target: str) -> TarEntry:  # noqa: N802
    return TarEntry(name, "hardlink", linkname=target)


def extract(data: bytes, target: Path, mode: str = "overlay") -> ExtractStats:
    return extract_layer(io.BytesIO(data), target, mode=mode)


def layer_names(data: bytes) -> list[str]:
    return [e.name + ("/" if e.type == "dir" else "") for e, _ in iter_tar(io.BytesIO(data))]


# --- write_layer -----------------------------------------------------------------------------------


def test_write_layer_is_extracted_identically_by_gnu_tar(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    out = io.BytesIO()
    count = write_layer(src, out)
    names = layer_names(out.getvalue())
    assert count == len(names) == len(snapshot(src))
    assert names[:4] == ["abs-link", "bin/", "bin/big", "bin/passwd-hardlink"]  # depth first, sorted
    assert "etc/" in names and not any(n.startswith(("./", "/")) for n in names)
    (tmp_path / "layer.tar").write_bytes(out.getvalue())
    (tmp_path / "dst").mkdir()
    subprocess.run([*GNU_X, tmp_path / "layer.tar", "-C", tmp_path / "dst"], check=True)
    assert snapshot(tmp_path / "dst") == snapshot(src)


def test_write_layer_skip_leaves_out_entries_and_subtrees(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", devices=False)
    out = io.BytesIO()
    write_layer(src, out, skip=lambda name: name in ("etc", "bin/big") or name.startswith("deep"))
    names = layer_names(out.getvalue())
    assert not any(n.startswith(("etc", "deep")) for n in names) and "bin/big" not in names
    assert "bin/sh" in names and "bin/passwd-hardlink" in names


def test_write_layer_with_mtime_clamp_is_byte_identical(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", devices=False)
    first, second = HashingWriter(io.BytesIO()), HashingWriter(io.BytesIO())
    write_layer(src, first, mtime_clamp=1_500_000_000)
    for p in src.rglob("*"):
        os.utime(p, follow_symlinks=False)
    write_layer(src, second, mtime_clamp=1_500_000_000)
    assert first.digest() == second.digest() and first.size == second.size


@needs_root
def test_write_layer_never_writes_overlay_xattrs(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    os.setxattr(tmp_path / "f", "trusted.overlay.origin", b"\0\xfb")
    os.setxattr(tmp_path / "f", "user.kept", b"1")
    out = io.BytesIO()
    write_layer(tmp_path, out)
    [(entry, _)] = iter_tar(io.BytesIO(out.getvalue()))
    assert entry.xattrs == {"user.kept": b"1"}


@needs_root
def test_overlay_whiteouts_from_a_hand_made_upperdir(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "opq").mkdir(parents=True)
    (upper / "opq/child").write_text("new")
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    os.chmod(upper / "opq", 0o750)
    os.mknod(upper / "gone", stat.S_IFCHR, 0)
    os.chown(upper / "gone", 5, 6)
    os.mknod(upper / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a real device stays one
    out = io.BytesIO()
    assert write_layer(upper, out, overlay_whiteouts=True) == 5
    entries = [e for e, _ in iter_tar(io.BytesIO(out.getvalue()))]
    assert [(e.name, e.type) for e in entries] == [
        (".wh.gone", "file"),
        ("null", "char"),
        ("opq", "dir"),
        ("opq/.wh..wh..opq", "file"),
        ("opq/child", "file"),
    ]
    assert (entries[0].mode, entries[0].uid, entries[0].gid, entries[0].size) == (0o600, 5, 6, 0)
    assert entries[2].xattrs == {} and entries[3].mode == 0o750


@needs_root
def test_an_upperdir_with_metacopy_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    os.setxattr(tmp_path / "f", "trusted.overlay.metacopy", b"")
    with pytest.raises(Unsupported, match="metacopy=off"):
        write_layer(tmp_path, io.BytesIO(), overlay_whiteouts=True)


# --- extract_layer: round trips and semantics ------------------------------------------------------


@pytest.mark.parametrize("mode", ["overlay", "apply"])
def test_extract_reproduces_the_tree(tmp_path: Path, resolver: str, mode: str) -> None:
    src = make_tree(tmp_path / "src")
    out = io.BytesIO()
    write_layer(src, out)
    stats = extract(out.getvalue(), tmp_path / "dst", mode)
    assert snapshot(tmp_path / "dst") == snapshot(src)
    assert stats.entries == len(snapshot(src))
    entries = [e for e, _ in iter_tar(io.BytesIO(out.getvalue()))]
    link_bytes = sum(len(e.linkname.encode()) for e in entries if e.type == "symlink")
    assert stats.bytes == sum(e.size for e in entries) + link_bytes  # docker's st_size sum


def test_extract_gnu_tar_output_with_a_root_entry(tmp_path: Path, resolver: str) -> None:
    src = make_tree(tmp_path / "src")
    os.chmod(src, 0o705)
    tar = tmp_path / "gnu.tar"
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "-cf", tar, "-C", src, "."], check=True)
    with open(tar, "rb") as f:
        extract_layer(f, tmp_path / "dst")
    assert snapshot(tmp_path / "dst") == snapshot(src)
    assert stat.S_IMODE((tmp_path / "dst").stat().st_mode) == 0o705


def test_extract_reads_the_source_to_its_end(tmp_path: Path) -> None:
    data = tar_of(F("a")) + bytes(8192)  # GNU tar pads to a 10 KiB record
    src = HashingReader(io.BytesIO(data))
    extract_layer(src, tmp_path / "dst")
    assert src.size == len(data)


def test_entries_replace_what_is_there_but_dir_over_dir_merges(tmp_path: Path, resolver: str) -> None:
    lower = tar_of(F("f"), D("d"), F("d/child"), L("s", "f"), D("dd"), F("dd/kept"), L("l", "dd"))
    upper = tar_of(D("f"), F("d", b"now a file"), F("s", b"not a link"), D("dd", mode=0o700), F("l/x"))
    extract(lower, tmp_path / "t", "apply")
    extract(upper, tmp_path / "t", "apply")
    t = tmp_path / "t"
    assert (t / "f").is_dir() and (t / "d").read_bytes() == b"now a file"
    assert not (t / "s").is_symlink() and (t / "s").read_bytes() == b"not a link"
    assert (t / "dd/kept").exists() and stat.S_IMODE((t / "dd").stat().st_mode) == 0o700
    assert (t / "dd/x").exists(), "a path through a symlink in the target follows it inside the target"


def test_directory_mtimes_are_set_after_their_children(tmp_path: Path) -> None:
    data = tar_of(D("a", mtime=1_000_000), D("a/b", mtime=2_000_000), F("a/b/f", mtime=3), F("a/g"))
    extract(data, tmp_path / "t")
    assert (tmp_path / "t/a").stat().st_mtime == 1_000_000
    assert (tmp_path / "t/a/b").stat().st_mtime == 2_000_000


def test_missing_parents_are_created(tmp_path: Path) -> None:
    extract(tar_of(F("x/y/z", b"deep")), tmp_path / "t")
    assert (tmp_path / "t/x/y/z").read_bytes() == b"deep"
    assert stat.S_IMODE((tmp_path / "t/x/y").stat().st_mode) == 0o755


def test_hardlinks_within_the_layer_and_to_lower_layers(tmp_path: Path, resolver: str) -> None:
    t = tmp_path / "t"
    extract(tar_of(F("lower", b"L")), t, "apply")
    extract(tar_of(F("a/file", b"A"), H("a/same", "a/file"), H("to-lower", "/lower")), t, "apply")
    assert (t / "a/same").stat().st_ino == (t / "a/file").stat().st_ino
    assert (t / "to-lower").stat().st_ino == (t / "lower").stat().st_ino
    with pytest.raises(Invalid, match="does not exist"):
        extract(tar_of(H("dangling", "nowhere")), t, "apply")
    with pytest.raises(Invalid, match="hardlink to a directory"):
        extract(tar_of(H("dirlink", "a")), t, "apply")


def test_truncated_and_corrupt_layers_are_invalid(tmp_path: Path) -> None:
    data = tar_of(F("a", b"x" * 5000), F("b"))
    with pytest.raises(Invalid, match="layer tar truncated"):
        extract(data[:3000], tmp_path / "t1")
    broken = bytearray(data)
    broken[10] ^= 0x40
    with pytest.raises(Invalid, match="bad header checksum"):
        extract(bytes(broken), tmp_path / "t2")


def test_unknown_mode_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="unknown mode"):
        extract(tar_of(F("a")), tmp_path / "t", "flatten")


# --- whiteouts ---------------------------------------------------------------------------------------


@needs_root
def test_overlay_mode_makes_overlayfs_whiteouts(tmp_path: Path, resolver: str) -> None:
    data = tar_of(
        F(".wh.gone"), D("d"), F("d/new"), F("d/.wh..wh..opq"), F("home/.wh..bashrc"), F("x/.wh..wh..opq")
    )
    t = tmp_path / "t"
    stats = extract(data, t)
    assert stats.entries == 6
    for path in (t / "gone", t / "home/.bashrc"):
        st = os.lstat(path)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(t / "d", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(t / "x", "trusted.overlay.opaque") == b"y", "the opaque dir is created if missing"
    assert (t / "d/new").exists()
    assert not list(t.rglob(".wh.*"))


def test_apply_mode_deletes_and_hides_lower_content(tmp_path: Path, resolver: str) -> None:
    t = tmp_path / "t"
    lower = tar_of(
        F("a"), D("dir"), F("dir/x"), F("dir/sub/y"), D("keep"), F("keep/k"), F("home/.bashrc"),
        F("opq/old"), F("opq/olddir/z"), D("opq/reused"), F("opq/reused/lower"),
        F("opq2/old2"), F("dir2/lower2"),
    )  # fmt: skip
    extract(lower, t, "apply")
    layer = tar_of(
        F(".wh.a"), F(".wh.dir"), F("home/.wh..bashrc"), F(".wh.nonexistent"), F("keep/.wh.missing"),
        F("nodir/.wh.x"),
        D("opq"), F("opq/new"), D("opq/reused"), F("opq/reused/mine"),
        F("opq/.wh..wh..opq"),  # after the layer's own children: they must survive
        F("opq2/.wh..wh..opq"), F("opq2/new2"),  # before them
        F("fresh"), F(".wh.fresh"),  # a whiteout never hides its own layer's entries
        D("dir2"), F("dir2/mine2"), F(".wh.dir2"),
    )  # fmt: skip
    extract(layer, t, "apply")
    left = sorted(str(p.relative_to(t)) for p in t.rglob("*"))
    assert left == [
        "dir2", "dir2/mine2", "fresh", "home", "keep", "keep/k",
        "opq", "opq/new", "opq/reused", "opq/reused/mine", "opq2", "opq2/new2",
    ]  # fmt: skip
    assert not (t / "nodir").exists(), "a whiteout creates nothing"


@pytest.mark.parametrize("name", [".wh.", "d/.wh.", ".wh..", ".wh...", ".wh..wh.plnk", "d/.wh..wh.aufs"])
@pytest.mark.parametrize("mode", ["overlay", "apply"])
def test_reserved_whiteout_names_are_refused(tmp_path: Path, name: str, mode: str) -> None:
    with pytest.raises(UnsafeLayer, match="invalid whiteout name"):
        extract(tar_of(D("d"), F(name)), tmp_path / "t", mode)


# --- hostile layers ----------------------------------------------------------------------------------


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(target, sentinel): target is tmp/box/in/target; nothing outside it may change."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_text("untouched")
    target = tmp_path / "box/in/target"
    target.mkdir(parents=True)
    before = _outside(tmp_path, target)
    yield target, sentinel
    assert _outside(tmp_path, target) == before, "something outside the target changed"


def _outside(root: Path, target: Path) -> dict[str, tuple[int, int, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p == target or target in p.parents:
            continue
        st = p.lstat()
        body = p.read_bytes() if stat.S_ISREG(st.st_mode) else b""
        out[str(p)] = (st.st_mode, st.st_nlink if not p.is_dir() else 0, body)
    return out


@pytest.mark.parametrize("mode", ["overlay", "apply"])
@pytest.mark.parametrize("name", ["../../x", "a/../../x", "../in/target/../../x", "./../x"])
def test_dotdot_escapes_are_refused(box: tuple[Path, Path], resolver: str, mode: str, name: str) -> None:
    target, _ = box
    with pytest.raises(UnsafeLayer, match="path escapes the layer root"):
        extract(tar_of(F(name)), target, mode)


def test_dotdot_that_stays_inside_is_cleaned(box: tuple[Path, Path], resolver: str) -> None:
    target, _ = box
    extract(tar_of(F("a/b/../c")), target)
    assert (target / "a/c").exists() and not (target / "a/b").exists()


def test_absolute_names_are_contained(box: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = box
    extract(tar_of(F(f"{sentinel}/secret", b"pwned"), F("/etc-dockyard-test")), target)
    assert (target / str(sentinel).lstrip("/") / "secret").read_bytes() == b"pwned"
    assert (target / "etc-dockyard-test").exists() and not Path("/etc-dockyard-test").exists()


@pytest.mark.parametrize("mode", ["overlay", "apply"])
def test_symlink_to_an_outside_dir_is_followed_inside_the_target(
    box: tuple[Path, Path], resolver: str, mode: str
) -> None:
    target, sentinel = box
    # the target lacks the link's destination: refused as a dangling parent
    with pytest.raises(Invalid, match="dangling symlink"):
        extract(tar_of(L("evil", str(sentinel)), F("evil/secret", b"pwned")), target, mode)
    # once the destination exists inside the target, the write lands there
    shutil.rmtree(target)
    data = tar_of(D(str(sentinel)), L("evil", str(sentinel)), F("evil/secret", b"pwned"))
    extract(data, target, mode)
    assert (target / str(sentinel).lstrip("/") / "secret").read_bytes() == b"pwned"


@pytest.mark.parametrize("link", ["../..", "../../..", "../../../../../../../..", "/", "/.."])
def test_symlinks_climbing_out_stop_at_the_target_root(
    box: tuple[Path, Path], resolver: str, link: str
) -> None:
    target, _ = box
    extract(tar_of(L("a", link), F("a/x", b"here"), D("d"), L("d/up", "../" + link), F("d/up/y")), target)
    assert (target / "x").read_bytes() == b"here" and (target / "y").exists()


def test_chains_of_relative_and_absolute_links_stay_inside(box: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = box
    up = "../" * 12
    data = tar_of(
        D("real"), D("d"), L("one", up + "two"), L("two", "/d/../" + up + "real"), F("one/file", b"in"),
    )  # fmt: skip
    extract(data, target)
    assert (target / "real/file").read_bytes() == b"in"


def test_symlink_loops_are_invalid(box: tuple[Path, Path], resolver: str) -> None:
    target, _ = box
    with pytest.raises(Invalid, match="symbolic links"):
        extract(tar_of(L("a", "b"), L("b", "a"), F("a/x")), target)


def test_a_file_over_a_symlink_replaces_the_link(box: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = box
    extract(tar_of(L("s", f"{sentinel}/secret"), F("s", b"pwned")), target)
    assert not (target / "s").is_symlink() and (target / "s").read_bytes() == b"pwned"


@needs_root
def test_attributes_never_follow_a_final_symlink(box: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = box
    xattrs = {"user.x": b"1", "trusted.x": b"2"}  # user.* cannot be set on a symlink: skipped
    link = TarEntry("s", "symlink", 0o777, 1234, 1234, linkname=f"{sentinel}/secret", xattrs=xattrs)
    extract(tar_of(link, L("d", str(sentinel)), D("d", uid=99)), target)
    assert os.lstat(target / "s").st_uid == 1234
    assert os.getxattr(target / "s", "trusted.x", follow_symlinks=False) == b"2"
    assert (target / "d").is_dir() and not (target / "d").is_symlink()


@pytest.mark.parametrize(
    ("link", "error"),
    [
        ("../../../sentinel/secret", "path escapes the layer root"),
        ("/etc/passwd", "does not exist"),  # contained: the target has no etc/passwd
        ("SENTINEL/secret", "does not exist"),  # absolute path of the sentinel, contained
        ("evil/secret", "does not exist"),  # through a symlink, resolved inside
        ("", "hardlink to the layer root"),
    ],
)
@pytest.mark.parametrize("mode", ["overlay", "apply"])
def test_hardlinks_cannot_reach_outside(
    box: tuple[Path, Path], resolver: str, mode: str, link: str, error: str
) -> None:
    target, sentinel = box
    link = link.replace("SENTINEL", str(sentinel))
    with pytest.raises((UnsafeLayer, Invalid), match=error):
        extract(tar_of(L("evil", str(sentinel)), H("h", link)), target, mode)
    assert not (target / "h").exists()


def test_whiteouts_through_symlinks_stay_inside(box: tuple[Path, Path], resolver: str) -> None:
    target, sentinel = box
    extract(tar_of(L("evil", str(sentinel)), L("up", "../../..")), target, "apply")
    extract(tar_of(F("evil/.wh.secret"), F("up/sentinel/.wh.secret"), F("up/.wh.sentinel")), target, "apply")
    with pytest.raises(Invalid):
        extract(tar_of(F("evil/.wh..wh..opq")), target, "apply")
    assert (target / "evil").is_symlink()


@pytest.mark.parametrize("entry", [F(".", b"x")[0], L("/", "/etc"), TarEntry("./", "fifo")])
def test_the_root_cannot_be_replaced(box: tuple[Path, Path], entry: TarEntry) -> None:
    target, _ = box
    with pytest.raises(UnsafeLayer, match="refusing to replace the layer root"):
        extract(tar_of(entry), target)


# --- a real overlayfs --------------------------------------------------------------------------------


def _mount_overlay(lower: str, merged: Path, upper: Path | None = None, work: Path | None = None) -> None:
    opts = f"lowerdir={lower}"
    if upper is not None:
        opts += f",upperdir={upper},workdir={work},metacopy=off,redirect_dir=off,index=off"
    merged.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, merged], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {done.stderr.strip()}")


@needs_root
def test_overlay_round_trip(tmp_path: Path, resolver: str) -> None:
    base = tmp_path / "base"
    for path, body in {
        "etc/passwd": "root\n", "etc/group": "root\n", "var/log/old.log": "old\n", "opt/app/a": "a\n",
        "opt/app/b": "b\n", "home/.bashrc": "rc\n", "srv/keep": "keep\n",
    }.items():  # fmt: skip
        (base / path).parent.mkdir(parents=True, exist_ok=True)
        (base / path).write_text(body)
    layer1 = io.BytesIO()
    write_layer(base, layer1)
    snap1, upper, work, merged = (tmp_path / n for n in ("snap1", "upper", "work", "merged"))
    extract(layer1.getvalue(), snap1)
    upper.mkdir()
    work.mkdir()
    _mount_overlay(str(snap1), merged, upper, work)
    try:
        (merged / "etc/group").unlink()
        shutil.rmtree(merged / "var/log")
        shutil.rmtree(merged / "opt/app")
        (merged / "opt/app").mkdir()
        (merged / "opt/app/c").write_text("c\n")
        (merged / "home/.bashrc").unlink()
        (merged / "etc/passwd").write_text("root\nuser\n")
        (merged / "etc/new").write_text("new\n")
        expected = snapshot(merged, xattrs=False)
    finally:
        subprocess.run(["umount", merged], check=True)

    layer2 = io.BytesIO()
    write_layer(upper, layer2, overlay_whiteouts=True)
    entries = {e.name: e for e, _ in iter_tar(io.BytesIO(layer2.getvalue()))}
    names = layer_names(layer2.getvalue())
    assert {"etc/.wh.group", "var/.wh.log", "home/.wh..bashrc", "opt/app/.wh..wh..opq"} <= set(entries)
    assert names.index("opt/app/.wh..wh..opq") == names.index("opt/app/") + 1
    for name in ("etc/.wh.group", "var/.wh.log", "home/.wh..bashrc"):
        assert (entries[name].type, entries[name].mode, entries[name].size) == ("file", 0o600, 0)
    assert not any(k.startswith("trusted.overlay.") for e in entries.values() for k in e.xattrs)
    assert "srv/keep" not in entries and "srv" not in entries

    snap2 = tmp_path / "snap2"
    extract(layer2.getvalue(), snap2)
    _mount_overlay(f"{snap2}:{snap1}", merged)
    try:
        assert snapshot(merged, xattrs=False) == expected
    finally:
        subprocess.run(["umount", merged], check=True)

    flat = tmp_path / "flat"
    extract(layer1.getvalue(), flat, "apply")
    extract(layer2.getvalue(), flat, "apply")
    assert snapshot(flat, xattrs=False) == expected


def test_long_names_survive_extraction(tmp_path: Path) -> None:
    data = tar_of(F(f"{LONG_DIRS}/{LONG_150}", b"long"), L(LONG_150, LONG_DIRS))
    extract(data, tmp_path / "t")
    assert (tmp_path / "t" / LONG_DIRS / LONG_150).read_bytes() == b"long"
    assert os.readlink(tmp_path / "t" / LONG_150) == LONG_DIRS


def test_extract_large_files_from_a_compressed_pipe(tmp_path: Path) -> None:
    big = os.urandom(5 << 20)
    (tmp_path / "layer.tar").write_bytes(tar_of(F("big", big), F("after", b"a")))
    with subprocess.Popen(["gzip", "-1", "-c", tmp_path / "layer.tar"], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        stats = extract_layer(open_reader(proc.stdout), tmp_path / "t")
    assert (tmp_path / "t/big").read_bytes() == big and (tmp_path / "t/after").read_bytes() == b"a"
    assert stats.bytes == len(big) + 1


# --- what Docker writes ------------------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures/layers"
DOCKER_LONG = "d" * 60 + "/" + "e" * 60 + "/" + "f" * 150


def test_docker_layers_read_as_tarfile_reads_them() -> None:
    for name in ("docker-copy.tar", "docker-run.tar"):
        data = (FIXTURES / name).read_bytes()
        ours = [(e.name, e.type, e.mode, e.size, e.linkname) for e, _ in iter_tar(io.BytesIO(data))]
        kinds = {b"0": "file", b"1": "hardlink", b"2": "symlink", b"5": "dir"}
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            theirs = [(m.name, kinds[m.type], m.mode & 0o7777, m.size, m.linkname) for m in tf]
        assert ours == theirs
    run = [e for e, _ in iter_tar(io.BytesIO((FIXTURES / "docker-run.tar").read_bytes()))]
    assert [e.name for e in run if ".wh." in e.name] == [
        "etc/.wh.group",
        "home/.wh..bashrc",
        "opt/app/.wh..wh..opq",
    ]


def test_docker_layers_applied_and_stacked(tmp_path: Path, resolver: str) -> None:
    flat = tmp_path / "flat"
    for name in ("docker-copy.tar", "docker-run.tar"):
        with open(FIXTURES / name, "rb") as f:
            extract_layer(f, flat, mode="apply")
    files = sorted(str(p.relative_to(flat)) for p in flat.rglob("*") if not p.is_dir())
    assert files == sorted(
        [DOCKER_LONG, "caf\u00e9.txt", "etc/new", "etc/passwd", "opt/app/c", "opt/passwd-link", "opt/suid"]
    )
    assert (flat / "etc/passwd").read_text() == "root:x:0:0::/root:/bin/sh\nmore\n"
    assert stat.S_IMODE((flat / "opt/suid").stat().st_mode) == 0o755  # Docker's COPY chown cleared setuid
    assert stat.S_IMODE((flat / "srv/empty").stat().st_mode) == 0o1777
    if not IS_ROOT:
        return
    snaps = [tmp_path / "copy", tmp_path / "run"]
    for snap, name in zip(snaps, ("docker-copy.tar", "docker-run.tar"), strict=True):
        with open(FIXTURES / name, "rb") as f:
            extract_layer(f, snap)
    _mount_overlay(f"{snaps[1]}:{snaps[0]}", tmp_path / "merged")
    try:
        assert snapshot(tmp_path / "merged", xattrs=False) == snapshot(flat, xattrs=False)
    finally:
        subprocess.run(["umount", tmp_path / "merged"], check=True)


def test_write_layer_rewrites_a_docker_layer_entry_for_entry(tmp_path: Path) -> None:
    data = (FIXTURES / "docker-copy.tar").read_bytes()
    extract(data, tmp_path / "t")
    out = io.BytesIO()
    write_layer(tmp_path / "t", out)

    def entries(raw: bytes) -> list[tuple[object, ...]]:
        return [
            (e.name, e.type, e.mode, e.uid, e.gid, e.size, e.mtime, e.linkname)
            for e, _ in iter_tar(io.BytesIO(raw))
        ]

    assert entries(out.getvalue()) == entries(data)


def test_a_directory_replaced_later_in_the_layer_keeps_the_new_entry_mtime(tmp_path: Path) -> None:
    data = tar_of(D("x", mtime=1_000_000), F("x", b"file now", mtime=2_000_000), D("y", mtime=5), L("y", "x"))
    extract(data, tmp_path / "t")
    assert (tmp_path / "t/x").stat().st_mtime == 2_000_000
    assert (tmp_path / "t/y").is_symlink() and os.lstat(tmp_path / "t/y").st_mtime == 0


@needs_root
def test_overlay_and_apply_modes_agree_on_awkward_orders(tmp_path: Path) -> None:
    """Whatever the order of whiteouts and the layer's own entries, stacking overlay
    snapshots shows what applying the layers gives (whiteouts hide lower layers only)."""
    lower = tar_of(F("foo/old"), F("bar/old"), F("f", b"lower"), D("g"), F("g/x"), F("h/x"), F("keep/k"))
    upper = tar_of(
        F(".wh.foo"), D("foo"), F("foo/new"),  # whiteout, then a new directory of the same name
        D("bar"), F("bar/mine"), F(".wh.bar"),  # this layer's directory, then its whiteout
        F("f", b"upper"), F(".wh.f"),  # this layer's file, then its whiteout
        F(".wh.g"), F("g", b"now a file"),
        D("h"), F("h/y"), F("h/.wh..wh..opq"),
        F("keep/.wh.k"),
    )  # fmt: skip
    flat = tmp_path / "flat"
    extract(lower, flat, "apply")
    extract(upper, flat, "apply")
    assert sorted(str(p.relative_to(flat)) for p in flat.rglob("*")) == [
        "bar", "bar/mine", "f", "foo", "foo/new", "g", "h", "h/y", "keep",
    ]  # fmt: skip
    assert (flat / "f").read_bytes() == b"upper"
    snaps = [tmp_path / "lower", tmp_path / "upper"]
    extract(lower, snaps[0])
    extract(upper, snaps[1])
    merged = tmp_path / "merged"
    _mount_overlay(f"{snaps[1]}:{snaps[0]}", merged)
    try:
        assert snapshot(merged, xattrs=False, mtimes=False) == snapshot(flat, xattrs=False, mtimes=False)
    finally:
        subprocess.run(["umount", merged], check=True)
