"""A small HTTP/1.1 client for the registry protocol, on the socket module.

Why not requests: importing requests and urllib3 costs ~80 ms here, more than
a whole pull of a small image takes (skopeo pulls one in 70 ms); http.client
brings the email package (~15 ms).  The registry API needs little of HTTP:

- keep-alive connections pooled per (scheme, host, port), shared by threads;
  an idle connection the server has closed is noticed before reuse, and a
  request whose reused connection breaks before any reply is sent once more
  on a fresh one (the server never saw it);
- bodies: bytes, or a file-like object with ``__len__`` streamed with a
  Content-Length; replies with Content-Length, chunked, or until close;
- redirects (up to 10): 303, and 301/302 after a POST, become a GET;
  ``Authorization`` is dropped when the redirect leaves the host (S3/CDN
  blob redirects carry their own signature);
- TLS with the system's CAs plus extra CA files, a client certificate, or no
  verification (``--insecure-registry``); SNI and hostname checks by ssl;
- proxies from the environment, as Go (so Docker) reads them: HTTP_PROXY for
  http, HTTPS_PROXY for https (a CONNECT tunnel), NO_PROXY (names, domain
  suffixes, addresses, CIDRs, optional ports, ``*``); loopback is never proxied.

Failures are :class:`HTTPError` subclasses: ConnectFailed, TLSFailed,
TimedOut, Broken (the reply ended early or was not HTTP).
"""

from __future__ import annotations

import base64
import os
import select
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import IO, Any
from urllib.parse import unquote, urlencode, urljoin, urlsplit

MAX_REDIRECTS = 10
MAX_LINE = 65536
MAX_HEADERS = 200
_NO_BODY = frozenset({204, 304})


class HTTPError(Exception):
    """The exchange failed below HTTP's statuses."""


class ConnectFailed(HTTPError):
    """No connection: refused, unreachable, name not resolved."""


class TLSFailed(HTTPError):
    """The TLS handshake failed (unknown CA, wrong name, not TLS)."""


class TimedOut(HTTPError):
    """Connecting or waiting for data took longer than the timeout."""


class Broken(HTTPError):
    """The connection broke, or the reply was not HTTP/1.x."""


class Headers:
    """Case-insensitive reply headers; repeated fields are joined with ", "."""

    def __init__(self) -> None:
        self._d: dict[str, tuple[str, str]] = {}

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        old = self._d.get(key)
        self._d[key] = (name, f"{old[1]}, {value}" if old else value)

    def get(self, name: str, default: str = "") -> str:
        item = self._d.get(name.lower())
        return item[1] if item else default

    def __getitem__(self, name: str) -> str:
        return self._d[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._d

    def items(self) -> list[tuple[str, str]]:
        return list(self._d.values())

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class TLS:
    """How to verify a host's certificate: ``verify`` False skips it;
    ``cafiles`` are added to the system's CAs; ``client_cert`` is (cert, key)."""

    def __init__(
        self, verify: bool = True, cafiles: tuple[str, ...] = (), client_cert: tuple[str, str] | None = None
    ) -> None:
        self.verify = verify
        self.cafiles = cafiles
        self.client_cert = client_cert
        self._context: Any = None

    def context(self) -> Any:
        if self._context is None:
            import ssl

            ctx = ssl.create_default_context()
            for ca in self.cafiles:
                ctx.load_verify_locations(cafile=ca)
            if not self.verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self.client_cert:
                ctx.load_cert_chain(*self.client_cert)
            self._context = ctx
        return self._context


class _URL:
    __slots__ = ("scheme", "host", "port", "target", "netloc")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.netloc = parts.netloc.rpartition("@")[2]
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


class _Conn:
    """One socket and its buffered reader."""

    def __init__(self, sock: socket.socket, key: tuple[Any, ...]) -> None:
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.key = key
        self.reused = False

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()

    def dropped(self) -> bool:
        """True when the server closed an idle connection (it reads as ready:
        EOF, or bytes nobody asked for)."""
        try:
            return bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True


class Response:
    """A reply; read its body with :meth:`read`, :meth:`stream` or
    :attr:`content`, then :meth:`close` it (a fully read body gives the
    connection back to the pool)."""

    def __init__(self, client: Client, conn: _Conn, method: str, url: str) -> None:
        self._client = client
        self._conn: _Conn | None = conn
        self.url = url
        self.method = method
        self.status_code = 0
        self.reason = ""
        self.headers = Headers()
        self._left: int | None = None  # bytes left of a Content-Length body; None: chunked or to EOF
        self._chunked = False
        self._chunk_left = 0
        self._done = False
        self._keep = True
        self._content: bytes | None = None

    # ------------------------------------------------------------ parse ---

    def _read_head(self) -> None:
        rfile = self._rfile()
        while True:
            line = rfile.readline(MAX_LINE + 1)
            if not line:
                raise Broken("the server closed the connection without a reply")
            parts = line.decode("latin-1").rstrip("\r\n").split(None, 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise Broken(f"not an HTTP/1.x reply: {line[:60]!r}")
            self.status_code = int(parts[1])
            self.reason = parts[2] if len(parts) > 2 else ""
            self.headers = Headers()
            for _ in range(MAX_HEADERS):
                h = rfile.readline(MAX_LINE + 1)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, sep, value = h.decode("latin-1").partition(":")
                if sep:
                    self.headers.add(name.strip(), value.strip())
            else:
                raise Broken("the reply has too many header lines")
            if self.status_code >= 200 or self.status_code == 101:
                break  # a 1xx (100 Continue) precedes the real reply
        self._keep = parts[0] == "HTTP/1.1" and "close" not in self.headers.get("Connection").lower()
        if self.method == "HEAD" or self.status_code in _NO_BODY or self.status_code < 200:
            self._left = 0
        elif "chunked" in self.headers.get("Transfer-Encoding").lower():
            self._chunked = True
        elif self.headers.get("Content-Length").strip().isdigit():
            self._left = int(self.headers["Content-Length"])
        else:
            self._keep = False  # the body ends when the server closes
        if self._left == 0:
            self._finish()

    def _rfile(self) -> IO[bytes]:
        if self._conn is None:
            raise Broken("the reply is closed")
        return self._conn.rfile

    # ------------------------------------------------------------- body ---

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the body (all of it when ``n`` < 0); b"" at its end."""
        if self._done:
            return b""
        try:
            if self._chunked:
                return self._read_chunked(n)
            rfile = self._rfile()
            want = self._left if n < 0 else n if self._left is None else min(n, self._left)
            data = rfile.read(want) if want is not None else rfile.read()
        except TimeoutError as exc:
            self._drop()
            raise TimedOut(f"reading the reply of {self.url}: timed out") from exc
        except OSError as exc:
            self._drop()
            raise Broken(f"reading the reply of {self.url}: {exc}") from exc
        if self._left is None:
            if not data or n < 0:
                self._finish()
            return data
        if len(data) < (want or 0):
            self._drop()
            raise Broken(
                f"reading the reply of {self.url}: the connection closed {self._left - len(data)} bytes "
                "before the end of the body"
            )
        self._left -= len(data)
        if self._left == 0:
            self._finish()
        return data

    def _read_chunked(self, n: int) -> bytes:
        rfile = self._rfile()
        out: list[bytes] = []
        want = n if n >= 0 else -1
        while want != 0:
            if self._chunk_left == 0:
                line = rfile.readline(MAX_LINE + 1)
                size = line.split(b";", 1)[0].strip()
                try:
                    self._chunk_left = int(size, 16)
                except ValueError:
                    self._drop()
                    raise Broken(f"reading the reply of {self.url}: bad chunk size {line[:40]!r}") from None
                if self._chunk_left == 0:
                    while rfile.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._finish()
                    break
            take = self._chunk_left if want < 0 else min(want, self._chunk_left)
            data = rfile.read(take)
            if len(data) < take:
                self._drop()
                raise Broken(f"reading the reply of {self.url}: the connection closed inside a chunk")
            out.append(data)
            self._chunk_left -= take
            if want > 0:
                want -= take
            if self._chunk_left == 0:
                rfile.readline(MAX_LINE + 1)  # the CRLF after a chunk
            if n >= 0 and out:
                break
        return b"".join(out)

    def stream(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes."""
        while chunk := self.read(size):
            yield chunk

    iter_content = stream

    @property
    def content(self) -> bytes:
        """The whole body (read once, kept)."""
        if self._content is None:
            self._content = self.read()
        return self._content

    def json(self) -> Any:
        import json

        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    # ---------------------------------------------------------- release ---

    def _finish(self) -> None:
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._keep:
                self._client._release(conn)
            else:
                conn.close()

    def _drop(self) -> None:
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Give the connection back when the body was read, else close it (a
        small unread rest is read first, so the connection can be reused)."""
        if self._done:
            return
        if self._left is not None and self._left <= 1 << 16:
            try:
                self.read()
                return
            except HTTPError:
                return
        self._drop()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Response {self.status_code} {self.method} {self.url}>"


Body = bytes | IO[bytes] | None


class Client:
    """Connection pools and settings shared by a host's requests; thread-safe."""

    def __init__(
        self,
        *,
        user_agent: str = "",
        tls: TLS | None = None,
        pool_size: int = 10,
        timeout: tuple[float, float] = (10.0, 120.0),
        proxies: Proxies | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.tls = tls or TLS()
        self.pool_size = pool_size
        self.timeout = timeout
        self.proxies = proxies if proxies is not None else Proxies.from_env()
        self._idle: dict[tuple[Any, ...], list[_Conn]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for c in conns:
                c.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------- request ---

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        body: Body = None,
        auth: tuple[str, str] | None = None,
        redirects: bool = True,
    ) -> Response:
        """Send a request; follow redirects; return the reply with its body unread."""
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, safe=":")
        hdrs = dict(headers or {})
        if auth is not None:
            hdrs["Authorization"] = basic_auth(*auth)
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._exchange(method, url, hdrs, body)
            location = resp.headers.get("Location")
            if not redirects or resp.status_code not in (301, 302, 303, 307, 308) or not location:
                return resp
            resp.close()
            target = urljoin(url, location)
            if _URL(target).origin != _URL(url).origin:
                hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                method = "HEAD" if method == "HEAD" else "GET"
                body = None
                hdrs = {k: v for k, v in hdrs.items() if k.lower() not in ("content-length", "content-type")}
            elif body is not None and not isinstance(body, bytes):
                return resp  # a streamed body cannot be sent again: the caller sees the redirect
            url = target
        raise Broken(f"{method} {url}: more than {MAX_REDIRECTS} redirects")

    def _exchange(self, method: str, url: str, headers: dict[str, str], body: Body) -> Response:
        u = _URL(url)
        for attempt in (0, 1):
            conn = self._connect(u)
            try:
                self._send(conn, method, u, headers, body)
                resp = Response(self, conn, method, url)
                resp._read_head()
                return resp
            except (Broken, OSError) as exc:
                conn.close()
                # A reused connection the server closed meanwhile: the request never
                # arrived, so once more on a new connection (bytes bodies only).
                if attempt == 0 and conn.reused and (body is None or isinstance(body, bytes)):
                    continue
                if isinstance(exc, TimeoutError):
                    raise TimedOut(f"{method} {url}: timed out waiting for the reply") from exc
                if isinstance(exc, HTTPError):
                    raise
                raise Broken(f"{method} {url}: {exc}") from exc
        raise AssertionError("unreachable")

    def _send(self, conn: _Conn, method: str, u: _URL, headers: dict[str, str], body: Body) -> None:
        proxied = conn.key[3] and u.scheme == "http"
        target = f"http://{u.netloc}{u.target}" if proxied else u.target
        lines = [f"{method} {target} HTTP/1.1", f"Host: {u.netloc}"]
        names = {k.lower() for k in headers}
        if self.user_agent and "user-agent" not in names:
            lines.append(f"User-Agent: {self.user_agent}")
        if "accept" not in names:
            lines.append("Accept: */*")
        if body is None:
            if method in ("POST", "PUT", "PATCH") and "content-length" not in names:
                lines.append("Content-Length: 0")
        elif "content-length" not in names:
            lines.append(f"Content-Length: {len(body)}")  # type: ignore[arg-type]  # file bodies have __len__
        if proxied and conn.key[4]:
            lines.append(f"Proxy-Authorization: {conn.key[4]}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sock = conn.sock
        if isinstance(body, bytes) and len(body) < 1 << 16:
            sock.sendall(head + body)
            return
        sock.sendall(head)
        if isinstance(body, bytes):
            sock.sendall(body)
        elif body is not None:
            while data := body.read(1 << 20):
                sock.sendall(data)

    # ------------------------------------------------------- connections ---

    def _connect(self, u: _URL) -> _Conn:
        proxy = self.proxies.for_url(u)
        key = (*u.origin, proxy.origin if proxy else None, proxy_auth(proxy) if proxy else "")
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if not conn.dropped():
                    conn.reused = True
                    return conn
                conn.close()
        connect_timeout, read_timeout = self.timeout
        host, port = (proxy.host, proxy.port) if proxy else (u.host, u.port)
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except TimeoutError as exc:
            raise TimedOut(f"connect to {host}:{port}: timed out") from exc
        except OSError as exc:
            raise ConnectFailed(f"connect to {host}:{port}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(read_timeout)
            if proxy and u.scheme == "https":
                _tunnel(sock, u, key[4])
            if u.scheme == "https":
                sock = self._wrap(sock, u.host)
        except BaseException:
            sock.close()
            raise
        return _Conn(sock, key)

    def _wrap(self, sock: socket.socket, host: str) -> socket.socket:
        import ssl

        try:
            return self.tls.context().wrap_socket(sock, server_hostname=host)  # type: ignore[no-any-return]
        except ssl.SSLError as exc:  # includes certificate verification errors
            raise TLSFailed(f"TLS handshake with {host}: {exc}") from exc
        except TimeoutError as exc:
            raise TimedOut(f"TLS handshake with {host}: timed out") from exc
        except OSError as exc:
            raise TLSFailed(f"TLS handshake with {host}: {exc}") from exc

    def _release(self, conn: _Conn) -> None:
        with self._lock:
            idle = self._idle.setdefault(conn.key, [])
            if len(idle) < self.pool_size:
                idle.append(conn)
                return
        conn.close()


def _tunnel(sock: socket.socket, u: _URL, auth: str) -> None:
    """``CONNECT host:port`` through an HTTP proxy."""
    lines = [f"CONNECT {u.host}:{u.port} HTTP/1.1", f"Host: {u.host}:{u.port}"]
    if auth:
        lines.append(f"Proxy-Authorization: {auth}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(1)  # byte by byte: nothing of the tunnelled stream may be read here
        if not data or len(head) > MAX_LINE:
            raise ConnectFailed(f"proxy CONNECT to {u.host}:{u.port}: the proxy closed the connection")
        head += data
    status = head.split(None, 2)[1:2]
    if status != [b"200"]:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        raise ConnectFailed(f"proxy CONNECT to {u.host}:{u.port}: {line}")


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ------------------------------------------------------------- proxies ---


class Proxies:
    """Proxy URLs from the environment and the hosts that bypass them."""

    def __init__(self, http: str = "", https: str = "", no_proxy: str = "") -> None:
        self.http = _ProxyURL(_with_scheme(http)) if http else None
        self.https = _ProxyURL(_with_scheme(https)) if https else None
        self.no_proxy = [e.strip().lower() for e in no_proxy.split(",") if e.strip()]

    @classmethod
    def from_env(cls) -> Proxies:
        def env(name: str) -> str:
            return os.environ.get(name) or os.environ.get(name.lower()) or ""

        return cls(env("HTTP_PROXY"), env("HTTPS_PROXY"), env("NO_PROXY"))

    def for_url(self, u: _URL) -> _ProxyURL | None:
        proxy = self.https if u.scheme == "https" else self.http
        if proxy is None or self.bypass(u.host, u.port):
            return None
        return proxy

    def bypass(self, host: str, port: int) -> bool:
        """Go's rules (golang.org/x/net/http/httpproxy): loopback and NO_PROXY matches go direct."""
        host = host.lower().strip("[]")
        if host == "localhost":
            return True
        addr = _ip(host)
        if addr is not None and addr.is_loopback:
            return True
        for entry in self.no_proxy:
            if entry == "*":
                return True
            if "/" in entry:
                if addr is not None and _in_cidr(addr, entry):
                    return True
                continue
            name, eport = entry, ""
            if entry.startswith("["):  # [v6] or [v6]:port
                name, _, rest = entry[1:].partition("]")
                eport = rest.removeprefix(":")
            elif entry.count(":") == 1:
                name, _, eport = entry.partition(":")
            if eport and eport != str(port):
                continue
            if addr is not None:
                if _ip(name) == addr:
                    return True
                continue
            if name.startswith("*."):
                name = name[1:]
            exact = not name.startswith(".")  # "y.com" is y.com and its subdomains, ".y.com" only these
            if exact:
                name = "." + name
            if host.endswith(name) or (exact and host == name[1:]):
                return True
        return False


class _ProxyURL(_URL):
    __slots__ = ("user", "password")

    def __init__(self, url: str) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        self.user = unquote(parts.username or "")
        self.password = unquote(parts.password or "")


def proxy_auth(proxy: _ProxyURL) -> str:
    return basic_auth(proxy.user, proxy.password) if proxy.user else ""


def _with_scheme(url: str) -> str:
    return url if "://" in url else f"http://{url}"


def _ip(name: str) -> Any:
    import ipaddress

    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _in_cidr(addr: Any, cidr: str) -> bool:
    import ipaddress

    try:
        return bool(addr in ipaddress.ip_network(cidr, strict=False))
    except ValueError:
        return False
