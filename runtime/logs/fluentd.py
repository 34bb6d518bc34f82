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
and the next event waits for fluentd's ``{"ack": ID}``.  A thread sends, so the
monitor does not wait on fluentd; when the container ends the driver waits for the
thread up to docker's 10 s (its loggerCloseTimeout), and what is not acknowledged by
then is given up, as docker's "logs may be truncated".

The thread sends an event as fluent-logger-golang's ``write``: up to
``fluentd-max-retries`` attempts; a dropped connection or a wrong ack is tried again
at once on a new connection, a refused connection after ``fluentd-retry-wait`` times
int(1.5^(n-1)) (at most a minute); the event is given up after the last attempt.  At
most ``fluentd-buffer-limit`` events wait for it; one more is dropped.
"""

from __future__ import annotations

import base64
import os
import queue
import re
import socket
import threading

from imagefmt.changes import parse_duration
from imagefmt.errors import DockyardError
from runtime.errors import BadSpec, SpecRefused, StartFailed
from runtime.logs import msgpack
from runtime.logs.drivers import TAG_OPTIONS, Driver, LogInfo, Message, check_keys, extra_attributes, tag
from runtime.units import ram_in_bytes

DEFAULT_PORT = 24224
OPTIONS = (
    *TAG_OPTIONS, "fluentd-address", "fluentd-async", "fluentd-async-connect", "fluentd-buffer-limit",
    "fluentd-retry-wait", "fluentd-max-retries", "fluentd-sub-second-precision", "fluentd-request-ack",
)  # fmt: skip
CLOSE_TIMEOUT = 10.0  # docker's loggerCloseTimeout: how long an exit waits for the log
# docker's defaults (daemon/logger/fluentd): the retry wait, the attempts, the events kept
RETRY_WAIT, MAX_RETRIES, BUFFER_LIMIT = 1.0, 2**31 - 1, 1 << 20
MAX_RETRY_WAIT = 60.0  # fluent-logger-golang's defaultMaxRetryWait
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
    _options(opts)


def _options(opts: dict[str, str]) -> tuple[float, int, int]:
    """(retry wait in seconds, attempts, buffered events) from ``fluentd-retry-wait``
    (a Go duration), ``fluentd-max-retries`` and ``fluentd-buffer-limit`` (a size),
    docker's defaults for those not given.  Raises SpecRefused with docker's words."""
    wait, retries, limit = RETRY_WAIT, MAX_RETRIES, BUFFER_LIMIT
    if text := opts.get("fluentd-retry-wait", ""):
        if re.fullmatch(r"[0-9.]+", text) and text != "0":
            raise SpecRefused(f'time: missing unit in duration "{text}"')
        try:
            wait = parse_duration(text) / 1e9
        except DockyardError:
            raise SpecRefused(f'time: invalid duration "{text}"') from None
    if text := opts.get("fluentd-max-retries", ""):
        if not text.isdigit():
            raise SpecRefused(f'strconv.ParseUint: parsing "{text}": invalid syntax')
        retries = int(text)
    if text := opts.get("fluentd-buffer-limit", ""):
        try:
            limit = ram_in_bytes(text)
        except BadSpec:
            raise SpecRefused(f"invalid size: '{text}'") from None
    return wait, retries, limit


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
        self.retry_wait, self.max_retries, limit = _options(cfg)
        self.sock: socket.socket | None = None
        self.closing = False
        self.stop = threading.Event()  # set by close: cuts a retry wait short
        self.pending: queue.Queue[tuple[bytes, str] | None] | None = None
        self.sender: threading.Thread | None = None
        self.in_flight: socket.socket | None = None  # the sender's socket while it waits for an ack
        if _true(cfg.get("fluentd-async")) or _true(cfg.get("fluentd-async-connect")) or self.request_ack:
            self.pending = queue.Queue(limit)
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
            try:
                self.pending.put_nowait((data, chunk))
            except queue.Full:  # docker: "Buffer full", the event is lost
                pass
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
            if not self.closing:
                self._write(*item)

    def _write(self, data: bytes, chunk: str) -> bool:
        """fluent-logger-golang's write: whether the event went (and was acknowledged)."""
        for attempt in range(self.max_retries):
            if self.closing:
                return False
            if self.sock is None:
                try:
                    self.sock = self._connect()
                except OSError:
                    self.stop.wait(min(self.retry_wait * int(1.5 ** (attempt - 1)), MAX_RETRY_WAIT))
                    continue
            try:
                self.sock.sendall(data)
                if not chunk or self._acked(self.sock, chunk):
                    return True
                raise ConnectionError("fluentd answered another ack")
            except OSError:  # again at once, on a new connection
                self.sock.close()
                self.sock = None
        return False

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
            self.stop.set()
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
