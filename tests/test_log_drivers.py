"""The log drivers beyond json-file: fluentd byte-compared with what the real docker
engine's driver sends to the same receiver, syslog received by a real rsyslog, local
read back (ours and docker's own files), journald where a journal exists, and the
errors of the seam."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagefmt.errors import Unsupported
from runtime.container.launchspec import log_reader
from runtime.container.store import ContainerStore
from runtime.errors import BadSpec
from runtime.logs import drivers, local, msgpack
from runtime.logs.drivers import Copier, LogInfo, Message
from tests.conftest import Ctl, docker

# a line on stdout, one on stderr, one longer than docker's 16 KiB copier buffer, an
# empty line, and output without a newline at the end
SCRIPT = "echo hello; echo err >&2; head -c 17000 /dev/zero | tr '\\0' x; echo; echo; printf tail"


def info(path: Path, **config: str) -> LogInfo:
    return LogInfo(
        dict(config), "c" * 64, "box", "sha256:" + "a" * 64, "busybox", ("EV=2",), {"lb": "1"}, path
    )


class Receiver:
    """A TCP server on 127.0.0.1 keeping all it is sent, per connection; with ``ack``,
    answering each fluentd event whose option has a ``chunk`` with ``{"ack": chunk}``
    (fluentd's in_forward)."""

    def __init__(self, ack: bool = False) -> None:
        self.ack = ack
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.data: list[bytearray] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            buf = bytearray()
            self.data.append(buf)
            threading.Thread(target=self._read, args=(conn, buf), daemon=True).start()

    def _read(self, conn: socket.socket, buf: bytearray) -> None:
        pos = 0
        with conn:
            while chunk := conn.recv(65536):
                buf += chunk
                while self.ack:
                    try:
                        event, end = msgpack.decode(bytes(buf), pos)
                    except ValueError:
                        break
                    pos = end
                    if event[3].get("chunk"):
                        conn.sendall(msgpack.encode({"ack": event[3]["chunk"]}))

    def frames(self, count: int, timeout: float = 20) -> list[bytes]:
        """The first ``count`` msgpack values received (waiting for them)."""
        deadline = time.monotonic() + timeout
        while True:
            data = b"".join(self.data)
            out, pos = [], 0
            try:
                while pos < len(data):
                    _, end = msgpack.decode(data, pos)
                    out.append(data[pos:end])
                    pos = end
            except ValueError:
                pass
            if len(out) >= count or time.monotonic() > deadline:
                return out
            time.sleep(0.05)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.sock.close()
        self.thread.join(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# ------------------------------------------------------------------ fluentd ---


def _normalized(frame: bytes) -> tuple[Any, ...]:
    """A frame with what differs between two engines' runs of the same container
    (IDs, name, time, partial IDs) replaced by placeholders."""
    tag, when, record, option = msgpack.decode(frame)[0]
    record = dict(record)
    record["container_id"] = "ID"
    record["container_name"] = "/NAME"
    if "partial_id" in record:
        record["partial_id"] = "PID"
    return tag, type(when).__name__, tuple(sorted(record.items())), option


def _source(frame: bytes) -> str:
    return str(msgpack.decode(frame)[0][2]["source"])


def test_fluentd_sends_what_dockers_driver_sends(ctl: Ctl, docker_host: str, receiver: Receiver) -> None:
    opts = [
        "--log-opt", f"fluentd-address=127.0.0.1:{receiver.port}", "--log-opt", "tag=app.{{.Name}}",
        "--log-opt", "labels=lb", "--log-opt", "env=EV",
    ]  # fmt: skip
    args = ["--label", "lb=1", "-e", "EV=2", "--log-driver", "fluentd", *opts, "busybox", "sh", "-c", SCRIPT]
    docker(docker_host, "run", "--rm", "--name", "fl", *args)
    theirs = receiver.frames(6)
    ctl.ok("run", "--rm", "--name", "fl", "--network", "none", *args)
    ours = receiver.frames(12)[len(theirs) :]
    assert len(theirs) == 6 and len(ours) == 6, (theirs, ours)
    # the same events: tag, time's type, record (but IDs and times) and option, in
    # order within each stream (stdout and stderr are copied concurrently by both)
    ours.sort(key=_source)
    theirs.sort(key=_source)
    assert [_normalized(f) for f in ours] == [_normalized(f) for f in theirs]
    hello = next(f for f in ours if b"hello" in f)
    assert _normalized(hello)[2] == (
        ("EV", "2"), ("container_id", "ID"), ("container_name", "/NAME"), ("lb", "1"), ("log", "hello"),
        ("source", "stdout"),
    )  # fmt: skip
    for frame in theirs + ours:
        # byte for byte: our encoder writes docker's frame back exactly (strings, the
        # int32 time, map headers, the empty option map), its map in docker's order
        assert msgpack.encode(msgpack.decode(frame)[0]) == frame
    # same name, 64-hex IDs, int32 times: the frames are the same size too
    assert [len(f) for f in ours] == [len(f) for f in theirs]


def _chunk_of(frame: bytes) -> tuple[int, int]:
    """A frame's ``chunk`` option: (the second in its first 8 bytes, its length)."""
    _, when, _, option = msgpack.decode(frame)[0]
    raw = base64.b64decode(option["chunk"], validate=True)
    return int.from_bytes(raw[:8], "little") - int(when), len(raw)


def test_fluentd_request_ack_sends_what_dockers_driver_sends(ctl: Ctl, docker_host: str) -> None:
    """``fluentd-request-ack``: each event carries a ``chunk`` ID (fluent-logger-golang's:
    the event's second, then random bytes) that fluentd acknowledges."""
    receiver = Receiver(ack=True)
    try:
        opts = [
            "--log-opt",
            f"fluentd-address=127.0.0.1:{receiver.port}",
            "--log-opt",
            "fluentd-request-ack=true",
            "--log-opt",
            "tag={{.Name}}",
        ]
        args = ["--log-driver", "fluentd", *opts, "busybox", "sh", "-c", "echo a; echo b; echo c"]
        docker(docker_host, "run", "--rm", "--name", "fla", *args)
        theirs = receiver.frames(3)
        ctl.ok("run", "--rm", "--name", "fla", "--network", "none", *args)
        ours = receiver.frames(6)[len(theirs) :]
    finally:
        receiver.close()
    same = [(*_normalized(f)[:3], sorted(_normalized(f)[3])) for f in ours]  # the chunk IDs differ
    assert same == [(*_normalized(f)[:3], sorted(_normalized(f)[3])) for f in theirs]
    assert [msgpack.decode(f)[0][2]["log"] for f in ours] == ["a", "b", "c"]
    assert [_chunk_of(f) for f in ours] == [_chunk_of(f) for f in theirs] == [(0, 16)] * 3
    assert len({msgpack.decode(f)[0][3]["chunk"] for f in ours}) == 3
    assert [len(f) for f in ours] == [len(f) for f in theirs]


def test_fluentd_request_ack_waits_for_each_ack_as_docker(
    ctl: Ctl, docker_host: str, receiver: Receiver
) -> None:
    """A fluentd that never acknowledges gets the first event only (again, perhaps, on
    a new connection); the container still ends, after docker's 10 s wait for its log."""
    opts = [
        "--log-opt",
        f"fluentd-address=127.0.0.1:{receiver.port}",
        "--log-opt",
        "fluentd-request-ack=true",
    ]
    args = ["--log-driver", "fluentd", *opts, "busybox", "sh", "-c", "echo a; echo b; echo c"]
    docker(docker_host, "run", "--rm", "--name", "flw", *args)
    theirs = receiver.frames(1)
    ctl.ok("run", "--rm", "--name", "flw", "--network", "none", *args)
    ours = receiver.frames(len(theirs) + 1)[len(theirs) :]
    assert {msgpack.decode(f)[0][2]["log"] for f in theirs} == {"a"}
    assert {msgpack.decode(f)[0][2]["log"] for f in ours} == {"a"}


def test_fluentd_max_retries_as_docker(ctl: Ctl, docker_host: str) -> None:
    """fluent-logger-golang's write: a fluentd that drops each connection after an
    event, unacknowledged, gets each event ``fluentd-max-retries`` times, each on a new
    connection, and then the next one."""
    got: list[list[str]] = []
    for run in (lambda *a: docker(docker_host, *a).stdout, ctl.ok):
        with socket.create_server(("127.0.0.1", 0)) as server:
            seen: list[str] = []
            thread = threading.Thread(target=_one_event_per_connection, args=(server, seen, 9), daemon=True)
            thread.start()
            opts = [f"fluentd-address=127.0.0.1:{server.getsockname()[1]}", "fluentd-request-ack=true",
                    "fluentd-max-retries=3"]  # fmt: skip
            flags = [f"--log-opt={o}" for o in opts]
            run("run", "--rm", "--network", "none", "--log-driver", "fluentd", *flags,
                "busybox", "sh", "-c", "echo a; echo b; echo c")  # fmt: skip
            thread.join(30)
        got.append(seen)
    theirs, ours = got
    assert ours == theirs == ["a"] * 3 + ["b"] * 3 + ["c"] * 3


def _one_event_per_connection(server: socket.socket, seen: list[str], count: int) -> None:
    """Accept ``count`` connections; read one event from each, then close it."""
    for _ in range(count):
        conn, _ = server.accept()
        with conn:
            buf = b""
            while chunk := conn.recv(65536):
                buf += chunk
                try:
                    event, _ = msgpack.decode(buf)
                except ValueError:
                    continue
                seen.append(event[2]["log"])
                break


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ("fluentd-retry-wait=xyz", 'time: invalid duration "xyz"'),
        ("fluentd-retry-wait=10", 'time: missing unit in duration "10"'),
        ("fluentd-max-retries=-1", 'strconv.ParseUint: parsing "-1": invalid syntax'),
        ("fluentd-buffer-limit=x", "invalid size: 'x'"),
        ("fluentd-buffer-limit=1KB", ""),
        ("fluentd-retry-wait=10ms", ""),
    ],
)
def test_fluentd_retry_options_checked_as_docker(ctl: Ctl, docker_host: str, option: str, error: str) -> None:
    args = [
        "--log-driver",
        "fluentd",
        "--log-opt",
        "fluentd-async=true",
        "--log-opt",
        option,
        "busybox",
        "true",
    ]
    theirs = docker(docker_host, "create", *args, check=False)
    ours = ctl("create", *args)
    if theirs.returncode == 0:
        docker(docker_host, "rm", theirs.stdout.strip())
    assert (ours.code, ours.err.strip().removeprefix("Error: ")) == (
        theirs.returncode,
        theirs.stderr.strip().removeprefix("Error response from daemon: "),
    )
    assert ours.err.strip() == (f"Error: {error}" if error else "")


def test_fluentd_refused_connection_fails_the_start_as_docker(ctl: Ctl) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = ctl(
        "run",
        "--rm",
        "--network",
        "none",
        "--log-driver",
        "fluentd",
        "--log-opt",
        f"fluentd-address=127.0.0.1:{port}",
        "busybox",
        "true",
    )
    assert r.code == 125
    assert (
        f"failed to initialize logging driver: dial tcp 127.0.0.1:{port}: connect: connection refused"
        in r.err
    )
    # fluentd-async: the container runs; the lines wait for fluentd
    r = ctl(
        "run",
        "--rm",
        "--network",
        "none",
        "--log-driver",
        "fluentd",
        "--log-opt",
        f"fluentd-address=127.0.0.1:{port}",
        "--log-opt",
        "fluentd-async=true",
        "busybox",
        "true",
    )
    assert r.code == 0


def test_fluentd_sub_second_precision_and_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "fluent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    with server:
        d = drivers.new_driver(
            "fluentd",
            info(
                tmp_path / "log",
                **{"fluentd-address": f"unix://{path}", "fluentd-sub-second-precision": "true"},
            ),
        )
        conn, _ = server.accept()
        with conn:
            d.log(Message(b"hi", "stdout", 1796218632_886191693))
            d.close()
            data = conn.recv(4096)
    tag, when, record, option = msgpack.decode(data)[0]
    assert tag == "c" * 12 and when == msgpack.EventTime(1796218632, 886191693) and option == {}
    assert b"\xd7\x00" + (1796218632).to_bytes(4, "big") + (886191693).to_bytes(4, "big") in data


# ------------------------------------------------------------------- syslog ---


@pytest.fixture
def rsyslog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real rsyslogd on 127.0.0.1 (UDP and TCP) and a unix socket, private config,
    writing each message's raw text and what it parsed of it to a file."""
    exe = shutil.which("rsyslogd")
    if exe is None:
        pytest.skip("rsyslogd is not installed (scripts/setup.sh installs the rsyslog package)")
    d = tmp_path_factory.mktemp("rsyslog")
    ports = []
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    conf = d / "rsyslog.conf"
    conf.write_text(
        f"""global(workDirectory="{d}")
module(load="imudp")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
input(type="imudp" address="127.0.0.1" port="{ports[0]}")
input(type="imtcp" address="127.0.0.1" port="{ports[1]}")
input(type="imuxsock" Socket="{d}/log.sock")
template(name="fields" type="string"
         string="%syslogfacility-text%|%syslogseverity-text%|%programname%|%procid%|%msg%|%rawmsg%\\n")
*.* action(type="omfile" file="{d}/out.log" template="fields")
"""
    )
    proc = subprocess.Popen(
        [exe, "-n", "-f", str(conf), "-i", str(d / "pid")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while not (d / "log.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield {"udp": ports[0], "tcp": ports[1], "unix": d / "log.sock", "out": d / "out.log"}
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)


def _received(path: Path, count: int, timeout: float = 20) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [line.split("|", 5) for line in lines]
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("fmt", "header"),
    [
        ("", r"<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d app\[(\d+)\]: "),
        ("rfc3164", r"<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d HOST app\[(\d+)\]: "),
        ("rfc5424", r"<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d) HOST app (\d+) app - "),
        (
            "rfc5424micro",
            r"<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(?:Z|[+-]\d\d:\d\d) HOST app (\d+) app - ",
        ),
    ],
)
def test_syslog_formats_received_by_rsyslog(ctl: Ctl, rsyslog: dict[str, Any], fmt: str, header: str) -> None:
    address = {"": f"unixgram://{rsyslog['unix']}", "rfc3164": f"udp://127.0.0.1:{rsyslog['udp']}"}.get(
        fmt, f"tcp://127.0.0.1:{rsyslog['tcp']}"
    )
    opts = [
        "--log-opt",
        f"syslog-address={address}",
        "--log-opt",
        "tag=app",
        "--log-opt",
        "syslog-facility=local3",
    ]
    if fmt:
        opts += ["--log-opt", f"syslog-format={fmt}"]
    ctl.ok(
        "run",
        "--rm",
        "--network",
        "none",
        "--log-driver",
        "syslog",
        *opts,
        "busybox",
        "sh",
        "-c",
        "echo hello; echo err >&2; echo; printf tail",
    )
    got = _received(rsyslog["out"], 3)
    assert len(got) == 3  # the empty line is not sent
    by_msg = {g[4].strip(): g for g in got}
    assert set(by_msg) == {"hello", "err", "tail"}
    assert by_msg["hello"][:3] == ["local3", "info", "app"] and by_msg["err"][:3] == ["local3", "err", "app"]
    pattern = header.replace("HOST", re.escape(socket.gethostname()))
    for g in got:
        m = re.match(pattern, g[5])
        assert m, (pattern, g[5])
        assert int(m.group(1)) in (19 << 3 | 6, 19 << 3 | 3)
        assert g[3] == m.group(2)  # the pid rsyslog read is the sender's


def test_syslog_header_is_dockers(ctl: Ctl, docker_host: str, rsyslog: dict[str, Any]) -> None:
    """Docker's driver and ours to the same rsyslog: the same raw message once times,
    hostnames and pids are masked."""
    address = f"syslog-address=udp://127.0.0.1:{rsyslog['udp']}"
    args = ["--log-driver", "syslog", "--log-opt", address, "--log-opt", "syslog-format=rfc5424micro",
            "--log-opt", "tag={{.Name}}", "busybox", "echo", "same"]  # fmt: skip
    docker(docker_host, "run", "--rm", "--name", "sl", *args)
    ctl.ok("run", "--rm", "--name", "sl", "--network", "none", *args)
    got = _received(rsyslog["out"], 2)
    masked = [re.sub(r"^(<\d+>1) \S+ \S+ (\S+) \d+ ", r"\1 TIME HOST \2 PID ", g[5]) for g in got]
    assert masked == ["<30>1 TIME HOST sl PID sl - same"] * 2


def test_syslog_options_and_reading(ctl: Ctl) -> None:
    for opt, message in [
        ("syslog-address=ftp://x", "unsupported scheme: 'ftp://x'"),
        ("syslog-facility=nope", "invalid syslog facility"),
        ("syslog-format=xml", "Invalid syslog format"),
        ("colour=red", "unknown log opt 'colour' for syslog log driver"),
    ]:
        with pytest.raises(BadSpec) as err:
            drivers.parse_options("syslog", (opt,))
        assert str(err.value) == message


# -------------------------------------------------------------------- local ---


def test_local_roundtrip_rotation_and_compression(tmp_path: Path) -> None:
    log = info(tmp_path / "c-json.log", **{"max-size": "1k", "max-file": "3"})
    copier = Copier(drivers.new_driver("local", log))
    for i in range(200):
        copier.write("stdout" if i % 2 else "stderr", f"line {i}\n".encode())
    copier.write("stdout", b"y" * 20000 + b"\nend")
    copier.close()
    names = sorted(p.name for p in (tmp_path / "local-logs").iterdir())
    assert names == ["container.log", "container.log.1.gz", "container.log.2.gz"]
    entries = drivers.open_reader("local", log).read()
    tail = [(e.stream, e.line) for e in entries[-3:]]
    assert tail == [("stdout", b"y" * 16384), ("stdout", b"y" * (20000 - 16384) + b"\n"), ("stdout", b"end")]
    lines = [e.line for e in entries if e.line.startswith(b"line ")]
    first = int(lines[0].split()[1])
    assert lines == [f"line {i}\n".encode() for i in range(first, 200)] and first > 0


def test_local_reads_dockers_files_and_writes_the_same(ctl: Ctl, docker_host: str, tmp_path: Path) -> None:
    cid = docker(
        docker_host, "run", "-d", "--log-driver", "local", "busybox", "sh", "-c", SCRIPT
    ).stdout.strip()
    docker(docker_host, "wait", cid)
    data_root = docker(docker_host, "info", "-f", "{{.DockerRootDir}}").stdout.strip()
    theirs_path = Path(data_root) / "containers" / cid / "local-logs" / "container.log"
    theirs_raw = theirs_path.read_bytes()
    docker(docker_host, "rm", cid)
    theirs, used = local.split_entries(theirs_raw)
    assert used == len(theirs_raw)
    # our encoder writes docker's entries back byte for byte
    assert b"".join(local.encode_entry(m) for m in theirs) == theirs_raw
    ctl.ok("run", "--name", "lc", "--network", "none", "--log-driver", "local", "busybox", "sh", "-c", SCRIPT)
    c = ContainerStore(ctl.root).get("lc")
    ours, _ = local.split_entries((c.dir / "local-logs" / "container.log").read_bytes())

    def shape(m: Message) -> tuple[object, ...]:
        return (m.source, m.line, m.partial, bool(m.partial_id), m.ordinal, m.last)

    # stdout and stderr may interleave differently: compared as sets of entries
    assert sorted(map(shape, ours), key=str) == sorted(map(shape, theirs), key=str)
    # and `logs` reads them as docker's logs would show them
    out = ctl.ok("logs", "lc")
    assert out.startswith("hello\n") and out.endswith("\n\ntail") and "x" * 17000 + "\n" in out


# ------------------------------------------------------- journald, none, the seam ---


def test_journald_where_a_journal_runs(ctl: Ctl) -> None:
    from runtime.logs import journald

    if not os.path.exists(journald.SOCKET):
        pytest.skip(f"no systemd-journald socket at {journald.SOCKET} on this host")
    ctl.ok(
        "run",
        "--name",
        "jd",
        "--network",
        "none",
        "--log-driver",
        "journald",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2",
    )
    deadline = time.monotonic() + 20
    while True:
        entries = log_reader(ContainerStore(ctl.root).get("jd")).read()
        if len(entries) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted((e.stream, e.line) for e in entries) == [("stderr", b"two\n"), ("stdout", b"one\n")]


def test_journald_fields_encoding() -> None:
    from runtime.logs.journald import encode_fields

    raw = encode_fields({"MESSAGE": b"a\nb", "PRIORITY": b"6"})
    assert raw == b"MESSAGE\n" + (3).to_bytes(8, "little") + b"a\nb\nPRIORITY=6\n"


def test_unknown_driver_names_the_drivers_and_unreadable_drivers(ctl: Ctl, rsyslog: dict[str, Any]) -> None:
    r = ctl("run", "--rm", "--log-driver", "nope", "busybox", "true")
    assert r.code == 125
    assert r.err.strip().endswith(
        'error looking up logging plugin nope: plugin "nope" not found'
        " (log drivers: fluentd, journald, json-file, local, none, syslog)"
    )
    ctl.ok(
        "run",
        "--name",
        "sy",
        "--network",
        "none",
        "--log-driver",
        "syslog",
        "--log-opt",
        f"syslog-address=udp://127.0.0.1:{rsyslog['udp']}",
        "busybox",
        "echo",
        "x",
    )
    r = ctl("logs", "sy")
    assert (r.code, r.err.strip()) == (1, "Error: configured logging driver does not support reading")
    with pytest.raises(Unsupported):
        log_reader(ContainerStore(ctl.root).get("sy"))


def test_daemon_json_sets_the_default_driver_and_options(ctl: Ctl) -> None:
    (ctl.root / "daemon.json").write_text('{"log-driver": "local", "log-opts": {"max-size": "1m"}}')
    ctl.ok("run", "--name", "dflt", "--network", "none", "--log-opt", "max-file=2", "busybox", "echo", "kept")
    cfg = ContainerStore(ctl.root).get("dflt").host_config["LogConfig"]
    assert cfg == {"Type": "local", "Config": {"max-size": "1m", "max-file": "2"}}
    assert ctl.ok("logs", "dflt") == "kept\n"
    # a driver named on the command line takes none of the store's options
    ctl.ok("run", "--name", "own", "--network", "none", "--log-driver", "json-file", "busybox", "true")
    own = ContainerStore(ctl.root).get("own").host_config["LogConfig"]
    assert own == {"Type": "json-file", "Config": {}}
    (ctl.root / "daemon.json").write_text("{nope")
    r = ctl("run", "--rm", "--network", "none", "busybox", "true")
    assert r.code == 125 and "unable to configure the Docker daemon with file" in r.err
