"""runtime.sandbox.run_step: the builder's primitive, on a real overlay in real namespaces."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runtime.errors import RuntimeFailure, StartFailed
from runtime.process.launch import exit_status
from runtime.sandbox import run_step
from runtime.spec import Mount

pytestmark = pytest.mark.privileged


def step(rootfs: Path, upper: Path, argv: list[str], **kw: object) -> tuple[int, str, str]:
    out: list[bytes] = []
    err: list[bytes] = []
    kw.setdefault("mount_cwd", rootfs.parent)
    code = run_step([str(rootfs)], upper, argv, stdout=out.append, stderr=err.append, **kw)  # type: ignore[arg-type]
    return code, b"".join(out).decode(), b"".join(err).decode()


def test_isolation_and_exit_code(busybox_rootfs: Path, tmp_path: Path, no_leaks: None) -> None:
    script = "echo $$; hostname; ls /proc | grep -c '^[0-9]'; cat /proc/self/mountinfo | wc -l; exit 7"
    code, out, _ = step(busybox_rootfs, tmp_path / "upper", ["sh", "-c", script], hostname="stephost")
    pid, host, nprocs, nmounts = out.split()
    assert code == 7
    assert pid == "1" and host == "stephost"
    assert int(nprocs) <= 3  # sh, and the pipeline's ls/grep
    assert int(nmounts) < 40
    assert not (tmp_path / "upper").joinpath("proc").exists()


def test_upperdir_keeps_only_changes(busybox_rootfs: Path, tmp_path: Path, no_leaks: None) -> None:
    upper = tmp_path / "upper"
    script = "echo x > /root/new; rm /bin/vi; cat /etc/hosts >/dev/null"
    code, _, _ = step(busybox_rootfs, upper, ["sh", "-c", script])
    assert code == 0
    changed = sorted(p.relative_to(upper).as_posix() for p in upper.rglob("*"))
    assert changed == ["bin", "bin/vi", "root", "root/new"]
    assert (upper / "bin/vi").is_char_device()  # an overlay whiteout
    assert [p.name for p in tmp_path.iterdir()] == ["upper"]  # the scratch dir is gone


def test_user_workdir_env_and_capabilities(busybox_rootfs: Path, tmp_path: Path, no_leaks: None) -> None:
    script = "id; pwd; echo $FOO $HOME; grep -E 'CapEff|CapBnd|NoNewPrivs' /proc/self/status"
    argv = ["sh", "-c", script]
    code, out, _ = step(
        busybox_rootfs, tmp_path / "u", argv, user="nobody", workdir="/made/here", env=["FOO=bar"]
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    assert lines[1:3] == ["/made/here", "bar /home"]
    assert "CapEff:\t0000000000000000" in lines
    assert "CapBnd:\t00000000a80425fb" in lines  # docker's default set
    assert "NoNewPrivs:\t1" in lines
    code, out, _ = step(busybox_rootfs, tmp_path / "u", ["sh", "-c", "grep CapEff /proc/self/status"])
    assert out.split() == ["CapEff:", "00000000a80425fb"]


def test_stdin_is_closed(busybox_rootfs: Path, tmp_path: Path) -> None:
    code, out, _ = step(busybox_rootfs, tmp_path / "u", ["sh", "-c", "read x; echo rc=$?"])
    assert (code, out) == (0, "rc=1\n")


def test_missing_command_and_user(busybox_rootfs: Path, tmp_path: Path, no_leaks: None) -> None:
    with pytest.raises(StartFailed, match=r'exec: "nope": executable file not found in \$PATH') as e:
        step(busybox_rootfs, tmp_path / "u", ["nope"])
    assert e.value.exit_code == 127
    with pytest.raises(StartFailed, match="permission denied") as e:
        step(busybox_rootfs, tmp_path / "u", ["/etc/passwd"])
    assert e.value.exit_code == 126
    with pytest.raises(RuntimeFailure, match="unable to find user bob: no matching entries in passwd file"):
        step(busybox_rootfs, tmp_path / "u", ["id"], user="bob")
    assert [p.name for p in tmp_path.iterdir()] == ["u"]


def test_exit_status_of_a_signal() -> None:
    assert exit_status(9) == 137 and exit_status(7 << 8) == 7


def test_bind_mount_read_only(busybox_rootfs: Path, tmp_path: Path, no_leaks: None) -> None:
    src = tmp_path / "ctx"
    src.mkdir()
    (src / "f").write_text("ctx")
    m = Mount(destination="/ctx", source=str(src), readonly=True)
    argv = ["sh", "-c", "cat /ctx/f; touch /ctx/g"]
    code, out, err = step(busybox_rootfs, tmp_path / "u", argv, mounts=[m])
    assert (code, out) == (1, "ctx") and "Read-only file system" in err


def test_network_none_has_only_loopback(busybox_rootfs: Path, tmp_path: Path) -> None:
    argv = ["sh", "-c", "ls /sys/class/net; ping -c1 -W1 127.0.0.1"]
    code, out, _ = step(busybox_rootfs, tmp_path / "u", argv)
    assert code == 0
    assert out.splitlines()[0] == "lo"


def test_output_streams_while_running(busybox_rootfs: Path, tmp_path: Path) -> None:
    seen: list[float] = []
    t0 = time.monotonic()
    argv = ["sh", "-c", "echo a; sleep 0.5; echo b"]
    cwd = busybox_rootfs.parent
    run_step(
        [str(busybox_rootfs)],
        tmp_path / "u",
        argv,
        mount_cwd=cwd,
        stdout=lambda b: seen.append(time.monotonic() - t0),
    )
    assert len(seen) == 2 and seen[0] < 0.4 <= seen[1]


def test_fd_sink(busybox_rootfs: Path, tmp_path: Path) -> None:
    r, w = os.pipe()
    code = run_step(
        [str(busybox_rootfs)], tmp_path / "u", ["echo", "to-fd"], mount_cwd=busybox_rootfs.parent, stdout=w
    )
    os.close(w)
    assert code == 0 and os.read(r, 100) == b"to-fd\n"
    os.close(r)
