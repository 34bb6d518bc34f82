"""The service's HTTP/1.1 server: unix sockets and TCP (mutual TLS), a thread a connection.

Why not the registry's WSGI stack (Flask under gunicorn): WSGI hands an application
a request and takes back an iterable of body bytes; it cannot give the application
the connection itself.  The Engine API needs exactly that: ``attach`` and ``exec
start`` answer ``101 UPGRADED`` (or 200 with a raw stream) and from then on the
connection is a bidirectional pipe, the client's stdin one way and the container's
output the other, half-closed by either side independently.  ``http.server`` on
``socketserver``'s threading servers gives each connection a thread that owns the
socket: a handler can stream a chunked body as long as a ``logs -f`` runs, or take
the socket over and relay both directions (a second thread pumps stdin).  Threads
suit the load (a handful of clients, most of them waiting on a container) and the
libraries below, which block.  TLS is ``ssl`` around the accepted socket, its
handshake in the connection's thread, so a slow or refused client holds up no other.

A route returns a ``Reply`` (a JSON document or bytes), a ``Stream`` (chunks sent with
chunked transfer-encoding as they come) or ``HIJACKED`` once it has taken the socket
(``Request.hijack``).  A DockyardError becomes docker's ``{"message": …}`` with the
status its class declares.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import select
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from engine import API_VERSION, VERSION
from imagefmt import errors

MIN_API_VERSION = "1.12"
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


class Reply(NamedTuple):
    """A whole response: ``body`` is JSON-encoded unless it is bytes."""

    body: Any = None
    status: int = 200
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


class Stream(NamedTuple):
    """A response whose body is sent, chunk by chunk, as ``chunks`` yields."""

    chunks: Iterator[bytes]
    content_type: str = "application/json"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


class _Hijacked:
    """What a route returns once it has taken the connection (``Request.hijack``)."""


HIJACKED = _Hijacked()
Result = Reply | Stream | _Hijacked


class Body:
    """The request body as a file: bounded by Content-Length, or chunked."""

    def __init__(self, rfile: IO[bytes], length: int | None, chunked: bool) -> None:
        self.rfile = rfile
        self.left = length or 0
        self.chunked = chunked
        self.chunk_left = 0
        self.done = not chunked and not length

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        if self.done or n == 0:
            return b""
        if not self.chunked:
            data = self.rfile.read(min(n, self.left))
            self.left -= len(data)
            if not data or not self.left:
                self.done = True
            return data
        if not self.chunk_left:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self.done = True
                return b""
            self.chunk_left = size
        data = self.rfile.read(min(n, self.chunk_left))
        self.chunk_left -= len(data)
        if not data:
            self.done = True
        elif not self.chunk_left:
            self.rfile.readline()  # the CRLF after the chunk
        return data

    def drain(self) -> None:
        while self.read(1 << 16):
            pass


class Request:
    """One API request: the route's parameters, the query, the headers and the body."""

    def __init__(self, handler: Handler, path: str, params: dict[str, str], version: str) -> None:
        self.handler = handler
        self.service: Service = handler.server.service  # type: ignore[attr-defined]
        self.method = handler.command
        self.version = version
        parsed = urllib.parse.urlsplit(path)
        self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        self.params = params
        self.headers = handler.headers
        length = handler.headers.get("Content-Length")
        chunked = "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower()
        self.body = Body(
            handler.rfile,  # type: ignore[arg-type]
            int(length) if length else None,
            chunked,
        )

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter as docker reads them (1/true/True; absent: ``default``)."""
        if name not in self.query:
            return default
        return self.arg(name).lower() in ("1", "true", "yes")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        text = self.arg(name)
        if not text:
            return default
        try:
            return int(text)
        except ValueError:
            raise errors.Invalid(f"invalid value for {name}: {text!r}") from None

    def json(self) -> Any:
        data = self.body.read()
        if not data.strip():
            return {}
        try:
            return json.loads(data)
        except ValueError as exc:
            raise errors.Invalid(f"invalid JSON body: {exc}") from None

    def filters(self) -> dict[str, list[str]]:
        """The ``filters`` parameter: {"key": ["v", …]} or the older {"key": {"v": true}}."""
        text = self.arg("filters")
        if not text:
            return {}
        try:
            doc = json.loads(text)
        except ValueError:
            raise errors.Invalid(f"invalid filters: {text}") from None
        return {
            k: list(v) if isinstance(v, list) else [x for x, on in v.items() if on] for k, v in doc.items()
        }

    def filter_list(self) -> tuple[str, ...]:
        """The filters as the CLI's KEY=VALUE strings (what engine/ takes)."""
        return tuple(f"{k}={v}" for k, vs in self.filters().items() for v in vs)

    def client_gone(self) -> bool:
        """Whether the client has closed its end (a stream waiting on nothing stops)."""
        conn = self.handler.connection
        if isinstance(conn, ssl.SSLSocket):
            return False  # no peek through TLS; the next write finds out
        try:
            ready, _, _ = select.select([conn], [], [], 0)
            return bool(ready) and conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def hijack(
        self, content_type: str = "application/vnd.docker.raw-stream"
    ) -> tuple[socket.socket, IO[bytes]]:
        """Take the connection over: answer 101 (the client asked to upgrade) or 200,
        and return the socket and the buffered reader holding what the client sent."""
        h = self.handler
        upgrade = "upgrade" in (self.headers.get("Connection") or "").lower()
        if upgrade:
            head = "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        else:
            head = "HTTP/1.1 200 OK\r\n"
        head += f"Content-Type: {content_type}\r\nApi-Version: {API_VERSION}\r\n\r\n"
        h.wfile.write(head.encode())
        h.close_connection = True
        return h.connection, h.rfile  # type: ignore[return-value]


Route = Callable[[Request], Result]


class Routes:
    """A module's routes: ``@ROUTES("GET", "/containers/{id}/json")``.  ``{name}`` matches
    one path segment, ``{name*}`` one or more (image names have slashes)."""

    def __init__(self) -> None:
        self.table: list[tuple[str, re.Pattern[str], Route]] = []

    def __call__(self, method: str, pattern: str) -> Callable[[Route], Route]:
        text = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", text) + "/?$")

        def add(fn: Route) -> Route:
            self.table.append((method, regex, fn))
            return fn

        return add


class Service:
    """What every route shares: the store's root, and the in-process state of the
    service (pending attaches, execs, exit codes) that routes' modules keep in it."""

    def __init__(self, root: Path, debug: bool = False) -> None:
        self.root = root
        self.debug = debug
        self.lock = threading.Lock()
        self.state: dict[str, Any] = {}
        self.routes: list[tuple[str, re.Pattern[str], Route]] = []

    def add(self, routes: Routes) -> None:
        self.routes.extend(routes.table)

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        allowed = False
        for m, regex, fn in self.routes:
            match = regex.match(path)
            if match:
                if m == method or (method == "HEAD" and m == "GET"):
                    return fn, {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
                allowed = True
        if allowed:
            raise MethodNotAllowed("method not allowed")
        return None


class MethodNotAllowed(errors.DockyardError):
    status = 405


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"Docker/{VERSION}"
    sys_version = "(linux)"

    def address_string(self) -> str:
        return str(self.client_address[0]) if self.client_address else "unix"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        if self.server.service.debug:  # type: ignore[attr-defined]
            sys.stderr.write(f"{time.strftime('%H:%M:%S')} {self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def dispatch(self) -> None:
        raw = self.path
        path, _, _ = raw.partition("?")
        version = API_VERSION
        m = _VERSIONED.match(path)
        req: Request | None = None
        try:
            if m:
                version, path = f"{m.group(1)}.{m.group(2)}", m.group(3)
                if _vkey(version) > _vkey(API_VERSION):
                    raise errors.Invalid(
                        f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
                    )
                if _vkey(version) < _vkey(MIN_API_VERSION):
                    raise errors.Invalid(
                        f"client version {version} is too old. Minimum supported API version is "
                        f"{MIN_API_VERSION}, please upgrade your client to a newer version"
                    )
            found = self.server.service.find(self.command, path)  # type: ignore[attr-defined]
            if found is None:
                raise errors.NotFound(f"page not found: {self.command} {path}")
            fn, params = found
            req = Request(self, raw, params, version)
            result = fn(req)
        except errors.DockyardError as exc:
            self.send_error_doc(exc.status, str(exc))
            self.finish_body(req)
            return
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        except Exception as exc:  # a bug: the client gets a 500, the log the traceback
            import traceback

            traceback.print_exc()
            self.send_error_doc(500, f"{type(exc).__name__}: {exc}")
            self.close_connection = True
            return
        if isinstance(result, _Hijacked):
            self.close_connection = True
            return
        self.finish_body(req)
        if isinstance(result, Reply):
            self.send_reply(result)
        else:
            self.send_stream(result)

    def finish_body(self, req: Request | None) -> None:
        """Read what is left of the request body, so the next request on the
        connection starts where it should."""
        if req is None:
            if self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding"):
                self.close_connection = True
            return
        try:
            req.body.drain()
        except (OSError, ValueError):
            self.close_connection = True

    def common_headers(self) -> None:
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")

    def send_error_doc(self, status: int, message: str) -> None:
        try:
            self.send_reply(Reply({"message": message}, status))
        except OSError:
            self.close_connection = True

    def send_reply(self, r: Reply) -> None:
        if r.body is None:
            data = b""
        elif isinstance(r.body, bytes):
            data = r.body
        else:
            data = json.dumps(r.body).encode() + b"\n"
        self.send_response(r.status)
        self.common_headers()
        for k, v in r.headers:
            self.send_header(k, v)
        if r.status != 204 and r.status != 304:
            self.send_header("Content-Type", r.content_type)
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    def send_stream(self, s: Stream) -> None:
        self.send_response(s.status)
        self.common_headers()
        for k, v in s.headers:
            self.send_header(k, v)
        self.send_header("Content-Type", s.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in s.chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away: stop producing
            self.close_connection = True
        finally:
            close = getattr(s.chunks, "close", None)
            if close is not None:
                close()


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


class TLSOptions(NamedTuple):
    cert: Path
    key: Path
    ca: Path | None = None  # set: clients must present a certificate the CA signed (--tlsverify)

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert), str(self.key))
        if self.ca is not None:
            ctx.load_verify_locations(str(self.ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


class _Serving:
    """Behaviour both listeners share: the service, TLS in the connection's thread."""

    service: Service
    tls: ssl.SSLContext | None = None
    daemon_threads = True
    block_on_close = False

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            Handler(request, client_address, self)  # type: ignore[arg-type]
            return
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            if self.service.debug:
                sys.stderr.write(f"TLS handshake refused: {exc}\n")
            return
        try:
            Handler(wrapped, client_address, self)  # type: ignore[arg-type]
        finally:
            wrapped.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | ssl.SSLError):
            return  # a client that went away
        super().handle_error(request, client_address)  # type: ignore[misc]


class UnixServer(_Serving, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    pass


class TCPServer(_Serving, socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True


def listen(address: str, service: Service, tls: ssl.SSLContext | None) -> socketserver.BaseServer:
    """A server bound to ``unix:///PATH`` or ``tcp://HOST:PORT``. Raises Invalid, OSError."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = ("unix", address) if address.startswith("/") else ("tcp", address)
    server: UnixServer | TCPServer
    if scheme == "unix":
        path = Path(rest or "/run/dockyard.sock")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()
        server = UnixServer(str(path), Handler, bind_and_activate=True)
        os.chmod(path, 0o660)
    elif scheme == "tcp":
        host, _, port = rest.rpartition(":")
        if not port.isdigit():
            host, port = rest, "2376" if tls else "2375"
        server = TCPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
        server.tls = tls
    else:
        raise errors.Invalid(f"invalid -H {address}: use unix:///PATH or tcp://HOST:PORT")
    server.service = service
    return server


def serve(service: Service, addresses: list[str], tls: TLSOptions | None, ready: Callable[[], None]) -> None:
    """Serve on every address until SIGTERM or SIGINT; remove the unix sockets after."""
    ctx = tls.context() if tls is not None else None
    servers = [listen(a, service, ctx) for a in addresses]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    ready()
    try:
        while not stop.wait(3600):
            pass
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
            if isinstance(s, UnixServer):
                Path(s.server_address).unlink(missing_ok=True)  # type: ignore[arg-type]
