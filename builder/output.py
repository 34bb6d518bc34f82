"""``build --output``: where the result goes besides the store (buildx's exporters).

``local`` writes the image's flattened filesystem into a directory, ``tar`` the
same as one tar file; ``oci`` and ``docker`` write the image as a tarball that
``docker load``, ``skopeo … oci-archive:``/``docker-archive:`` read (one file
holds both layouts, see imagefmt.archive).  A file is written beside its
destination and renamed into place, so a failed export leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from imagefmt import mediatypes as mt
from imagefmt.archive import save
from imagefmt.compress import open_reader
from imagefmt.errors import Invalid
from imagefmt.layer import extract_layer, write_layer
from imagefmt.reference import Reference
from imagefmt.store import Store, StoredImage

KINDS = ("local", "tar", "oci", "docker")


@dataclass(frozen=True)
class OutputSpec:
    """One ``--output``: ``kind`` among KINDS, ``dest`` a path or "-" (stdout)."""

    kind: str
    dest: str

    @classmethod
    def parse(cls, text: str) -> OutputSpec:
        """buildx's forms: ``type=T,dest=D``, a bare ``DIR`` (local) or ``-`` (tar to stdout)."""
        if "=" not in text:
            return cls("tar", "-") if text == "-" else cls("local", text)
        fields = {}
        for item in text.split(","):
            key, _, value = item.partition("=")
            fields[key.strip().lower()] = value.strip()
        kind = fields.get("type", "local")
        if kind not in KINDS:
            raise Invalid(f"--output type={kind} is not supported: use one of {', '.join(KINDS)}")
        dest = fields.get("dest", "")
        if not dest:
            raise Invalid(f"--output {text}: dest=PATH is required")
        if kind == "local" and dest == "-":
            raise Invalid("--output type=local needs a directory: use type=tar,dest=- for stdout")
        return cls(kind, dest)


def flatten(store: Store, image: StoredImage, target: Path) -> None:
    """Apply the image's layers in order into ``target`` (whiteouts delete)."""
    target.mkdir(parents=True, exist_ok=True)
    for desc in image.manifest.layers:
        with store.open_blob(desc.digest) as blob:
            reader = open_reader(blob, mt.compression(desc.media_type) or None)
            extract_layer(reader, target, mode="apply")


def export(store: Store, image: StoredImage, spec: OutputSpec, tags: tuple[Reference, ...]) -> None:
    """Write ``image`` as ``spec`` asks."""
    if spec.kind == "local":
        flatten(store, image, Path(spec.dest))
        return
    _to_file(spec.dest, lambda f: _write(store, image, spec.kind, tags, f))


def _write(store: Store, image: StoredImage, kind: str, tags: tuple[Reference, ...], f: BinaryIO) -> None:
    if kind in ("oci", "docker"):
        save(store, [(image, list(tags))], f)
        return
    tmp = store.root / "tmp" / f"output-{os.getpid()}-{id(f)}"
    try:
        flatten(store, image, tmp)
        write_layer(tmp, f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _to_file(dest: str, write: Callable[[BinaryIO], None]) -> None:
    if dest == "-":
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    path = Path(dest)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
