"""Published ports: a userspace proxy from host addresses to a container, as docker-proxy.

Listeners are bound before the container starts (so "address already in use"
fails the start); each accepted TCP connection is pumped both ways by a
thread, and UDP datagrams are relayed per client.  The threads live in the
container's monitor and die with it.
"""

from __future__ import annotations

import socket
import threading

from imagefmt.records import NamedTuple
from runtime.errors import RuntimeFailure
from runtime.network.ports import PortBinding


class Published(NamedTuple):
    binding: PortBinding
    sock: socket.socket

    @property
    def host_port(self) -> int:
        return int(self.sock.getsockname()[1])


def bind(bindings: list[PortBinding]) -> list[Published]:
    """Bind every host side; port 0 picks a free one. Raises RuntimeFailure with
    docker's wording, closing what was bound."""
    out: list[Published] = []
    try:
        for b in bindings:
            ip = b.host_ip or "0.0.0.0"
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            kind = socket.SOCK_DGRAM if b.proto == "udp" else socket.SOCK_STREAM
            s = socket.socket(family, kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, b.host_port))
            except OSError as err:
                s.close()
                proto = "udp4" if b.proto == "udp" else "tcp4"
                raise RuntimeFailure(
                    f"driver failed programming external connectivity: Error starting userland proxy: "
                    f"listen {proto} {ip}:{b.host_port}: bind: {(err.strerror or '').lower()}"
                ) from None
            if kind == socket.SOCK_STREAM:
                s.listen(128)
            out.append(Published(b, s))
    except BaseException:
        for p in out:
            p.sock.close()
        raise
    return out


def serve(published: list[Published], target: str) -> None:
    """Start the proxy threads towards ``target`` (the container's address)."""
    for p in published:
        fn = _tcp_accept if p.binding.proto != "udp" else _udp_relay
        threading.Thread(target=fn, args=(p, target), daemon=True).start()


def _tcp_accept(p: Published, target: str) -> None:
    while True:
        try:
            client, _ = p.sock.accept()
        except OSError:
            return
        addr = (target, p.binding.container_port)
        threading.Thread(target=_tcp_pair, args=(client, addr), daemon=True).start()


def _tcp_pair(client: socket.socket, addr: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(addr, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    t = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    t.start()
    _pump(client, upstream)
    t.join()
    client.close()
    upstream.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _udp_relay(p: Published, target: str) -> None:
    peers: dict[tuple[str, int], socket.socket] = {}
    while True:
        try:
            data, client = p.sock.recvfrom(65536)
        except OSError:
            return
        up = peers.get(client)
        if up is None:
            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            up.connect((target, p.binding.container_port))
            peers[client] = up
            threading.Thread(target=_udp_back, args=(up, p.sock, client), daemon=True).start()
        up.send(data)


def _udp_back(up: socket.socket, host: socket.socket, client: tuple[str, int]) -> None:
    up.settimeout(60)
    try:
        while True:
            host.sendto(up.recv(65536), client)
    except OSError:
        up.close()
