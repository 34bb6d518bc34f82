"""The store after a crash and on a full disk, for real: dockyard processes killed
with SIGKILL in the middle of load, import, pull and build; failed imports, loads
and pulls; and a small tmpfs as the store's filesystem, filled by a gzip bomb, a
load and a pull."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagefmt.catalog import tree_size
from support.peers import Server
from tests import client_fixtures as cf
from tests.conftest import REPO, Dockyard, add_busybox_image, need_root
from tests.helpers import file_entry, oci_archive, store_state, symlink_entry, tar_bytes
from tests.oci_images import random_files, write_layout
from tests.oci_images import tar_bytes as files_tar

docker_config = cf.docker_config


def spawn(root: Path, *args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """A real ``dockyard`` process on ``root``."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "--root", str(root), *args],
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def cli(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """``dockyard ARGS`` in a new process (whose first store open reclaims dead temp state)."""
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "--root", str(root), *args],
        input=stdin,
        capture_output=True,
        timeout=300,
    )


def temp_state(root: Path) -> dict[str, int]:
    """The store's temp files and trees (``tmp/*``, ``snapshots/tmp-*``) with their sizes."""
    out: dict[str, int] = {}
    candidates = list((root / "tmp").iterdir()) if (root / "tmp").exists() else []
    if (root / "snapshots").exists():
        candidates += [p for p in (root / "snapshots").iterdir() if p.name.startswith("tmp-")]
    for p in candidates:
        try:
            out[str(p.relative_to(root))] = tree_size(p) if p.is_dir() else p.stat().st_size
        except FileNotFoundError:
            continue  # renamed into place or removed while we looked: the process runs on
    return out


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 120) -> None:
    """SIGKILL ``proc`` as soon as ``ready()``; fail if it ended first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"dockyard ended ({proc.returncode}) before it could be killed: {err}")
        assert time.monotonic() < deadline, "dockyard never reached the point to kill it at"
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    if proc.stderr:
        proc.stderr.close()


def big_tar(size: int, name: str = "big.bin") -> tuple[bytes, bytes]:
    """A tar header for one file of ``size`` bytes, and the tar's end (to stream the middle)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    pad = b"\0" * (-size % 512)
    return info.tobuf(format=tarfile.PAX_FORMAT), pad + b"\0" * 1024


# --------------------------------------------------------------- killed ---


def test_a_killed_import_leaves_temp_state_that_the_next_command_reclaims(store_root: Path) -> None:
    head, _ = big_tar(64 << 20)
    proc = spawn(store_root, "import", "-", "killed:1", stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(head + os.urandom(8 << 20))
    proc.stdin.flush()
    kill_when(proc, lambda: sum(temp_state(store_root).values()) >= 4 << 20)
    proc.stdin.close()
    left = temp_state(store_root)
    assert sum(left.values()) >= 4 << 20, left  # what the killed import was writing

    r = cli(store_root, "images", "-q")
    assert r.returncode == 0 and r.stdout == b""
    assert temp_state(store_root) == {}


def test_a_killed_load_leaves_temp_state_that_the_next_command_reclaims(store_root: Path) -> None:
    archive = oci_archive([files_tar(random_files(1, 1, 12 << 20))])
    proc = spawn(store_root, "load", stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(archive[: len(archive) // 2])  # stops in the middle of the layer
    proc.stdin.flush()
    kill_when(proc, lambda: sum(temp_state(store_root).values()) >= 2 << 20)
    proc.stdin.close()
    assert temp_state(store_root)

    assert cli(store_root, "images", "-q").returncode == 0
    assert temp_state(store_root) == {}
    r = cli(store_root, "load", stdin=archive)  # and the store still works
    assert r.returncode == 0, r.stderr


@pytest.mark.interop
def test_a_killed_pull_leaves_only_its_resumable_partial_which_prune_reclaims(
    ours: Server, store_root: Path, tmp_path: Path
) -> None:
    lay = write_layout(tmp_path / "lay", [files_tar(random_files(7, 1, 48 << 20))])
    cf.skopeo_push(lay, f"{ours.host}/recovery/killed-pull:1")
    ref = f"{ours.host}/recovery/killed-pull:1"
    proc = spawn(store_root, "pull", ref)

    def mid_transfer() -> bool:
        state = temp_state(store_root)
        partial = any(k.endswith(".partial") and v > 1 << 20 for k, v in state.items())
        unpacking = any(k.startswith("snapshots/tmp-") for k in state)
        return partial or unpacking

    kill_when(proc, mid_transfer)
    assert temp_state(store_root)

    assert cli(store_root, "images", "-q").stdout == b""
    left = temp_state(store_root)  # only a partial download is kept: the next pull resumes it
    assert all(k.startswith("tmp/pull-") and k.endswith(".partial") for k in left), left
    if left:
        df = cli(store_root, "system", "df", "--format", "{{.Type}} {{.Reclaimable}}").stdout.decode()
        line = next(ln for ln in df.splitlines() if ln.startswith("Build Cache"))
        assert not line.endswith(" 0B"), df  # counted, and reclaimable
        r = cli(store_root, "builder", "prune", "-f")
        assert r.returncode == 0, r.stderr
        assert b"Total reclaimed space: 0B" not in r.stdout
    assert temp_state(store_root) == {}
    r = cli(store_root, "pull", ref)
    assert r.returncode == 0, r.stderr


@pytest.mark.privileged
def test_a_killed_build_leaves_its_run_upperdir_which_the_next_command_reclaims(
    dy: Dockyard, busybox: str, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN dd if=/dev/zero of=/big bs=1048576 count=16 && touch /done && sleep 60\n"
    )
    proc = spawn(dy.root, "build", "-t", "killed", str(ctx))

    def running() -> bool:
        return any((p / "upper" / "done").exists() for p in (dy.root / "tmp").glob("build-*"))

    kill_when(proc, running)
    assert sum(temp_state(dy.root).values()) >= 16 << 20

    assert cli(dy.root, "images", "-q").returncode == 0
    assert temp_state(dy.root) == {}


def test_temp_state_of_a_live_process_is_kept_and_counted(dy: Dockyard) -> None:
    head, tail = big_tar(8 << 20)
    data = os.urandom(8 << 20)
    proc = spawn(dy.root, "import", "-", "alive:1", stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        proc.stdin.write(head + data[: 4 << 20])
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while sum(temp_state(dy.root).values()) < 1 << 20:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        live = temp_state(dy.root)

        assert cli(dy.root, "images").returncode == 0
        assert cli(dy.root, "system", "prune", "-a", "-f").returncode == 0
        assert cli(dy.root, "builder", "prune", "-a", "-f").returncode == 0
        assert set(live) <= set(temp_state(dy.root))  # nothing of the live import was removed
        df = cli(dy.root, "system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}")
        assert "Build Cache|1|1" in df.stdout.decode()  # counted, and active

        proc.stdin.write(data[4 << 20 :] + tail)
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert "alive" in dy.ok("images", "--format", "{{.Repository}}")
    assert temp_state(dy.root) == {}


# ---------------------------------------------------- nothing half-registered ---


def _hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    return info, None


Members = list[tuple[tarfile.TarInfo, bytes | None]]
BAD_LAYERS: dict[str, tuple[Members, str]] = {
    "hardlink through a dangling symlink": (
        [file_entry("a"), symlink_entry("b", "/nowhere"), _hardlink("c", "b/x")],
        "hardlink target 'b/x' does not exist",
    ),
    "hardlink to a missing target": ([file_entry("a"), _hardlink("c", "missing")], "does not exist"),
    "invalid whiteout name": ([file_entry("a"), file_entry("d/.wh.")], "invalid whiteout name"),
}


@pytest.mark.parametrize("case", list(BAD_LAYERS))
def test_a_failed_import_registers_nothing(dy: Dockyard, tmp_path: Path, case: str) -> None:
    members, message = BAD_LAYERS[case]
    tar = tmp_path / "bad.tar"
    tar.write_bytes(tar_bytes(members))
    dy.ok("images")
    before = store_state(dy.root)
    r = dy("import", str(tar), "bad:1")
    assert r.code != 0 and message in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert dy.ok("images", "-aq") == ""
    assert store_state(dy.root) == before
    assert temp_state(dy.root) == {}


@pytest.mark.parametrize("case", list(BAD_LAYERS))
def test_a_failed_load_registers_nothing(dy: Dockyard, tmp_path: Path, case: str) -> None:
    members, message = BAD_LAYERS[case]
    good = files_tar({"etc/ok": b"ok"})
    archive = tmp_path / "bad.tar"
    archive.write_bytes(oci_archive([good, tar_bytes(members)]))
    dy.ok("images")
    before = store_state(dy.root)
    r = dy("load", "-i", str(archive))
    assert r.code != 0 and message in r.err
    assert dy.ok("images", "-aq") == ""
    assert store_state(dy.root) == before
    assert temp_state(dy.root) == {}


@pytest.mark.interop
def test_a_failed_pull_registers_nothing(ours: Server, dy: Dockyard, tmp_path: Path) -> None:
    members, message = BAD_LAYERS["hardlink to a missing target"]
    lay = write_layout(tmp_path / "lay", [files_tar({"etc/ok": b"ok"}), tar_bytes(members)])
    cf.skopeo_push(lay, f"{ours.host}/recovery/bad-layer:1")
    dy.ok("images")
    before = store_state(dy.root)
    r = dy("pull", f"{ours.host}/recovery/bad-layer:1")
    assert r.code != 0 and message in r.err
    assert dy.ok("images", "-aq") == ""
    assert store_state(dy.root) == before
    assert temp_state(dy.root) == {}


# ------------------------------------------------------------- disk full ---


@pytest.fixture
def small_root(tmp_path: Path) -> Iterator[Path]:
    """A store root on a 64 MiB tmpfs of its own."""
    need_root()
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
    try:
        yield mnt / "store"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _one_line_disk_error(r: subprocess.CompletedProcess[bytes], root: Path) -> str:
    err = r.stderr.decode()
    assert r.returncode != 0
    assert len(err.strip().splitlines()) == 1, err  # no traceback
    assert err.startswith("Error: ") and str(root) in err and "--root" in err, err
    return err


def test_a_gzip_bomb_import_stops_before_the_disk_is_full(small_root: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    head, tail = big_tar(1 << 30)
    zeros = b"\0" * (1 << 20)
    gz = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: a gzip stream
    with open(bomb, "wb") as f:
        f.write(gz.compress(head))
        for _ in range(1 << 10):
            f.write(gz.compress(zeros))
        f.write(gz.compress(tail) + gz.flush())
    assert bomb.stat().st_size < 8 << 20  # a few MB that expand to 1 GiB

    r = cli(small_root, "import", str(bomb), "bomb:1")
    err = _one_line_disk_error(r, small_root)
    assert "import" in err
    assert _free(small_root) > 8 << 20  # stopped with room to spare
    assert temp_state(small_root) == {}
    assert cli(small_root, "images", "-aq").stdout == b""
    assert not any((small_root / "blobs" / "sha256").iterdir())


def test_a_load_on_a_full_disk_says_so_and_leaves_nothing(small_root: Path, tmp_path: Path) -> None:
    archive = tmp_path / "big.tar"
    archive.write_bytes(oci_archive([files_tar(random_files(3, 1, 80 << 20))]))
    r = cli(small_root, "load", "-i", str(archive))
    err = _one_line_disk_error(r, small_root)
    assert "invalid archive" not in err and "no space left on device" in err
    assert temp_state(small_root) == {}
    assert not any((small_root / "blobs" / "sha256").iterdir())
    assert cli(small_root, "images", "-aq").stdout == b""


@pytest.mark.interop
@pytest.mark.parametrize("size_mib", [40, 80])
def test_a_pull_on_a_full_disk_says_so_and_leaves_nothing(
    ours: Server, small_root: Path, tmp_path: Path, size_mib: int
) -> None:
    """80 MiB cannot be downloaded at all; 40 MiB can, but not unpacked next to its blob."""
    lay = write_layout(tmp_path / "lay", [files_tar(random_files(size_mib, 1, size_mib << 20))])
    ref = f"{ours.host}/recovery/full-{size_mib}:1"
    cf.skopeo_push(lay, ref)
    r = cli(small_root, "pull", ref)
    _one_line_disk_error(r, small_root)
    assert temp_state(small_root) == {}
    assert not any((small_root / "blobs" / "sha256").iterdir())
    assert cli(small_root, "images", "-aq").stdout == b""


@pytest.mark.privileged
def test_a_build_whose_layer_fills_the_disk_says_so_and_leaves_nothing(
    small_root: Path, busybox_tar: Path, privileged: None, tmp_path: Path
) -> None:
    """The RUN step's 36 MiB fit in the upperdir, but not again as the layer tar."""
    add_busybox_image(small_root, busybox_tar)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1048576 count=36\n")
    before = store_state(small_root)
    r = cli(small_root, "build", "-t", "big", str(ctx))
    err = _one_line_disk_error(r, small_root)
    assert "no space left on device" in err
    assert temp_state(small_root) == {}
    after = {k: v for k, v in store_state(small_root).items() if not k.startswith("buildcache/init/")}
    assert after == before  # nothing but the builder's init layer (made once per store)
    assert cli(small_root, "system", "check").returncode == 0
