"""``system check [--repair]`` on a real store damaged for real: a blob deleted, a
byte flipped, a dangling tag and link, a snapshot half gone, stale temp state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagefmt.store import Store
from imagefmt.tempstate import owned_name
from tests.conftest import REPO, Dockyard
from tests.helpers import oci_archive, sha
from tests.oci_images import tar_bytes

LAYERS = [tar_bytes({"etc/one": b"1" * 5000}), tar_bytes({"etc/two": b"2" * 7000})]


@pytest.fixture
def loaded(dy: Dockyard, tmp_path: Path) -> Dockyard:
    """A store holding test:latest (two layers, unpacked) and other:1 (one shared layer)."""
    archive = tmp_path / "a.tar"
    archive.write_bytes(oci_archive(LAYERS))
    dy.ok("load", "-i", str(archive))
    archive.write_bytes(oci_archive(LAYERS[:1], tag="docker.io/library/other:1"))
    dy.ok("load", "-i", str(archive))
    return dy


def check(dy: Dockyard, *args: str) -> tuple[int, list[str]]:
    r = dy("system", "check", *args)
    assert r.err == ""
    return r.code, r.out.splitlines()


def blob(dy: Dockyard, digest: str) -> Path:
    return dy.root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def test_a_clean_store_checks_clean(loaded: Dockyard) -> None:
    assert check(loaded) == (0, [])
    assert check(loaded, "--repair") == (0, [])


def test_a_deleted_layer_blob_is_reported_and_repair_untags_the_image(loaded: Dockyard) -> None:
    gone = sha(LAYERS[1])
    blob(loaded, gone).unlink()
    code, lines = check(loaded)
    assert code == 1
    assert lines == [
        f"image {_id(loaded, 'test')[7:19]} (test:latest): its layer blob {gone} is missing or corrupt"
    ]

    code, lines = check(loaded, "--repair")
    assert code == 0 and lines == [f"{lines[0].rsplit(': ', 1)[0]}: untagged, deleted"]
    assert loaded.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split() == ["other:1"]
    assert check(loaded) == (0, [])
    loaded.ok("image", "inspect", "other:1")  # the other image, which shares a layer, is whole


def test_a_flipped_byte_is_reported_and_the_blob_removed(loaded: Dockyard) -> None:
    shared = sha(LAYERS[0])
    path = blob(loaded, shared)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    code, lines = check(loaded)
    assert code == 1
    assert f"blob {shared}: content does not match its digest" in lines
    assert sum("is missing or corrupt" in ln for ln in lines) == 2  # both images use that layer

    code, lines = check(loaded, "--repair")
    assert code == 0
    assert f"blob {shared}: content does not match its digest: removed" in lines
    assert loaded.ok("images", "-aq") == ""
    assert not any((loaded.root / "blobs" / "sha256").iterdir())  # swept: no image is left
    assert not any(p for p in (loaded.root / "snapshots").iterdir())
    assert check(loaded) == (0, [])


def test_dangling_tags_links_holds_and_half_snapshots(loaded: Dockyard) -> None:
    index = loaded.root / "images.json"
    doc = json.loads(index.read_text())
    doc["tags"]["docker.io/library/ghost:1"] = "sha256:" + "ab" * 32
    index.write_text(json.dumps(doc))
    (loaded.root / "l" / "0123456789abcdef").symlink_to("../snapshots/" + "cd" * 32 + "/diff")
    (loaded.root / "holds" / ("ef" * 32)).mkdir()
    snaps = sorted(p for p in (loaded.root / "snapshots").iterdir())
    (snaps[0] / "size").unlink()
    link = loaded.root / "l" / snaps[1].name[:16]
    link.unlink()

    code, lines = check(loaded)
    assert code == 1
    assert set(lines) == {
        f"tag docker.io/library/ghost:1: points to image {'ab' * 6}, which is not in the store",
        "l/0123456789abcdef: a link to no snapshot",
        f"holds/{'ef' * 6}: holds an image that is not in the store",
        f"snapshot {snaps[0].name[:12]}: incomplete (no size)",
        f"snapshot {snaps[1].name[:12]}: its link l/{snaps[1].name[:16]} is missing",
    }
    code, lines = check(loaded, "--repair")
    assert code == 0 and len(lines) == 5
    assert check(loaded) == (0, [])
    assert link.is_symlink() and link.exists()
    store = Store(loaded.root)  # the dropped snapshot is unpacked again on demand, from its blob
    store.ensure_snapshots(store.image("test"))
    assert (snaps[0] / "size").exists()
    assert check(loaded) == (0, [])


def test_stale_temp_state_is_reported_and_removed_but_a_live_one_is_not(loaded: Dockyard) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = dead.stdout.decode().strip()
    mine = owned_name("blob", ".part")  # this process's: alive
    theirs = mine.replace(f"-{os.getpid()}-", f"-{pid}-", 1)  # a process that has exited
    (loaded.root / "tmp" / mine).write_bytes(b"x" * 10)
    (loaded.root / "tmp" / theirs).write_bytes(b"y" * 20)
    half = loaded.root / "snapshots" / owned_name("tmp").replace(f"-{os.getpid()}-", f"-{pid}-", 1)
    (half / "diff").mkdir(parents=True)
    (half / "diff" / "f").write_bytes(b"z" * 30)

    code, lines = check(loaded)
    assert code == 1
    assert sorted(lines) == [
        f"snapshots/{half.name}: stale temp state (its owner is gone), 30 bytes",
        f"tmp/{theirs}: stale temp state (its owner is gone), 20 bytes",
    ]
    assert check(loaded, "--repair")[0] == 0
    assert not half.exists() and not (loaded.root / "tmp" / theirs).exists()
    assert (loaded.root / "tmp" / mine).exists()
    assert check(loaded) == (0, [])


def test_an_unreadable_index_is_reported_and_left_alone(loaded: Dockyard) -> None:
    (loaded.root / "images.json").write_text("{not json")
    code, lines = check(loaded, "--repair")
    assert code == 1
    assert lines[0].startswith("images.json: unreadable (") and lines[0].endswith(": not repaired")
    assert (loaded.root / "images.json").read_text() == "{not json"


def test_the_check_is_in_the_verb_table(loaded: Dockyard) -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "--root", str(loaded.root), "system", "--help"],
        capture_output=True,
        text=True,
    )
    assert "check" in r.stdout


def _id(dy: Dockyard, name: str) -> str:
    return dy.ok("image", "inspect", "--format", "{{.Id}}", name).strip()


def test_temp_owners_are_told_apart_by_pid_start_time_boot_and_namespace() -> None:
    from imagefmt import tempstate

    name = owned_name("blob", ".part")
    pid, start, boot, ns = tempstate.owner().split("-")
    assert tempstate.owner_alive(name) is True
    assert tempstate.owner_alive("blob-0123.part") is None  # no owner in the name
    reused = name.replace(f"-{pid}-{start}-", f"-{pid}-{int(start) + 1}-", 1)
    assert tempstate.owner_alive(reused) is False  # same pid, another process: the pid was reused
    rebooted = name.replace(f"-{boot}-", "-ffffffff-" if boot != "ffffffff" else "-00000000-", 1)
    assert tempstate.owner_alive(rebooted) is False  # written before the last reboot
    elsewhere = name.replace(f"-{ns}-", "-1-", 1)
    assert tempstate.owner_alive(elsewhere) is True  # another pid namespace: cannot tell, so kept

    child = subprocess.Popen(["true"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not yet reaped
            time.sleep(0.001)
        fields = stat.read_text().rsplit(")", 1)[1].split()
        zombie = name.replace(f"-{pid}-{start}-", f"-{child.pid}-{fields[19]}-", 1)
        assert tempstate.owner_alive(zombie) is False
    finally:
        child.wait()
