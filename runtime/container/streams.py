"""A running container's stdio as its monitor serves it, one run at a time.

The container's output (pipes, or the master of its pty) goes to its log driver and
to each attach client that asked for that stream; the clients' stdin is buffered
into the container, and a writer is not read while more than STDIN_HIGH bytes wait
(back-pressure); a tty is resized on request.  Clients connect to ``attach.sock``
and speak ``runtime.container.attach``'s frames.  The monitor's selector drives it
all: ``handle`` takes the events registered here.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import socket
import struct
import termios
import time

from imagefmt.records import TYPE_CHECKING, NamedTuple
from runtime.container import attach as A
from runtime.container.store import Container
from runtime.process import launch

if TYPE_CHECKING:
    from runtime.logs.drivers import Copier

STDIN_HIGH = 1 << 20  # bytes of stdin buffered for the container before its writers wait


class Attach(NamedTuple):
    """What a client wants from the container's streams."""

    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    window: tuple[int, int] | None = None


class Client:
    """An attached socket: what it wants (None until its HELLO) and its partial frames."""

    def __init__(self, sock: socket.socket, want: Attach | None) -> None:
        self.sock = sock
        self.want = want
        self.reader = A.FrameReader()


class Streams:
    """One run's streams and clients, registered with the monitor's selector ``sel``."""

    def __init__(self, c: Container, sel: selectors.BaseSelector) -> None:
        self.c = c
        self.sel = sel
        self.log: Copier | None = None
        self.clients: dict[int, Client] = {}
        self.stdin_fd: int | None = None
        self.stdin_buf = bytearray()  # written to the container's stdin as it reads
        self.stdin_eof = False  # close its stdin once stdin_buf is written
        self.paused: list[Client] = []  # writers not read while stdin_buf is above STDIN_HIGH
        self.master: int | None = None
        self.outputs: dict[int, str] = {}
        self.listener: socket.socket | None = None
        self.console: socket.socket | None = None
        self.child_ends: list[int] = []

    # ------------------------------------------------------------ set up ---

    def listen(self) -> None:
        """Bind ``attach.sock`` for clients that come later."""
        path = self.c.socket_path
        os.chdir(self.c.dir)  # bind by a relative name: the full path may exceed sun_path
        try:
            os.unlink(path.name)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path.name)
        self.listener.listen(16)
        os.chdir("/")

    def child_stdio(self, tty: bool) -> launch.Stdio:
        """The container's ends of its stdio: pipes (stdin only with OpenStdin), or
        with ``tty`` a console socket over which it sends the master of its pty."""
        if tty:
            self.console, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            console_fd = theirs.detach()
            self.child_ends = [console_fd]
            return launch.Stdio(0, 0, 0, console=console_fd)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if self.c.config.get("OpenStdin"):
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            self.stdin_fd = in_w
        else:
            in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.child_ends = [in_r, out_w, err_w]
        self.outputs = {out_r: "stdout", err_r: "stderr"}
        return launch.Stdio(in_r, out_w, err_w)

    def close_child_ends(self) -> None:
        """The container has its ends (or failed to start): close ours of them."""
        for fd in self.child_ends:
            os.close(fd)
        self.child_ends = []

    def take_console(self) -> None:
        """With a tty: receive the pty's master, the container's output and stdin."""
        if self.console is None:
            return
        _, fds, _, _ = socket.recv_fds(self.console, 16, 1)
        self.console.close()
        self.console = None
        self.master = fds[0]
        self.outputs = {self.master: "stdout"}
        self.stdin_fd = self.master if self.c.config.get("OpenStdin") else None

    def serve(self, first: tuple[socket.socket, Attach] | None) -> None:
        """Register the outputs and the listener (and ``first``, the client that
        started the container) with the selector."""
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, "output")
        if self.listener is not None:
            self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        if first is not None:
            self.add_client(*first)
        if self.stdin_fd is not None and self.stdin_fd != self.master:
            os.set_blocking(self.stdin_fd, False)

    # ------------------------------------------------------------ events ---

    def handle(self, key: selectors.SelectorKey) -> None:
        """An event of the selector registered here (others are ignored)."""
        if key.data == "output":
            self.read_output(key.fd)
        elif key.data == "accept":
            self._accept()
        elif key.data == "stdin":
            self._flush_stdin()
        elif isinstance(key.data, Client):
            self._client_input(key.data)

    def add_client(self, sock: socket.socket, want: Attach | None) -> None:
        sock.setblocking(True)
        sock.settimeout(10)
        client = Client(sock, want)
        self.clients[sock.fileno()] = client
        self.sel.register(sock, selectors.EVENT_READ, client)

    def _drop_client(self, client: Client) -> None:
        fd = client.sock.fileno()
        if fd in self.clients:
            del self.clients[fd]
            if client in self.paused:
                self.paused.remove(client)
            else:
                self.sel.unregister(client.sock)
        if client.want and client.want.stdin and self.c.config.get("StdinOnce"):
            self._end_stdin()
        client.sock.close()

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        self.add_client(sock, None)

    def _client_input(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop_client(client)
            return
        for kind, payload in client.reader.feed(data):
            if kind == A.HELLO:
                doc = json.loads(payload or b"{}")
                client.want = Attach(bool(doc.get("stdin")), bool(doc.get("stdout")), bool(doc.get("stderr")))
            elif kind == A.STDIN and client.want and client.want.stdin and self.stdin_fd is not None:
                self.stdin_buf += payload
                self._flush_stdin()
                if len(self.stdin_buf) > STDIN_HIGH:
                    self._pause_writer(client)
            elif kind == A.STDIN_EOF and client.want and client.want.stdin and self.master is None:
                self._end_stdin()
            elif kind == A.RESIZE and self.master is not None:
                rows, cols = (int(x) for x in payload.split())
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _flush_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        try:
            if self.stdin_buf:
                del self.stdin_buf[: os.write(fd, self.stdin_buf)]
        except BlockingIOError:
            pass
        except OSError:  # the container closed its stdin: what is left has nowhere to go
            self.stdin_buf.clear()
            self._close_stdin()
        if len(self.stdin_buf) <= STDIN_HIGH:
            self._resume_writers()
        if fd == self.master or self.stdin_fd is None:
            return  # the pty master is also an output; its writes are small enough to retry on input
        if not self.stdin_buf and self.stdin_eof:
            self._close_stdin()
            return
        registered = fd in self.sel.get_map()
        if self.stdin_buf and not registered:
            self.sel.register(fd, selectors.EVENT_WRITE, "stdin")
        elif not self.stdin_buf and registered:
            self.sel.unregister(fd)

    def _end_stdin(self) -> None:
        """EOF from the writer: close the container's stdin once what came before is written."""
        self.stdin_eof = True
        self._flush_stdin()

    def _pause_writer(self, client: Client) -> None:
        """Back-pressure: stop reading the writer's socket, so that its sends
        block and it stops reading its own stdin, until the container catches up."""
        if client not in self.paused and client in self.clients.values():
            self.sel.unregister(client.sock)
            self.paused.append(client)

    def _resume_writers(self) -> None:
        for client in self.paused:
            if client in self.clients.values():
                self.sel.register(client.sock, selectors.EVENT_READ, client)
        self.paused.clear()

    def _close_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None or fd == self.master:
            return
        if fd in self.sel.get_map():
            self.sel.unregister(fd)
        os.close(fd)
        self.stdin_fd = None

    def read_output(self, fd: int) -> bool:
        """Read what the container wrote on ``fd``: to the log and the clients that
        want it. False at its end (then unregistered and closed)."""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:  # EIO: the pty's last slave closed
            data = b""
        stream = self.outputs[fd]
        if not data:
            self.sel.unregister(fd)
            del self.outputs[fd]
            if fd != self.master:
                os.close(fd)
            return False
        if self.log:
            self.log.write(stream, data)
        kind = A.STDOUT if stream == "stdout" else A.STDERR
        msg = A.frame(kind, data)
        for client in list(self.clients.values()):
            want = client.want
            if want and (want.stdout if stream == "stdout" else want.stderr):
                try:
                    client.sock.sendall(msg)
                except OSError:
                    self._drop_client(client)
        return True

    # ------------------------------------------------------------ finish ---

    def finish(self) -> None:
        """The container exited: what it wrote before it died read (its pipes close
        with it), the log closed, the pty's master closed."""
        deadline = time.monotonic() + 2.0
        while self.outputs and time.monotonic() < deadline:
            for key, _ in self.sel.select(timeout=0.1):
                if key.data == "output":
                    self.read_output(key.fd)
        self.close_log()
        if self.master is not None:
            os.close(self.master)

    def close_log(self) -> None:
        if self.log:
            self.log.close()
            self.log = None

    def tell_exit(self, code: int) -> None:
        """EXIT to every client, which is then let go."""
        done = A.frame_json(A.EXIT, {"code": code})
        for client in list(self.clients.values()):
            try:
                client.sock.sendall(done)
            except OSError:
                pass
            client.sock.close()
        self.clients.clear()
        self.paused.clear()

    def close_pipes(self) -> None:
        """Before another run: the pipes this run left open (not the closed master)."""
        for fd in [*self.outputs, self.stdin_fd]:
            if fd is not None and fd != self.master:
                os.close(fd)

    def close_listener(self) -> None:
        if self.listener is not None:
            try:
                self.sel.unregister(self.listener)
            except (KeyError, ValueError):
                pass
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self.c.socket_path)
            except OSError:
                pass
