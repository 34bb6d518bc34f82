"""Flattened root filesystems: ``import`` (a rootfs tar → a one-layer image).

The input tar (plain, gzip, bzip2, xz or zstd) is rewritten entry by entry
into a canonical layer: names lose their leading ``/`` and ``./``, and an
entry whose name or hardlink target climbs out with ``..`` is refused.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Callable
from typing import Any, BinaryIO

from imagefmt.changes import apply_change
from imagefmt.config import rfc3339
from imagefmt.errors import UnsafeLayer
from imagefmt.reference import Reference
from imagefmt.space import GuardedReader, reported
from imagefmt.store import Store, StoredImage


def climbs_out(name: str) -> bool:
    """True when a tar member name climbs above the root with ``..``."""
    depth = 0
    for part in name.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def import_rootfs(
    store: Store,
    src: BinaryIO,
    ref: Reference | None = None,
    changes: list[str] | None = None,
    message: str = "",
    source: str = "-",
    progress: Callable[[int], None] | None = None,
    architecture: str = "amd64",
) -> StoredImage:
    """Make a one-layer image of the rootfs tar ``src`` (``docker import``).

    Streamed: the free space of the store is checked as the tar expands, and the
    import stops (DiskFull) while the layer could still be stored and unpacked.
    Raise UnsafeLayer for escaping members, Invalid for a corrupt tar, a layer
    that cannot be unpacked or a bad change; on failure nothing is added (the
    image is registered only once its layer is stored and unpacked)."""
    from imagefmt.compress import open_reader
    from imagefmt.tario import TarWriter, iter_tar

    path, out = store.temp_file()
    # each byte is written twice more (the layer blob, then its snapshot) while the tar is on disk
    tar = GuardedReader(open_reader(src), store.root, "import", factor=2)
    try:
        with reported(store.root, "import"), out:
            w = TarWriter(out)
            for entry, content in iter_tar(tar):
                if climbs_out(entry.name) or (entry.type == "hardlink" and climbs_out(entry.linkname)):
                    raise UnsafeLayer(f"import: tar entry {entry.name!r}: path escapes the root filesystem")
                name = posixpath.normpath("/" + entry.name).lstrip("/")
                if not name or name == ".":
                    continue
                if entry.type == "dir":
                    name += "/"
                fixed = dataclasses.replace(entry, name=name)
                if entry.type == "hardlink":
                    fixed = dataclasses.replace(
                        fixed, linkname=posixpath.normpath("/" + entry.linkname).lstrip("/")
                    )
                w.add_entry(fixed, content if entry.type == "file" else None)
                if progress:
                    progress(entry.size + 512)
            w.close()
        created = _created()
        doc: dict[str, Any] = {
            "architecture": architecture,
            "os": "linux",
            "created": created,
            "config": {},
        }
        if message:
            doc["comment"] = message
        for change in changes or []:
            apply_change(doc, change)
        history = {"created": created, "comment": message or f"Imported from {source}"}
        # unpacked before it is registered, as docker import does: runnable, and sized by its content
        image = store.commit_image(None, path, doc, history, ref, unpack=True)
        store.event("import", image, str(image.id))
        return image
    finally:
        path.unlink(missing_ok=True)


def _created() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return rfc3339(float(epoch)) if epoch and epoch.isdigit() else rfc3339()
