"""``RUN --mount=type=ssh``: the client's SSH agent, forwarded into one RUN.

As BuildKit does, the RUN never sees the agent's own socket: it gets a socket
of ours (owned by the mount's uid/gid, mode 0600 by default) that exists
while the command runs, and each connection to it is relayed to the agent.
The agent answers requests to sign with the keys it holds; no key leaves it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def forward(agent: Path, uid: int = 0, gid: int = 0, mode: int = 0o600) -> Iterator[Path]:
    """Listen on a new socket (in a private directory: a socket path must stay under
    108 bytes) and relay every connection to the agent socket ``agent``."""
    home = Path(tempfile.mkdtemp(prefix="dockyard-ssh-"))
    path = home / "agent"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        server.listen(16)
        server.setblocking(False)
    except BaseException:
        server.close()
        shutil.rmtree(home, ignore_errors=True)
        raise
    relay = _Relay(server, agent)
    thread = threading.Thread(target=relay.run, name="ssh-forward", daemon=True)
    thread.start()
    try:
        yield path
    finally:
        relay.stop()
        thread.join(10)
        shutil.rmtree(home, ignore_errors=True)


class _Relay:
    """One thread: accepts on ``server`` and copies bytes both ways for every pair."""

    def __init__(self, server: socket.socket, agent: Path) -> None:
        self.server = server
        self.agent = agent
        self.sel = selectors.DefaultSelector()
        self.peer: dict[socket.socket, socket.socket] = {}
        self.wake_r, self.wake_w = socket.socketpair()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.wake_w.send(b"x")

    def run(self) -> None:
        self.sel.register(self.server, selectors.EVENT_READ)
        self.sel.register(self.wake_r, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in self.sel.select():
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self.wake_r:
                        return
                    if sock is self.server:
                        self._accept()
                    else:
                        self._pump(sock)
        finally:
            for s in list(self.peer):
                s.close()
            self.sel.close()
            for s in (self.server, self.wake_r, self.wake_w):
                s.close()

    def _accept(self) -> None:
        try:
            client, _ = self.server.accept()
        except BlockingIOError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(str(self.agent))
        except OSError:
            upstream.close()
            client.close()  # the agent is gone: the client sees the connection end
            return
        for a, b in ((client, upstream), (upstream, client)):
            a.setblocking(True)
            self.peer[a] = b
            self.sel.register(a, selectors.EVENT_READ)

    def _pump(self, sock: socket.socket) -> None:
        other = self.peer.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                other.sendall(data)
                return
        except OSError:
            pass
        for s in (sock, other):  # one side ended: close the pair
            self.sel.unregister(s)
            self.peer.pop(s, None)
            s.close()
