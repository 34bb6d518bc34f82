"""The journald log driver: each message to systemd-journald's native socket with the
fields docker's driver gives it (MESSAGE, PRIORITY 6 for stdout and 3 for stderr,
CONTAINER_ID, CONTAINER_ID_FULL, CONTAINER_NAME, CONTAINER_TAG, IMAGE_NAME,
SYSLOG_IDENTIFIER, CONTAINER_PARTIAL_MESSAGE on a piece of a line, and the
labels/env attributes), and read back with ``journalctl -o json``.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator

from runtime.errors import BadSpec, StartFailed
from runtime.logs.drivers import (
    TAG_OPTIONS,
    Driver,
    Entry,
    LogInfo,
    Message,
    check_keys,
    extra_attributes,
    tag,
)
from runtime.logs.jsonfile import timestamp

SOCKET = "/run/systemd/journal/socket"


def validate(opts: dict[str, str]) -> None:
    check_keys(opts, "journald", TAG_OPTIONS)


def _key(name: str) -> str:
    """A journal field name from an attribute's, as docker sanitizes it."""
    key = re.sub(r"[^A-Z0-9_]", "_", name.upper()).lstrip("_")
    return key or "_"


def encode_fields(fields: dict[str, bytes]) -> bytes:
    """journald's native protocol: ``KEY=value\\n``, or for a value with a newline
    ``KEY\\n``, its little-endian 64-bit length, the value and ``\\n``."""
    out = bytearray()
    for key, value in fields.items():
        if b"\n" in value:
            out += key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
        else:
            out += key.encode() + b"=" + value + b"\n"
    return bytes(out)


class Journald:
    def __init__(self, info: LogInfo) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.connect(SOCKET)
        except OSError as err:
            self.sock.close()
            raise StartFailed(
                "failed to initialize logging driver: journald is not enabled on this host"
            ) from err
        tag_ = tag(info)
        self.base = {
            "CONTAINER_ID": info.container_id[:12],
            "CONTAINER_ID_FULL": info.container_id,
            "CONTAINER_NAME": info.container_name,
            "CONTAINER_TAG": tag_,
            "IMAGE_NAME": info.image_name,
            "SYSLOG_IDENTIFIER": tag_,
            **{_key(k): v for k, v in extra_attributes(info).items()},
        }

    def log(self, msg: Message) -> None:
        fields = {k: v.encode() for k, v in self.base.items()}
        fields["MESSAGE"] = msg.line
        fields["PRIORITY"] = b"3" if msg.source == "stderr" else b"6"
        if msg.partial:
            fields["CONTAINER_PARTIAL_MESSAGE"] = b"true"
        try:
            self.sock.send(encode_fields(fields))
        except OSError:
            pass  # journald gone: the line is lost, as with docker's sd_journal_send

    def close(self) -> None:
        self.sock.close()


class JournaldReader:
    """``journalctl -o json CONTAINER_ID_FULL=<id>``: the container's entries."""

    def __init__(self, info: LogInfo) -> None:
        self.match = f"CONTAINER_ID_FULL={info.container_id}"
        self.cursor = ""

    def _entries(self, *extra: str) -> list[Entry]:
        try:
            out = subprocess.run(
                ["journalctl", "--no-pager", "-o", "json", *extra, self.match],
                capture_output=True,
                check=False,
            ).stdout
        except FileNotFoundError as err:
            raise BadSpec("journald: journalctl is not installed") from err
        entries = []
        for raw in out.splitlines():
            doc = json.loads(raw)
            self.cursor = doc.get("__CURSOR", self.cursor)
            line = doc.get("MESSAGE", "")
            data = bytes(line) if isinstance(line, list) else str(line).encode()
            if doc.get("CONTAINER_PARTIAL_MESSAGE") != "true":
                data += b"\n"
            source = "stderr" if doc.get("PRIORITY") == "3" else "stdout"
            entries.append(Entry(source, timestamp(int(doc["__REALTIME_TIMESTAMP"]) * 1000), data))
        return entries

    def read(self) -> list[Entry]:
        return self._entries()

    def follow(self, running: Callable[[], bool], interval: float = 0.2) -> Iterator[Entry]:
        while True:
            alive = running()
            got = self._entries(f"--after-cursor={self.cursor}") if self.cursor else self._entries()
            yield from got
            if not got:
                if not alive:
                    return
                time.sleep(interval)


DRIVER = Driver("journald", Journald, validate, JournaldReader)
