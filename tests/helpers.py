"""Helpers for tests: store snapshots, OCI layouts and tarballs built by hand."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any


def store_state(root: Path) -> dict[str, int]:
    """Every file under a store (but locks and tmp/), with its size: to assert 'unchanged'."""
    out: dict[str, int] = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel.split(os.sep)[0] == "tmp":
            dirs[:] = []
            continue
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            if name in ("lock", "gc.lock"):
                continue
            p = os.path.join(dirpath, name)
            out[os.path.normpath(os.path.join(rel, name))] = os.lstat(p).st_size
    return out


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_entry(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def symlink_entry(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_archive(
    layers: list[bytes],
    tag: str = "docker.io/library/test:latest",
    layer_media_type: str = "application/vnd.oci.image.layer.v1.tar",
    config_extra: dict[str, Any] | None = None,
    digest_override: dict[int, str] | None = None,
) -> bytes:
    """A Docker 25-style save tarball (OCI layout + manifest.json) holding one image."""
    diff_ids = [sha(layer) for layer in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            **(config_extra or {}),
        }
    ).encode()
    layer_descs = [
        {
            "mediaType": layer_media_type,
            "digest": (digest_override or {}).get(i, sha(layer)),
            "size": len(layer),
        }
        for i, layer in enumerate(layers)
    ]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(config),
                "size": len(config),
            },
            "layers": layer_descs,
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": sha(manifest),
                    "size": len(manifest),
                    "annotations": {"io.containerd.image.name": tag},
                }
            ],
        }
    ).encode()
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for blob in [config, manifest, *layers]:
        members.append(file_entry(f"blobs/sha256/{sha(blob)[7:]}", blob))
    members.append(file_entry("index.json", index))
    members.append(file_entry("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'))
    return tar_bytes(members)
