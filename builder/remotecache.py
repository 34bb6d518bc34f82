"""The step cache as a registry artifact: ``--cache-to``/``--cache-from type=registry``.

The format follows BuildKit's registry cache in its ``image-manifest=true``
form (an OCI image manifest, which every registry accepts, rather than an
index whose entries are blobs): the manifest's config is a cache config
document, its layers are the layer blobs the steps made, each annotated with
its uncompressed digest (``containerd.io/uncompressed``)::

    manifest  (application/vnd.oci.image.manifest.v1+json,
               artifactType application/vnd.dockyard.buildcache.v0)
      config  application/vnd.dockyard.buildcache.config.v0+json
      layers  one per distinct step layer, as pushed (gzip)

    cache config
      {"layers":  [{"blob": "sha256:…", "annotations": {"diffID": "sha256:…",
                    "mediaType": "…", "size": N}}],
       "records": [{"digest": "<step key>", "layer": I | absent,
                    "config": "<the step image's config, verbatim>"}]}

BuildKit keys records by its own cache keys and rebuilds layer chains from
``parent`` links; our step keys chain through the parent image ID already
(``builder.cache``), so a record holds the step's one new layer (if any) and
the image config that the step committed.  A hit needs the parent image in
the store (it is in the key), adds the record's layer to the parent's, and
stores the config as it was: the image ID is the same as on the machine that
exported it.  Layers are fetched only for the steps that hit.

The builder does no HTTP: ``RemoteCache.fetch`` is the caller's download of
one blob into the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imagefmt import mediatypes as mt
from imagefmt.config import ImageConfig
from imagefmt.digest import Digest
from imagefmt.errors import DockyardError, Invalid
from imagefmt.manifest import Descriptor, Manifest
from imagefmt.store import Store, StoredImage

ARTIFACT_TYPE = "application/vnd.dockyard.buildcache.v0"
CACHE_CONFIG = "application/vnd.dockyard.buildcache.config.v0+json"
UNCOMPRESSED = "containerd.io/uncompressed"
CONFIG_MAX = 64 << 20


@dataclass(frozen=True)
class CacheLayer:
    blob: Descriptor  # as stored in the registry
    diff_id: Digest


@dataclass(frozen=True)
class CacheRecord:
    key: str
    config: bytes  # the step image's config, byte for byte
    layer: int | None = None  # index into CacheConfig.layers


@dataclass(frozen=True)
class ExportedStep:
    """A step of this build: its key, its image and the layer it added (blob, diff_id)."""

    key: str
    image: StoredImage
    layer: tuple[Descriptor, Digest] | None


@dataclass(frozen=True)
class CacheConfig:
    layers: tuple[CacheLayer, ...] = ()
    records: dict[str, CacheRecord] = field(default_factory=dict)

    def to_json(self) -> bytes:
        layers = []
        for la in self.layers:
            notes = {"diffID": str(la.diff_id), "mediaType": la.blob.media_type, "size": la.blob.size}
            layers.append({"blob": str(la.blob.digest), "annotations": notes})
        records: list[dict[str, Any]] = []
        for rec in self.records.values():
            r: dict[str, Any] = {"digest": rec.key, "config": rec.config.decode()}
            if rec.layer is not None:
                r["layer"] = rec.layer
            records.append(r)
        return json.dumps({"layers": layers, "records": records}, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, raw: bytes) -> CacheConfig:
        """Raise Invalid for anything but a cache config document."""
        try:
            doc = json.loads(raw)
            layers = tuple(
                CacheLayer(
                    Descriptor(
                        str(la["annotations"]["mediaType"]),
                        Digest.parse(la["blob"]),
                        int(la["annotations"]["size"]),
                    ),
                    Digest.parse(la["annotations"]["diffID"]),
                )
                for la in doc.get("layers") or []
            )
            records = {}
            for r in doc.get("records") or []:
                layer = r.get("layer")
                if layer is not None and not (isinstance(layer, int) and 0 <= layer < len(layers)):
                    raise ValueError(f"record {r.get('digest')}: no layer {layer}")
                records[str(r["digest"])] = CacheRecord(str(r["digest"]), str(r["config"]).encode(), layer)
        except (ValueError, KeyError, TypeError, AttributeError, DockyardError) as exc:
            raise Invalid(f"not a build cache config: {exc}") from exc
        return cls(layers, records)

    @classmethod
    def of_steps(cls, steps: list[ExportedStep], pushed: dict[Digest, Descriptor]) -> CacheConfig:
        """The document for ``steps``; ``pushed`` maps each local layer blob to its pushed form."""
        index: dict[Digest, int] = {}
        layers: list[CacheLayer] = []
        records: dict[str, CacheRecord] = {}
        for s in steps:
            at = None
            if s.layer is not None:
                blob, diff_id = s.layer
                remote = pushed[blob.digest]
                if remote.digest not in index:
                    index[remote.digest] = len(layers)
                    layers.append(CacheLayer(remote, diff_id))
                at = index[remote.digest]
            records[s.key] = CacheRecord(s.key, s.image.config.raw, at)
        return cls(tuple(layers), records)

    def manifest(self, config: Descriptor) -> Manifest:
        """The artifact manifest, given the pushed descriptor of this document."""
        layers = [
            Descriptor(la.blob.media_type, la.blob.digest, la.blob.size, {UNCOMPRESSED: str(la.diff_id)})
            for la in self.layers
        ]
        m = Manifest.build(config, layers)
        doc = json.loads(m.raw)
        doc["artifactType"] = ARTIFACT_TYPE
        raw = json.dumps(doc, separators=(",", ":")).encode()
        return Manifest.parse(raw, mt.OCI_MANIFEST)


def step_layer(image: StoredImage) -> tuple[Descriptor, Digest] | None:
    """The layer the image's last step added, None for a metadata step."""
    history = image.config.history
    if not image.manifest.layers or (history and history[-1].get("empty_layer")):
        return None
    return image.manifest.layers[-1], image.config.diff_ids[-1]


Fetch = Callable[[Descriptor], None]  # download one blob into the store, verified


class RemoteCache:
    """An imported cache: its records, and the caller's download of a blob."""

    def __init__(self, name: str, config: CacheConfig, fetch: Fetch) -> None:
        self.name = name
        self.config = config
        self.fetch = fetch

    def image_for(self, store: Store, key: str, parent: StoredImage | None) -> StoredImage | None:
        """The image of step ``key`` on ``parent``, made in ``store`` from the record;
        None when there is no record or it does not fit the parent."""
        rec = self.config.records.get(key)
        if rec is None:
            return None
        try:
            config = ImageConfig.parse(rec.config)
        except DockyardError:
            return None
        layers = list(parent.manifest.layers) if parent else []
        diff_ids = list(parent.config.diff_ids) if parent else []
        if rec.layer is not None:
            la = self.config.layers[rec.layer]
            layers.append(la.blob)
            diff_ids.append(la.diff_id)
        if list(config.diff_ids) != diff_ids:
            return None
        with store.adding():
            if rec.layer is not None and not store.has_blob(layers[-1].digest):
                self.fetch(layers[-1])  # the caller's download is safe to run from two stages
            cdesc = store.put_bytes(rec.config, mt.OCI_CONFIG)
            manifest = Manifest.build(cdesc, layers)
            store.put_bytes(manifest.raw, mt.OCI_MANIFEST)
            record = {"built": True, "parent": str(parent.id) if parent else ""}
            image, _ = store.add_image(manifest, record=record)
        return image
