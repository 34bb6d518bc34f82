"""The core primitive: fork a container's first process into fresh namespaces.

``spawn`` is called in a process dedicated to one container (the monitor, or
the throwaway parent of ``sandbox.run_step``): it unshares CLONE_NEWPID for its
children, so the forked child is pid 1 of a new pid namespace.  The child joins
its cgroups, unshares mount/uts/ipc(/net), builds its root (``rootfs.setup``),
resolves the user, drops capabilities, sets no_new_privs and execs.  Until the
exec succeeds it reports any failure through a close-on-exec pipe, so
``spawn`` returns only once the process really runs, or raises StartFailed
with docker's exit code (125 setup, 126 cannot invoke, 127 not found).
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource  # here, not where --ulimit needs it: after pivot_root no module can be found
import socket
import stat
import struct
import termios
from collections.abc import Callable

from imagefmt.records import TYPE_CHECKING, NamedTuple
from runtime import trace
from runtime.errors import StartFailed, UserNotFound
from runtime.kernel import syscalls as L
from runtime.process import rootfs, users
from runtime.spec import DEFAULT_PATH, Process, Spec, env_get

if TYPE_CHECKING:
    from typing import NoReturn

SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40


class Stdio(NamedTuple):
    """The child's stdin/stdout/stderr fds; with a tty, ``console`` is a unix
    socket over which the child sends the master of the pty it opens inside
    the container's own devpts (runc's console socket)."""

    stdin: int
    stdout: int
    stderr: int
    console: int | None = None


class Handshake(NamedTuple):
    """Pipes between ``spawn`` and the container's first process: ``ready``
    (child: my namespaces exist) and ``go`` (parent: the network is plugged) when
    there is a network hook; ``joined`` (parent: you are in your cgroups) when
    there are cgroups, which the parent joins while the child builds its root:
    on cgroup v1 the first migration waits an RCU grace period (6-10 ms here)."""

    ready: tuple[int, int] | None
    go: tuple[int, int] | None
    joined: tuple[int, int] | None

    @classmethod
    def make(cls, network: bool, cgroups: bool) -> Handshake:
        def pipe(want: bool) -> tuple[int, int] | None:
            return os.pipe2(os.O_CLOEXEC) if want else None

        return cls(pipe(network), pipe(network), pipe(cgroups))

    def fds(self) -> list[int]:
        return [fd for pair in self if pair for fd in pair]


def _signal(pair: tuple[int, int] | None) -> None:
    if pair:
        try:
            os.write(pair[1], b"1")
        except BrokenPipeError:
            pass  # the child died: its error report says why


def _await(pair: tuple[int, int] | None, what: str) -> None:
    if pair and os.read(pair[0], 1) != b"1":
        raise StartFailed(f"the runtime gave up on this container before {what}")


class Spawned(NamedTuple):
    """A started container: ``pid`` is its pid 1 (host pid, for signals and
    setns), ``waiter`` the process to wait for, whose exit status is pid 1's in
    docker's form (the code, or 128+N for signal N)."""

    pid: int
    waiter: int


def spawn(spec: Spec, stdio: Stdio, on_netns: Callable[[int], None] | None = None) -> Spawned:
    """Start ``spec`` and return once its process has exec'd.

    A forked waiter unshares CLONE_NEWPID and forks the container's pid 1, then
    waits for it: so the caller keeps its own pid namespace for children and
    may go on forking and starting threads.  ``on_netns(pid)`` runs once the
    container has its network namespace and before it goes on (to move a veth
    in).  The waiter dies with the caller, and pid 1 with the waiter
    (PR_SET_PDEATHSIG), so a container is never left unwatched.  Raises
    StartFailed, after reaping, if anything failed before exec."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    hs = Handshake.make(on_netns is not None, bool(spec.cgroup_procs))
    waiter = os.fork()
    if waiter == 0:
        try:
            os.close(err_r)
            os.close(pid_r)
            _wait_for_child(spec, stdio, err_w, pid_w, hs)
        except BaseException as exc:
            report_and_exit(err_w, exc)
    os.close(err_w)
    os.close(pid_w)
    for pair in (hs.ready, hs.go, hs.joined):  # keep our ends: read ready, write go and joined
        if pair:
            os.close(pair[1] if pair is hs.ready else pair[0])
    try:
        pid = int(_read_all(pid_r) or 0)
        if pid:
            _parent_side(spec, hs, pid, on_netns)
        report = read_report(err_r)
    except BaseException:
        if pid:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        os.waitpid(waiter, 0)
        raise
    finally:
        for fd in (err_r, pid_r, *(p[0] if p is hs.ready else p[1] for p in hs if p)):
            os.close(fd)
    if report or not pid:
        os.waitpid(waiter, 0)
        code, message = report or (125, "the container's first process died")
        raise StartFailed(message, code)
    return Spawned(pid, waiter)


def _parent_side(spec: Spec, hs: Handshake, pid: int, on_netns: Callable[[int], None] | None) -> None:
    if hs.ready and os.read(hs.ready[0], 1) == b"1" and on_netns is not None:
        on_netns(pid)
    _signal(hs.go)
    trace.mark("joining")
    for procs in spec.cgroup_procs:  # meanwhile the child mounts its root
        try:
            with open(procs, "w") as f:
                f.write(str(pid))
        except ProcessLookupError:
            return  # the child died: its error report says why
    trace.mark("joined")
    _signal(hs.joined)


def _wait_for_child(spec: Spec, stdio: Stdio, err_w: int, pid_w: int, hs: Handshake) -> NoReturn:
    """The waiter: fork pid 1 into a new pid namespace, report its pid, wait, relay its status."""
    L.prctl(L.PR_SET_PDEATHSIG, 9)
    L.set_process_name("dockyard-wait")
    _namespace(spec.pid_ns, L.CLONE_NEWPID)  # for the children: the fork below is pid 1 in a new one
    pid = os.fork()
    if pid == 0:
        os.close(pid_w)
        _child(spec, stdio, err_w, hs)
    os.write(pid_w, str(pid).encode())
    os.closerange(3, 1 << 16)  # every inherited pipe end: the container's must see EOF, not us
    _, status = os.waitpid(pid, 0)
    os._exit(exit_status(status))


def _namespace(mode: str, flag: int) -> int:
    """``flag`` when the container gets a new namespace of its own (to unshare);
    0 for the host's, or after joining the one at ``mode``, a /proc/<pid>/ns path.
    A pid namespace is unshared here at once: only the children enter it."""
    if mode == "new":
        if flag == L.CLONE_NEWPID:
            L.unshare(flag)
        return flag
    if mode != "host":
        fd = os.open(mode, os.O_RDONLY | os.O_CLOEXEC)
        try:
            L.setns(fd, flag)
        finally:
            os.close(fd)
    return 0


def exit_status(status: int) -> int:
    """Docker's exit code for a wait status: the code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    return out


def lookup(name: str, path_env: str, cwd: str = "/") -> str:
    """Go's exec.LookPath as runc uses it; raise StartFailed with its wording."""
    if "/" in name:
        full = name if name.startswith("/") else os.path.join(cwd, name)
        try:
            st = os.stat(full)
        except OSError as err:
            raise StartFailed(f'exec: "{name}": stat {name}: {_reason(err)}', 127) from None
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise StartFailed(f'exec: "{name}": permission denied', 126)
        return full
    for d in path_env.split(":"):
        full = os.path.join(d or ".", name)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return full
    raise StartFailed(f'exec: "{name}": executable file not found in $PATH', 127)


def _reason(err: OSError) -> str:
    return os.strerror(err.errno).lower() if err.errno else str(err)


def failure(exc: BaseException) -> tuple[int, str]:
    """(docker exit code, message) for an exception raised before exec."""
    if isinstance(exc, StartFailed):
        return exc.exit_code, exc.message
    if isinstance(exc, UserNotFound):
        return 125, exc.message
    if isinstance(exc, OSError):
        message = str(exc) if exc.filename is None else f"{exc.strerror}: {exc.filename}"
        return 125, message
    return 125, f"{type(exc).__name__}: {exc}"  # a bug: report it rather than hang the parent


def report_and_exit(err_w: int, exc: BaseException, code: int | None = None) -> NoReturn:
    """Write the failure to the parent's error pipe and _exit (in a forked child)."""
    exit_code, message = failure(exc)
    exit_code = exit_code if code is None else code
    try:
        os.write(err_w, f"{exit_code}\t{message}".encode())
    finally:
        os._exit(exit_code)


def read_report(err_r: int) -> tuple[int, str] | None:
    """Block until the child execs (EOF: None) or reports (code, message)."""
    report = _read_all(err_r)
    if not report:
        return None
    head, _, message = report.decode(errors="replace").partition("\t")
    return (int(head) if head.isdigit() else 125), message


def _child(spec: Spec, stdio: Stdio, err_w: int, hs: Handshake) -> NoReturn:
    try:
        _setup_and_exec(spec, stdio, err_w, hs)
    except BaseException as exc:
        report_and_exit(err_w, exc)


def _setup_and_exec(spec: Spec, stdio: Stdio, err_w: int, hs: Handshake) -> NoReturn:
    trace.mark("child")
    L.prctl(L.PR_SET_PDEATHSIG, 9)  # the monitor's death takes the container with it: never unwatched
    flags = L.CLONE_NEWNS
    flags |= _namespace(spec.uts_ns, L.CLONE_NEWUTS) | _namespace(spec.ipc_ns, L.CLONE_NEWIPC)
    if spec.network in ("none", "new"):
        flags |= L.CLONE_NEWNET
    elif spec.network != "host":
        fd = os.open(spec.network, os.O_RDONLY | os.O_CLOEXEC)
        L.setns(fd, L.CLONE_NEWNET)
        os.close(fd)
    L.unshare(flags)
    trace.mark("unshared")
    _signal(hs.ready)
    _await(hs.go, "plugging its network")
    if spec.uts_ns == "new":
        L.sethostname(spec.hostname)
    if spec.interfaces:
        # imported here, before pivot_root hides our modules: only a container on a
        # bridge needs it, and then its monitor has it loaded already (wiring)
        from runtime.kernel.netlink import configure_inside

        configure_inside(spec.interfaces, spec.gateway)
    elif flags & L.CLONE_NEWNET:
        loopback_up()
    rootfs.setup(spec)
    trace.mark("rootfs")
    _await(hs.joined, "joining its cgroups")
    trace.mark("awaited")
    exec_process(spec.process, stdio, make_cwd=True)


def exec_process(proc: Process, stdio: Stdio, make_cwd: bool) -> NoReturn:
    """In the container's root: resolve the user, set up stdio (a pty inside the
    container's devpts with ``proc.tty``), drop capabilities and exec.  Raises
    StartFailed/UserNotFound/OSError when the process cannot start."""
    user = users.resolve(proc.user, "/")
    groups = [*user.groups, *(g for g in users.group_ids(proc.groups) if g not in user.groups)]
    env = list(proc.env)
    if not env_get(env, "PATH"):
        env.append(f"PATH={DEFAULT_PATH}")
    if not env_get(env, "HOME"):
        env.append(f"HOME={user.home}")
    if make_cwd and not os.path.isdir(proc.cwd):
        os.makedirs(proc.cwd, 0o755, exist_ok=True)
    try:
        os.chdir(proc.cwd)
    except OSError as err:
        raise StartFailed(f'chdir to cwd ("{proc.cwd}") set in config.json failed: {_reason(err)}') from None
    path = lookup(proc.args[0], env_get(env, "PATH"), proc.cwd)
    args = list(proc.args)
    if proc.init:
        path, args = rootfs.INIT_PATH, [rootfs.INIT_PATH, "--", *args]
    _stdio(stdio, proc.tty, proc.window, user.uid)
    L.cloexec_from(3)  # nothing of ours leaks into the container; err_w closes at exec
    trace.mark("exec")
    if proc.rlimits:
        for name, soft, hard in proc.rlimits:  # before the capabilities go: a hard limit may rise
            resource.setrlimit(getattr(resource, f"RLIMIT_{name.upper()}"), (soft, hard))
    caps = proc.capabilities & L.bounding_set()  # --privileged on a host that lacks some
    L.drop_bounding(caps)
    os.setgroups(groups)
    os.setresgid(user.gid, user.gid, user.gid)
    if user.uid == 0:
        L.set_capabilities(caps)
    else:
        os.setresuid(user.uid, user.uid, user.uid)  # clears the effective and permitted sets
    if proc.no_new_privs:
        L.set_no_new_privs()
    try:
        os.execve(path, args, dict(e.split("=", 1) for e in env))
    except OSError as err:
        code = 127 if err.errno == errno.ENOENT else 126
        raise StartFailed(f'exec: "{proc.args[0]}": {_reason(err)}', code) from None


def _stdio(stdio: Stdio, tty: bool, window: tuple[int, int], uid: int) -> None:
    if tty and stdio.console is not None:
        master, slave = os.openpty()  # after pivot_root: the container's own devpts
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", window[0], window[1], 0, 0))
        os.fchown(slave, uid, -1)
        sock = socket.socket(fileno=os.dup(stdio.console))
        socket.send_fds(sock, [b"pty"], [master])
        sock.close()
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        fds = [slave, slave, slave]
    else:
        os.setsid()
        fds = [stdio.stdin, stdio.stdout, stdio.stderr]
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
    for i, fd in enumerate(high):
        os.dup2(fd, i)


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (an ioctl: no `ip` fork)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, ifr)
