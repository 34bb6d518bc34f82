"""commit, export and cp: the upperdir as a layer, the flattened root, files in and out."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Ctl

pytestmark = pytest.mark.privileged


def test_commit_then_run_sees_the_change(ctl: Ctl) -> None:
    script = "echo hi > /root/new; rm /bin/vi; rm -rf /home; mkdir /home; echo h > /home/f"
    ctl.ok("run", "--name", "src", "-e", "MODE=x", "busybox", "sh", "-c", script)
    out = ctl.ok("commit", "-a", "me", "-m", "my change", "-c", 'CMD ["cat", "/root/new"]', "src", "mine:1")
    assert out.startswith("sha256:")
    assert ctl.ok("run", "--rm", "mine:1") == "hi\n"
    r = ctl("run", "--rm", "mine:1", "sh", "-c", "ls /bin/vi; ls -a /home; echo $MODE")
    assert "No such file" in r.err  # the whiteout hides the lower file
    assert r.out.split() == [".", "..", "f", "x"]  # the opaque /home hides the old contents
    cfg = json.loads(ctl.ok("image", "inspect", "mine:1"))[0]
    assert (
        cfg["Author"] == "me"
        and cfg["Config"]["Cmd"] == ["cat", "/root/new"]
        and "MODE=x" in cfg["Config"]["Env"]
    )
    hist = ctl.ok("history", "mine:1")
    assert "my change" in hist
    # the new layer holds exactly the changes, in docker's whiteout form
    store_blobs = ctl.root / "blobs" / "sha256"
    layer_id = cfg["RootFS"]["Layers"][-1].split(":")[1]
    with tarfile.open(store_blobs / layer_id) as t:
        names = t.getnames()
    assert "bin/.wh.vi" in names and "home/.wh..wh..opq" in names and "root/new" in names
    assert not any(n.startswith(("proc", "etc/hosts", "dev/")) for n in names)


def test_commit_of_a_running_container_pauses_it(ctl: Ctl) -> None:
    ctl.ok("run", "-d", "--name", "live", "busybox", "sh", "-c", "echo x > /data.txt; exec sleep 60")
    ctl.ok("exec", "live", "true")
    ctl.ok("commit", "live", "snap")
    assert ctl.ok("inspect", "-f", "{{.State.Status}}", "live") == "running\n"
    assert ctl.ok("run", "--rm", "snap", "cat", "/data.txt") == "x\n"


def test_export_is_the_flattened_root(ctl: Ctl, tmp_path: Path) -> None:
    ctl.ok(
        "run",
        "--name",
        "ex",
        "-v",
        "vol:/data",
        "busybox",
        "sh",
        "-c",
        "echo e > /root/e; rm /bin/vi; echo v > /data/v",
    )
    out = tmp_path / "ex.tar"
    assert ctl.ok("export", "-o", str(out), "ex") == ""
    with tarfile.open(out) as t:
        names = t.getnames()
    assert "root/e" in names and "bin/busybox" in names
    assert "bin/vi" not in names and not any(".wh." in n for n in names)
    assert "data/v" not in names  # volumes are not part of the container's filesystem
    r = ctl.sub("export", "ex", text=False)
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        assert r.returncode == 0 and "root/e" in t.getnames()


def test_cp_both_directions(ctl: Ctl, tmp_path: Path) -> None:
    ctl.ok("create", "--name", "box", "busybox", "sh", "-c", "sleep 60")
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("file")
    ctl.ok("cp", str(src), "box:/var/")  # into an existing dir: /var/tree
    ctl.ok("cp", str(src / "sub" / "f"), "box:/root/renamed")
    ctl.ok("start", "box")
    assert ctl.ok("exec", "box", "cat", "/var/tree/sub/f", "/root/renamed") == "filefile"
    assert ctl.ok("exec", "box", "stat", "-c", "%u", "/root/renamed") == "0\n"  # root-owned without -a
    back = tmp_path / "back"
    ctl.ok("cp", "box:/var/tree", str(back))  # to a new name
    assert (back / "sub" / "f").read_text() == "file"
    ctl.ok("cp", "box:/etc/passwd", str(tmp_path))  # into a dir
    assert (tmp_path / "passwd").read_text().startswith("root:")
    r = ctl("cp", "box:/nope", str(tmp_path))
    assert r.code == 1 and "Could not find the file /nope in container box" in r.err
    raw = ctl.sub("cp", "box:/etc/group", "-", text=False).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        assert t.getnames() == ["group"]
    # a tar on stdin into a directory
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("streamed")
        info.size = 3
        t.addfile(info, io.BytesIO(b"abc"))
    ctl.sub("cp", "-", "box:/tmp", input=buf.getvalue(), text=False)
    assert ctl.ok("exec", "box", "cat", "/tmp/streamed") == "abc"


def test_cp_resolves_symlinks_inside_the_container(ctl: Ctl, tmp_path: Path) -> None:
    host_dir = tmp_path / "host-secret"
    host_dir.mkdir()
    (host_dir / "secret").write_text("host only")
    script = f"ln -s / /escape; ln -s {host_dir} /trap; echo mine > /root/secret"
    ctl.ok("run", "--name", "evil", "busybox", "sh", "-c", script)
    # reading through /escape stays in the container's root
    r = ctl("cp", f"evil:/escape{host_dir}/secret", str(tmp_path / "got"))
    assert r.code == 1 and not (tmp_path / "got").exists()
    ctl.ok("cp", "-L", "evil:/escape/root/secret", str(tmp_path / "mine"))
    assert (tmp_path / "mine").read_text() == "mine\n"
    # writing through a link to a host path lands nowhere on the host
    (tmp_path / "payload").write_text("pwned")
    r = ctl("cp", str(tmp_path / "payload"), "evil:/trap/")
    assert r.code != 0
    assert sorted(p.name for p in host_dir.iterdir()) == ["secret"]
    assert (
        subprocess.run(["cat", str(host_dir / "secret")], capture_output=True, text=True).stdout
        == "host only"
    )


DIFF_SCRIPT = (
    "mkdir -p /new/sub; echo x > /new/sub/f; echo y >> /etc/passwd; rm /bin/ls; rm -rf /var/spool;"
    " rm -rf /usr/sbin; mkdir /usr/sbin; touch /usr/sbin/mine; chmod 600 /etc/group; ln -s /x /lnk;"
    " mkdir /var/empty; rmdir /var/empty; touch /tmp/t"
)


def test_diff_reports_what_docker_reports(ctl: Ctl, busybox_tar: Path, docker_host: str) -> None:
    """The same changes in both, with --init: the same set of lines (docker's order is a Go map's)."""
    from tests.conftest import docker

    ctl.ok("run", "--init", "--name", "dd", "busybox", "sh", "-c", DIFF_SCRIPT)
    ours = ctl.ok("diff", "dd")
    assert ours == ctl.ok("container", "diff", "dd")
    assert "C /etc\nC /etc/group\nC /etc/passwd\n" in ours and "D /usr/sbin/httpd\n" in ours  # name order
    tag = "dockyard-test/diff:1"
    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), tag)
    try:
        docker(
            docker_host,
            "run",
            "--init",
            "--name",
            "dockyard-diff",
            "--network",
            "none",
            tag,
            "sh",
            "-c",
            DIFF_SCRIPT,
        )
        theirs = docker(docker_host, "diff", "dockyard-diff").stdout
    finally:
        docker(docker_host, "rm", "-f", "dockyard-diff", check=False)
        docker(docker_host, "rmi", tag, check=False)
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines())
    assert ctl("diff", "nosuch").err == "Error: No such container: nosuch\n"
