"""``docker exec``: run a process in a running container's namespaces and cgroups.

A forked helper opens the container's cgroup.procs files, joins its ipc, uts,
net, pid and mount namespaces (setns puts it at the container's root), and
forks the process, which is then pid N inside the container; the helper waits
and exits with its status.  No monitor is involved: exec output is not logged,
as in Docker.  A detached exec (``exec -d``) is started by a process of its own
that outlives the caller, waits for it (keeping a terminal's master open, as
containerd's shim) and reports its end.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable

from runtime.container.launchspec import process_of
from runtime.container.store import Container
from runtime.errors import NotRunning, RuntimeFailure, StartFailed
from runtime.kernel import syscalls as L
from runtime.process import launch
from runtime.spec import Process, merge_env

NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")


def process_for(
    c: Container,
    argv: list[str],
    *,
    env: list[str],
    user: str,
    workdir: str,
    tty: bool,
    window: tuple[int, int],
    privileged: bool = False,
    link_env: tuple[str, ...] = (),
) -> Process:
    """The exec'd process: the container's (launchspec.process_of, with TERM for a
    tty, every capability with ``privileged`` and its links' variables, links.env_of),
    then ``-e`` over its environment, and ``-u``/``-w`` when given."""
    proc = process_of(c, argv, tty=tty, window=window, privileged=privileged, link_env=link_env)
    return proc._replace(env=tuple(merge_env(proc.env, env)), cwd=workdir or proc.cwd, user=user or proc.user)


def spawn(c: Container, proc: Process, stdio: launch.Stdio) -> int:
    """Start ``proc`` in ``c``; return the pid of the helper whose exit status is
    the process's (docker's code: 128+N for signal N).  Raises NotRunning, or
    StartFailed with exit code 126 and docker's "OCI runtime exec failed" text."""
    _check_running(c)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        try:
            _enter(c)
            child = os.fork()
            if child == 0:
                try:
                    L.prctl(
                        L.PR_SET_PDEATHSIG, 9
                    )  # a killed helper (a health check's timeout) takes it along
                    launch.exec_process(proc, stdio, make_cwd=False)
                except BaseException as exc:
                    launch.report_and_exit(err_w, exc, 126)
            os.close(err_w)
            _, status = os.waitpid(child, 0)
            os._exit(launch.exit_status(status))
        except BaseException as exc:
            launch.report_and_exit(err_w, exc, 126)
    os.close(err_w)
    try:
        report = launch.read_report(err_r)
    finally:
        os.close(err_r)
    if report:
        os.waitpid(pid, 0)
        message = report[1]
        if not message.startswith("unable to find"):
            message = (
                f"OCI runtime exec failed: exec failed: unable to start container process: {message}: unknown"
            )
        raise StartFailed(message, 126)
    return pid


def _check_running(c: Container) -> None:
    if not c.running or not c.pid:
        raise NotRunning(f"Container {c.id} is not running")
    if c.status == "paused":
        raise NotRunning(f"Container {c.name} is paused, unpause the container before exec")


def spawn_detached(c: Container, proc: Process, ended: Callable[[int], None]) -> None:
    """``exec -d``: start ``proc`` in ``c`` from a process of its own (its own session,
    /dev/null stdio) that waits for it and calls ``ended(exit code)``, so the caller
    returns at once and the exit is still known (docker's exec_die).  With a terminal,
    that process holds the master until the end: a closed master would hang the
    process up.  Raises as ``spawn``."""
    _check_running(c)
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked watcher
        try:
            os.close(r)
            os.setsid()
            if os.fork():
                os._exit(0)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, w)
            os.closerange(w + 1, 1 << 16)
            _watch(c, proc, w, ended)
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    try:  # one write of a few bytes: whole in one read (the helper holds a copy of w: no EOF)
        report = os.read(r, 65536)
    finally:
        os.close(r)
    if not report:
        raise RuntimeFailure(f"container {c.short_id}: the exec ended before it started")
    doc = json.loads(report)
    if doc.get("code"):
        raise StartFailed(doc["message"], doc["code"])
    if "message" in doc:
        raise RuntimeFailure(doc["message"])


def _watch(c: Container, proc: Process, report: int, ended: Callable[[int], None]) -> None:
    """The detached exec's watcher: start it, say so on ``report``, wait, call ``ended``."""
    master = -1
    try:
        if proc.tty:
            ours, theirs = socket.socketpair()
            try:
                helper = spawn(c, proc, launch.Stdio(0, 0, 0, console=theirs.fileno()))
            finally:
                theirs.close()
            with ours:
                _, fds, _, _ = socket.recv_fds(ours, 16, 1)
            master = fds[0]
        else:
            helper = spawn(c, proc, launch.Stdio(0, 1, 2))
    except Exception as exc:
        code = exc.exit_code if isinstance(exc, StartFailed) else 0
        os.write(report, json.dumps({"message": str(exc), "code": code}).encode())
        return
    os.write(report, b"{}")
    os.close(report)
    while master >= 0:  # what it writes to its terminal goes nowhere, as docker's detached exec
        try:
            if not os.read(master, 65536):
                break
        except OSError:  # EIO: the terminal's last user is gone
            break
    _, status = os.waitpid(helper, 0)
    ended(launch.exit_status(status))


def _enter(c: Container) -> None:
    """Join c's cgroups (through fds opened before setns: the container has no
    cgroupfs) and namespaces; the next fork lands in its pid namespace."""
    procs = [os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for d in c.cgroup().dirs().values()]
    fds = [os.open(f"/proc/{c.pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC) for ns in NAMESPACES]
    for fd in procs:
        os.write(fd, b"0")
        os.close(fd)
    for fd in fds:
        L.setns(fd, 0)
        os.close(fd)
