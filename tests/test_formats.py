"""Digests, manifests, indexes and configs against golden documents in fixtures/manifests."""

import io
import json
from pathlib import Path

import pytest

from imagefmt import mediatypes as mt
from imagefmt.config import ImageConfig, parse_time, rfc3339
from imagefmt.digest import Digest, HashingReader, chain_ids
from imagefmt.errors import DigestInvalid, ManifestInvalid
from imagefmt.manifest import Descriptor, Index, Manifest, Platform, parse_any

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "manifests"


def test_digest_parse_round_trip() -> None:
    text = "sha256:" + "0" * 64
    assert str(Digest.parse(text)) == text
    assert Digest.of(b"").hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("bad", ["sha256:xyz", "sha256:" + "A" * 64, "md5:" + "0" * 32, "sha256", ""])
def test_digest_invalid(bad: str) -> None:
    with pytest.raises(DigestInvalid):
        Digest.parse(bad)


def test_hashing_reader_verifies() -> None:
    r = HashingReader(io.BytesIO(b"hello"))
    r.drain()
    r.verify(Digest.of(b"hello"))
    with pytest.raises(DigestInvalid, match="digest mismatch"):
        r.verify(Digest.of(b"other"))


def test_chain_ids_follow_the_spec() -> None:
    a, b = Digest.of(b"a"), Digest.of(b"b")
    assert chain_ids([a]) == [a]
    assert chain_ids([a, b])[1] == Digest.of(f"{a} {b}".encode())


def test_oci_manifest_golden() -> None:
    raw = (GOLDEN / "oci-manifest.json").read_bytes()
    m = Manifest.parse(raw)
    assert m.media_type == mt.OCI_MANIFEST
    assert m.digest == Digest.of(raw)  # the raw bytes are the truth
    assert [d.media_type for d in m.layers] == [mt.OCI_LAYER_GZIP, mt.OCI_LAYER_ZSTD]
    assert m.layers[0].annotations == {"org.example": "x"}
    assert m.config.extra == {"data": "e30="}


def test_docker_schema2_golden() -> None:
    m = Manifest.parse((GOLDEN / "docker-manifest.json").read_bytes())
    assert m.media_type == mt.DOCKER_MANIFEST
    assert m.config.media_type == mt.DOCKER_CONFIG


def test_index_selects_platform() -> None:
    idx = parse_any((GOLDEN / "docker-manifest-list.json").read_bytes())
    assert isinstance(idx, Index)
    assert idx.select(Platform()).digest.hex.startswith("11")
    assert idx.select(Platform.parse("linux/arm64")).digest.hex.startswith("22")
    with pytest.raises(ManifestInvalid, match="available: linux/amd64, linux/arm64/v8"):
        idx.select(Platform.parse("linux/s390x"))


@pytest.mark.parametrize(
    "name",
    ["invalid-ambiguous.json", "invalid-not-json.json", "invalid-schema1.json", "invalid-bad-digest.json"],
)
def test_invalid_manifests(name: str) -> None:
    with pytest.raises(ManifestInvalid):
        Manifest.parse((GOLDEN / name).read_bytes())


def test_build_writes_oci() -> None:
    cfg = Descriptor(mt.OCI_CONFIG, Digest.of(b"{}"), 2)
    m = Manifest.build(cfg, [])
    doc = json.loads(m.raw)
    assert doc["mediaType"] == mt.OCI_MANIFEST and doc["schemaVersion"] == 2
    assert Manifest.parse(m.raw) == m


def test_config_requires_rootfs() -> None:
    with pytest.raises(ManifestInvalid):
        ImageConfig.parse(b'{"architecture":"amd64","os":"linux"}')
    cfg = ImageConfig.parse(b'{"rootfs":{"type":"layers","diff_ids":[]},"x-unknown":1}')
    assert cfg.doc["x-unknown"] == 1


def test_times() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert parse_time("2023-05-19T20:19:40.123456789Z") == pytest.approx(1684527580.123456)
