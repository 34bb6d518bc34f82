"""Small images made in memory (random or given files), written as OCI layouts or
pushed to a live registry with plain HTTP."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import requests


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files: dict[str, bytes], mode: int = 0o644) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1700000000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Image:
    """An image's blobs and manifest, in memory."""

    config: bytes
    layers: list[bytes]
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def blobs(self) -> dict[str, bytes]:
        return {sha256(b): b for b in [self.config, *self.layers]}


def make_image(
    layer_files: list[dict[str, bytes]], cmd: list[str] | None = None, compress: bool = True
) -> Image:
    """An OCI image whose layers hold ``layer_files`` (gzip-compressed tars)."""
    tars = [tar_of(f, 0o755) for f in layer_files]
    layers = [gzip.compress(t, 1, mtime=0) if compress else t for t in tars]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd or ["/bin/sh"], "Env": ["PATH=/bin:/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]},
        "history": [{"created_by": "dockyard test"} for _ in tars],
    }
    config_raw = json.dumps(config).encode()
    layer_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config_raw),
            "size": len(config_raw),
        },
        "layers": [{"mediaType": layer_type, "digest": sha256(b), "size": len(b)} for b in layers],
    }
    return Image(config_raw, layers, json.dumps(manifest).encode())


def random_image(n_layers: int = 2, size: int = 64 << 10) -> Image:
    return make_image([{f"file{i}": os.urandom(size)} for i in range(n_layers)])


def write_oci_layout(path: Path, image: Image, tag: str = "latest") -> Path:
    """An OCI image layout skopeo can read as ``oci:<path>:<tag>``."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for data in [image.config, *image.layers, image.manifest]:
        (blobs / sha256(data).split(":")[1]).write_bytes(data)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": image.digest,
                "size": len(image.manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    return path


def push_image(
    url: str, name: str, image: Image, tag: str = "latest", session: requests.Session | None = None
) -> None:
    """Push with monolithic POST+PUT uploads, then the manifest."""
    s = session or requests.Session()
    for digest, data in image.blobs().items():
        r = s.post(f"{url}/v2/{name}/blobs/uploads/")
        assert r.status_code == 202, r.text
        loc = r.headers["Location"]
        loc = loc if loc.startswith("http") else url + loc
        r = s.put(
            loc, params={"digest": digest}, data=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert r.status_code == 201, r.text
    r = s.put(
        f"{url}/v2/{name}/manifests/{tag}",
        data=image.manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert r.status_code == 201, r.text
