"""Containers through the CLI: isolation, exit codes, lifecycle, logs, exec, ps, inspect.

Real namespaces, overlay mounts and cgroups; every test ends with the
``no_leaks`` check (no mounts, cgroups or veths left on the host).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Ctl

pytestmark = pytest.mark.privileged


def state_dirs(ctl: Ctl) -> list[str]:
    d = ctl.root / "containers"
    return sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) if d.exists() else []


def test_exit_code_and_isolation(ctl: Ctl, tmp_path: Path) -> None:
    marker = tmp_path / "host-marker"
    marker.write_text("host")
    script = (
        f"echo $$; hostname; test -e {marker} && echo VISIBLE; ls /; grep -c . /proc/self/mountinfo; exit 7"
    )
    r = ctl("run", "--rm", "busybox", "sh", "-c", script)
    assert r.code == 7, r.err
    lines = r.out.split()
    assert lines[0] == "1"  # pid 1 in its own pid namespace
    assert re.fullmatch(r"[0-9a-f]{12}", lines[1])  # hostname = short container ID
    assert "VISIBLE" not in lines
    assert lines[2:-1] == [
        "bin",
        "dev",
        "etc",
        "home",
        "linuxrc",
        "proc",
        "root",
        "sbin",
        "sys",
        "tmp",
        "usr",
        "var",
    ]
    assert int(lines[-1]) < 40  # its own mount table, not the host's
    assert state_dirs(ctl) == []  # --rm removed it


def test_hostname_user_workdir_env(ctl: Ctl, tmp_path: Path) -> None:
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=1\nSHARED=file\n")
    r = ctl(
        "run",
        "--rm",
        "-h",
        "box",
        "-u",
        "nobody",
        "-w",
        "/work",
        "-e",
        "A=b",
        "--env-file",
        str(envfile),
        "-e",
        "SHARED=flag",
        "busybox",
        "sh",
        "-c",
        "hostname; id -u; pwd; echo $A $FROM_FILE $SHARED $HOME",
    )
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["box", "65534", "/work", "b 1 flag /home"]


def test_entrypoint_and_cmd(ctl: Ctl) -> None:
    assert ctl("run", "--rm", "busybox").code == 0  # CMD ["sh"] with stdin closed exits 0
    r = ctl("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b")
    assert r.out == "a b\n"
    r = ctl("run", "--rm", "--entrypoint", "hostname", "busybox")  # --entrypoint drops the image's CMD
    assert r.code == 0 and re.fullmatch(r"[0-9a-f]{12}\n", r.out)


def test_detached_lifecycle(ctl: Ctl) -> None:
    cid = ctl.ok("run", "-d", "--name", "loop", "busybox", "sh", "-c", "echo started; exec sleep 60").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    ps = ctl.ok("ps")
    assert re.search(rf"^{cid[:12]}   busybox   \"sh -c 'echo started;…\"", ps, re.M) is None
    row = ps.splitlines()[1]
    assert row.startswith(cid[:12]) and row.endswith("loop") and " Up " in row
    # exec joins the same pid namespace: pid 1 is the container's process
    r = ctl("exec", "loop", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
    assert r.code == 0
    first, pid = r.out.splitlines()
    assert first.strip() == "sleep 60" and int(pid) > 1
    assert ctl("exec", "loop", "sh", "-c", "exit 3").code == 3
    r = ctl("exec", "loop", "nope")  # docker prints the runtime's refusal on stdout
    assert r.code == 126 and r.out.startswith("OCI runtime exec failed: ") and r.err == ""
    assert 'exec: "nope": executable file not found in $PATH' in r.out
    ctl.ok("pause", "loop")
    r = ctl("exec", "loop", "true")
    assert (r.code, r.err) == (1, "Error: Container loop is paused, unpause the container before exec\n")
    ctl.ok("unpause", "loop")
    # rm of a running container is refused without -f
    r = ctl("rm", "loop")
    assert r.code == 1
    assert (
        f"You cannot remove a running container {cid}. Stop the container before attempting removal" in r.err
    )
    assert ctl.ok("logs", "loop") == "started\n"
    t0 = time.monotonic()
    assert ctl.ok("stop", "-t", "1", "loop") == "loop\n"
    assert time.monotonic() - t0 < 5
    state = json.loads(ctl.ok("inspect", "loop"))[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137 and not state["Running"]
    assert re.search(r"Exited \(137\) (Less than a second|\d seconds?) ago", ctl.ok("ps", "-a"))
    assert ctl.ok("rm", "loop") == "loop\n"
    assert state_dirs(ctl) == []


def test_detached_container_survives_the_cli(ctl: Ctl) -> None:
    r = ctl.sub("run", "-d", "busybox", "sh", "-c", "sleep 1; echo done")
    cid = r.stdout.strip()
    assert r.returncode == 0 and ctl.ok("inspect", "-f", "{{.State.Running}}", cid) == "true\n"
    assert ctl.ok("wait", cid) == "0\n"
    assert ctl.ok("logs", cid) == "done\n"
    assert "Exited (0)" in ctl.ok("ps", "-a")


def test_kill_start_restart_rename(ctl: Ctl) -> None:
    ctl.ok("create", "--name", "c1", "busybox", "sleep", "60")
    assert "Created" in ctl.ok("ps", "-a")
    assert ctl.ok("start", "c1") == "c1\n"
    assert ctl.ok("kill", "-s", "TERM", "c1") == "c1\n"  # pid 1 ignores an unhandled TERM, as in Docker
    assert ctl.ok("inspect", "-f", "{{.State.Status}}", "c1") == "running\n"
    assert ctl.ok("kill", "c1") == "c1\n"
    assert ctl.ok("wait", "c1") == "137\n"
    r = ctl("kill", "c1")
    assert r.code == 1 and "is not running" in r.err
    ctl.ok("restart", "-t", "0", "c1")
    assert ctl.ok("inspect", "-f", "{{.State.Running}}", "c1") == "true\n"
    ctl.ok("rename", "c1", "c2")
    assert ctl("inspect", "c1").code == 1
    assert ctl.ok("inspect", "-f", "{{.Name}}", "c2") == "/c2\n"
    ctl.ok("rm", "-f", "c2")


def test_logs_follow_tail_timestamps(ctl: Ctl) -> None:
    ctl.ok(
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.4; done",
    )
    proc = subprocess.Popen(ctl.argv("logs", "-f", "talker"), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    t0 = time.monotonic()
    first = proc.stdout.readline()
    assert first == "out1\n" and time.monotonic() - t0 < 1.0  # streamed, not at the end
    rest = proc.stdout.read()
    proc.stdout.close()
    assert proc.wait(10) == 0 and rest == "out2\nout3\n"
    r = ctl("logs", "--tail", "2", "talker")
    assert r.out.splitlines() == ["out3"] and r.err.splitlines() == ["err3"]
    stamped = ctl.ok("logs", "-t", "talker").splitlines()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z out1", stamped)
    r = ctl("logs", "--details", "--tail", "2", "talker")  # docker: no attributes, then a space
    assert (r.out, r.err) == (" out3\n", " err3\n")
    log = Path(json.loads(ctl.ok("inspect", "talker"))[0]["LogPath"])
    entry = json.loads(log.read_text().splitlines()[0])
    assert set(entry) == {"log", "stream", "time"} and entry["stream"] in ("stdout", "stderr")


def test_log_rotation(ctl: Ctl) -> None:
    script = "i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"
    opts = ["--log-opt", "max-size=10k", "--log-opt", "max-file=3"]
    ctl.ok("run", "--name", "big", *opts, "busybox", "sh", "-c", script)
    log = Path(json.loads(ctl.ok("inspect", "big"))[0]["LogPath"])
    files = sorted(p.name for p in log.parent.glob(log.name + "*"))
    assert files == [log.name, log.name + ".1", log.name + ".2"]
    assert all(p.stat().st_size <= 10 * 1024 for p in log.parent.glob(log.name + "*"))
    lines = ctl.ok("logs", "big").splitlines()
    assert lines[-1].startswith("line-399-") and len(lines) < 400


def test_ps_columns_filters_and_format(ctl: Ctl) -> None:
    ctl.ok(
        "create",
        "--name",
        "made",
        "--label",
        "team=a",
        "busybox",
        "sh",
        "-c",
        "echo hello world this is long",
    )
    assert ctl("run", "--name", "done", "busybox", "sh", "-c", "exit 3").code == 3
    out = ctl.ok("ps", "-a").splitlines()
    header = out[0]
    assert re.match(r"CONTAINER ID   IMAGE     COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$", header)
    made = next(line for line in out if line.endswith("made"))
    assert '"sh -c \'echo hello w…"' in made and " Created " in made
    # docker's tabwriter: the COMMAND column is its widest cell + 3
    assert header.index("CREATED") - header.index("COMMAND") == len('"sh -c \'echo hello w…"') + 3
    done = next(line for line in out if line.endswith("done"))
    assert re.search(r"Exited \(3\) .* ago", done)
    assert ctl.ok("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}") == "done\n"
    assert ctl.ok("ps", "-a", "-f", "label=team=a", "--format", "{{.Names}} {{.State}}") == "made created\n"
    assert (
        ctl.ok("ps", "-a", "-f", "exited=3", "-q") == ctl.ok("inspect", "-f", "{{.Id}}", "done")[:12] + "\n"
    )
    assert len(ctl.ok("ps", "-aq", "--no-trunc").split()[0]) == 64
    r = ctl("ps", "-aq", "-f", "exited=3", "--format", "{{.Names}}")  # docker: -q wins, with a warning
    assert r.out == ctl.ok("ps", "-aq", "-f", "exited=3") and r.err.startswith(
        "WARNING: Ignoring custom format"
    )
    ctl.ok("volume", "create", "vq")
    assert ctl.ok("volume", "ls", "-q", "--format", "x{{.Name}}") == "xvq\n"  # there, --format wins
    doc = json.loads(ctl.ok("ps", "-a", "-n", "1", "--format", "{{json .}}"))
    assert doc["Names"] == "done" and doc["Status"].startswith("Exited (3)")


def test_inspect_is_docker_shaped(ctl: Ctl) -> None:
    cid = ctl.ok("create", "--name", "xx", "-e", "K=V", "busybox", "echo", "hi").strip()
    doc = json.loads(ctl.ok("inspect", "xx"))[0]
    assert doc["Id"] == cid and doc["Name"] == "/xx" and doc["Path"] == "echo" and doc["Args"] == ["hi"]
    assert doc["State"]["Status"] == "created" and doc["State"]["StartedAt"] == "0001-01-01T00:00:00Z"
    assert doc["Config"]["Cmd"] == ["echo", "hi"] and "K=V" in doc["Config"]["Env"]
    assert doc["Config"]["Image"] == "busybox" and doc["Image"].startswith("sha256:")
    assert (
        doc["HostConfig"]["NetworkMode"] == "bridge" and doc["HostConfig"]["LogConfig"]["Type"] == "json-file"
    )
    assert doc["GraphDriver"]["Name"] == "overlay2" and "Dockyard" not in doc
    assert json.loads(ctl.ok("container", "inspect", cid))[0]["Id"] == cid
    # a container holds its image: rmi refuses
    r = ctl("rmi", "busybox")
    assert r.code != 0


def test_bad_input_leaves_nothing(ctl: Ctl, no_leaks: None) -> None:
    before = state_dirs(ctl)
    cases = [
        (["run", "--rm", "--pull", "never", "nosuchimage"], 125, "No such image: nosuchimage:latest"),
        (["run", "--rm", "127.0.0.1:1/nosuch"], 125, "127.0.0.1:1: cannot reach the registry"),
        (["run", "-p", "foo", "busybox"], 125, "invalid containerPort: foo"),
        (["run", "-p", "99999:80", "busybox"], 125, "invalid hostPort: 99999"),
        (["run", "-v", "/a:b", "busybox"], 125, "invalid mount path: 'b' mount path must be absolute"),
        (["run", "-v", "a/b:/c", "busybox"], 125, "includes invalid characters for a local volume name"),
        (["run", "--name", "a/b", "busybox"], 125, "Invalid container name (a/b)"),
        (["run", "-w", "rel", "busybox"], 125, "the working directory 'rel' is invalid"),
        (["run", "-m", "100", "busybox"], 125, "Minimum memory limit allowed is 6MB"),
        (
            ["run", "--memory-swap", "10m", "busybox"],
            125,
            "always set the Memory limit when using Memoryswap",
        ),
        (["run", "--rm", "busybox", "nope"], 127, 'exec: "nope": executable file not found in $PATH'),
        (["run", "--rm", "-u", "bob", "busybox", "id"], 125, "unable to find user bob: no matching entries"),
        (["run", "--rm", "busybox", "/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied'),
        (["run", "--stop-signal", "SIGFOO", "busybox"], 125, "Invalid signal: SIGFOO"),
        (
            ["run", "--network", "container:x", "-p", "80", "busybox"],
            125,
            "port publishing and the container",
        ),
    ]
    for argv, code, message in cases:
        r = ctl(*argv)
        assert (r.code, message in r.err) == (code, True), (argv, r.code, r.err)
        assert r.err.count("Error") == 1
    assert state_dirs(ctl) == before
    assert not (ctl.root / "volumes").exists() or not list((ctl.root / "volumes").iterdir())


def test_published_ports_without_a_network_of_their_own(ctl: Ctl) -> None:
    """docker drops -p with --network none silently, and with host after a warning."""
    assert ctl("run", "--rm", "--network", "none", "-p", "80", "busybox", "true").code == 0
    r = ctl("run", "--rm", "--network", "host", "-p", "80:80", "busybox", "true")
    assert (r.code, r.err) == (0, "WARNING: Published ports are discarded when using host network mode\n")


def test_missing_command_without_rm_stays_created(ctl: Ctl) -> None:
    r = ctl("run", "--name", "broken", "busybox", "nope")
    assert r.code == 127
    state = json.loads(ctl.ok("inspect", "broken"))[0]["State"]
    assert (
        state["Status"] == "created"
        and state["ExitCode"] == 127
        and "executable file not found" in state["Error"]
    )


def test_name_in_use(ctl: Ctl) -> None:
    cid = ctl.ok("create", "--name", "taken", "busybox").strip()
    r = ctl("run", "--name", "taken", "busybox")
    assert r.code == 125
    assert (
        f'Conflict. The container name "/taken" is already in use by container "{cid}". '
        "You have to remove (or rename) that container to be able to reuse that name." in r.err
    )
    assert len(state_dirs(ctl)) == 1


def test_read_only_and_init(ctl: Ctl) -> None:
    r = ctl(
        "run", "--rm", "--read-only", "busybox", "sh", "-c", "touch /x || echo ro; touch /tmp/x || echo ro2"
    )
    assert r.out.split() == ["ro", "ro2"]
    r = ctl("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert r.code == 0 and r.out.startswith("/sbin/docker-init -- sh -c")


def test_monitor_death_is_reported_honestly(ctl: Ctl) -> None:
    cid = ctl.ok("run", "-d", "busybox", "sleep", "60").strip()
    state = json.loads((ctl.root / "containers" / cid / "state.json").read_text())
    os.kill(state["MonitorPid"], 9)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{state['Pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{state['Pid']}").exists()  # pid 1 died with its monitor (PDEATHSIG)
    row = ctl.ok("ps", "-a").splitlines()[1]
    assert " Dead " in row and " Up " not in row
    assert ctl.ok("inspect", "-f", "{{.State.Status}}", cid) == "dead\n"
    assert ctl.ok("rm", cid) == cid + "\n"  # and its cgroups and veth go with it (no_leaks)
    assert json.loads(ctl.ok("network", "inspect", "bridge"))[0]["Containers"] == {}  # the lease too


def test_pty_interactive_session(ctl: Ctl) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        ctl.argv("run", "-it", "--name", "tty", "busybox", "sh")[0],
        ctl.argv("run", "-it", "--name", "tty", "busybox", "sh")[1:],
        encoding="utf-8",
        timeout=10,
        dimensions=(33, 101),
    )
    child.expect("# ")
    child.sendline("tty; stty size; echo $TERM")
    child.expect("xterm")
    assert "/dev/pts/0" in child.before and "33 101" in child.before
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5
    # Ctrl-P Ctrl-Q detaches; attach comes back
    args = ctl.argv("run", "-it", "--name", "tty2", "busybox", "sh")
    child = pexpect.spawn(args[0], args[1:], encoding="utf-8", timeout=10)
    child.expect("# ")
    child.send("\x10\x11")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert ctl.ok("inspect", "-f", "{{.State.Running}}", "tty2") == "true\n"
    args = ctl.argv("attach", "tty2")
    child = pexpect.spawn(args[0], args[1:], encoding="utf-8", timeout=10)
    time.sleep(0.3)
    child.sendline("echo back-$((40+2))")
    child.expect("back-42")
    child.sendline("exit 4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4
    # exec -it gets its own pty inside the container
    ctl.ok("run", "-d", "--name", "bg", "busybox", "sleep", "60")
    args = ctl.argv("exec", "-it", "bg", "sh")
    child = pexpect.spawn(args[0], args[1:], encoding="utf-8", timeout=10)
    child.expect("# ")
    child.sendline("tty; exit 6")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 6 and "/dev/pts/0" in child.before


def test_interactive_stdin_pipe(ctl: Ctl) -> None:
    r = ctl.sub("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; echo rc=$?", input="hello\n")
    assert r.returncode == 0 and r.stdout == "HELLO\nrc=0\n"
    r = ctl.sub("run", "--rm", "busybox", "sh", "-c", "cat; echo eof", input="ignored\n")
    assert r.stdout == "eof\n"  # without -i the container's stdin is /dev/null


def test_interactive_stdin_from_a_file_or_dev_null(ctl: Ctl, tmp_path: Path) -> None:
    """epoll refuses regular files and /dev/null: docker run -i img sh < script must work."""
    script = tmp_path / "script.sh"
    script.write_text("echo from-script\nexit 4\n")
    with script.open("rb") as f:
        r = ctl.sub("run", "--rm", "-i", "busybox", "sh", stdin=f)
    assert (r.returncode, r.stdout, r.stderr) == (4, "from-script\n", "")
    r = ctl.sub("run", "--rm", "-i", "busybox", "wc", "-c", stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stdout) == (0, "0\n")
    r = ctl.sub("run", "--rm", "-it", "busybox", "cat", stdin=subprocess.DEVNULL)  # as docker
    assert (r.returncode, r.stderr) == (1, "the input device is not a TTY\n")
    assert ctl.ok("ps", "-aq") == ""


def test_interactive_stdin_keeps_every_byte_and_bounds_the_monitor(ctl: Ctl) -> None:
    """30 MB into a container that reads only after 2 s: every byte arrives, and
    the monitor holds about 1 MiB of it, not all of it (the writer waits)."""
    import hashlib
    import threading

    data = os.urandom(30 << 20)
    with subprocess.Popen(
        ctl.argv("run", "--rm", "-i", "--name", "slow", "busybox", "sh", "-c", "sleep 2; md5sum"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as p:
        assert p.stdin is not None and p.stdout is not None
        stdin = p.stdin
        writer = threading.Thread(target=lambda: (stdin.write(data), stdin.close()))
        writer.start()
        time.sleep(1.2)
        cid = ctl.ok("inspect", "-f", "{{.Id}}", "slow").strip()
        state = json.loads((ctl.root / "containers" / cid / "state.json").read_text())
        status = Path(f"/proc/{state['MonitorPid']}/status").read_text()
        rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status)[1])  # type: ignore[index]
        out = p.stdout.read().decode()
        writer.join()
        assert p.wait(timeout=60) == 0
    assert out.split()[0] == hashlib.md5(data).hexdigest()
    assert rss_kb < 40_000, f"the monitor held {rss_kb} kB of stdin"


def test_container_prune(ctl: Ctl) -> None:
    ctl.ok("run", "busybox", "true")
    ctl.ok("create", "busybox")
    running = ctl.ok("run", "-d", "busybox", "sleep", "60").strip()
    out = ctl.ok("container", "prune", "-f")
    assert out.startswith("Deleted Containers:\n") and "Total reclaimed space:" in out
    assert ctl.ok("ps", "-aq", "--no-trunc").split() == [running]


def test_parallel_runs_do_not_collide(ctl: Ctl) -> None:
    procs = [
        subprocess.Popen(
            ctl.argv("run", "--name", f"par{i}", "busybox", "sh", "-c", f"hostname; exit {i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    results = [(p.wait(60), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == list(range(6)), results
    assert len({out for _, out, _ in results}) == 6  # six hostnames, six IDs
    codes = [ctl.ok("inspect", "-f", "{{.State.ExitCode}}", f"par{i}") for i in range(6)]
    assert codes == [f"{i}\n" for i in range(6)]
    assert json.loads(ctl.ok("network", "inspect", "bridge"))[0]["Containers"] == {}  # every lease returned


def test_stop_signal_and_init(ctl: Ctl) -> None:
    # with --init, tini forwards SIGTERM to the command: stop is immediate
    ctl.ok("run", "-d", "--init", "--name", "inited", "busybox", "sleep", "60")
    deadline = time.monotonic() + 10
    while len(ctl.ok("top", "inited").splitlines()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # tini has its signal handling set up once it has started the command
    t0 = time.monotonic()
    ctl.ok("stop", "inited")
    assert time.monotonic() - t0 < 5
    assert ctl.ok("inspect", "-f", "{{.State.ExitCode}}", "inited") == "143\n"
    # --stop-signal: a trap on USR1 ends the script with its own status
    script = "trap 'exit 42' USR1; echo ready; while true; do sleep 0.1; done"
    ctl.ok("run", "-d", "--stop-signal", "SIGUSR1", "--name", "trapper", "busybox", "sh", "-c", script)
    deadline = time.monotonic() + 10
    while ctl.ok("logs", "trapper") != "ready\n" and time.monotonic() < deadline:
        time.sleep(0.05)  # the trap is set
    ctl.ok("stop", "-t", "5", "trapper")
    assert ctl.ok("inspect", "-f", "{{.State.ExitCode}} {{.Config.StopSignal}}", "trapper") == "42 SIGUSR1\n"
    # a tty container's log is its terminal output
    ctl.ok("run", "-t", "--name", "ttylog", "busybox", "echo", "on-a-tty")
    assert ctl.ok("logs", "ttylog") == "on-a-tty\r\n"


def test_run_pulls_a_missing_image_as_docker_does(ctl: Ctl, tmp_path: Path) -> None:
    """run (and create) pull what the store lacks, with docker's lines on stderr;
    --pull never refuses, --pull always pulls even so."""
    from tests.client_fixtures import start_registry

    reg = start_registry("dockyard", tmp_path / "reg")
    try:
        name = f"{reg.host}/pulled/bb:1"
        ctl.ok("tag", "busybox", name)
        ctl.ok("push", "-q", name)
        ctl.ok("rmi", name)
        r = ctl.sub("run", "--rm", name, "echo", "ran")
        assert (r.returncode, r.stdout) == (0, "ran\n"), r.stderr
        assert r.stderr.startswith(f"Unable to find image '{name}' locally\n1: Pulling from pulled/bb\n")
        assert f"Status: Downloaded newer image for {name}\n" in r.stderr
        r = ctl.sub("run", "--rm", "--pull", "always", "-q", name, "echo", "again")
        assert (r.returncode, r.stdout, r.stderr) == (0, "again\n", "")
        missing = f"{reg.host}/pulled/bb:2"
        r = ctl.sub("run", "--rm", "--pull", "never", missing, "true")
        assert r.returncode == 125 and r.stderr.endswith(f"Error: No such image: {missing}\n")
        r = ctl.sub("create", missing)
        assert r.returncode != 0 and f"manifest for {missing} not found" in r.stderr
    finally:
        reg.stop()
    assert ctl.ok("ps", "-aq") == ""


def test_capabilities_hosts_dns_ulimits_shm_groups(ctl: Ctl, tmp_path: Path) -> None:
    """--cap-add/--cap-drop, --add-host, --dns*, --ulimit, --shm-size, --group-add,
    --label-file and --cidfile, as docker 20.10 gives them (its output here)."""
    script = (
        "grep CapEff /proc/self/status; tail -2 /etc/hosts; cat /etc/resolv.conf; ulimit -n; ulimit -Hn;"
        " df -k /dev/shm | tail -1; id"
    )
    out = ctl.ok(
        "run", "--rm", "--network", "none", "--cap-add", "net_admin", "--cap-drop", "CAP_CHOWN",
        "--add-host", "foo:1.2.3.4", "--add-host", "bar:::1", "--dns", "9.9.9.9", "--dns-search", "ex.com",
        "--dns-option", "ndots:2",
        "--ulimit", "nofile=100:200", "--shm-size", "1m", "--group-add", "10", "--group-add", "daemon",
        "busybox", "sh", "-c", script,
    )  # fmt: skip
    assert out == (
        "CapEff:\t00000000a80435fa\n1.2.3.4\tfoo\n::1\tbar\n"
        "search ex.com\nnameserver 9.9.9.9\noptions ndots:2\n100\n200\n"
        "shm                       1024         0      1024   0% /dev/shm\n"
        "uid=0(root) gid=0(root) groups=0(root),1(daemon),10(wheel)\n"
    )
    labels = tmp_path / "labels"
    labels.write_text("# comment\n\na=1\n  b\n")
    cidfile = tmp_path / "cid"
    cid = ctl.ok(
        "run", "-d", "--cidfile", str(cidfile), "--label-file", str(labels), "--cap-drop", "ALL",
        "--cap-add", "chown", "--ulimit", "nproc=50", "busybox", "sleep", "30",
    ).strip()  # fmt: skip
    assert cidfile.read_text() == cid
    assert ctl.ok("exec", cid, "grep", "CapEff", "/proc/self/status") == "CapEff:\t0000000000000001\n"
    doc = json.loads(ctl.ok("inspect", cid))[0]
    assert doc["Config"]["Labels"] == {"a": "1", "b": ""}
    assert (doc["HostConfig"]["CapAdd"], doc["HostConfig"]["CapDrop"]) == (["CAP_CHOWN"], ["ALL"])
    assert doc["HostConfig"]["Ulimits"] == [{"Hard": 50, "Name": "nproc", "Soft": 50}]
    r = ctl("run", "--cidfile", str(cidfile), "busybox", "true")
    assert r.code == 125 and "Container ID file found" in r.err
    for argv, message in (
        (["--cap-add", "foo"], 'invalid CapAdd: unknown capability: "CAP_FOO"'),
        (["--ulimit", "nofile=x"], 'strconv.ParseInt: parsing "x": invalid syntax'),
        (["--add-host", "foo"], 'bad format for add-host: "foo"'),
        (["--add-host", "foo:bar"], 'invalid IP address in add-host: "bar"'),
        (["--shm-size", "foo"], "invalid size: 'foo'"),
        (["--group-add", "nosuch"], "Unable to find group nosuch: no matching entries in group file"),
    ):
        r = ctl("run", "--rm", *argv, "busybox", "true")
        assert r.code == 125 and message in r.err, (argv, r.err)
    ctl.ok("rm", "-f", cid)


def test_namespace_modes_and_privileged(ctl: Ctl) -> None:
    """--pid/--ipc/--uts host or container:X, and --privileged, as docker 20.10 has them."""
    out = ctl.ok(
        "run",
        "--rm",
        "--pid",
        "host",
        "busybox",
        "sh",
        "-c",
        "test $$ -gt 1 && test -d /proc/1 && echo ok",
    )
    assert out == "ok\n"
    host = os.uname().nodename
    assert ctl.ok("run", "--rm", "--uts", "host", "busybox", "hostname") == f"{host}\n"
    assert os.uname().nodename == host  # the container did not rename the host
    peer = ctl.ok("run", "-d", "--ipc", "shareable", "busybox", "sleep", "60").strip()
    assert (
        ctl.ok(
            "run", "--rm", "--pid", f"container:{peer}", "busybox", "sh", "-c", "ps -o comm | grep -c sleep"
        )
        == "1\n"
    )
    ctl.ok("run", "--rm", "--ipc", f"container:{peer}", "busybox", "true")
    private = ctl.ok("run", "-d", "busybox", "sleep", "60").strip()
    r = ctl("run", "--rm", "--ipc", f"container:{private}", "busybox", "true")
    assert r.code == 125 and "non-shareable IPC" in r.err
    bounding = Path("/proc/self/status").read_text().split("CapBnd:")[1].split()[0]
    script = "grep CapEff /proc/self/status; mount | grep ' /sys ' | cut -d' ' -f6; mkdir /m"
    out = ctl.ok(
        "run", "--rm", "--privileged", "busybox", "sh", "-c", script + " && mount -t tmpfs t /m && echo ok"
    )
    assert out.startswith(f"CapEff:\t{bounding}\n(rw,") and out.endswith("\nok\n"), out
    for argv, message in (
        (["--pid", "foo"], "--pid: invalid PID mode"),
        (["--uts", "host", "-h", "x"], "conflicting options: hostname and the UTS mode"),
    ):
        r = ctl("run", "--rm", *argv, "busybox", "true")
        assert r.code == 125 and message in r.err, (argv, r.err)


def test_restart_policies(ctl: Ctl) -> None:
    """--restart as docker's: on-failure:N starts a failing container N more times;
    always goes on (with back-off) until a stop, which it does not undo."""
    cid = ctl.ok("run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 3").strip()
    assert ctl.ok("wait", cid) == "3\n"
    deadline = time.monotonic() + 10
    while ctl.ok("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", cid) != "exited 2\n":
        assert time.monotonic() < deadline, ctl.ok(
            "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", cid
        )
        time.sleep(0.1)
    assert ctl.ok("logs", cid) == "run\nrun\nrun\n"
    assert json.loads(ctl.ok("inspect", "-f", "{{json .HostConfig.RestartPolicy}}", cid)) == {
        "Name": "on-failure",
        "MaximumRetryCount": 2,
    }
    always = ctl.ok("run", "-d", "--restart", "always", "busybox", "sh", "-c", "exit 1").strip()
    time.sleep(1.0)
    assert int(ctl.ok("inspect", "-f", "{{.RestartCount}}", always)) >= 2
    ctl.ok("stop", "-t", "1", always)
    stopped = ctl.ok("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", always)
    time.sleep(0.8)
    assert ctl.ok("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", always) == stopped
    assert stopped.startswith("exited ")
    late = ctl.ok("run", "-d", "busybox", "sh", "-c", "sleep 0.5; exit 1").strip()
    ctl.ok("update", "--restart", "on-failure:1", late)  # read by the monitor at the exit
    deadline = time.monotonic() + 10
    while ctl.ok("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", late) != "exited 1\n":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for argv, message in (
        (["--restart", "always:3"], "maximum retry count cannot be used with restart policy 'always'"),
        (["--restart", "foo"], "invalid restart policy 'foo'"),
        (["--restart", "always", "--rm"], "conflicting options: cannot specify both --restart and --rm"),
    ):
        r = ctl("run", *argv, "busybox", "true")
        assert r.code == 125 and message in r.err, (argv, r.err)


def test_health_checks(ctl: Ctl) -> None:
    """HEALTHCHECK and --health-*: starting, then unhealthy after Retries failures, healthy
    once the probe passes; a probe past its timeout is killed and fails with exit -1."""

    def status(name: str) -> str:
        return ctl.ok("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").strip()

    def until(name: str, suffix: str) -> None:
        deadline = time.monotonic() + 30  # generous: a loaded CI machine runs probes late
        while not status(name).endswith(suffix):
            assert time.monotonic() < deadline, status(name)
            time.sleep(0.1)

    # 1 s between probes: "starting" must still be what ps shows just after the start
    flags = ["--health-interval", "1s", "--health-retries", "2"]
    ctl.ok("run", "-d", "--name", "hc", *flags, "--health-cmd", "test -e /tmp/ok", "busybox", "sleep", "60")
    assert status("hc").endswith("(health: starting)")
    until("hc", "(unhealthy)")
    assert ctl.ok("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}") == "hc\n"
    ctl.ok("exec", "hc", "touch", "/tmp/ok")
    until("hc", "(healthy)")
    health = json.loads(ctl.ok("inspect", "-f", "{{json .State.Health}}", "hc"))
    assert health["Status"] == "healthy" and health["FailingStreak"] == 0 and len(health["Log"]) <= 5
    assert health["Log"][-1]["ExitCode"] == 0
    ctl.ok(
        "commit",
        "-c",
        'HEALTHCHECK --interval=200ms --timeout=300ms --retries=1 CMD ["sleep", "5"]',
        "hc",
        "hc:img",
    )
    ctl.ok("run", "-d", "--name", "slow", "hc:img", "sleep", "60")
    until("slow", "(unhealthy)")
    log = json.loads(ctl.ok("inspect", "-f", "{{json .State.Health}}", "slow"))["Log"]
    assert (log[0]["ExitCode"], log[0]["Output"]) == (-1, "Health check exceeded timeout (300ms)")
    assert ctl.ok("run", "--rm", "--no-healthcheck", "hc:img", "true") == ""
    r = ctl("run", "--rm", "--no-healthcheck", "--health-cmd", "x", "busybox", "true")
    assert r.code == 125 and "--no-healthcheck conflicts with --health-* options" in r.err
    ctl.ok("rm", "-f", "hc", "slow")
    ctl.ok("rmi", "hc:img")


def test_prune_filters_sizes_and_forced_removal(ctl: Ctl) -> None:
    """container prune --filter until/label/label! (docker's; they were once ignored), ps -s,
    rm -f of a missing container (said, exit 0), inspect --type."""
    ctl.ok(
        "run", "--name", "keepme", "-l", "keep=yes", "busybox", "sh", "-c", "head -c 100000 /dev/zero > /f"
    )
    ctl.ok("run", "--name", "dropme", "busybox", "true")
    assert "Deleted Containers" not in ctl.ok("container", "prune", "-f", "--filter", "until=1h")
    out = ctl.ok("ps", "-a", "-s", "--filter", "name=keepme", "--format", "{{.Size}}")
    assert re.fullmatch(r"100kB \(virtual \d+(\.\d+)?MB\)\n", out), out
    assert "SIZE" in ctl.ok("ps", "-a", "--size").splitlines()[0]
    ctl.ok("container", "prune", "-f", "--filter", "label!=keep")
    assert ctl.ok("ps", "-a", "--format", "{{.Names}}") == "keepme\n"
    r = ctl("container", "prune", "-f", "--filter", "bogus=1")
    assert r.code != 0 and "Invalid filter 'bogus'" in r.err
    r = ctl("rm", "-f", "keepme", "nosuch")
    assert (r.code, r.out, r.err) == (0, "keepme\n", "Error: No such container: nosuch\n")
    r = ctl("inspect", "--type", "container", "busybox")
    assert r.code == 1 and r.err == "Error: No such container: busybox\n"


def test_sysctls_and_security_opts(ctl: Ctl) -> None:
    """--sysctl in the container's own namespaces (the host's stay as they were), refused as
    docker refuses them; --security-opt with what dockyard honours or has nothing to load."""
    host = Path("/proc/sys/net/ipv4/ping_group_range").read_text()
    script = "cat /proc/sys/net/ipv4/ping_group_range /proc/sys/kernel/shmmax"
    out = ctl.ok(
        "run", "--rm", "--sysctl", "net.ipv4.ping_group_range=5 6", "--sysctl", "kernel.shmmax=1000000",
        "busybox", "sh", "-c", script,
    )  # fmt: skip
    assert out == "5\t6\n1000000\n"
    assert Path("/proc/sys/net/ipv4/ping_group_range").read_text() == host
    r = ctl("run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "true")
    assert r.code == 125 and 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace' in r.err
    nnp = "grep NoNewPrivs /proc/self/status"
    assert ctl.ok("run", "--rm", "busybox", "sh", "-c", nnp) == "NoNewPrivs:\t1\n"
    opts = ["--security-opt", "no-new-privileges=false", "--security-opt", "seccomp=unconfined"]
    assert ctl.ok("run", "--rm", *opts, "busybox", "sh", "-c", nnp) == "NoNewPrivs:\t0\n"
    cid = ctl.ok("run", "-d", "busybox", "sleep", "30").strip()
    caps = "grep CapEff /proc/self/status"
    assert ctl.ok("exec", cid, "sh", "-c", caps) == "CapEff:\t00000000a80425fb\n"  # docker's default set
    bounding = Path("/proc/self/status").read_text().split("CapBnd:")[1].split()[0]
    assert ctl.ok("exec", "--privileged", cid, "sh", "-c", caps) == f"CapEff:\t{bounding}\n"
    for argv, message in (
        (["--sysctl", "vm.swappiness=10"], "sysctl 'vm.swappiness=10' is not allowed"),
        (["--security-opt", "bogus"], 'Invalid --security-opt: "bogus"'),
        (["--security-opt", "seccomp=/x.json"], "use seccomp=unconfined"),
    ):
        r = ctl("run", "--rm", *argv, "busybox", "true")
        assert r.code == 125 and message in r.err, (argv, r.err)
