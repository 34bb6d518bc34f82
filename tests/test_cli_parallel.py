"""Verbs docker's CLI runs on many containers at once (stop, kill, rm, pause,
unpause: its parallelOperation), and their output, in the order given."""

from __future__ import annotations

from tests.conftest import Ctl

N = 4
# On SIGTERM, a container says so in the shared volume, then waits until all N have
# had theirs before it exits 0: stopped one at a time, the first would wait for the
# others until its stop timeout and be killed (137).  No clock is read.
TRAP = (
    "trap 'touch /s/$NAME; while [ $(ls /s | wc -l) -lt {n} ]; do sleep 0.1; done; exit 0' TERM; "
    "sleep 1000 & wait"
)


def test_stop_signals_every_container_at_once(ctl: Ctl) -> None:
    names = [f"par{i}" for i in range(N)]
    for name in names:
        ctl.ok(
            "run",
            "-d",
            "--name",
            name,
            "-e",
            f"NAME={name}",
            "-v",
            "parvol:/s",
            "busybox",
            "sh",
            "-c",
            TRAP.format(n=N),
        )
    r = ctl("stop", "-t", "20", names[0], "nosuch", *names[1:])
    assert r.code == 1
    assert r.out.split() == names  # docker's order: as given, the failures after
    assert r.err == "Error: No such container: nosuch\n"
    codes = [ctl.ok("inspect", "-f", "{{.State.ExitCode}}", n).strip() for n in names]
    assert codes == ["0"] * N  # every one had its TERM while the others waited
    ctl.ok("rm", *names)
    ctl.ok("volume", "rm", "parvol")


def test_kill_and_rm_f_report_in_the_order_given(ctl: Ctl) -> None:
    names = [f"k{i}" for i in range(3)]
    for name in names:
        ctl.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    r = ctl("kill", "nosuch", *names)
    assert (r.code, r.out.split(), r.err) == (1, names, "Error: No such container: nosuch\n")
    r = ctl("rm", "-f", names[2], "gone", names[0], names[1])
    assert (r.code, r.out.split()) == (0, [names[2], names[0], names[1]])
    assert r.err == "Error: No such container: gone\n"
    assert ctl.ok("ps", "-aq") == ""
