"""Pull and push against our registry and the reference one (distribution 2.8.2), with
skopeo on the other end: what skopeo pushes we pull, what we push skopeo reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefmt import mediatypes as mt
from imagefmt.digest import Digest, chain_ids
from imagefmt.reference import Reference
from imagefmt.store import Store
from registry.client import progress as pg
from registry.client.progress import Progress
from tests import client_fixtures as cf
from tests.conftest import Dockyard
from tests.fakes import skopeo
from tests.oci_images import random_files, tar_bytes, write_multiarch_layout

docker_config = cf.docker_config
reg = cf.reg

pytestmark = pytest.mark.interop


def validate_image(store: Store, name: str) -> None:
    """Every blob present with its digest, every layer unpacked (ggcr's validate.Image)."""
    img = store.image(name)
    for d in img.manifest.blobs():
        with store.open_blob(d.digest) as f:
            got, size = Digest.of_stream(f)
        assert (got, size) == (d.digest, d.size)
    assert len(img.config.diff_ids) == len(img.manifest.layers)
    for chain in chain_ids(img.config.diff_ids):
        assert store.has_snapshot(chain), f"layer {chain} not unpacked"


def test_pull_what_skopeo_pushed_then_push_it_elsewhere(reg: cf.Live, dy: Dockyard, tmp_path: Path) -> None:
    lay = cf.sample_layout(tmp_path / "a", seed=1)
    cf.skopeo_push(lay, f"{reg.host}/interop/a:v1")
    out = dy.ok("pull", f"{reg.host}/interop/a:v1").splitlines()
    assert out[0] == "v1: Pulling from interop/a"
    for d in lay.layer_digests:
        assert f"{d[7:19]}: Pull complete" in out
    assert out[-3:] == [
        f"Digest: {lay.manifest_digest}",
        f"Status: Downloaded newer image for {reg.host}/interop/a:v1",
        f"{reg.host}/interop/a:v1",
    ]
    store = Store(dy.root)
    validate_image(store, f"{reg.host}/interop/a:v1")
    assert str(store.image(f"{reg.host}/interop/a:v1").id) == lay.config_digest
    rows = dy.ok("images", "--digests").splitlines()
    assert any(lay.manifest_digest in r and r.startswith(f"{reg.host}/interop/a ") for r in rows)
    # the same again: docker sees the image in its store, downloads nothing, no layer line
    again = dy.ok("pull", f"{reg.host}/interop/a:v1").splitlines()
    assert again == [out[0], *out[-3:-2], f"Status: Image is up to date for {reg.host}/interop/a:v1", out[-1]]
    # push under another name: the layers are mounted, the manifest bytes are the same
    dy.ok("tag", f"{reg.host}/interop/a:v1", f"{reg.host}/interop/b:v2")
    out = dy.ok("push", f"{reg.host}/interop/b:v2").splitlines()
    assert out[0] == f"The push refers to repository [{reg.host}/interop/b]"
    assert sum(1 for line in out if line.endswith(": Mounted from interop/a")) == len(lay.layer_digests)
    assert out[-1] == f"v2: digest: {lay.manifest_digest} size: {len(lay.manifest)}"
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{reg.host}/interop/b:v2"))
    assert info["Digest"] == lay.manifest_digest and info["Layers"] == list(lay.layer_digests)


def test_push_a_local_image_compresses_once_and_round_trips(
    reg: cf.Live, dy: Dockyard, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(dy.root)
    image_id = cf.local_image(store, tmp_path, f"{reg.host}/local/img:1", seed=7)
    assert store.image(image_id).manifest.layers[0].media_type == mt.OCI_LAYER  # stored uncompressed
    out = dy.ok("push", f"{reg.host}/local/img:1").splitlines()
    diff_id = store.image(image_id).config.diff_ids[0]
    assert f"{diff_id.short}: Pushed" in out
    pushed = out[-1].split()
    assert pushed[:2] == ["1:", "digest:"]
    # skopeo reads it: gzip layer, our config unchanged
    oci = tmp_path / "oci"
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{reg.host}/local/img:1", f"oci:{oci}:x")
    index = json.loads((oci / "index.json").read_text())
    manifest = json.loads((oci / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    assert index["manifests"][0]["digest"] == pushed[2]
    assert manifest["config"]["digest"] == image_id
    assert [ly["mediaType"] for ly in manifest["layers"]] == [mt.OCI_LAYER_GZIP]
    assert store.image(image_id).repo_digests == (f"{reg.host}/local/img@{pushed[2]}",)
    # a second push neither recompresses nor uploads
    events: list[Progress] = []
    with cf.quick_client() as client:
        ref = Reference.parse(f"{reg.host}/local/img:1")
        result = client.push(store, store.image(image_id), ref, events.append)
        assert str(result.digest) == pushed[2]
        assert pg.COMPRESSING not in {e.status for e in events}
        assert (diff_id.short, pg.LAYER_EXISTS) in {(e.id, e.status) for e in events}
        # to another repository of the same registry: mounted, still not recompressed
        events.clear()
        client.push(store, store.image(image_id), Reference.parse(f"{reg.host}/local/other:1"), events.append)
        assert [e.detail for e in events if e.status == pg.MOUNTED] == ["local/img"]
        assert pg.COMPRESSING not in {e.status for e in events}
    # pulled back into an empty store: the same image
    other = Dockyard(tmp_path / "store2", capsys)
    other.ok("pull", f"{reg.host}/local/img@{pushed[2]}")
    validate_image(Store(other.root), f"{reg.host}/local/img@{pushed[2]}")
    assert str(Store(other.root).image(f"{reg.host}/local/img@{pushed[2]}").id) == image_id


def test_shared_layers_are_downloaded_once(reg: cf.Live, dy: Dockyard, tmp_path: Path) -> None:
    first, second = cf.sample_layout(tmp_path / "x", seed=2), cf.sample_layout(tmp_path / "y", seed=3)
    assert first.layer_digests[-1] == second.layer_digests[-1]  # the shared base layer
    cf.skopeo_push(first, f"{reg.host}/shared/x:1")
    cf.skopeo_push(second, f"{reg.host}/shared/y:1")
    dy.ok("pull", f"{reg.host}/shared/x:1")
    out = dy.ok("pull", f"{reg.host}/shared/y:1").splitlines()
    assert f"{second.layer_digests[-1][7:19]}: Already exists" in out
    assert f"{second.layer_digests[0][7:19]}: Pull complete" in out


def test_index_resolves_to_the_platform(reg: cf.Live, dy: Dockyard, tmp_path: Path) -> None:
    images = {
        arch: [tar_bytes(random_files(ord(arch[0]), 2, 1000, prefix=arch))] for arch in ("amd64", "arm64")
    }
    index_digest, built = write_multiarch_layout(tmp_path / "multi", images)
    cf.skopeo_push(built["amd64"], f"{reg.host}/multi/app:1", all_images=True)
    out = dy.ok("pull", f"{reg.host}/multi/app:1").splitlines()
    assert f"Digest: {index_digest}" in out
    store = Store(dy.root)
    assert str(store.image(f"{reg.host}/multi/app:1").id) == built["amd64"].config_digest
    dy.ok("pull", "--platform", "linux/arm64", f"{reg.host}/multi/app:1")
    assert str(store.image(f"{reg.host}/multi/app:1").id) == built["arm64"].config_digest
    r = dy("pull", "--platform", "linux/s390x", f"{reg.host}/multi/app:1")
    assert (
        r.code == 1 and "no manifest for platform linux/s390x (available: linux/amd64, linux/arm64)" in r.err
    )
    # a single-platform image: any platform without --platform, only its own with it
    dy.ok("pull", "--platform", "linux/arm64", f"{reg.host}/multi/app:1")
    dy.ok("tag", f"{reg.host}/multi/app:1", f"{reg.host}/multi/arm:1")
    dy.ok("push", "-q", f"{reg.host}/multi/arm:1")
    dy.ok("rmi", f"{reg.host}/multi/arm:1")
    r = dy("pull", "--platform", "linux/amd64", f"{reg.host}/multi/arm:1")
    assert r.code == 1 and "wanted linux/amd64, actual: linux/arm64" in r.err
    dy.ok("pull", f"{reg.host}/multi/arm:1")
    dy.ok("pull", "--platform", "linux/arm64", f"{reg.host}/multi/arm:1")


def test_chunked_upload_for_large_blobs(reg: cf.Live, dy: Dockyard, tmp_path: Path) -> None:
    store = Store(dy.root)
    image_id = cf.local_image(store, tmp_path, "chunky:1", seed=11, size=400_000)
    ref = Reference.parse(f"{reg.host}/chunky/app:1")
    with cf.quick_client(chunk_size=64 * 1024) as client:
        result = client.push(store, store.image(image_id), ref)
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{reg.host}/chunky/app:1"))
    assert info["Digest"] == str(result.digest)
    assert result.manifest.layers[0].size > 4 * 64 * 1024  # went up in several PATCH chunks
    fresh = Store(tmp_path / "fresh")
    with cf.quick_client() as client:
        client.pull(fresh, ref)
    validate_image(fresh, str(ref))


def test_all_tags(reg: cf.Live, dy: Dockyard, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(dy.root)
    cf.local_image(store, tmp_path, f"{reg.host}/tags/app:1", seed=21, size=4000)
    cf.local_image(store, tmp_path, f"{reg.host}/tags/app:2", seed=22, size=4000)
    out = dy.ok("push", "-a", f"{reg.host}/tags/app").splitlines()
    assert [line.split(":")[0] for line in out if ": digest: " in line] == ["1", "2"]
    other = Dockyard(tmp_path / "other", capsys)
    out = other.ok("pull", "-a", f"{reg.host}/tags/app").splitlines()
    assert "1: Pulling from tags/app" in out and "2: Pulling from tags/app" in out
    assert out[-1] == f"{reg.host}/tags/app"
    assert {t.tag for img in Store(other.root).images() for t in img.tags} == {"1", "2"}
    assert other("pull", "-a", f"{reg.host}/tags/app:1").code == 1


def test_quiet_output(reg: cf.Live, dy: Dockyard, tmp_path: Path) -> None:
    lay = cf.sample_layout(tmp_path / "q", seed=4)
    cf.skopeo_push(lay, f"{reg.host}/quiet/app:latest")
    assert dy.ok("pull", "-q", f"{reg.host}/quiet/app") == f"{reg.host}/quiet/app:latest\n"
    out = dy.ok("pull", f"{reg.host}/quiet/app").splitlines()
    assert out[:2] == ["Using default tag: latest", "latest: Pulling from quiet/app"]
    assert dy.ok("push", "-q", f"{reg.host}/quiet/app") == f"{reg.host}/quiet/app:latest\n"
    out = dy.ok("push", f"{reg.host}/quiet/app").splitlines()
    assert out[-1] == f"latest: digest: {lay.manifest_digest} size: {len(lay.manifest)}"


def test_clear_errors(reg: cf.Live, dy: Dockyard, tmp_path: Path) -> None:
    r = dy("pull", f"{reg.host}/nothing/here:v9")
    assert r.code == 1
    assert f"manifest for {reg.host}/nothing/here:v9 not found" in r.err and "check" in r.err
    r = dy("push", f"{reg.host}/not/local:1")
    assert r.code == 1 and f"An image does not exist locally with the tag: {reg.host}/not/local\n" in r.err
    r = dy("pull", "127.0.0.1:1/x:1")
    assert r.code == 1 and "cannot reach the registry" in r.err and "127.0.0.1:1" in r.err
    r = dy("search", "busybox")
    assert r.code == 1 and "name a registry" in r.err


def test_search_the_catalog(reg: cf.Live, dy: Dockyard, tmp_path: Path) -> None:
    store = Store(dy.root)
    for name in ("search/alpha", "search/beta", "search/alphabet"):
        cf.local_image(store, tmp_path, f"{reg.host}/{name}:1", seed=len(name), size=1000)
        dy.ok("push", "-q", f"{reg.host}/{name}:1")
    out = dy.ok("search", f"{reg.host}/alpha").splitlines()
    assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    assert [line.split()[0] for line in out[1:]] == [
        f"{reg.host}/search/alpha",
        f"{reg.host}/search/alphabet",
    ]
    names = dy.ok("search", "--limit", "1", "--format", "{{.Name}}", f"{reg.host}/search")
    assert names.splitlines() == [f"{reg.host}/search/alpha"]


def test_a_loopback_registry_is_never_proxied(
    reg: cf.Live, dy: Dockyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Go, so Docker, sends nothing for localhost or a loopback address to
    HTTP_PROXY/HTTPS_PROXY: a CI job's proxy must not break its local registry."""
    lay = cf.sample_layout(tmp_path / "a", seed=5)
    cf.skopeo_push(lay, f"{reg.host}/proxied/a:v1")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # the discard port: nothing listens
    dy.ok("pull", "-q", f"{reg.host}/proxied/a:v1")
    dy.ok("push", "-q", f"{reg.host}/proxied/a:v1")
