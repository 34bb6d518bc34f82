"""The storage driver contract (registry/server/storage/driver.py), run on every
driver of ``drivers.DRIVERS``, as distribution's ``storage/driver/testsuites``:
a new driver passes this module before the registry runs on it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagefmt import errors
from registry.server.config import Config
from registry.server.storage.driver import (
    FileInfo,
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    UnsupportedMethod,
)
from registry.server.storage.drivers import DRIVERS
from tests.conftest import s3_settings


@pytest.fixture(params=sorted(DRIVERS))
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageDriver]:
    config = Config(root=tmp_path / "store", fsync=False)
    if request.param == "s3":  # radosgw of scripts/start-s3.sh, a fresh prefix per test
        config = Config(storage="s3", s3=s3_settings(request.getfixturevalue("ceph"), chunk_size=5 << 20))
    yield DRIVERS[request.param](config)


def test_put_get_round_trip(driver: StorageDriver) -> None:
    for path, content in [("/a", b"x"), ("/dir/sub/file", os.urandom(100_000)), ("/empty", b"")]:
        driver.put_content(path, content)
        assert driver.get_content(path) == content
    driver.put_content("/a", b"replaced")
    assert driver.get_content("/a") == b"replaced"


def test_missing_paths_raise_not_found(driver: StorageDriver) -> None:
    driver.put_content("/dir/file", b"x")
    calls: list[Callable[[], object]] = [
        lambda: driver.get_content("/nope"),
        lambda: driver.get_content("/dir"),  # a directory has no content
        lambda: driver.reader("/nope"),
        lambda: driver.writer("/nope", append=True),
        lambda: driver.stat("/nope"),
        lambda: driver.stat("/dir/file/below"),
        lambda: driver.list("/nope"),
        lambda: driver.list("/dir/file"),  # a file has no children
        lambda: driver.move("/nope", "/elsewhere"),
        lambda: driver.delete("/nope"),
        lambda: driver.touch("/nope"),
        lambda: list(driver.walk("/nope")),
        lambda: driver.lock("/nope/lock", exclusive=True).__enter__(),
    ]
    for call in calls:
        with pytest.raises(PathNotFound):
            call()
    assert issubclass(PathNotFound, errors.NotFound)


@pytest.mark.parametrize(
    "path", ["", "a", "/", "/a/", "//a", "/a//b", "/a/../b", "/a/./b", "/.hidden", "/a/.tmp", "/a b", "/a\n"]
)
def test_path_validation(driver: StorageDriver, path: str) -> None:
    for call in (
        lambda: driver.put_content(path, b"x"),
        lambda: driver.get_content(path),
        lambda: driver.writer(path),
        lambda: driver.delete(path),
        lambda: driver.move("/ok", path),
    ):
        with pytest.raises(InvalidPath):
            call()


def test_reader_at_offsets(driver: StorageDriver) -> None:
    content = os.urandom(3 << 20)
    driver.put_content("/blob", content)
    for offset in (0, 1, 1 << 20, len(content) - 1):
        with driver.reader("/blob", offset) as f:
            assert f.read() == content[offset:]
    for past in (len(content), len(content) + 10):
        with driver.reader("/blob", past) as f:
            assert f.read() == b""
    with pytest.raises(InvalidOffset):
        driver.reader("/blob", -1)


def test_writer_commit(driver: StorageDriver) -> None:
    w = driver.writer("/up/data")
    chunks = [os.urandom(n) for n in (1, 1 << 20, 5000)]
    for c in chunks:
        assert w.write(c) == len(c)
    assert w.size() == sum(map(len, chunks))
    w.commit()
    assert driver.get_content("/up/data") == b"".join(chunks)
    assert driver.stat("/up/data").size == sum(map(len, chunks))


def test_writer_resumes_after_close(driver: StorageDriver) -> None:
    """A closed writer's bytes are continued by another writer (another process's)."""
    w = driver.writer("/up/data")
    w.write(b"first-")
    w.close()
    w = driver.writer("/up/data", append=True)
    assert w.size() == 6
    w.write(b"second-")
    w.close()
    w = driver.writer("/up/data", append=True)
    w.write(b"third")
    w.commit()
    assert driver.get_content("/up/data") == b"first-second-third"


def test_writer_truncates_to_a_resume_point(driver: StorageDriver) -> None:
    w = driver.writer("/up/data")
    w.write(b"kept")
    w.close()
    w = driver.writer("/up/data", append=True)
    w.write(b" and a chunk cut short")
    w.truncate(4)
    assert w.size() == 4
    w.write(b"!")
    w.commit()
    assert driver.get_content("/up/data") == b"kept!"


def test_writer_resumes_across_parts(driver: StorageDriver) -> None:
    """Writers of many MiB, closed and continued, with a chunk cut short past a part
    boundary (the s3 driver sends 5 MiB parts here, two at a time)."""
    data = os.urandom(23 << 20)
    w = driver.writer("/up/big")
    w.write(data[: 7 << 20])
    w.close()
    w = driver.writer("/up/big", append=True)
    assert w.size() == 7 << 20
    for i in range(7, 19):
        w.write(data[i << 20 : (i + 1) << 20])
    w.truncate(7 << 20)  # the chunk was cut short: back to the resume point
    assert w.size() == 7 << 20
    w.write(data[7 << 20 : 12 << 20])
    w.close()
    w = driver.writer("/up/big", append=True)
    assert w.size() == 12 << 20
    w.write(data[12 << 20 :])
    w.commit()
    assert driver.stat("/up/big").size == len(data)
    with driver.reader("/up/big") as f:
        assert f.read() == data


def test_writer_cancel_and_replace(driver: StorageDriver) -> None:
    w = driver.writer("/up/data")
    w.write(b"doomed")
    w.cancel()
    with pytest.raises(PathNotFound):
        driver.get_content("/up/data")
    driver.put_content("/file", b"old content")
    w = driver.writer("/file")  # without append: new content
    w.write(b"new")
    w.commit()
    assert driver.get_content("/file") == b"new"


def test_stat(driver: StorageDriver) -> None:
    before = time.time() - 2
    driver.put_content("/dir/file", b"12345")
    info = driver.stat("/dir/file")
    assert info == FileInfo("/dir/file", 5, info.mtime, False)
    assert before <= info.mtime <= time.time() + 2
    d = driver.stat("/dir")
    assert d.is_dir and d.path == "/dir" and d.size == 0
    assert driver.stat("/").is_dir


def test_list_direct_children(driver: StorageDriver) -> None:
    for p in ("/r/a/x", "/r/a/y/z", "/r/b", "/r/c/deep/er/file", "/other"):
        driver.put_content(p, b".")
    assert driver.list("/r") == ["/r/a", "/r/b", "/r/c"]
    assert driver.list("/r/a") == ["/r/a/x", "/r/a/y"]
    assert set(driver.list("/")) >= {"/r", "/other"}


def test_move(driver: StorageDriver) -> None:
    driver.put_content("/src", b"moved")
    driver.move("/src", "/new/parents/dest")
    assert driver.get_content("/new/parents/dest") == b"moved"
    with pytest.raises(PathNotFound):
        driver.get_content("/src")
    driver.put_content("/src", b"again")
    driver.move("/src", "/new/parents/dest")  # over an existing key
    assert driver.get_content("/new/parents/dest") == b"again"


def test_delete_recursive(driver: StorageDriver) -> None:
    for p in ("/t/a", "/t/sub/b", "/t/sub/deeper/c", "/t2/kept"):
        driver.put_content(p, b".")
    driver.delete("/t/a")
    with pytest.raises(PathNotFound):
        driver.get_content("/t/a")
    driver.delete("/t")
    for p in ("/t", "/t/sub", "/t/sub/deeper/c"):
        with pytest.raises(PathNotFound):
            driver.stat(p)
    assert driver.get_content("/t2/kept") == b"."


def test_touch(driver: StorageDriver) -> None:
    driver.put_content("/f", b".")
    first = driver.stat("/f").mtime
    time.sleep(0.02)
    driver.touch("/f")
    assert driver.stat("/f").mtime > first
    assert driver.get_content("/f") == b"."


def test_url_for(driver: StorageDriver) -> None:
    driver.put_content("/f", b".")
    try:
        url = driver.url_for("/f")
    except UnsupportedMethod:
        return
    assert url.startswith(("http://", "https://"))


def test_walk(driver: StorageDriver) -> None:
    files = {"/w/b/2": b"22", "/w/a": b"1", "/w/b/1/x": b"333", "/w/b-c": b"4444", "/elsewhere": b""}
    for p, c in files.items():
        driver.put_content(p, c)
    found = [(f.path, f.size, f.is_dir) for f in driver.walk("/w")]
    want = [("/w/a", 1), ("/w/b-c", 4), ("/w/b/1/x", 3), ("/w/b/2", 2)]  # lexical order of the paths
    assert found == [(p, n, False) for p, n in want]
    assert {f.path for f in driver.walk("/")} >= set(files)


def test_put_content_is_atomic(driver: StorageDriver) -> None:
    old, new = b"o" * 200_000, b"n" * 300_000
    driver.put_content("/f", old)
    seen: set[bytes] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(driver.get_content("/f"))

    t = threading.Thread(target=read)
    t.start()
    for i in range(50):
        driver.put_content("/f", new if i % 2 else old)
    stop.set()
    t.join()
    assert seen <= {old, new}


def test_lock(driver: StorageDriver) -> None:
    driver.put_content("/dir/file", b".")
    events: list[str] = []

    def take(name: str, exclusive: bool, hold: float) -> None:
        with driver.lock("/dir/lock", exclusive):
            events.append(f"{name} in")
            time.sleep(hold)
            events.append(f"{name} out")

    with driver.lock("/dir/lock", exclusive=False):
        shared = threading.Thread(target=take, args=("shared", False, 0.0))
        shared.start()
        shared.join(5)
        assert events == ["shared in", "shared out"]  # shared holders coexist
        writer = threading.Thread(target=take, args=("exclusive", True, 0.1))
        writer.start()
        time.sleep(0.2)
        assert events == ["shared in", "shared out"]  # the exclusive one waits for us
    writer.join(5)
    assert events[2:] == ["exclusive in", "exclusive out"]
    with driver.lock("/gc.lock", exclusive=True):  # at the top: no directory to make first
        pass


def test_mutex(driver: StorageDriver) -> None:
    """An upload session's lock: one holder at a time across threads (processes)."""
    driver.put_content("/dir/file", b".")
    events: list[str] = []

    def take() -> None:
        with driver.mutex("/dir/session.lock"):
            events.append("other in")

    with driver.mutex("/dir/session.lock"):
        other = threading.Thread(target=take)
        other.start()
        time.sleep(0.3)
        assert events == []  # it waits for us
    other.join(5)
    assert events == ["other in"]
    with driver.mutex("/dir/session.lock"):  # released: taken again at once
        pass


def test_delete_many(driver: StorageDriver) -> None:
    files = [f"/blobs/f{i}" for i in range(250)]
    for p in files:
        driver.put_content(p, b"x")
    driver.put_content("/blobs/kept", b"k")
    driver.delete_many([*files, "/blobs/never-there"])  # a missing one is no error
    assert driver.list("/blobs") == ["/blobs/kept"]
    driver.delete_many([])


def test_move_and_touch_past_the_copy_limit(driver: StorageDriver) -> None:
    """S3 copies at most 5 GiB in one request: a bigger object is copied in ranges
    (the s3 driver's limit lowered here so that 12 MiB takes that way)."""
    if hasattr(driver, "copy_limit"):
        driver.copy_limit = 6 << 20
    data = os.urandom(12 << 20)
    w = driver.writer("/big/source")
    w.write(data)
    w.commit()
    driver.move("/big/source", "/big/dest")
    with pytest.raises(PathNotFound):
        driver.stat("/big/source")
    before = driver.stat("/big/dest")
    assert before.size == len(data)
    time.sleep(0.05)
    driver.touch("/big/dest")
    after = driver.stat("/big/dest")
    assert after.mtime > before.mtime and after.size == len(data)
    with driver.reader("/big/dest") as f:
        assert f.read() == data
