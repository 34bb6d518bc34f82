"""Faults caused for real: the registry killed in the middle of a pull, and a
registry whose storage serves a blob that does not match its digest."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from imagefmt import errors
from imagefmt.digest import Digest
from imagefmt.reference import Reference
from imagefmt.store import Store
from registry.client import progress as pg
from registry.client.progress import Progress
from registry.client.pull import partial_path
from registry.client.transport import Unavailable
from tests import client_fixtures as cf
from tests.conftest import Dockyard
from tests.fakes import FlakyProxy
from tests.helpers import store_state
from tests.oci_images import random_files, tar_bytes, write_layout

docker_config = cf.docker_config
fresh_reg = cf.fresh_reg

pytestmark = pytest.mark.interop

BIG = 12 << 20


def test_killed_registry_then_the_next_pull_resumes(fresh_reg: cf.Live, tmp_path: Path) -> None:
    big = tar_bytes(random_files(99, 1, BIG))
    lay = write_layout(tmp_path / "lay", [big, tar_bytes({"etc/x": b"x"})])
    cf.skopeo_push(lay, f"{fresh_reg.host}/faults/big:1")
    ref = Reference.parse(f"{fresh_reg.host}/faults/big:1")
    store = Store(tmp_path / "store")
    short = lay.layer_digests[0][7:19]

    def kill_midway(ev: Progress) -> None:
        if ev.id == short and ev.status == pg.DOWNLOADING and ev.current >= 3 << 20:
            fresh_reg.kill()

    with cf.quick_client(max_concurrent_downloads=1) as client, pytest.raises(Unavailable) as info:
        client.pull(store, ref, kill_midway)
    assert "cannot reach the registry" in str(info.value) or "run the pull again" in str(info.value)
    part = partial_path(store, Digest.parse(lay.layer_digests[0]))
    kept = part.stat().st_size
    assert 3 << 20 <= kept < BIG
    with pytest.raises(errors.NotFound):
        store.image(str(ref))  # nothing registered

    fresh_reg.start()  # same port, same storage
    events: list[Progress] = []
    with cf.quick_client() as client:
        result = client.pull(store, ref, events.append)
    first = next(e for e in events if e.id == short and e.status == pg.DOWNLOADING)
    assert first.current == kept  # resumed where it broke, not from byte 0
    assert str(result.image.id) == lay.config_digest
    assert not part.exists()
    store.ensure_snapshots(result.image)  # unpacked and verified against the diff_ids


def test_a_blob_with_the_wrong_digest_fails_and_changes_nothing(
    fresh_reg: cf.Live, dy: Dockyard, tmp_path: Path
) -> None:
    lay = cf.sample_layout(tmp_path / "lay", seed=5, sizes=(100_000, 100_000))
    cf.skopeo_push(lay, f"{fresh_reg.host}/faults/bad:1")
    bad = lay.layer_digests[1]
    blob = fresh_reg.blob_file(bad)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one bit pattern off
    blob.write_bytes(bytes(data))
    Store(dy.root)
    before = store_state(dy.root)
    r = dy("pull", f"{fresh_reg.host}/faults/bad:1")
    assert r.code == 1
    assert f"blob {bad}: digest mismatch" in r.err and "corrupt" in r.err
    assert store_state(dy.root) == before
    assert not any(Path(dy.root, "tmp").iterdir())
    assert dy.ok("images", "-q") == ""


def test_5xx_replies_are_retried(fresh_reg: cf.Live, tmp_path: Path) -> None:
    lay = cf.sample_layout(tmp_path / "lay", seed=6)
    cf.skopeo_push(lay, f"{fresh_reg.host}/faults/flaky:1")
    proxy = FlakyProxy(fresh_reg.host, r"/blobs/sha256:", "GET", fail=3, status=503)
    try:
        with cf.quick_client(retries=3) as client:
            result = client.pull(Store(tmp_path / "store"), Reference.parse(f"{proxy.host}/faults/flaky:1"))
        assert str(result.digest) == lay.manifest_digest
        assert sum(1 for _, _, status in proxy.seen if status == 503) == 3
    finally:
        proxy.stop()
    proxy = FlakyProxy(fresh_reg.host, r"/blobs/uploads/.+", "PUT", fail=1, status=500)
    try:
        store = Store(tmp_path / "local")
        image_id = cf.local_image(store, tmp_path, "flaky:1", seed=61, size=5000)
        with cf.quick_client(retries=3) as client:
            ref = Reference.parse(f"{proxy.host}/faults/pushed:1")
            pushed = client.push(store, store.image(image_id), ref)
        assert [s for m, _, s in proxy.seen if m == "PUT" and s == 500] == [500]
        assert any(m == "PUT" and "/manifests/1" in p and s == 201 for m, p, s in proxy.seen)
        with cf.quick_client() as client:
            again = client.pull(
                Store(tmp_path / "again"), Reference.parse(f"{fresh_reg.host}/faults/pushed:1")
            )
        assert again.digest == pushed.digest
    finally:
        proxy.stop()


def test_plain_http_beyond_loopback_needs_insecure_registry(
    fresh_reg: cf.Live, dy: Dockyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = socket.gethostname()
    if socket.gethostbyname(name) != "127.0.0.1" or name == "localhost":
        pytest.skip(f"the host name {name!r} does not resolve to 127.0.0.1")
    lay = cf.sample_layout(tmp_path / "lay", seed=8)
    cf.skopeo_push(lay, f"{fresh_reg.host}/faults/http:1")
    ref = f"{name}:{fresh_reg.port}/faults/http:1"
    r = dy("pull", ref)
    assert r.code == 1 and f"--insecure-registry {name}:{fresh_reg.port}" in r.err
    assert dy.ok("pull", "-q", "--insecure-registry", f"{name}:{fresh_reg.port}", ref).strip() == ref
    monkeypatch.setenv("DOCKYARD_INSECURE_REGISTRIES", f"other.example, {name}:{fresh_reg.port}")
    assert dy.ok("pull", "-q", ref).strip() == ref
