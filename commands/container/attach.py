"""``attach`` (also ``container attach``), and streaming an attached container, which
run and start share: the terminal's size, the relay until the container exits."""

from __future__ import annotations

import argparse
import os
import socket
import sys

from commands.container import both
from commands.parsing import OnlyVerb, Verbs
from imagefmt import errors
from runtime.container import attach as A
from runtime.container.attach import window_size
from runtime.container.store import Container, ContainerStore

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    for p in both(sub, "attach"):
        p.add_argument("--no-stdin", action="store_true")
        p.add_argument("--sig-proxy", default="true")
        p.add_argument("--detach-keys", default="")
        p.add_argument("container")


@VERBS.command("attach", "container attach")
def cmd_attach(args: argparse.Namespace) -> int:
    c = ContainerStore(args.root).get(args.container)
    return attach(args, c, not args.no_stdin and bool(c.config.get("OpenStdin")))


def attach(args: argparse.Namespace, c: Container, stdin: bool) -> int:
    """Attach to a running container through its monitor's socket and relay until it
    exits (its status) or Ctrl-P Ctrl-Q detaches (0)."""
    if not c.running:
        raise errors.Conflict("You cannot attach to a stopped container, start it first")
    if c.status == "paused":
        raise errors.Conflict("You cannot attach to a paused container, unpause it first")
    try:
        sock = A.connect(c.socket_path)
    except OSError as exc:
        raise errors.Conflict(f"cannot attach to container {c.name}: {exc.strerror}") from None
    sock.sendall(A.frame_json(A.HELLO, {"stdin": stdin, "stdout": True, "stderr": True}))
    if c.config.get("Tty") and (size := window()):
        sock.sendall(A.frame(A.RESIZE, f"{size[0]} {size[1]}".encode()))
    cstore = ContainerStore(args.root)
    try:
        return relay(cstore, c, sock, A.FrameReader(), c.pid, stdin=stdin, proxy=args.sig_proxy != "false")
    except A.Detached:
        print("read escape sequence", file=sys.stderr)
        return 0


def window() -> tuple[int, int] | None:
    """The terminal's size (rows, columns), from the first of stdin, stdout, stderr that is one."""
    for fd in (0, 1, 2):
        if os.isatty(fd) and (size := window_size(fd)):
            return size
    return None


def relay(
    cstore: ContainerStore,
    c: Container,
    sock: socket.socket,
    reader: A.FrameReader,
    pid: int,
    stdin: bool,
    proxy: bool,
) -> int:
    """Stream an attached container until it exits and return its exit code;
    raises attach.Detached on Ctrl-P Ctrl-Q."""
    sys.stdout.flush()
    sys.stderr.flush()

    def forward(sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    tty = bool(c.config.get("Tty"))
    with sock:
        code = A.relay(
            sock,
            stdin=0 if stdin else None,
            stdout=1,
            stderr=2,
            tty=tty,
            reader=reader,
            on_signal=forward if proxy else None,
        )
    if code is None:  # the monitor went away without a word: report what the store says
        try:
            state = cstore.load(c.id).state
        except errors.NotFound:
            return 125
        return 125 if state.get("Running") or state.get("Dead") else int(state.get("ExitCode") or 0)
    return code
