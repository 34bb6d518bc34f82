"""The fluentd log driver: each message as a fluentd forward-protocol event,
``[tag, time, record, {}]`` in MessagePack, over TCP or a unix socket, as docker's
driver (fluent-logger-golang) sends it: the record holds container_id,
container_name ("/name"), source and log, the --log-opt labels/env attributes, and a
long line's partial_* fields.

Without ``fluentd-async`` the driver connects when the container starts (a refused
connection fails the start, docker's "failed to initialize logging driver"); with it,
a thread connects and sends, retrying, and the container never waits on fluentd.

``fluentd-request-ack`` (fluent-logger-golang's RequestAck): each event's option is
``{"chunk": ID}`` (base64 of the second, 8 bytes little-endian, then 8 random bytes)
and the next event waits for fluentd's ``{"ack": ID}``; a wrong answer or a dropped
connection sends the event again on a new connection (after ``fluentd-retry-wait``).
A thread sends, so the monitor does not wait on fluentd; when the container ends the
driver waits for the thread up to docker's 10 s (its loggerCloseTimeout), and what
is not acknowledged by then is given up, as docker's "logs may be truncated".
"""

from __future__ import annotations

import base64
import os
import queue
import socket
import threading
import time

from runtime.errors import SpecRefused, StartFailed
from runtime.logs import msgpack
from runtime.logs.drivers import TAG_OPTIONS, Driver, LogInfo, Message, check_keys, extra_attributes, tag

DEFAULT_PORT = 24224
OPTIONS = (
    *TAG_OPTIONS, "fluentd-address", "fluentd-async", "fluentd-async-connect", "fluentd-buffer-limit",
    "fluentd-retry-wait", "fluentd-max-retries", "fluentd-sub-second-precision", "fluentd-request-ack",
)  # fmt: skip
CLOSE_TIMEOUT = 10.0  # docker's loggerCloseTimeout: how long an exit waits for the log
BOOLS = ("fluentd-async", "fluentd-async-connect", "fluentd-sub-second-precision", "fluentd-request-ack")


def parse_address(address: str) -> tuple[str, str | tuple[str, int]]:
    """``fluentd-address``: ("unix", path) or ("tcp", (host, port)), docker's default
    localhost:24224. Raises SpecRefused with docker's words."""
    if not address:
        return "tcp", ("localhost", DEFAULT_PORT)
    if address.startswith("unix://"):
        return "unix", address.removeprefix("unix://")
    rest = address.removeprefix("tcp://")
    if "://" in rest:
        raise SpecRefused(f"invalid fluentd-address {address}: unsupported scheme")
    host, sep, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not sep:
        return "tcp", (rest, DEFAULT_PORT)
    if not port.isdigit():
        raise SpecRefused(
            f'invalid fluentd-address {address}: strconv.Atoi: parsing "{port}": invalid syntax'
        )
    return "tcp", (host.strip("[]") or "localhost", int(port))


def validate(opts: dict[str, str]) -> None:
    check_keys(opts, "fluentd", OPTIONS)
    for key in BOOLS:
        if key in opts and opts[key].lower() not in ("true", "false", "1", "0", "t", "f", ""):
            raise SpecRefused(f'strconv.ParseBool: parsing "{opts[key]}": invalid syntax')
    parse_address(opts.get("fluentd-address", ""))


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "t")


class Fluentd:
    def __init__(self, info: LogInfo) -> None:
        cfg = info.config
        self.family, self.address = parse_address(cfg.get("fluentd-address", ""))
        self.tag = tag(info)
        self.base = {"container_id": info.container_id, "container_name": "/" + info.container_name}
        self.extra = extra_attributes(info)
        self.sub_second = _true(cfg.get("fluentd-sub-second-precision"))
        self.request_ack = _true(cfg.get("fluentd-request-ack"))
        self.retry_wait = int(cfg.get("fluentd-retry-wait", "1000").removesuffix("ms") or 1000) / 1000
        self.sock: socket.socket | None = None
        self.closing = False
        self.pending: queue.SimpleQueue[tuple[bytes, str] | None] | None = None
        self.sender: threading.Thread | None = None
        self.in_flight: socket.socket | None = None  # the sender's socket while it waits for an ack
        if _true(cfg.get("fluentd-async")) or _true(cfg.get("fluentd-async-connect")) or self.request_ack:
            self.pending = queue.SimpleQueue()
            self.sender = threading.Thread(target=self._send_loop, daemon=True)
            self.sender.start()
        else:
            try:
                self.sock = self._connect()
            except OSError as err:
                raise StartFailed(f"failed to initialize logging driver: {self._dial_error(err)}") from err

    def _connect(self) -> socket.socket:
        if isinstance(self.address, tuple):
            return socket.create_connection(self.address, timeout=3)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            raise
        return sock

    def _dial_error(self, err: OSError) -> str:
        """Go's net.Dial error text: ``dial tcp 127.0.0.1:1: connect: connection refused``."""
        where = self.address if isinstance(self.address, str) else f"{self.address[0]}:{self.address[1]}"
        return f"dial {self.family} {where}: connect: {(err.strerror or str(err)).lower()}"

    def frame(self, msg: Message, chunk: str = "") -> bytes:
        """The forward-protocol event of one message (docker's fluentd.Log), with the
        ``chunk`` option when an ack is asked for."""
        record = {**self.base, "source": msg.source, "log": msg.line.decode("utf-8", errors="replace")}
        record.update(self.extra)
        if msg.partial_id:
            record.update(
                partial_message="true",
                partial_id=msg.partial_id,
                partial_ordinal=str(msg.ordinal),
                partial_last="true" if msg.last else "false",
            )
        sec, nsec = divmod(msg.timestamp, 1_000_000_000)
        when: object = msgpack.EventTime(sec, nsec) if self.sub_second else sec
        return msgpack.encode([self.tag, when, record, {"chunk": chunk} if chunk else {}])

    def log(self, msg: Message) -> None:
        chunk = _chunk_id(msg.timestamp // 1_000_000_000) if self.request_ack else ""
        data = self.frame(msg, chunk)
        if self.pending is not None:
            self.pending.put((data, chunk))
            return
        for _ in range(2):  # a dropped connection: connect again once, then give the line up
            try:
                if self.sock is None:
                    self.sock = self._connect()
                self.sock.sendall(data)
                return
            except OSError:
                if self.sock is not None:
                    self.sock.close()
                self.sock = None

    def _send_loop(self) -> None:
        assert self.pending is not None
        while (item := self.pending.get()) is not None:
            data, chunk = item
            while not self.closing:
                try:
                    if self.sock is None:
                        self.sock = self._connect()
                    self.sock.sendall(data)
                    if not chunk or self._acked(self.sock, chunk):
                        break
                    raise ConnectionError("fluentd answered another ack")
                except OSError:
                    if self.sock is not None:
                        self.sock.close()
                    self.sock = None
                    if self.closing:
                        return
                    time.sleep(self.retry_wait)

    def _acked(self, sock: socket.socket, chunk: str) -> bool:
        """Read fluentd's answer: whether it is ``{"ack": chunk}``. OSError when the
        connection ends first (or ``close`` cuts the wait short)."""
        sock.settimeout(None)
        self.in_flight = sock
        buf = b""
        try:
            while True:
                if self.closing:
                    raise ConnectionAbortedError("the log is closed")
                data = sock.recv(4096)
                if not data:
                    raise ConnectionResetError("fluentd closed the connection")
                buf += data
                try:
                    answer, _ = msgpack.decode(buf)
                except ValueError:
                    if len(buf) > 65536:
                        return False
                    continue
                return isinstance(answer, dict) and answer.get("ack") == chunk
        finally:
            self.in_flight = None

    def close(self) -> None:
        if self.pending is not None and self.sender is not None:
            self.pending.put(None)
            self.sender.join(CLOSE_TIMEOUT if self.request_ack else 5)
            self.closing = True
            waiting = self.in_flight
            if waiting is not None:  # wake the wait for an ack: what is left is given up
                try:
                    waiting.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.sender.join(self.retry_wait + 1)
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _chunk_id(second: int) -> str:
    """fluent-logger-golang's generateUniqueID: the second (8 bytes, little-endian)
    and 8 random bytes, in base64."""
    return base64.b64encode(second.to_bytes(8, "little") + os.urandom(8)).decode()


DRIVER = Driver("fluentd", Fluentd, validate)
