"""What the service remembers of the containers it starts: attaches waiting for a
start, exit codes, and the relay between a monitor's socket and a hijacked client.

``docker run`` sends attach and wait *before* start: the attach must get the output
from the first byte, and the wait the exit code even when ``--rm`` has removed the
container by then.  So an attach to a container that is not running registers
itself here and blocks; ``start`` hands it the monitor's first socket (attached as
it asked), and whoever holds a monitor socket records the EXIT frame's code here,
where ``wait`` finds it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import IO

from api.wire import STDERR, STDOUT, mux
from runtime.container import attach as A
from runtime.container.streams import Attach


class Pending:
    """An attach waiting for its container's start."""

    def __init__(self, want: Attach) -> None:
        self.want = want
        self.ready = threading.Event()
        self.sock: socket.socket | None = None
        self.reader: A.FrameReader | None = None
        self.abandoned = False


class Runs:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pending: dict[str, list[Pending]] = {}
        self.exits: dict[str, tuple[int, int]] = {}  # container ID -> (how many exits seen, last code)

    def generation(self, cid: str) -> int:
        with self.cond:
            return self.exits.get(cid, (0, 0))[0]

    def exited(self, cid: str, code: int) -> None:
        with self.cond:
            n = self.exits.get(cid, (0, 0))[0]
            self.exits[cid] = (n + 1, code)
            self.cond.notify_all()

    def wait_exit(self, cid: str, after: int, timeout: float) -> int | None:
        """The code of an exit later than the ``after``-th, waiting up to ``timeout``."""
        with self.cond:
            self.cond.wait_for(lambda: self.exits.get(cid, (0, 0))[0] > after, timeout)
            n, code = self.exits.get(cid, (0, 0))
            return code if n > after else None

    def add_pending(self, cid: str, want: Attach) -> Pending:
        p = Pending(want)
        with self.cond:
            self.pending.setdefault(cid, []).append(p)
        return p

    def take_pending(self, cid: str) -> list[Pending]:
        with self.cond:
            return [p for p in self.pending.pop(cid, []) if not p.abandoned]

    def drop_pending(self, cid: str, p: Pending) -> None:
        with self.cond:
            p.abandoned = True
            if p in self.pending.get(cid, []):
                self.pending[cid].remove(p)

    def watch(self, cid: str, sock: socket.socket, reader: A.FrameReader) -> None:
        """Hold a monitor socket nobody attached to, for its EXIT (in a thread)."""

        def run() -> None:
            with sock:
                relay_out(cid, self, sock, reader, None, tty=False)

        threading.Thread(target=run, daemon=True).start()


def relay_out(
    cid: str,
    runs: Runs,
    sock: socket.socket,
    reader: A.FrameReader,
    client: socket.socket | None,
    tty: bool,
) -> int | None:
    """Forward the monitor's output frames to ``client`` (docker's multiplexed frames,
    raw with a TTY) until EXIT, whose code is recorded and returned; None when the
    monitor went away without one."""
    while True:
        frame = A.read_frame(sock, reader)
        if frame is None:
            return None
        kind, data = frame
        if kind in (A.STDOUT, A.STDERR) and client is not None:
            out = data if tty else mux(STDOUT if kind == A.STDOUT else STDERR, data)
            try:
                client.sendall(out)
            except OSError:
                client = None  # the client left; keep reading for the exit code
        elif kind == A.EXIT:
            import json

            code = int(json.loads(data or b"{}").get("code", 0))
            runs.exited(cid, code)
            return code


def pump_in(
    rfile: IO[bytes], sock: socket.socket, on_eof: Callable[[], None] | None = None
) -> threading.Thread:
    """Copy a hijacked client's input (stdin) to the monitor as STDIN frames, then
    STDIN_EOF when the client half-closes (in a thread)."""

    def run() -> None:
        try:
            while True:
                data = rfile.read1(65536)  # type: ignore[attr-defined]
                if not data:
                    break
                sock.sendall(A.frame(A.STDIN, data))
            sock.sendall(A.frame(A.STDIN_EOF))
        except (OSError, ValueError):
            pass
        if on_eof is not None:
            on_eof()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def close_client(client: socket.socket) -> None:
    """End a hijacked connection for the client even while forked helpers hold copies
    of the socket (shutdown acts on the connection, close only on this fd)."""
    try:
        client.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
