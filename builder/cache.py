"""The build cache: which image a step made, keyed by what the step was given.

On disk, under the store root::

    buildcache/
      keys/<sha256 hex>      the image ID a step produced (one line)
      mounts/<32 hex>/       RUN --mount=type=cache directories (data/, and .lock beside it)
      steps/<32 hex>/<key>.json  what each step on a parent was given, to explain a miss
      sums/<sha256 hex>      content checksums of COPY sources, keyed by their files' stamps
      layers/<sha256 hex>    COPY --link layers ({"blob", "diff_id"}), keyed without the parent
      init/                  the read-only init layer shared by every RUN

A key is the sha256 of the parent image ID and the step as evaluated: the
instruction with its ARG and ENV values, the RUN's environment, user,
workdir, network and mounts, and for COPY/ADD the content checksum of the
sources.  Parent IDs chain the keys, so a miss invalidates every later step,
as Docker's classic builder does.  Cached images are ordinary images in the
store (record ``built``), untagged unless a build tagged them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from imagefmt.catalog import tree_size
from imagefmt.digest import Digest
from imagefmt.errors import DockyardError, NotFound
from imagefmt.manifest import Descriptor
from imagefmt.store import Store, StoredImage


def step_key(parent: str, descriptor: dict[str, Any]) -> str:
    """The cache key of a step on top of ``parent`` (an image ID or "scratch")."""
    raw = json.dumps([parent, descriptor], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


class BuildCache:
    """The step → image index of one store (safe for concurrent builds: one file per key)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.root / "buildcache"
        self.keys = self.root / "keys"
        self.mounts = self.root / "mounts"
        self.steps = self.root / "steps"
        self.sums = self.root / "sums"
        self.layers = self.root / "layers"
        self.keys.mkdir(parents=True, exist_ok=True)
        self.mounts.mkdir(parents=True, exist_ok=True)

    @property
    def init_layer(self) -> Path:
        return self.root / "init"

    def get(self, key: str) -> StoredImage | None:
        """The cached image for ``key``; None when absent or its image was removed."""
        try:
            image_id = (self.keys / key).read_text().strip()
        except OSError:
            return None
        try:
            return self.store.image(image_id)
        except NotFound:
            return None

    def put(
        self, key: str, image: StoredImage, parent: str = "", descriptor: dict[str, Any] | None = None
    ) -> None:
        """Record ``image`` for ``key`` (atomic: a reader sees the old or the new ID),
        and the step's descriptor beside its parent, for ``explain``."""
        tmp = self.keys / f".{key}.{uuid.uuid4().hex}"
        tmp.write_text(str(image.id))
        os.replace(tmp, self.keys / key)
        if parent and descriptor is not None:
            d = self.steps / hashlib.sha256(parent.encode()).hexdigest()[:32]
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / f".{key}.{uuid.uuid4().hex}"
            tmp.write_text(json.dumps(descriptor, sort_keys=True))
            os.replace(tmp, d / f"{key}.json")

    def explain(self, parent: str, descriptor: dict[str, Any]) -> str:
        """Why a step missed: what differs from the nearest step cached on the same parent."""
        d = self.steps / hashlib.sha256(parent.encode()).hexdigest()[:32]
        best: tuple[int, list[str]] | None = None
        for p in sorted(d.glob("*.json")) if d.is_dir() else []:
            try:
                old = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if old.get("instruction") != descriptor.get("instruction"):
                continue
            changed = sorted(k for k in {*old, *descriptor} if old.get(k) != _plain(descriptor.get(k)))
            if best is None or len(changed) < best[0]:
                best = (len(changed), changed)
        if best is None:
            return " ---> Cache miss: no cached step for this instruction on this parent image\n"
        if not best[1]:
            return " ---> Cache miss: the cached image was removed\n"
        what = [_WHY.get(k, k) for k in best[1]]
        if best[1] == ["created_by"] and str(descriptor.get("instruction", "")).upper().startswith(
            ("COPY", "ADD")
        ):
            what = ["the content of the source files"]
        return f" ---> Cache miss: changed {'; '.join(what)}\n"

    def get_layer(self, key: str) -> tuple[Descriptor, Digest] | None:
        """A ``COPY --link`` layer made before on any parent, if its blob is still stored."""
        try:
            doc = json.loads((self.layers / key).read_text())
            desc, diff_id = Descriptor.from_json(doc["blob"]), Digest.parse(doc["diff_id"])
        except (OSError, ValueError, KeyError, DockyardError):
            return None
        return (desc, diff_id) if self.store.has_blob(desc.digest) else None

    def put_layer(self, key: str, desc: Descriptor, diff_id: Digest) -> None:
        self.layers.mkdir(parents=True, exist_ok=True)
        tmp = self.layers / f".{key}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps({"blob": desc.to_json(), "diff_id": str(diff_id)}))
        os.replace(tmp, self.layers / key)

    # ------------------------------------------------------------- accounting ---

    def intermediate(self) -> list[StoredImage]:
        """Untagged images the builder made for steps (not a build's result), unused by containers."""
        return [
            i
            for i in self.store.images()
            if i.record.get("built")
            and not i.tags
            and not i.record.get("result")
            and not self.store.holders(i.id)
        ]

    def mount_dirs(self) -> list[Path]:
        return sorted(p for p in self.mounts.iterdir() if p.is_dir())

    def usage(self) -> tuple[int, int, int, int]:
        """(count, active, size, reclaimable) for ``system df``'s Build Cache row."""
        images = self.intermediate()
        keep: set[str] = set()
        for other in self.store.images():
            if other.tags:
                keep.update(str(d.digest) for d in other.manifest.layers)
        size = 0
        seen: set[str] = set()
        for img in images:
            for d in img.manifest.layers:
                if str(d.digest) not in keep and str(d.digest) not in seen:
                    seen.add(str(d.digest))
                    size += d.size
        dirs = self.mount_dirs()
        size += sum(tree_size(d) for d in dirs)
        return len(images) + len(dirs), 0, size, size

    def prune(self, all_cache: bool = False) -> tuple[list[str], int]:
        """Remove intermediate images (and, with ``all_cache``, the cache mounts);
        return docker's "Deleted build cache objects" lines and the bytes freed."""
        before = self.store.disk_usage()
        lines: list[str] = []
        for img in self.intermediate():
            with contextlib.suppress(DockyardError):
                self.store.remove(str(img.id), force=True)
                lines.append(img.id.hex[:25])
        freed_mounts = 0
        if all_cache:
            for d in self.mount_dirs():
                freed_mounts += tree_size(d)
                trash = self.mounts / f".del-{uuid.uuid4().hex}"
                os.replace(d, trash)
                shutil.rmtree(trash, ignore_errors=True)
                lines.append(d.name[:25])
        for k in self.keys.iterdir():
            if self.get(k.name) is None:
                k.unlink(missing_ok=True)
        if all_cache:
            for d in (self.sums, self.steps, self.layers):
                shutil.rmtree(d, ignore_errors=True)
        return lines, max(0, before - self.store.disk_usage()) + freed_mounts


_WHY = {
    "created_by": "created_by (the instruction with its ARG/ENV values, or the sources' checksum)",
    "env": "the environment (ENV or ARG values)",
    "config": "the config before this step",
    "values": "the ARG value",
    "mounts": "RUN --mount inputs",
    "owner": "--chown",
    "source_date_epoch": "SOURCE_DATE_EPOCH",
}


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))
