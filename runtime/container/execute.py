"""``docker exec``: run a process in a running container's namespaces and cgroups.

A forked helper opens the container's cgroup.procs files, joins its ipc, uts,
net, pid and mount namespaces (setns puts it at the container's root), and
forks the process, which is then pid N inside the container; the helper waits
and exits with its status.  No monitor is involved: exec output is not logged,
as in Docker.
"""

from __future__ import annotations

import os

from runtime.container.launchspec import process_of
from runtime.container.store import Container
from runtime.errors import NotRunning, StartFailed
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
    if not c.running or not c.pid:
        raise NotRunning(f"Container {c.id} is not running")
    if c.status == "paused":
        raise NotRunning(f"Container {c.name} is paused, unpause the container before exec")
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
