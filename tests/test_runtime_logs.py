"""The log-driver seam: the copier's messages, the registry, json-file written and read back,
and a container's logs read through the driver its record names."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefmt.errors import Unsupported
from runtime.container.launchspec import log_reader
from runtime.container.store import ContainerStore
from runtime.errors import BadSpec
from runtime.logs import drivers
from runtime.logs.drivers import PARTIAL_MAX, Copier, Driver, LogInfo, Message
from runtime.logs.jsonfile import JsonFile, JsonFileReader
from tests.conftest import Ctl


def info(path: Path, **config: str) -> LogInfo:
    return LogInfo(
        config=dict(config),
        container_id="c" * 64,
        container_name="box",
        image_id="sha256:" + "a" * 64,
        image_name="busybox",
        env=("PATH=/bin",),
        labels={},
        log_path=path,
    )


class Recorder:
    """A driver that keeps what it is given."""

    def __init__(self, info: LogInfo) -> None:
        self.info = info
        self.messages: list[Message] = []
        self.closed = False

    def log(self, msg: Message) -> None:
        self.messages.append(msg)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def recorder() -> Iterator[None]:
    drivers.register(Driver("recorder", Recorder, lambda opts: None))
    yield
    del drivers._registered["recorder"]


def test_copier_cuts_lines_and_long_pieces(tmp_path: Path) -> None:
    rec = Recorder(info(tmp_path / "log"))
    copier = Copier(rec)
    copier.write("stdout", b"one\ntw")
    copier.write("stderr", b"x" * (PARTIAL_MAX + 5))
    copier.write("stdout", b"o\nthree")
    got = [(m.source, m.line, m.partial) for m in rec.messages]
    assert got == [
        ("stdout", b"one", False),
        ("stderr", b"x" * PARTIAL_MAX, True),
        ("stdout", b"two", False),
    ]
    copier.close()
    got = [(m.source, m.line, m.partial) for m in rec.messages[3:]]
    assert sorted(got) == [("stderr", b"xxxxx", True), ("stdout", b"three", True)]
    assert rec.closed and all(m.timestamp > 0 for m in rec.messages)


def test_json_file_lines_rotation_and_reader(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    copier = Copier(drivers.new_driver("json-file", info(path, **{"max-size": "1k", "max-file": "3"})))
    for i in range(100):
        copier.write("stdout" if i % 2 else "stderr", f"line {i}\n".encode())
    copier.write("stdout", b"no newline")
    copier.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert all(p.stat().st_size <= 1024 for p in tmp_path.iterdir())
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"log", "stream", "time"}
    reader = drivers.open_reader("json-file", info(path))
    entries = reader.read()
    assert entries[-2].line == b"line 99\n" and entries[-2].stream == "stdout"
    assert entries[-1].line == b"no newline"
    kept = range(100 - len(entries) + 1, 100)  # the oldest lines went with the rotated-out file
    assert [e.line for e in entries[:-1]] == [f"line {i}\n".encode() for i in kept]
    with path.open("a") as f:
        f.write(json.dumps({"log": "later\n", "stream": "stdout", "time": entries[-1].time}) + "\n")
    assert [e.line for e in reader.follow(lambda: False)] == [b"later\n"]


def test_json_file_is_created_on_the_first_message(tmp_path: Path) -> None:
    log = JsonFile(info(tmp_path / "quiet.log"))
    log.close()
    assert not (tmp_path / "quiet.log").exists()
    assert JsonFileReader(info(tmp_path / "quiet.log")).read() == []


def test_options_are_checked_with_dockers_words() -> None:
    cases = {
        ("nope", ()): (
            'error looking up logging plugin nope: plugin "nope" not found'
            " (log drivers: fluentd, journald, json-file, local, none, syslog)"
        ),
        ("json-file", ("max-size",)): "invalid key value pair format in log options: max-size",
        ("json-file", ("colour=red",)): "unknown log opt 'colour' for json-file log driver",
        ("none", ("colour=red",)): "unknown log opt 'colour' for none log driver",
        ("json-file", ("max-file=0",)): "max-file cannot be less than 1",
        ("json-file", ("max-file=3",)): "max-file cannot be set without max-size",
        ("json-file", ("max-size=ten",)): (
            'invalid argument "ten" for "--log-opt max-size" flag: invalid size: \'ten\''
        ),
    }
    for (name, opts), message in cases.items():
        with pytest.raises(BadSpec) as err:
            drivers.parse_options(name, opts)
        assert str(err.value) == message
    assert drivers.parse_options("json-file", ("max-size=1m", "max-file=2", "tag=x")) == {
        "max-size": "1m",
        "max-file": "2",
        "tag": "x",
    }


def test_readers_only_where_the_driver_can_be_read(tmp_path: Path) -> None:
    assert drivers.can_read("json-file") and not drivers.can_read("none")
    with pytest.raises(Unsupported) as err:
        drivers.open_reader("none", info(tmp_path / "log"))
    assert str(err.value) == "configured logging driver does not support reading"
    drivers.new_driver("none", info(tmp_path / "log")).log(Message(b"dropped", "stdout", 1))
    assert list(tmp_path.iterdir()) == []


def test_a_registered_driver_is_made_by_name(tmp_path: Path, recorder: None) -> None:
    assert "recorder" in drivers.names() and {"json-file", "none"} <= set(drivers.names())
    driver = drivers.new_driver("recorder", info(tmp_path / "log", tag="t"))
    assert isinstance(driver, Recorder) and driver.info.config == {"tag": "t"}
    assert drivers.parse_options("recorder", ("anything=goes",)) == {"anything": "goes"}


def test_a_containers_logs_through_its_driver(ctl: Ctl) -> None:
    ctl.ok("run", "--name", "talky", "busybox", "sh", "-c", "echo out; echo err >&2; printf tail")
    entries = log_reader(ContainerStore(ctl.root).get("talky")).read()
    assert sorted((e.stream, e.line) for e in entries) == [
        ("stderr", b"err\n"),
        ("stdout", b"out\n"),
        ("stdout", b"tail"),
    ]
    ctl.ok("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "dropped")
    quiet = ContainerStore(ctl.root).get("quiet")
    with pytest.raises(Unsupported):
        log_reader(quiet)
    assert not quiet.log_path.exists()
