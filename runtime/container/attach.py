"""The monitor's socket protocol, and the client side of attaching to it.

Frames are a 1-byte kind and a 4-byte big-endian length, then the payload
(Docker's attach stream uses an 8-byte header for the same purpose).  A client
opens with HELLO ``{"stdin": bool, "stdout": bool, "stderr": bool}``; the
monitor sends output frames, and EXIT ``{"code": n}`` when the container has
exited and been cleaned up (and removed, with ``--rm``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    import selectors
    from typing import Any

STDIN, STDOUT, STDERR, EXIT, STARTED, STDIN_EOF, RESIZE, HELLO, ERROR = range(9)
_HEADER = struct.Struct(">BI")
DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q


def frame(kind: int, data: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(data)) + data


def frame_json(kind: int, doc: dict[str, Any]) -> bytes:
    return frame(kind, json.dumps(doc).encode())


class FrameReader:
    """Reassemble frames from a byte stream."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= _HEADER.size:
            kind, n = _HEADER.unpack_from(self.buf)
            if len(self.buf) < _HEADER.size + n:
                break
            out.append((kind, self.buf[_HEADER.size : _HEADER.size + n]))
            self.buf = self.buf[_HEADER.size + n :]
        return out


def connect(path: Path) -> socket.socket:
    """Connect to a unix socket even when its path exceeds sun_path's 108 bytes
    (through /proc/self/fd of its directory). Raises OSError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if len(str(path)) < 100:
        try:
            s.connect(str(path))
        except OSError:
            s.close()
            raise
        return s
    dfd = os.open(path.parent, os.O_PATH | os.O_CLOEXEC)
    try:
        s.connect(f"/proc/self/fd/{dfd}/{path.name}")
    except OSError:
        s.close()
        raise
    finally:
        os.close(dfd)
    return s


def read_frame(sock: socket.socket, reader: FrameReader) -> tuple[int, bytes] | None:
    """The next frame, blocking; None at EOF."""
    while True:
        if len(reader.buf) >= _HEADER.size:
            kind, n = _HEADER.unpack_from(reader.buf)
            end = _HEADER.size + n
            if len(reader.buf) >= end:
                payload, reader.buf = reader.buf[_HEADER.size : end], reader.buf[end:]
                return kind, payload
        data = sock.recv(65536)
        if not data:
            return None
        reader.buf += data


def window_size(fd: int) -> tuple[int, int] | None:
    import fcntl
    import termios

    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols


class Detached(Exception):
    """The user typed the detach keys."""


def relay(
    sock: socket.socket,
    *,
    stdin: int | None,
    stdout: int,
    stderr: int,
    tty: bool,
    reader: FrameReader | None = None,
    on_signal: Callable[[int], None] | None = None,
) -> int | None:
    """Pump the terminal/pipes to and from an attached monitor socket.

    Returns the container's exit code from the EXIT frame, None when the
    monitor went away without one; raises Detached on Ctrl-P Ctrl-Q (tty only).
    With a tty on ``stdin`` the terminal is raw for the duration and window
    changes are forwarded.  ``on_signal`` receives SIGINT/SIGTERM/SIGHUP/SIGQUIT
    when not on a tty (docker's --sig-proxy)."""
    import selectors

    reader = reader or FrameReader()
    piped: int | None = None
    restore = _raw(stdin) if tty and stdin is not None and os.isatty(stdin) else None
    old_handlers: dict[int, Any] = {}
    resize_r, resize_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def on_winch(_sig: int, _frame: FrameType | None) -> None:
        try:
            os.write(resize_w, b"w")
        except OSError:
            pass

    def on_sig(sig: int, _frame: FrameType | None) -> None:
        if on_signal:
            on_signal(sig)

    sel = selectors.DefaultSelector()
    try:
        if tty:
            old_handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, on_winch)
            on_winch(0, None)
        elif on_signal:
            for proxied in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                old_handlers[proxied] = signal.signal(proxied, on_sig)
        sel.register(sock, selectors.EVENT_READ, "sock")
        sel.register(resize_r, selectors.EVENT_READ, "resize")
        if stdin is not None:
            piped = _register_input(sel, stdin, "stdin")
        prev = b""
        for kind, data in reader.feed(b""):
            if (code := _output(kind, data, stdout, stderr)) is not None:
                return code
        while True:
            for key, _ in sel.select():
                if key.data == "resize":
                    os.read(resize_r, 64)
                    size = window_size(stdin if stdin is not None else stdout)
                    if size:
                        sock.sendall(frame(RESIZE, f"{size[0]} {size[1]}".encode()))
                elif key.data == "stdin":
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fd)
                        sock.sendall(frame(STDIN_EOF))
                        continue
                    if tty:
                        seq = prev + data
                        if DETACH_KEYS in seq:
                            raise Detached()
                        prev = data[-1:]
                    sock.sendall(frame(STDIN, data))
                else:
                    data = sock.recv(65536)
                    if not data:
                        return None
                    for kind, payload in reader.feed(data):
                        if (code := _output(kind, payload, stdout, stderr)) is not None:
                            return code
    finally:
        sel.close()
        for signum, handler in old_handlers.items():
            signal.signal(signum, handler)
        for fd in (resize_r, resize_w, piped):
            if fd is not None:
                os.close(fd)
        if restore:
            restore()


def _register_input(sel: selectors.BaseSelector, fd: int, data: str) -> int | None:
    """Register ``fd`` for reading.  epoll refuses a regular file or /dev/null
    (EPERM: they are always readable), as in ``run -i img sh < script``: a thread
    then copies it into a pipe, which is registered instead and returned for the
    caller to close (the thread ends at EOF, or on EPIPE once it is closed)."""
    import selectors

    try:
        sel.register(fd, selectors.EVENT_READ, data)
        return None
    except PermissionError:
        pass
    import threading

    r, w = os.pipe2(os.O_CLOEXEC)

    def pump() -> None:
        try:
            while chunk := os.read(fd, 65536):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(w, view) :]
        except OSError:
            pass
        finally:
            os.close(w)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    sel.register(r, selectors.EVENT_READ, data)
    return r


def _output(kind: int, data: bytes, stdout: int, stderr: int) -> int | None:
    if kind in (STDOUT, STDERR):
        fd = stdout if kind == STDOUT else stderr
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    elif kind == EXIT:
        return int(json.loads(data).get("code", 0))
    return None


def _raw(fd: int) -> Callable[[], None]:
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)

    def restore() -> None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    return restore


def pty_relay(master: int, stdin: int | None, stdout: int, pid: int) -> int:
    """Pump a local terminal to and from the master of a pty whose slave a child
    (``pid``, e.g. an exec'd process) uses; return that child's exit code."""
    import selectors

    restore = _raw(stdin) if stdin is not None and os.isatty(stdin) else None
    winch_r, winch_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def on_winch(_sig: int, _frame: FrameType | None) -> None:
        try:
            os.write(winch_w, b"w")
        except OSError:
            pass

    old = signal.signal(signal.SIGWINCH, on_winch)
    on_winch(0, None)
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ, "master")
    sel.register(winch_r, selectors.EVENT_READ, "winch")
    piped = _register_input(sel, stdin, "stdin") if stdin is not None else None
    try:
        while "master" in [k.data for k in sel.get_map().values()]:
            for key, _ in sel.select():
                if key.data == "winch":
                    os.read(winch_r, 64)
                    size = window_size(stdin if stdin is not None else stdout)
                    if size:
                        _set_window(master, size)
                elif key.data == "stdin":
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fd)
                        continue
                    os.write(master, data)
                else:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(master)
                        break
                    os.write(stdout, data)
    finally:
        sel.close()
        signal.signal(signal.SIGWINCH, old)
        for fd in (winch_r, winch_w, master, piped):
            if fd is not None:
                os.close(fd)
        if restore:
            restore()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)  # the exec helper already gives docker's code


def _set_window(fd: int, size: tuple[int, int]) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
