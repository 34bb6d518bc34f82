"""Turn a step's result into an image in the store: one more layer (or none) and
one more history entry on top of the parent, with the stage's config.

A RUN's upperdir becomes the new layer's snapshot by rename (no copy, no
re-extraction); a COPY's layer is written as a tar first and unpacked only
when a later step or container needs its files.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefmt import mediatypes as mt
from imagefmt.catalog import tree_size
from imagefmt.config import ImageConfig
from imagefmt.digest import Digest, chain_ids
from imagefmt.manifest import Descriptor, Manifest
from imagefmt.store import Store, StoredImage


@dataclass(frozen=True, slots=True)
class NewLayer:
    """A layer to add: a tar file in the store's tmp/ (``upperdir``: its unpacked
    form, adopted as the snapshot), or a blob already stored (``blob``/``diff_id``)."""

    tar: Path | None = None
    upperdir: Path | None = None
    blob: Descriptor | None = None
    diff_id: Digest | None = None
    entries: int = 0  # tar entries, when known


def base_doc(parent: StoredImage | None, platform: tuple[str, str, str]) -> dict[str, Any]:
    """The config document a stage starts from: the base image's, or scratch's."""
    if parent is not None:
        return parent.config.edit()
    os_name, arch, variant = platform
    doc: dict[str, Any] = {"architecture": arch, "os": os_name}
    if variant:
        doc["variant"] = variant
    doc.update({"config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []})
    return doc


def commit(
    store: Store,
    parent: StoredImage | None,
    doc: dict[str, Any],
    history: dict[str, Any],
    layer: NewLayer | None,
    record: dict[str, Any] | None = None,
) -> StoredImage:
    """Store the image ``parent`` + ``layer`` with config ``doc`` (its rootfs and
    history are replaced: parent's + this step's) and return it.

    A step without a layer gets ``empty_layer: true`` in its history entry, as
    docker writes it.  Idempotent: the same inputs give the same image ID.
    The layer tar is consumed (moved into blobs/); an adopted upperdir is moved."""
    layers = list(parent.manifest.layers) if parent else []
    diff_ids = list(parent.config.diff_ids) if parent else []
    hist = list(parent.config.history) if parent else []
    entry = dict(history)
    with store.adding():
        if layer is None:
            entry["empty_layer"] = True
        else:
            if layer.tar is not None:
                desc, diff_id = store.put_layer_file(layer.tar)
            else:
                assert layer.blob is not None and layer.diff_id is not None
                desc, diff_id = layer.blob, layer.diff_id
            layers.append(desc)
            diff_ids.append(diff_id)
        hist.append(entry)
        out = dict(doc)
        out["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in diff_ids]}
        out["history"] = hist
        config = ImageConfig.from_dict(out)
        cdesc = store.put_bytes(config.raw, mt.OCI_CONFIG)
        manifest = Manifest.build(cdesc, layers)
        store.put_bytes(manifest.raw, mt.OCI_MANIFEST)
        if layer is not None and layer.upperdir is not None:
            size = tree_size(layer.upperdir)
            store.adopt_snapshot(chain_ids(diff_ids)[-1], layer.upperdir, size)
            if layer.upperdir.exists():  # the snapshot existed already
                shutil.rmtree(layer.upperdir, ignore_errors=True)
        image, _ = store.add_image(manifest, record=record)
    return image
