"""The local store through the CLI: import, images, tag, rmi, inspect, history, refcounts, locking."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from imagefmt.store import Store
from tests.conftest import REPO, Dockyard
from tests.helpers import store_state


def test_import_then_images_and_inspect(dy: Dockyard, busybox: str) -> None:
    assert busybox.startswith("sha256:")
    out = dy.ok("images")
    header, row = out.splitlines()
    assert header.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert row.split()[:3] == ["busybox", "latest", busybox[7:19]]
    assert dy.ok("images", "-q").strip() == busybox[7:19]
    assert dy.ok("images", "-q", "--no-trunc").strip() == busybox
    doc = json.loads(dy.ok("images", "--format", "{{json .}}"))
    assert doc["Repository"] == "busybox" and doc["Tag"] == "latest" and doc["Digest"] == "<none>"
    [info] = json.loads(dy.ok("inspect", "busybox"))
    assert info["Id"] == busybox and info["RepoTags"] == ["busybox:latest"]
    assert info["Config"]["Cmd"] == ["sh"] and info["Config"]["Env"] is None  # as docker import leaves it
    assert info["Comment"] == "" and len(info["RootFS"]["Layers"]) == 1
    assert dy.ok("inspect", "-f", "{{.Config.Cmd}} {{.Os}}", "busybox").strip() == "[sh] linux"


def test_history(dy: Dockyard, busybox: str) -> None:
    lines = dy.ok("history", "busybox").splitlines()
    assert lines[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"]
    assert lines[1].startswith(busybox[7:19]) and "Imported from" in lines[1]


def test_tag_adds_a_name_and_rmi_untags_first(dy: Dockyard, busybox: str) -> None:
    dy.ok("tag", "busybox", "localhost:5000/a/b:v1")
    assert sorted(json.loads(dy.ok("inspect", busybox))[0]["RepoTags"]) == [
        "busybox:latest",
        "localhost:5000/a/b:v1",
    ]
    assert dy.ok("rmi", "localhost:5000/a/b:v1").strip() == "Untagged: localhost:5000/a/b:v1"
    r = dy("rmi", busybox[7:19])
    assert r.code == 0 and "Deleted: " + busybox in r.out


def test_rmi_by_id_with_two_names_needs_force(dy: Dockyard, busybox: str) -> None:
    dy.ok("tag", "busybox", "other:1")
    r = dy("rmi", busybox[7:19])
    assert r.code != 0 and "must be forced" in r.err
    out = dy.ok("rmi", "-f", busybox[7:19])
    assert "Untagged: other:1" in out and "Untagged: busybox:latest" in out


def test_rmi_keeps_shared_layers_and_frees_the_rest(dy: Dockyard, busybox: str, busybox_tar: Path) -> None:
    store = Store(dy.root)
    other = dy.ok("import", "-c", 'CMD ["true"]', str(busybox_tar), "other:latest").strip()
    assert other != busybox
    layer = store.image("busybox").manifest.layers[0].digest
    assert store.image("other").manifest.layers[0].digest == layer  # same rootfs, same layer blob
    dy.ok("rmi", "busybox")
    assert store.has_blob(layer)
    dy.ok("rmi", "other")
    assert not store.has_blob(layer)
    assert list(store.blobs.iterdir()) == []
    assert json.loads(store.index_path.read_text()) == {"images": {}, "tags": {}}


def test_unknown_image_errors(dy: Dockyard) -> None:
    for args in (["rmi", "nope"], ["history", "nope"], ["tag", "nope", "x"], ["inspect", "nope"]):
        r = dy(*args)
        assert r.code != 0
        assert "No such" in r.err and r.err.count("\n") == 1
    assert dy("rmi", "nope").err == "Error: No such image: nope:latest\n"  # docker's words
    assert dy("tag", "sha256:abc", "x").err == "Error: No such image: sha256:abc\n"


def test_a_store_root_under_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for verb, code in (["images"], 1), (["run", "busybox", "true"], 125):
        r = subprocess.run(
            [sys.executable, str(REPO / "cli.py"), "--root", str(tmp_path / "file/root"), *verb],
            capture_output=True,
            text=True,
        )
        assert r.returncode == code, r.stderr
        assert r.stderr == (
            f"Error: cannot use {tmp_path}/file/root as the store: {tmp_path}/file/root/blobs/sha256:"
            " not a directory; give --root (or DOCKYARD_ROOT) a directory of its own\n"
        )


def test_bad_reference_is_invalid(dy: Dockyard, busybox: str) -> None:
    r = dy("tag", "busybox", "Bad/Name:x")
    assert r.code == 1 and "invalid reference format" in r.err


def test_import_refuses_escaping_members(dy: Dockyard, tmp_path: Path) -> None:
    from tests.helpers import file_entry, tar_bytes

    before = store_state(dy.root)
    bad = tmp_path / "bad.tar"
    bad.write_bytes(tar_bytes([file_entry("ok"), file_entry("../../etc/x")]))
    r = dy("import", str(bad), "bad:1")
    assert r.code == 1 and "escapes" in r.err
    assert store_state(dy.root) == before


def test_concurrent_tag_and_rmi_keep_the_store_consistent(dy: Dockyard, busybox: str) -> None:
    script = (
        "import sys, cli\n"
        "root, n = sys.argv[1], sys.argv[2]\n"
        "for i in range(15):\n"
        "    cli.main(['--root', root, 'tag', 'busybox', f'p{n}/t:{i}'])\n"
        "    if i % 2: cli.main(['--root', root, 'rmi', f'p{n}/t:{i}'])\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(dy.root), str(n)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for n in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = Store(dy.root)
    tags = sorted(t for img in store.images() for t in img.familiar_tags)
    want = sorted(["busybox:latest"] + [f"p{n}/t:{i}" for n in range(3) for i in range(0, 15, 2)])
    assert tags == want
    assert list(store.tmp.iterdir()) == []


def test_rm_containers_release_their_image(dy: Dockyard, busybox: str) -> None:
    from tests.conftest import need_root

    need_root()
    dy.ok("run", "--rm", "--network", "none", "busybox", "true")
    assert dy("run", "--rm", "--network", "none", "busybox", "nope").code == 127
    cid = dy.ok("create", "--network", "none", "busybox", "true").strip()
    r = dy("rmi", "busybox")
    assert r.code != 0 and f'repository reference "busybox" (must force) - container {cid[:12]}' in r.err
    assert dy.ok("system", "df").splitlines()[1].split()[:3] == ["Images", "1", "1"]
    dy.ok("rm", cid)
    assert "Deleted: " + busybox in dy.ok("rmi", "busybox")  # the --rm containers held nothing back


def test_catalog_launchable_matches_the_store(dy: Dockyard, busybox: str, store_root: Path) -> None:
    """A container start resolves its image through the lean catalog: same ID,
    config and lowerdirs as the full store; None (so the store unpacks) when a
    layer has no snapshot, and for names that resolve to nothing."""
    from imagefmt.catalog import Catalog

    store = Store(store_root)
    img = store.image("busybox")
    lowerdirs = tuple(store.short_lowerdirs(img))
    found = Catalog(store_root).launchable("busybox")
    assert found is not None
    assert (found.id, found.config, found.lowerdirs) == (img.id, img.config.doc, lowerdirs)
    assert Catalog(store_root).launchable(busybox[7:19]) == found
    assert Catalog(store_root).launchable("nosuch") is None
    for snap in store.snapshots.iterdir():
        (snap / "link").unlink()
    assert Catalog(store_root).launchable("busybox") is None


def test_history_without_human_sizes_and_rmi_force_of_nothing(dy: Dockyard, busybox: str) -> None:
    out = dy.ok("history", "-H=false", "busybox").splitlines()
    assert out[0].split()[:3] == ["IMAGE", "CREATED", "AT"]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s.*\s\d{6,}\s", out[1]), out[1]
    assert dy.ok("history", "--human=false", "--format", "{{.Size}}", "busybox").strip().isdigit()
    r = dy("rmi", "-f", "nope")
    assert (r.code, r.err) == (0, "Error: No such image: nope:latest\n")
