"""Test images made without Docker Hub: layer tars of given or random files,
written as an OCI image layout that ``skopeo copy oci:DIR docker://…`` pushes.

Deterministic for a given seed (mtime 0, sorted names), so tests can compare digests.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isal import igzip

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CREATED = "2024-01-01T00:00:00Z"


def tar_bytes(files: dict[str, bytes], mode: int = 0o644) -> bytes:
    """An uncompressed tar of ``files`` (parent directories added), reproducible."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = sorted({str(Path(n).parent) for n in files if str(Path(n).parent) != "."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = mode
            tf.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def random_files(seed: int, count: int, size: int, prefix: str = "data") -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"{prefix}/f{seed}-{i:05d}.bin": rng.randbytes(size) for i in range(count)}


def gzip_bytes(data: bytes) -> bytes:
    out = io.BytesIO()
    out.write(igzip.compress(data, compresslevel=1, mtime=0))
    return out.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Layout:
    path: Path
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]
    manifest: bytes


def write_layout(
    path: Path,
    layers: list[bytes],
    tag: str = "latest",
    compress: bool = True,
    docker: bool = False,
    cmd: list[str] | None = None,
    arch: str = "amd64",
) -> Layout:
    """Write an OCI image layout holding one image of ``layers`` (uncompressed tars)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = sha256(data)
        (blobs / d[7:]).write_bytes(data)
        return d

    diff_ids = [sha256(t) for t in layers]
    if docker:
        ltype = "application/vnd.docker.image.rootfs.diff.tar" + (".gzip" if compress else "")
        ctype, mtype = "application/vnd.docker.container.image.v1+json", DOCKER_MANIFEST
    else:
        ltype = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
        ctype, mtype = "application/vnd.oci.image.config.v1+json", OCI_MANIFEST
    descs: list[dict[str, Any]] = []
    for t in layers:
        blob = gzip_bytes(t) if compress else t
        descs.append({"mediaType": ltype, "digest": put(blob), "size": len(blob)})
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": cmd or ["sh"], "Env": [f"PATH={PATH}"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"layer {i}"} for i in range(len(layers))],
        "created": CREATED,
    }
    craw = json.dumps(config, separators=(",", ":")).encode()
    cdesc: dict[str, Any] = {"mediaType": ctype, "digest": put(craw), "size": len(craw)}
    manifest = {"schemaVersion": 2, "mediaType": mtype, "config": cdesc, "layers": descs}
    mraw = json.dumps(manifest, separators=(",", ":")).encode()
    mdigest = put(mraw)
    entry = {"mediaType": mtype, "digest": mdigest, "size": len(mraw)}
    _write_index(path, entry, tag)
    return Layout(path, mdigest, cdesc["digest"], tuple(d["digest"] for d in descs), tuple(diff_ids), mraw)


def _write_index(path: Path, entry: dict[str, object], tag: str) -> None:
    index = {
        "schemaVersion": 2,
        "manifests": [{**entry, "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


def write_multiarch_layout(
    path: Path, images: dict[str, list[bytes]], tag: str = "latest"
) -> tuple[str, dict[str, Layout]]:
    """An OCI layout whose ``tag`` is an image index of one image per architecture.

    Returns the index digest and each architecture's layout facts."""
    built: dict[str, Layout] = {}
    entries = []
    for arch, layers in images.items():
        lay = write_layout(path, layers, tag=f"{tag}-{arch}", arch=arch)
        built[arch] = lay
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": lay.manifest_digest,
                "size": len(lay.manifest),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    digest = sha256(raw)
    (path / "blobs" / "sha256" / digest[7:]).write_bytes(raw)
    _write_index(path, {"mediaType": OCI_INDEX, "digest": digest, "size": len(raw)}, tag)
    return digest, built
