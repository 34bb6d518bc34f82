"""The syslog log driver: each line to a syslog server, formatted and framed exactly as
docker's driver (srslog) does: ``syslog-address`` udp://, tcp://, unix://, unixgram://
(or the local /dev/log), ``syslog-facility``, ``tag`` (the short ID by default) and
``syslog-format``: none (the unix format), rfc3164, rfc5424 or rfc5424micro.

stdout lines go at severity info, stderr at err; empty lines are not sent; every
message ends with a newline (srslog adds one).  The pid in the header is the sender's:
the container's monitor here, dockerd's there.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime

from runtime.errors import SpecRefused, StartFailed
from runtime.logs.drivers import TAG_OPTIONS, Driver, LogInfo, Message, check_keys, tag

OPTIONS = (
    *TAG_OPTIONS, "syslog-address", "syslog-facility", "syslog-format", "syslog-tls-ca-cert",
    "syslog-tls-cert", "syslog-tls-key", "syslog-tls-skip-verify",
)  # fmt: skip
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
SEVERITY = {"stdout": 6, "stderr": 3}  # LOG_INFO, LOG_ERR
FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
LOCAL_SOCKETS = ("/dev/log", "/var/run/syslog", "/var/run/log")


def parse_address(address: str) -> tuple[str, str | tuple[str, int]]:
    """``syslog-address``: (proto, path) for unix/unixgram, (proto, (host, port)) for
    tcp/udp, ("", "") for the local syslog. Raises SpecRefused with docker's words."""
    if not address:
        return "", ""
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in ("tcp", "udp", "unix", "unixgram", "tcp+tls"):
        raise SpecRefused(f"unsupported scheme: '{address}'")
    if scheme in ("unix", "unixgram"):
        if not os.path.exists(rest):
            raise SpecRefused(f"stat {rest}: no such file or directory")
        return scheme, rest
    if scheme == "tcp+tls":
        raise SpecRefused("syslog-address tcp+tls:// is not supported by dockyard yet")
    host, colon, port = rest.rpartition(":")
    if not colon or "]" in port:
        host, port = rest, "514"
    if not port.isdigit():
        raise SpecRefused(f'address {rest}: invalid port "{port}"')
    return scheme, (host.strip("[]"), int(port))


def parse_facility(facility: str) -> int:
    """A facility's number (daemon by default). Raises SpecRefused with docker's words."""
    if not facility:
        return FACILITIES["daemon"]
    if facility in FACILITIES:
        return FACILITIES[facility]
    if facility.isdigit() and int(facility) <= 23:
        return int(facility)
    raise SpecRefused("invalid syslog facility")


def validate(opts: dict[str, str]) -> None:
    check_keys(opts, "syslog", OPTIONS)
    parse_address(opts.get("syslog-address", ""))
    parse_facility(opts.get("syslog-facility", ""))
    if opts.get("syslog-format", "") not in FORMATS:
        raise SpecRefused("Invalid syslog format")


def _rfc3339(ns: int, micro: bool = False) -> str:
    """Go's time.RFC3339 (or docker's microsecond layout) in the local zone."""
    tm = datetime.fromtimestamp(ns / 1e9).astimezone()
    off = tm.strftime("%z")
    zone = "Z" if off == "+0000" else f"{off[:3]}:{off[3:]}"
    frac = f".{(ns // 1000) % 1_000_000:06d}" if micro else ""
    return tm.strftime("%Y-%m-%dT%H:%M:%S") + frac + zone


def _stamp(ns: int) -> str:
    """Go's time.Stamp, ``Jan _2 15:04:05`` (the day padded with a space)."""
    tm = time.localtime(ns // 1_000_000_000)
    return time.strftime("%b ", tm) + f"{tm.tm_mday:2d}" + time.strftime(" %H:%M:%S", tm)


def format_message(fmt: str, priority: int, hostname: str, tag_: str, pid: int, content: str, ns: int) -> str:
    """One message as srslog's formatter (and docker's rfc5424 ones) writes it;
    ``content`` already ends with its newline."""
    if fmt == "rfc3164":
        return f"<{priority}>{_stamp(ns)} {hostname} {tag_}[{pid}]: {content}"
    if fmt in ("rfc5424", "rfc5424micro"):
        ts = _rfc3339(ns, micro=fmt == "rfc5424micro")
        return f"<{priority}>1 {ts} {hostname} {tag_} {pid} {tag_} - {content}"
    return f"<{priority}>{_stamp(ns)} {tag_}[{pid}]: {content}"  # srslog's UnixFormatter


class Syslog:
    def __init__(self, info: LogInfo) -> None:
        cfg = info.config
        self.proto, self.address = parse_address(cfg.get("syslog-address", ""))
        self.facility = parse_facility(cfg.get("syslog-facility", ""))
        self.format = cfg.get("syslog-format", "")
        self.tag = tag(info)
        self.hostname = socket.gethostname() if self.proto else "localhost"
        try:
            self.sock = self._connect()
        except OSError as err:
            where = self.address if isinstance(self.address, str) else f"{self.address[0]}:{self.address[1]}"
            what = (err.strerror or str(err)).lower()
            raise StartFailed(
                f"failed to initialize logging driver: dial {self.proto or 'unix'} {where}: connect: {what}"
            ) from err

    def _connect(self) -> socket.socket:
        if not self.proto:  # the local syslog: datagram, then stream, on the usual sockets
            for path in LOCAL_SOCKETS:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    sock = socket.socket(socket.AF_UNIX, kind)
                    try:
                        sock.connect(path)
                        self.stream = kind == socket.SOCK_STREAM
                        return sock
                    except OSError:
                        sock.close()
            raise OSError(2, "Unix syslog delivery error")
        if isinstance(self.address, str):  # unix, unixgram
            kind = socket.SOCK_STREAM if self.proto == "unix" else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_UNIX, kind)
        else:
            family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
            kind = socket.SOCK_STREAM if self.proto == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(family, kind)
        self.stream = kind == socket.SOCK_STREAM
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            raise
        return sock

    def log(self, msg: Message) -> None:
        if not msg.line:
            return  # docker's driver sends no empty line
        content = msg.line.decode("utf-8", errors="replace")
        if not content.endswith("\n"):
            content += "\n"
        priority = (self.facility << 3) | SEVERITY.get(msg.source, 6)
        text = format_message(
            self.format, priority, self.hostname, self.tag, os.getpid(), content, time.time_ns()
        )
        data = text.encode()
        for _ in range(2):  # srslog reconnects once when a write fails
            try:
                if self.stream:
                    self.sock.sendall(data)
                else:
                    self.sock.send(data)
                return
            except OSError:
                self.sock.close()
                try:
                    self.sock = self._connect()
                except OSError:
                    return

    def close(self) -> None:
        self.sock.close()


DRIVER = Driver("syslog", Syslog, validate)
