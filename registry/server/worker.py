"""The registry's gunicorn worker: gthread that no slow client can starve.

gunicorn's gthread worker gives a thread to a connection as soon as it has a
byte to read, and the thread then blocks until the request head is whole: forty
clients trickling their headers hold every thread of a 2 x 16 server and the
next ``docker pull`` waits.  :class:`RegistryWorker` reads request heads in its
event loop instead (non-blocking, any number of connections), and a thread gets
a connection only once the head has arrived; a head not whole within
``header_timeout`` seconds is dropped.  Over TLS the handshake is done there too,
a step at a time, within the same ``header_timeout``, and the first head after
it; the heads of the later requests of a kept-alive TLS connection are read by
its thread, as gunicorn does.

:func:`guard` wraps the app: a request body that fails to parse (a bad chunk
size, a missing terminator) or stalls for ``body_timeout`` seconds is a 400 with
an OCI error body (:class:`BodyInvalid`), never a 500 or a thread held forever;
and the replies gunicorn itself makes (400 for a bad request line, 431 for huge
headers) carry an OCI error body too (:func:`write_oci_error`).
"""

from __future__ import annotations

import errno
import io
import json
import selectors
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn import sock as gsock
from gunicorn.http.errors import ParseException
from gunicorn.workers.gthread import _DEFER, TConn, ThreadWorker

from imagefmt.errors import Invalid
from registry.server import bodies

HEAD_END = b"\r\n\r\n"
HEAD_READ = 65536  # a head longer than this goes to a thread as is: gunicorn's limits refuse it there


class BodyInvalid(Invalid):
    """A request body that could not be read: malformed chunked framing, or a
    client that stopped sending."""


_METHOD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ-_")


def _may_be_http(head: bytearray) -> bool:
    """Whether ``head`` can still become an HTTP request: its method so far is a token
    of capitals.  Anything else (a TLS ClientHello to this plain port, a stray
    protocol) goes to the parser at once, for its 400, rather than waiting out
    the header timeout (a client trying https first gets its answer, as from
    distribution)."""
    method = head.split(b" ", 1)[0]
    return all(b in _METHOD_BYTES for b in method[:32]) and len(method) <= 32


def write_oci_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error`` with an OCI error body instead of HTML."""
    body = json.dumps({"errors": [{"code": "UNKNOWN", "message": mesg or reason}]}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class RegistryWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, but a thread only ever waits for a request body, never for a head."""

    header_timeout = 20.0  # set from the Config by serve.py

    def init_process(self) -> None:
        self.heading: dict[TConn, float] = {}  # connections reading a head -> their deadline
        util.write_error = write_oci_error  # gunicorn's own 400/414/431 replies (this process only)
        self.tls = (
            gsock.ssl_context(self.cfg) if self.cfg.is_ssl else None
        )  # one context, not one a connection
        super().init_process()

    def accept(self, listener: socket.socket) -> None:
        try:
            client, addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, addr, listener.getsockname())  # non-blocking
        if self.tls is not None:
            self._await_handshake(conn)
            return
        conn.init()  # the HTTP/1 parser; nothing is read yet
        self._await_head(conn)

    def _await_handshake(self, conn: TConn) -> None:
        """Do the TLS handshake here, a step each time the client sends (bounded by
        ``header_timeout`` as a head is), then read the head here too."""
        assert self.tls is not None
        conn.sock = self.tls.wrap_socket(
            conn.sock,
            server_side=True,
            do_handshake_on_connect=False,
            suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
        )
        conn.sock.setblocking(False)
        self.heading[conn] = time.monotonic() + self.header_timeout
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_handshake_bytes, conn))

    def _on_handshake_bytes(self, conn: TConn, client: socket.socket) -> None:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.poller.modify(conn.sock, selectors.EVENT_READ, partial(self._on_handshake_bytes, conn))
            return
        except ssl.SSLWantWriteError:
            self.poller.modify(conn.sock, selectors.EVENT_WRITE, partial(self._on_handshake_bytes, conn))
            return
        except OSError:  # not TLS, a refused certificate, a reset
            self._drop_heading(conn)
            return
        self.poller.unregister(conn.sock)
        del self.heading[conn]
        conn.initialized = True
        if gsock.is_http2_negotiated(conn.sock):  # as TConn.init
            conn.is_http2 = True
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client, http2_connection=True)
            conn.parser.initiate_connection()
            conn.sock.setblocking(True)
            self.enqueue_req(conn)
            return
        conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        self._await_head(conn)
        self._on_head_bytes(conn, conn.sock)  # the request may have come with the handshake's end

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """A kept-alive connection has its next request coming: read its head here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        if conn.is_http2 or self.cfg.is_ssl:
            self.enqueue_req(conn)
            return
        self._await_head(conn)

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """As gthread's, but the start of a pipelined request that came with the
        last one waits for the rest of its head here, not in a thread."""
        try:
            keep = not fs.cancelled() and fs.result() not in (False, _DEFER)
        except Exception:
            keep = False
        if keep and self.alive and not conn.is_http2 and not self.cfg.is_ssl:
            early = conn.parser.unreader.buf.getvalue()
            if early and HEAD_END not in early:
                conn.parser.unreader.buf = io.BytesIO()
                self._await_head(conn, early)
                return
        super().finish_request(conn, fs)

    def handle_request(self, req: Any, conn: TConn) -> Any:
        bodies.install(req, conn.parser.unreader)
        return super().handle_request(req, conn)

    def _await_head(self, conn: TConn, early: bytes = b"") -> None:
        conn.sock.setblocking(False)
        conn.head = bytearray(early)
        self.heading[conn] = time.monotonic() + self.header_timeout
        self.poller.register(conn.sock, 1, partial(self._on_head_bytes, conn))  # 1: EVENT_READ

    def _on_head_bytes(self, conn: TConn, client: socket.socket) -> None:
        try:
            data = conn.sock.recv(HEAD_READ)
            while isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending() and len(data) < HEAD_READ:
                data += conn.sock.recv(HEAD_READ)  # records decrypted already: no event will tell
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before its request
            self._drop_heading(conn)
            return
        conn.head += data
        if HEAD_END not in conn.head and len(conn.head) < HEAD_READ and _may_be_http(conn.head):
            return
        self.poller.unregister(conn.sock)
        del self.heading[conn]
        conn.parser.unreader.unread(bytes(conn.head))
        conn.head = bytearray()
        conn.data_ready = True
        conn.sock.setblocking(True)
        self.enqueue_req(conn)

    def _drop_heading(self, conn: TConn) -> None:
        self.heading.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (OSError, KeyError, ValueError):
            pass
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Drop the connections whose head did not arrive in time (all of them on a stop)."""
        super().murder_pending()
        now = time.monotonic()
        for conn, deadline in list(self.heading.items()):
            if deadline <= now or not self.alive:
                self._drop_heading(conn)


class _GuardedInput:
    """``wsgi.input`` whose read failures are BodyInvalid once, then end of body."""

    def __init__(self, raw: Any, timeout: float) -> None:
        self._raw = raw
        self._timeout = timeout
        self._failed = False

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._failed:
            return b""
        try:
            return fn(*args)
        except ParseException as err:
            self._failed = True
            raise BodyInvalid(f"malformed request body: {err}") from err
        except TimeoutError as err:
            self._failed = True
            raise BodyInvalid(f"request body: nothing received for {self._timeout:g} s") from err

    def read(self, size: int | None = None) -> bytes:
        return bytes(self._call(self._read, size))

    def _read(self, size: int | None) -> bytes:
        """From a fast reader (registry/server/bodies.py) directly, past gunicorn's
        ``Body`` and its buffer; a short read is not the end, an empty one is."""
        fast = getattr(self._raw, "reader", None)
        if not isinstance(fast, bodies.FastChunked | bodies.FastLength) or self._raw.buf.tell():
            return bytes(self._raw.read(size))
        try:
            if size is None or size < 0:
                return b"".join(iter(partial(fast.read, bodies.READ), b""))
            return fast.read(size)
        except Exception:
            self._raw.failed = True  # where the next request starts is unknown: no keep-alive
            raise

    def readline(self, size: int | None = None) -> bytes:
        return bytes(self._call(self._raw.readline, size))

    def readlines(self, hint: int | None = None) -> list[bytes]:
        return [] if self._failed else list(self._call(self._raw.readlines, hint))

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def guard(app: App, body_timeout: float) -> App:
    """The WSGI ``app`` with its request body guarded (see the module docstring):
    every read and write of the connection waits ``body_timeout`` s at most.  A
    reply with ``Connection: close`` (a hop-by-hop header, which gunicorn drops)
    makes gunicorn close the connection after it, and say so."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(body_timeout)  # gunicorn resets it to blocking for the next request
        environ["wsgi.input"] = _GuardedInput(environ["wsgi.input"], body_timeout)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            closing = any(k.lower() == "connection" and v.lower() == "close" for k, v in headers)
            if closing and hasattr(getattr(start_response, "__self__", None), "must_close"):
                start_response.__self__.must_close = True  # type: ignore[attr-defined]
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return guarded
