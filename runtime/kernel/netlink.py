"""Just enough rtnetlink to wire containers: bridges, veth pairs, addresses, routes.

Talking netlink directly keeps forks of ``ip`` off the start path and works
from the container's first process (in its own network namespace) before it
execs.  Every call raises OSError with the kernel's errno.
"""

from __future__ import annotations

import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 20, 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_PID = 1, 3, 10, 18, 19
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_GATEWAY = 5
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


class Netlink:
    """An rtnetlink socket in the caller's current network namespace."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, msg_type: int, flags: int, body: bytes) -> None:
        """Send one request and wait for its ACK; raise OSError on a NACK."""
        self.seq += 1
        flags |= NLM_F_REQUEST | NLM_F_ACK
        header = struct.pack("=IHHII", 16 + len(body), msg_type, flags, self.seq, 0)
        self.sock.send(header + body)
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, kind, _, seq, _ = struct.unpack_from("=IHHII", data, off)
                if kind == NLMSG_ERROR and seq == self.seq:
                    (err,) = struct.unpack_from("=i", data, off + 16)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return
                off += (length + 3) & ~3

    # -------------------------------------------------------------- links ---

    def add_bridge(self, name: str) -> None:
        info = _attr(IFLA_INFO_KIND, b"bridge")
        body = _IFINFO.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name)) + _attr(IFLA_LINKINFO, info)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_veth(self, name: str, peer: str, peer_pid: int, master: int = 0, peer_mac: bytes = b"") -> None:
        """A veth pair: ``name`` here (up, enslaved to ``master``), ``peer`` in the
        network namespace of ``peer_pid``."""
        peer_attrs = _attr(IFLA_IFNAME, _name(peer)) + struct.pack("=HHI", 8, IFLA_NET_NS_PID, peer_pid)
        if peer_mac:
            peer_attrs += _attr(IFLA_ADDRESS, peer_mac)
        peer_info = _IFINFO.pack(0, 0, 0, 0, 0) + peer_attrs
        info = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_info))
        attrs = _attr(IFLA_IFNAME, _name(name)) + _attr(IFLA_LINKINFO, info)
        if master:
            attrs += struct.pack("=HHI", 8, IFLA_MASTER, master)
        body = _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + attrs
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def set_up(self, name: str) -> None:
        index = socket.if_nametoindex(name)
        self.request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP))

    def delete_link(self, name: str) -> None:
        try:
            index = socket.if_nametoindex(name)
        except OSError:
            return
        try:
            self.request(RTM_DELLINK, 0, _IFINFO.pack(0, 0, index, 0, 0))
        except OSError as err:
            if err.errno != 19:  # ENODEV: already gone with its namespace
                raise

    # ---------------------------------------------------- addresses, routes ---

    def add_address(self, name: str, address: str, prefixlen: int) -> None:
        index = socket.if_nametoindex(name)
        raw = socket.inet_aton(address)
        host = struct.unpack("!I", raw)[0]
        bcast = struct.pack("!I", host | ((1 << (32 - prefixlen)) - 1)) if prefixlen < 31 else raw
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index)
        body += _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw) + _attr(IFA_BROADCAST, bcast)
        try:
            self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)
        except FileExistsError:
            pass

    def add_default_route(self, gateway: str) -> None:
        family = socket.AF_INET
        body = _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        body += _attr(RTA_GATEWAY, socket.inet_aton(gateway))
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)


def configure_inside(interfaces: tuple[tuple[str, str, int], ...], gateway: str) -> None:
    """In a container's network namespace: ``lo`` and each (ifname, address,
    prefixlen) up, and the default route through ``gateway``."""
    with Netlink() as nl:
        nl.set_up("lo")
        for ifname, address, prefixlen in interfaces:
            nl.add_address(ifname, address, prefixlen)
            nl.set_up(ifname)
        if gateway:
            nl.add_default_route(gateway)


def link_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def mac_for(address: str) -> bytes:
    """Docker's MAC scheme: 02:42 followed by the IPv4 address."""
    return b"\x02\x42" + socket.inet_aton(address)
