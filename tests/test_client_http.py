"""registry.httpclient, the client's HTTP/1.1 layer, against real servers on 127.0.0.1:
chunked and close-delimited replies, keep-alive reuse and a server that closed
an idle connection, redirects (Authorization dropped across hosts), proxies
(forward and CONNECT) and NO_PROXY, and the errors of a refused connection."""

from __future__ import annotations

import http.server
import select
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from registry import httpclient
from registry.httpclient import Client, ConnectFailed, Proxies

# ------------------------------------------------------------- servers ---


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, str]]  # (method, path, Authorization) per request, set per server
    other = ""  # base URL of a second server, for cross-host redirects

    def log_message(self, *args: object) -> None:
        pass

    def _record(self) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization", "")))

    def do_HEAD(self) -> None:
        self._record()
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()

    def do_GET(self) -> None:
        self._record()
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end")
            self.close_connection = True
        elif self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only ten b")
            self.close_connection = True
        elif self.path.startswith("/redirect-away"):
            self.send_response(307)
            self.send_header("Location", f"{self.other}/landing")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/redirect-here":
            self.send_response(302)
            self.send_header("Location", "/landing")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            body = f"{self.command} {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Dup", "a")
            self.send_header("x-dup", "b")
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self) -> None:
        self._record()
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        if self.path == "/see-other":
            self.send_response(303)
            self.send_header("Location", "/landing")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@contextmanager
def serve(other: str = "") -> Iterator[tuple[str, list[tuple[str, str, str]], _Server]]:
    seen: list[tuple[str, str, str]] = []
    handler = type("H", (_Handler,), {"seen": seen, "other": other})
    srv = _Server(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen, srv
    finally:
        srv.shutdown()
        srv.server_close()


class _Proxy(socketserver.ThreadingTCPServer):
    """A forward proxy: absolute-form requests are passed on; CONNECT opens a tunnel."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(socketserver.BaseRequestHandler):
    server: _Proxy

    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(65536)
            if not data:
                return
            head += data
        line = head.split(b"\r\n", 1)[0].decode()
        self.server.requests.append(line)
        method, target, _ = line.split(" ", 2)
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            rest = head.split(b"\r\n\r\n", 1)[1]
        else:
            hostport = target.split("/", 3)[2]
            host, port = hostport.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            path = "/" + target.split("/", 3)[3]
            rest = head.replace(target.encode(), path.encode(), 1)
        with upstream:
            upstream.sendall(rest)
            pair = {client: upstream, upstream: client}
            while True:
                ready, _, _ = select.select(list(pair), [], [], 5)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)


@contextmanager
def proxy() -> Iterator[tuple[str, _Proxy]]:
    srv = _Proxy()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    finally:
        srv.shutdown()
        srv.server_close()


# --------------------------------------------------------------- tests ---


def test_bodies_chunked_close_delimited_and_headers() -> None:
    with serve() as (base, _seen, _srv), Client(user_agent="dockyard-test") as c:
        with c.request("GET", f"{base}/chunked") as r:
            assert r.status_code == 200
            assert r.content == b"hello chunked world"
        with c.request("GET", f"{base}/chunked") as r:
            assert list(r.stream(4)) == [b"hell", b"o ", b"chun", b"ked ", b"worl", b"d"]
        with c.request("GET", f"{base}/close") as r:
            assert r.read() == b"until the end"
        with c.request("GET", f"{base}/plain", params=[("a", "1"), ("b", "x y")]) as r:
            assert r.text == "GET /plain?a=1&b=x+y"
            assert r.headers.get("x-dup") == "a, b"
            assert r.headers["CONTENT-LENGTH"] == str(len(r.content))
        with c.request("HEAD", f"{base}/head") as r:
            assert (r.status_code, r.headers["Content-Length"], r.read()) == (200, "5", b"")
        with c.request("POST", f"{base}/echo", body=b"x" * 200_000) as r:
            assert (r.status_code, len(r.content)) == (201, 200_000)


def test_a_body_cut_short_is_an_error_not_a_short_read() -> None:
    with serve() as (base, _seen, _srv), Client() as c:
        r = c.request("GET", f"{base}/short")
        with pytest.raises(httpclient.Broken, match="closed 90 bytes before the end"):
            r.read()


def test_keep_alive_reuses_one_connection_and_survives_a_server_side_close() -> None:
    with serve() as (base, _seen, srv), Client() as c:
        with c.request("GET", f"{base}/one") as r:
            assert r.content == b"GET /one"
        (idle,) = next(iter(c._idle.values()))
        with c.request("GET", f"{base}/two") as r:
            assert r.content == b"GET /two"
        (again,) = next(iter(c._idle.values()))
        assert again is idle  # the same socket served both
        # The server drops the idle connection (a keep-alive timeout): the next
        # request notices and opens a new one.
        idle.sock.shutdown(socket.SHUT_RDWR)
        with c.request("GET", f"{base}/three") as r:
            assert r.content == b"GET /three"
        (fresh,) = next(iter(c._idle.values()))
        assert fresh is not idle


def test_redirects_keep_authorization_on_the_host_and_drop_it_elsewhere() -> None:
    with serve() as (other, other_seen, _o), serve(other=other) as (base, seen, _s), Client() as c:
        auth = {"Authorization": "Bearer secret"}
        with c.request("GET", f"{base}/redirect-here", headers=auth) as r:
            assert r.content == b"GET /landing"
        assert seen[-1] == ("GET", "/landing", "Bearer secret")
        with c.request("GET", f"{base}/redirect-away", headers=auth) as r:
            assert r.content == b"GET /landing"
        assert other_seen == [("GET", "/landing", "")]
        with c.request("POST", f"{base}/see-other", body=b"data", headers=auth) as r:
            assert r.content == b"GET /landing"  # 303: the POST becomes a GET without its body
        with c.request("GET", f"{base}/redirect-here", redirects=False) as r:
            assert (r.status_code, r.headers["Location"]) == (302, "/landing")


def test_http_through_a_forward_proxy_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve() as (base, _seen, _srv), proxy() as (purl, psrv):
        # 127.0.0.1 is loopback, which Go (so Docker) never proxies: name the
        # server by another address of the loopback net to exercise the proxy.
        target = base.replace("127.0.0.1", "localhost.proxytest")
        proxies = Proxies(http=purl)
        assert proxies.bypass("127.0.0.1", 80) and proxies.bypass("localhost", 80)
        monkeypatch.setattr(socket, "create_connection", _resolving(socket.create_connection))
        with Client(proxies=Proxies(http=purl)) as c, c.request("GET", f"{target}/via") as r:
            assert r.content == b"GET /via"
        assert psrv.requests == [f"GET {target}/via HTTP/1.1"]
        with Client(proxies=Proxies(http=purl, no_proxy=".proxytest")) as c:
            with c.request("GET", f"{target}/direct") as r:
                assert r.content == b"GET /direct"
        assert len(psrv.requests) == 1


def test_https_goes_through_a_connect_tunnel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "create_connection", _resolving(socket.create_connection))
    with proxy() as (purl, psrv), Client(proxies=Proxies(https=purl), timeout=(2, 2)) as c:
        # Nothing speaks TLS behind the tunnel: the handshake fails, but only
        # after the proxy was asked to CONNECT to the registry's host and port.
        with pytest.raises(httpclient.HTTPError):
            c.request("GET", "https://reg.proxytest:5999/v2/")
        assert psrv.requests == ["CONNECT reg.proxytest:5999 HTTP/1.1"]


def test_no_proxy_rules_follow_go() -> None:
    p = Proxies(http="proxy:3128", no_proxy="example.com, .internal,10.0.0.0/8,reg.corp:5000,[::2]")
    assert p.bypass("example.com", 443) and p.bypass("a.example.com", 443)
    assert p.bypass("x.internal", 80) and not p.bypass("internal", 80)
    assert p.bypass("10.1.2.3", 5000) and not p.bypass("11.1.2.3", 5000)
    assert p.bypass("reg.corp", 5000) and not p.bypass("reg.corp", 443)
    assert p.bypass("::2", 80) and p.bypass("::1", 80)
    assert not p.bypass("example.org", 443)
    assert Proxies(http="proxy:3128", no_proxy="*").bypass("anything", 1)


def test_a_refused_connection_names_the_address() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with Client() as c, pytest.raises(ConnectFailed, match=f"127.0.0.1:{port}: .*refused"):
        c.request("GET", f"http://127.0.0.1:{port}/v2/")


def _resolving(real: Callable[..., socket.socket]) -> Callable[..., socket.socket]:
    """create_connection that resolves the test's *.proxytest names to 127.0.0.1."""

    def connect(address: tuple[str, int], *args: Any, **kw: Any) -> socket.socket:
        host, port = address
        return real(("127.0.0.1" if host.endswith(".proxytest") else host, port), *args, **kw)

    return connect
