"""Exec routes: create, start (hijacked, with stdin and a TTY), resize, inspect.

Docker keeps exec instances in the daemon's memory, and so does the service: an
exec created here is known until the service stops."""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
import struct
import termios
import threading
from pathlib import Path
from typing import IO, Any

from api.runs import close_client
from api.server import HIJACKED, Reply, Request, Result, Routes, Service
from api.wire import STDERR, STDOUT, mux
from imagefmt import errors
from runtime.container import events, execute, links
from runtime.container.store import Container, ContainerStore
from runtime.process import launch

ROUTES = Routes()


class Exec:
    def __init__(self, eid: str, c: Container, body: dict[str, Any]) -> None:
        self.id = eid
        self.cid = c.id
        self.container = c
        self.body = body
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.master: int | None = None
        self.done = threading.Event()
        self.root = Path()  # the store's, set at start

    def doc(self) -> dict[str, Any]:
        b = self.body
        return {
            "ID": self.id,
            "ContainerID": self.cid,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "OpenStdin": bool(b.get("AttachStdin")),
            "OpenStdout": bool(b.get("AttachStdout")),
            "OpenStderr": bool(b.get("AttachStderr")),
            "CanRemove": False,
            "DetachKeys": "",
            "Pid": self.pid,
            "ProcessConfig": {
                "tty": bool(b.get("Tty")),
                "entrypoint": (b.get("Cmd") or [""])[0],
                "arguments": (b.get("Cmd") or [])[1:],
                "privileged": bool(b.get("Privileged")),
                "user": b.get("User") or "",
            },
        }


def _execs(service: Service) -> dict[str, Exec]:
    with service.lock:
        return service.state.setdefault("execs", {})  # type: ignore[no-any-return]


def _exec(req: Request) -> Exec:
    found = _execs(req.service).get(req.params["id"])
    if found is None:
        raise errors.NotFound(f"No such exec instance: {req.params['id']}")
    return found


@ROUTES("POST", "/containers/{id}/exec")
def create(req: Request) -> Reply:
    c = ContainerStore(req.service.root).get(req.params["id"])
    body = req.json()
    if not body.get("Cmd"):
        raise errors.Invalid("No exec command specified")
    if not c.running:
        raise errors.Conflict(f"Container {c.id} is not running")
    links.env_of(ContainerStore(req.service.root), c)  # docker: a linked container must run
    e = Exec(secrets.token_hex(32), c, body)
    _execs(req.service)[e.id] = e
    _event(req.service.root, e, "exec_create")
    return Reply({"Id": e.id}, 201)


@ROUTES("GET", "/exec/{id}/json")
def inspect(req: Request) -> Reply:
    return Reply(_exec(req).doc())


@ROUTES("POST", "/exec/{id}/resize")
def resize(req: Request) -> Reply:
    e = _exec(req)
    h, w = req.int_arg("h", 0), req.int_arg("w", 0)
    if e.master is not None and h and w:
        try:
            fcntl.ioctl(e.master, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))
        except OSError:
            pass
    return Reply(None, 201)


@ROUTES("POST", "/exec/{id}/start")
def start(req: Request) -> Result:
    e = _exec(req)
    if e.running or e.exit_code is not None:
        raise errors.Conflict(f"Error: Exec command {e.id} has already run")
    body = req.json()
    b = e.body
    tty = bool(b.get("Tty") or body.get("Tty"))
    detach = bool(body.get("Detach"))
    c = ContainerStore(req.service.root).get(e.cid)
    e.root = req.service.root
    size = body.get("ConsoleSize") or b.get("ConsoleSize") or [24, 80]
    proc = execute.process_for(
        c,
        list(b["Cmd"]),
        env=list(b.get("Env") or ()),
        user=b.get("User") or "",
        workdir=b.get("WorkingDir") or "",
        tty=tty,
        window=(int(size[0]) or 24, int(size[1]) or 80),
        privileged=bool(b.get("Privileged")),
        link_env=links.env_of(ContainerStore(e.root), c),
    )
    _event(e.root, e, "exec_start")
    if detach:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            if tty:
                _spawn_tty(e, c, proc)
            else:
                e.pid = execute.spawn(c, proc, launch.Stdio(null, null, null))
        finally:
            os.close(null)
        e.running = True
        threading.Thread(target=_reap, args=(e,), daemon=True).start()
        return Reply(None, 200)
    if tty:
        _spawn_tty(e, c, proc)
        e.running = True
        client, rfile = req.hijack()
        _relay_tty(e, client, rfile, bool(b.get("AttachStdin")))
        return HIJACKED
    # stdin is a socket: the exec helper (a fork that waits for the process) holds a
    # copy of our end too, so the end of input is a shutdown, which reaches the
    # process whoever holds copies, where a pipe's close would not
    stdin_pair = socket.socketpair() if b.get("AttachStdin") else None
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    stdin_fd = stdin_pair[1].fileno() if stdin_pair else null
    try:
        e.pid = execute.spawn(c, proc, launch.Stdio(stdin_fd, out_w, err_w))
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        if stdin_pair:
            stdin_pair[0].close()
        raise
    finally:
        for fd in (out_w, err_w, null):
            os.close(fd)
        if stdin_pair:
            stdin_pair[1].close()
    e.running = True
    client, rfile = req.hijack()
    _relay_pipes(e, client, rfile, stdin_pair[0] if stdin_pair else None, out_r, err_r)
    return HIJACKED


def _event(root: Path, e: Exec, action: str, **extra: str) -> None:
    """docker's exec events: ``exec_create: CMD ARGS``, ``exec_start: …``, ``exec_die`` (execID, exitCode)."""
    what = action if action == "exec_die" else f"{action}: {events.exec_action(e.body['Cmd'])}"
    events.container(root, e.container, what, execID=e.id, **extra)


def _spawn_tty(e: Exec, c: Any, proc: Any) -> None:
    ours, theirs = socket.socketpair()
    try:
        e.pid = execute.spawn(c, proc, launch.Stdio(0, 0, 0, console=theirs.fileno()))
    finally:
        theirs.close()
    with ours:
        _, fds, _, _ = socket.recv_fds(ours, 16, 1)
    e.master = fds[0]


def _reap(e: Exec) -> None:
    _, status = os.waitpid(e.pid, 0)
    e.exit_code = os.waitstatus_to_exitcode(status)
    _event(e.root, e, "exec_die", exitCode=str(e.exit_code))
    e.running = False
    if e.master is not None:
        os.close(e.master)
        e.master = None
    e.done.set()


def _copy_in(rfile: IO[bytes], write_fd: int) -> None:
    try:
        while data := rfile.read1(65536):  # type: ignore[attr-defined]
            os.write(write_fd, data)
    except (OSError, ValueError):
        pass
    finally:
        os.close(write_fd)


def _copy_to_socket(rfile: IO[bytes], sock: socket.socket) -> None:
    try:
        while data := rfile.read1(65536):  # type: ignore[attr-defined]
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except (OSError, ValueError):
        pass
    finally:
        sock.close()


def _relay_pipes(
    e: Exec, client: socket.socket, rfile: IO[bytes], stdin: socket.socket | None, out_r: int, err_r: int
) -> None:
    lock = threading.Lock()

    def copy_out(fd: int, stream: int) -> None:
        alive = True
        with os.fdopen(fd, "rb", buffering=0) as src:
            while data := src.read(65536):
                if alive:
                    try:
                        with lock:
                            client.sendall(mux(stream, data))
                    except OSError:
                        alive = False

    if stdin is not None:
        threading.Thread(target=_copy_to_socket, args=(rfile, stdin), daemon=True).start()
    t = threading.Thread(target=copy_out, args=(err_r, STDERR), daemon=True)
    t.start()
    copy_out(out_r, STDOUT)
    t.join()
    _reap(e)
    close_client(client)


def _relay_tty(e: Exec, client: socket.socket, rfile: IO[bytes], stdin: bool) -> None:
    master = e.master
    assert master is not None
    dup = os.dup(master)
    if stdin:
        threading.Thread(target=_copy_in, args=(rfile, os.dup(master)), daemon=True).start()
    with os.fdopen(dup, "rb", buffering=0) as src:
        while True:
            try:
                data = src.read(65536)
            except OSError:  # EIO: the last slave closed
                data = b""
            if not data:
                break
            try:
                client.sendall(data)
            except OSError:
                break
    _reap(e)
    close_client(client)
