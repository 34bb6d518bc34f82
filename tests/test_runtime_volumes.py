"""Volumes: binds, named and anonymous volumes pre-filled from the image, --volumes-from, volume verbs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Ctl

pytestmark = pytest.mark.privileged


def test_named_volume_persists_across_containers(ctl: Ctl) -> None:
    assert ctl("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f").code == 0
    assert ctl.ok("run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f") == "kept\n"
    r = ctl("run", "--rm", "-v", "data:/data:ro", "busybox", "touch", "/data/g")
    assert r.code == 1 and "Read-only file system" in r.err
    assert ctl.ok("volume", "ls", "-q") == "data\n"
    doc = json.loads(ctl.ok("volume", "inspect", "data"))[0]
    assert doc["Name"] == "data" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert (Path(doc["Mountpoint"]) / "f").read_text() == "kept\n"


def test_bind_mount_is_the_same_directory(ctl: Ctl, tmp_path: Path) -> None:
    host = tmp_path / "not-yet"
    r = ctl("run", "--rm", "-v", f"{host}:/mnt", "busybox", "sh", "-c", "echo from-ctr > /mnt/out; ls /mnt")
    assert r.code == 0 and host.is_dir()  # created when missing
    assert (host / "out").read_text() == "from-ctr\n"
    (host / "in").write_text("from-host")
    assert ctl.ok("run", "--rm", "-v", f"{host}:/mnt:ro", "busybox", "cat", "/mnt/in") == "from-host"
    ctl.ok("run", "-d", "--name", "live", "-v", f"{host}:/mnt", "busybox", "sleep", "60")
    (host / "late").write_text("seen")  # not a copy: later host writes show inside
    assert ctl.ok("exec", "live", "cat", "/mnt/late") == "seen"
    mounts = json.loads(ctl.ok("inspect", "live"))[0]["Mounts"]
    assert mounts == [
        {
            "Type": "bind",
            "Source": str(host),
            "Destination": "/mnt",
            "Mode": "",
            "RW": True,
            "Propagation": "rprivate",
        }
    ]


def test_anonymous_volume_is_prefilled_from_the_image(ctl: Ctl) -> None:
    cid = ctl.ok(
        "run", "-v", "/etc", "busybox", "sh", "-c", "cat /etc/passwd | head -1; echo new > /etc/new"
    ).strip()
    assert cid.splitlines()[0] == "root:x:0:0:root:/root:/bin/sh"
    ctr = ctl.ok("ps", "-aq").split()[0]
    mounts = json.loads(ctl.ok("inspect", ctr))[0]["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Destination"] == "/etc"
    name = mounts[0]["Name"]
    data = Path(mounts[0]["Source"])
    assert (data / "passwd").exists() and (data / "new").read_text() == "new\n"
    assert (data / "passwd").stat().st_uid == 0
    # the image's files went to the volume, not into the container's layer
    upper = Path(json.loads(ctl.ok("inspect", ctr))[0]["GraphDriver"]["Data"]["UpperDir"])
    assert not (upper / "etc" / "new").exists()
    # volumes-from shares it
    assert ctl.ok("run", "--rm", "--volumes-from", ctr, "busybox", "cat", "/etc/new") == "new\n"
    r = ctl("volume", "rm", name)
    assert r.code == 1 and f"remove {name}: volume is in use - [" in r.err
    ctl.ok("rm", "-v", ctr)  # -v removes the anonymous volume
    assert name not in ctl.ok("volume", "ls", "-q").split()


def test_named_volume_prefill_and_no_prefill_when_not_empty(ctl: Ctl) -> None:
    assert ctl.ok("run", "--rm", "-v", "bins:/bin", "busybox", "ls", "/bin/busybox") == "/bin/busybox\n"
    ctl.ok("volume", "create", "full")
    data = Path(json.loads(ctl.ok("volume", "inspect", "full"))[0]["Mountpoint"])
    (data / "mine").write_text("x")
    assert ctl.ok("run", "--rm", "-v", "full:/etc", "busybox", "ls", "/etc") == "mine\n"


def test_image_volumes_become_anonymous_volumes(ctl: Ctl, busybox_tar: Path) -> None:
    from imagefmt.reference import Reference
    from imagefmt.store import Store

    store = Store(ctl.root)
    base = store.image("busybox")
    config = {"config": {**base.config.config, "Volumes": {"/var/www": {}}}}
    store.commit_image(base, None, config, {"created_by": "VOLUME /var/www"}, Reference.parse("withvol"))
    cid = ctl.ok("create", "withvol").strip()
    doc = json.loads(ctl.ok("inspect", cid))[0]
    assert [m["Destination"] for m in doc["Mounts"]] == ["/var/www"] and doc["Config"]["Volumes"] == {
        "/var/www": {}
    }
    cid2 = ctl.ok("create", "-v", "web:/var/www", "withvol").strip()
    assert [m.get("Name") for m in json.loads(ctl.ok("inspect", cid2))[0]["Mounts"]] == ["web"]


def test_volume_verbs(ctl: Ctl) -> None:
    assert ctl.ok("volume", "create", "--label", "k=v", "v1") == "v1\n"
    assert ctl.ok("volume", "create", "v1") == "v1\n"  # idempotent, as in docker
    anon = ctl.ok("volume", "create").strip()
    assert len(anon) == 64
    out = ctl.ok("volume", "ls").splitlines()
    assert out[0].split() == ["DRIVER", "VOLUME", "NAME"] and any(line.endswith(" v1") for line in out)
    assert ctl.ok("volume", "ls", "-q", "-f", "label=k=v") == "v1\n"
    assert json.loads(ctl.ok("volume", "inspect", "v1"))[0]["Labels"] == {"k": "v"}
    r = ctl("volume", "inspect", "nope")
    assert r.code == 1 and "no such volume" in r.err
    r = ctl("volume", "create", "bad/name")
    assert r.code == 1 and "includes invalid characters for a local volume name" in r.err
    ctl.ok("create", "-v", "v1:/x", "busybox")
    pruned = ctl.ok("volume", "prune", "-f")
    assert pruned.startswith("Deleted Volumes:\n") and anon in pruned and "v1" not in pruned.split()
    assert ctl.ok("volume", "ls", "-q", "-f", "dangling=false") == "v1\n"
    r = ctl("volume", "rm", "v1")
    assert r.code == 1 and "volume is in use" in r.err
    assert ctl.ok("volume", "rm", "-f", "nope") == "nope\n"


def test_tmpfs_and_mount_flags(ctl: Ctl, tmp_path: Path) -> None:
    """--tmpfs and --mount as docker has them: noexec,nosuid,nodev unless undone, sizes and
    modes, read-only binds, named volumes, and docker's inspect shapes."""
    out = ctl.ok("run", "--rm", "--tmpfs", "/t", "busybox", "sh", "-c", "mount | grep ' /t '")
    assert out == "tmpfs on /t type tmpfs (rw,nosuid,nodev,noexec,relatime)\n"
    script = "mount | grep ' /t '; stat -c %a /t"
    out = ctl.ok("run", "--rm", "--tmpfs", "/t:size=1m,exec,mode=1770", "busybox", "sh", "-c", script)
    assert out == "tmpfs on /t type tmpfs (rw,nosuid,nodev,relatime,size=1024k,mode=1770)\n1770\n"
    mount = "type=tmpfs,dst=/t,tmpfs-size=2m,tmpfs-mode=700"
    out = ctl.ok("run", "--rm", "--mount", mount, "busybox", "sh", "-c", script)
    assert out == "tmpfs on /t type tmpfs (rw,nosuid,nodev,noexec,relatime,size=2048k,mode=700)\n700\n"
    (tmp_path / "f").write_text("host\n")
    bind = f"type=bind,src={tmp_path},dst=/b,readonly"
    r = ctl("run", "--rm", "--mount", bind, "busybox", "sh", "-c", "cat /b/f; touch /b/x")
    assert r.out == "host\n" and "Read-only file system" in r.err and not (tmp_path / "x").exists()
    ctl.ok("run", "--rm", "--mount", "type=volume,src=mvol,dst=/v", "busybox", "sh", "-c", "echo z > /v/z")
    assert ctl.ok("run", "--rm", "--mount", "src=mvol,target=/v", "busybox", "cat", "/v/z") == "z\n"
    cid = ctl.ok("create", "--tmpfs", "/a:size=1m", "--mount", mount, "--mount", bind, "busybox").strip()
    doc = json.loads(ctl.ok("inspect", cid))[0]
    assert doc["HostConfig"]["Tmpfs"] == {"/a": "size=1m"}
    assert doc["HostConfig"]["Mounts"] == [
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 2 << 20, "Mode": 0o700}},
        {"Type": "bind", "Source": str(tmp_path), "Target": "/b", "ReadOnly": True},
    ]
    assert {
        "Type": "tmpfs",
        "Source": "",
        "Destination": "/t",
        "Mode": "",
        "RW": True,
        "Propagation": "",
    } in doc["Mounts"]
    for argv, message in (
        (
            ["--mount", "type=bind,src=/nonexist,dst=/b"],
            'type "bind": bind source path does not exist: /nonexist',
        ),
        (["--mount", "type=volume"], 'invalid argument "type=volume" for "--mount" flag: target is required'),
        (["--mount", "dst=/v,bogus=1"], "unexpected key 'bogus' in 'bogus=1'"),
        (["--tmpfs", "t"], "invalid mount path: 't' mount path must be absolute"),
    ):
        r = ctl("run", "--rm", *argv, "busybox", "true")
        assert r.code == 125 and message in r.err, (argv, r.err)
    assert ctl.ok("ps", "-aq") == cid[:12] + "\n"
