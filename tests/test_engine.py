"""The engine's objects without the command line: filters, prune rules, the system
documents and the image rows (the CLI tests cover what it prints of them)."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import pytest

from engine import VERSION, containers, images, networks, prune, system, volumes
from engine.errors import FilterInvalid
from imagefmt import errors
from imagefmt.store import Store
from runtime.container.store import ContainerStore
from runtime.volumes import VolumeStore


def _row(repo: str, tag: str) -> images.ImageRow:
    return images.ImageRow("sha256:" + "a" * 64, "a" * 12, repo, tag, "<none>", 0.0, 0)


def test_image_filters() -> None:
    rows = [_row("busybox", "latest"), _row("<none>", "<none>"), _row("example/app", "v1")]
    assert [r.repository for r in images.filter_images(rows, ("dangling=true",))] == ["<none>"]
    assert len(images.filter_images(rows, ("dangling=false",))) == 2
    assert [r.tag for r in images.filter_images(rows, ("reference=example/*",))] == ["v1"]
    assert [r.tag for r in images.filter_images(rows, ("reference=*:latest",))] == ["latest"]
    with pytest.raises(FilterInvalid, match="invalid filter 'until': use dangling"):
        images.filter_images(rows, ("until=1h",))


def test_filter_errors_are_invalid_input() -> None:
    assert issubclass(FilterInvalid, errors.Invalid)  # the daemon's 400; the CLI exits 1 for it
    with pytest.raises(FilterInvalid, match=r"bad format of filter \(expected name=value\): status"):
        containers.check_filters(("status",))
    with pytest.raises(FilterInvalid, match="invalid filter 'color=red'"):
        containers.check_filters(("color=red",))
    containers.check_filters(("status=exited", "label=a=b", "health=none"))


def test_prune_filters() -> None:
    keep = prune.prune_filter(("label=keep", "label!=skip=yes"))
    assert keep("", {"keep": ""})
    assert not keep("", {})
    assert not keep("", {"keep": "1", "skip": "yes"})
    old = prune.prune_filter(("until=1h",))
    assert old("2000-01-01T00:00:00Z", None)
    assert not old(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), None)
    assert abs(prune.until_time("10m") - (time.time() - 600)) < 5
    assert prune.until_time("1700000000") == 1700000000.0
    with pytest.raises(FilterInvalid, match="invalid filter 'until=soon'"):
        prune.until_time("soon")
    with pytest.raises(FilterInvalid, match="bad format"):
        prune.prune_filter(("label",))
    with pytest.raises(errors.Invalid, match="Invalid filter 'until'") as exc:
        prune.prune_filter(("until=1h",), until=False)  # volumes take labels only
    assert not isinstance(exc.value, FilterInvalid)  # not a filter the daemon lists


def test_volume_list_filters(tmp_path: Path) -> None:
    vstore = VolumeStore(tmp_path)
    vstore.create("data", {"tier": "db"}, {})
    vstore.create("cache", {}, {})
    cstore = ContainerStore(tmp_path)
    assert volumes.list_volumes(vstore, cstore, ()) == ["cache", "data"]
    assert volumes.list_volumes(vstore, cstore, ("label=tier=db",)) == ["data"]
    assert volumes.list_volumes(vstore, cstore, ("name=ach", "dangling=true")) == ["cache"]
    with pytest.raises(FilterInvalid, match="invalid filter 'size'"):
        volumes.list_volumes(vstore, cstore, ("size=1",))
    with pytest.raises(errors.NotFound, match='plugin "nfs" not found'):
        volumes.create(vstore, "x1", "nfs", {}, {})
    assert volumes.inspect(vstore, "missing") is None
    assert volumes.inspect(vstore, "data")["Labels"] == {"tier": "db"}  # type: ignore[index]


def test_network_inspect_doc_hides_lease_bookkeeping() -> None:
    doc = {
        "Name": "n1",
        "Containers": {"c1": {"Name": "web", "Aliases": ["w"], "IPv4Address": "10.0.0.2/24"}},
    }
    assert networks.inspect_doc(doc)["Containers"] == {"c1": {"Name": "web", "IPv4Address": "10.0.0.2/24"}}
    assert doc["Containers"]["c1"]["Aliases"] == ["w"]  # type: ignore[index]


def test_system_documents(tmp_path: Path) -> None:
    v = system.version()
    assert v["Version"] == VERSION and v["ApiVersion"] == "1.41"
    assert v["PythonVersion"] == platform.python_version()  # read without importing platform
    info = system.info(Store(tmp_path))
    assert info["Images"] == 0 and info["DockerRootDir"] == str(tmp_path)
    assert (info["KernelVersion"], info["Architecture"], info["Name"]) == (
        platform.release(),
        platform.machine(),
        platform.node(),
    )


def test_image_rows_history_and_inspect(store_root: Path, busybox: str) -> None:
    store = Store(store_root)
    (row,) = images.list_images(store, images.ImageListOptions())
    assert (row.repository, row.tag, row.id) == ("busybox", "latest", busybox)
    assert row.short_id == busybox[7:19] and row.size > 0
    assert images.list_images(store, images.ImageListOptions(reference="other")) == []
    img = store.image("busybox")
    (top,) = images.history(store, img)
    assert top.id == busybox and top.size == row.size
    doc = images.inspect_doc(store, img)
    assert doc["Id"] == busybox and doc["RepoTags"] == ["busybox:latest"]
    assert doc["Config"]["Cmd"] == ["sh"] and doc["Config"]["Labels"] is None
    assert images.inspect(store, "nope") is None
    assert images.save_names(store, "busybox")[1][0].tag == "latest"
    with pytest.raises(errors.NotFound, match="No such image: nope"):
        images.save_names(store, "nope")
