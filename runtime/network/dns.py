"""The embedded DNS server of user networks, at 127.0.0.11 in each container.

Container names, short IDs and ``--network-alias`` names on the container's
user networks resolve to their addresses, several answers in random order
(round-robin, as Docker's resolver); other names are forwarded to the host's
nameservers.  The socket is bound inside the container's network namespace
by a thread that setns()es there; the server thread runs in the monitor.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
from collections.abc import Callable

from runtime.kernel import syscalls as L

Lookup = Callable[[str], list[str] | None]
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1


def open_in_netns(pid: int, address: str = "127.0.0.11", port: int = 53) -> socket.socket:
    """A UDP socket bound to ``address:port`` in the network namespace of ``pid``."""
    result: list[socket.socket | BaseException] = []

    def bind() -> None:  # setns(CLONE_NEWNET) changes only this thread's namespace
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                L.setns(fd, L.CLONE_NEWNET)
            finally:
                os.close(fd)
            from runtime.kernel.netlink import Netlink

            with Netlink() as nl:  # 127.0.0.0/8 exists once lo is up
                nl.set_up("lo")
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((address, port))
            result.append(s)
        except BaseException as exc:
            result.append(exc)

    t = threading.Thread(target=bind)
    t.start()
    t.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def serve(sock: socket.socket, lookup: Lookup, upstreams: list[str]) -> None:
    threading.Thread(target=_loop, args=(sock, lookup, upstreams), daemon=True).start()


def _loop(sock: socket.socket, lookup: Lookup, upstreams: list[str]) -> None:
    while True:
        try:
            query, client = sock.recvfrom(4096)
        except OSError:
            return
        try:
            reply = answer(query, lookup) or _forward(query, upstreams)
        except (ValueError, struct.error, IndexError):
            continue
        if reply:
            try:
                sock.sendto(reply, client)
            except OSError:
                pass


def parse_question(query: bytes) -> tuple[str, int, int]:
    """(name, qtype, offset after the question) of a one-question query."""
    off = 12
    labels = []
    while query[off]:
        n = query[off]
        labels.append(query[off + 1 : off + 1 + n].decode("ascii", errors="replace"))
        off += 1 + n
    qtype, _ = struct.unpack_from("!HH", query, off + 1)
    return ".".join(labels).lower(), qtype, off + 5


def answer(query: bytes, lookup: Lookup) -> bytes | None:
    """The reply for a name we know, or None to forward the query."""
    qid, flags, qdcount = struct.unpack_from("!HHH", query)
    if qdcount != 1:
        return None
    name, qtype, end = parse_question(query)
    addresses = lookup(name)
    if addresses is None:
        return None
    question = query[12:end]
    answers = b""
    count = 0
    if qtype == TYPE_A:
        random.shuffle(addresses)
        for addr in addresses:
            answers += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, 600, 4) + socket.inet_aton(addr)
            count += 1
    reply_flags = 0x8000 | (flags & 0x0100) | 0x0080  # QR, RD copied, RA (not AA: docker's resolver)
    return struct.pack("!HHHHHH", qid, reply_flags, 1, count, 0, 0) + question + answers


def _forward(query: bytes, upstreams: list[str]) -> bytes | None:
    for server in upstreams:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            try:
                s.sendto(query, (server, 53))
                return s.recv(4096)
            except OSError:
                continue
    qid, flags = struct.unpack_from("!HH", query)
    return struct.pack("!HH", qid, 0x8000 | (flags & 0x0100) | 0x0080 | 2) + query[4:]  # SERVFAIL


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    out = []
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) == 2 and words[0] == "nameserver" and not words[1].startswith("127."):
                    if ":" not in words[1]:
                        out.append(words[1])
    except OSError:
        pass
    return out
