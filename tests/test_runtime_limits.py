"""Resource limits through cgroups: OOM kills, CPU quota, pids, block I/O, update, stats, top."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from runtime.kernel.cgroups import Cgroup, Hierarchy, default_parent
from tests.conftest import Ctl

pytestmark = pytest.mark.privileged


def cgroup_file(cid: str, controller: str, name: str) -> str:
    dirs = Cgroup(cid, default_parent()).dirs()
    d = dirs.get(controller) or dirs.get("unified")
    assert d is not None, f"no {controller} cgroup"
    return (d / name).read_text().strip()


def test_hierarchy_detection() -> None:
    h = Hierarchy.detect()
    assert h.v1 or h.v2
    if h.v1:  # this host: v1 controllers, and a unified mount that must not be mistaken for v2
        assert {"memory", "cpu", "pids"} <= set(h.v1) and h.v2 is None


def test_oom_kill_under_memory_limit(ctl: Ctl) -> None:
    r = ctl(
        "run",
        "--name",
        "hog",
        "--memory",
        "8m",
        "busybox",
        "sh",
        "-c",
        "exec dd if=/dev/zero of=/dev/null bs=32M count=1",
    )
    assert r.code == 137
    state = json.loads(ctl.ok("inspect", "hog"))[0]["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    assert ctl.ok("inspect", "-f", "{{.HostConfig.Memory}}", "hog") == str(8 << 20) + "\n"
    r = ctl(
        "run", "--rm", "--memory", "64m", "busybox", "sh", "-c", "dd if=/dev/zero of=/dev/null bs=8M count=1"
    )
    assert r.code == 0  # under the limit


def test_cpu_pids_memory_files(ctl: Ctl) -> None:
    cid = ctl.ok(
        "run",
        "-d",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "20",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "busybox",
        "sleep",
        "60",
    ).strip()
    if Cgroup(cid, default_parent()).h.v1:
        assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert cgroup_file(cid, "cpu", "cpu.cfs_period_us") == "100000"
        assert cgroup_file(cid, "cpu", "cpu.shares") == "512"
        assert cgroup_file(cid, "cpuset", "cpuset.cpus") == "0"
        assert cgroup_file(cid, "memory", "memory.limit_in_bytes") == str(64 << 20)
        if os.path.exists(Cgroup(cid, default_parent()).dirs()["memory"] / "memory.memsw.limit_in_bytes"):
            assert cgroup_file(cid, "memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
    else:
        assert cgroup_file(cid, "cpu", "cpu.max") == "50000 100000"
    assert cgroup_file(cid, "pids", "pids.max") == "20"
    # the container sees itself in those groups
    cg = ctl.ok("exec", cid, "cat", "/proc/self/cgroup")
    assert f"{default_parent()}/{cid}" in cg
    assert json.loads(ctl.ok("inspect", cid))[0]["HostConfig"]["CgroupParent"] == default_parent()
    hc = json.loads(ctl.ok("inspect", cid))[0]["HostConfig"]
    assert (hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"], hc["MemorySwap"]) == (
        500000000,
        512,
        20,
        128 << 20,
    )


def test_cpu_period_and_quota(ctl: Ctl) -> None:
    cid = ctl.ok("create", "--cpu-period", "50000", "--cpu-quota", "25000", "busybox", "sleep", "60").strip()
    ctl.ok("start", cid)
    if Cgroup(cid, default_parent()).h.v1:
        assert cgroup_file(cid, "cpu", "cpu.cfs_period_us") == "50000"
        assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us") == "25000"
    r = ctl("run", "--cpus", "1", "--cpu-period", "1000", "busybox")
    assert r.code == 125 and "Nano CPUs and CPU Period cannot both be set" in r.err


def test_container_sees_its_own_cgroups_read_only(ctl: Ctl) -> None:
    """As in docker: /sys/fs/cgroup shows the container's groups (its limits), read-only."""
    script = (
        "if [ -e /sys/fs/cgroup/cgroup.controllers ]; then cat /sys/fs/cgroup/memory.max;"
        " else cat /sys/fs/cgroup/memory/memory.limit_in_bytes; ls /sys/fs/cgroup; fi;"
        " mkdir /sys/fs/cgroup/x 2>&1; true"
    )
    out = ctl.ok("run", "--rm", "--memory", "64m", "busybox", "sh", "-c", script).split("\n")
    assert out[0] == "67108864"
    if Cgroup("x", default_parent()).h.v1:
        assert {"memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices"} <= set(out[1:-2])
    assert "Read-only file system" in out[-2]
    if Cgroup("x", default_parent()).h.v1:
        r = ctl("run", "--rm", "busybox", "mkdir", "/sys/fs/cgroup/pids/x")
        assert r.code == 1 and "Read-only file system" in r.err


def test_pids_limit_is_enforced(ctl: Ctl) -> None:
    script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; echo done"
    r = ctl("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c", script)
    assert r.code == 2 and r.out == "" and "can't fork" in r.err  # busybox sh gives up at the 5th process
    r = ctl("run", "--rm", "--pids-limit", "20", "busybox", "sh", "-c", script)
    assert r.code == 0 and r.out == "done\n"


def test_device_write_bps(ctl: Ctl) -> None:
    dev = next((d for d in ("/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda") if Path(d).exists()), None)
    if dev is None:
        pytest.skip("no block device to throttle")
    st = os.stat(dev)
    cid = ctl.ok("run", "-d", "--device-write-bps", f"{dev}:1mb", "busybox", "sleep", "60").strip()
    if Cgroup(cid, default_parent()).h.v1:
        rules = cgroup_file(cid, "blkio", "blkio.throttle.write_bps_device")
        assert f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)} 1048576" in rules
    r = ctl("run", "--device-read-bps", "/dev/nonexistent:1mb", "busybox")
    assert r.code == 125 and "/dev/nonexistent" in r.err


def test_update_stats_top(ctl: Ctl) -> None:
    cid = ctl.ok(
        "run", "-d", "--name", "busy", "--memory", "64m", "busybox", "sh", "-c", "while true; do :; done"
    ).strip()
    assert ctl.ok("update", "--cpus", "0.25", "--memory", "32m", "--pids-limit", "30", "busy") == "busy\n"
    if Cgroup(cid, default_parent()).h.v1:
        assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us") == "25000"
        assert cgroup_file(cid, "memory", "memory.limit_in_bytes") == str(32 << 20)
    assert cgroup_file(cid, "pids", "pids.max") == "30"
    hc = json.loads(ctl.ok("inspect", "busy"))[0]["HostConfig"]
    assert (hc["NanoCpus"], hc["Memory"], hc["PidsLimit"]) == (250000000, 32 << 20, 30)
    out = ctl.ok("stats", "--no-stream", "busy").splitlines()
    assert re.match(
        r"CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE / LIMIT\s+MEM %\s+NET I/O\s+BLOCK I/O\s+PIDS$", out[0]
    )
    cells = re.split(r"\s{2,}", out[1])
    assert cells[0] == cid[:12] and cells[1] == "busy" and cells[3].endswith("/ 32MiB") and cells[-1] == "1"
    assert 5.0 <= float(cells[2].rstrip("%")) <= 40.0  # capped at a quarter of a CPU
    top = ctl.ok("top", "busy").splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"] and len(top) == 2 and "while true" in top[1]
    r = ctl("update", "--memory", "1m", "busy")
    assert r.code == 1 and "Minimum memory limit allowed is 6MB" in r.err
    fmt = ctl.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "busy")
    assert fmt == "busy 1\n"


def test_cgroup_parent(ctl: Ctl) -> None:
    parent = f"{default_parent()}/nested"
    cid = ctl.ok("run", "-d", "--cgroup-parent", parent, "busybox", "sleep", "60").strip()
    try:
        assert f"{parent}/{cid}" in ctl.ok("exec", cid, "cat", "/proc/self/cgroup")
        ctl.ok("rm", "-f", cid)
        assert not Cgroup(cid, parent).exists()
    finally:
        for d in Cgroup("x", parent).dirs().values():
            if d.parent.is_dir():
                d.parent.rmdir()
    r = ctl("run", "--cgroup-parent", "../escape", "busybox")
    assert r.code == 125 and "invalid cgroup parent" in r.err
