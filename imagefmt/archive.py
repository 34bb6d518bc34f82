"""``save`` and ``load`` tarballs: Docker's formats and OCI layouts.

``save`` writes what Docker 25+ writes: an OCI image layout (``oci-layout``,
``index.json``, ``blobs/sha256/…``) plus Docker's ``manifest.json`` and
``repositories``, so ``docker load`` (any version), ``skopeo copy
docker-archive:`` and ``oci-archive:`` all read it.  Blobs are written as they
are stored, so ``load(save(x))`` keeps the manifest digest.

``load`` reads, in one streaming pass (stdin and gzip input work): Docker ≤24
tarballs (``<id>.json``, ``<v1 id>/layer.tar``, ``manifest.json``), Docker 25+
tarballs and plain OCI layout tarballs.  Nothing is registered until every
blob is verified; a failed load removes the blobs it added.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from imagefmt import mediatypes as mt
from imagefmt import space
from imagefmt.config import ImageConfig
from imagefmt.digest import Digest
from imagefmt.errors import DigestInvalid, DiskFull, DockyardError, Invalid, ManifestInvalid
from imagefmt.manifest import Descriptor, Index, Manifest, Platform, parse_any
from imagefmt.reference import Reference
from imagefmt.store import Store, StoredImage

Progress = Callable[[int], None]
# Small JSON members are held in memory; anything larger must be a blob.
_MAX_JSON = 16 << 20


# ------------------------------------------------------------------ save ---


def save(
    store: Store,
    images: list[tuple[StoredImage, list[Reference]]],
    dst: BinaryIO,
    progress: Progress | None = None,
) -> None:
    """Write ``images`` (each with the names to record) as one tarball to ``dst``."""
    from imagefmt.tario import TarWriter

    w = TarWriter(dst)
    w.add_dir("blobs/", mtime=0)
    w.add_dir("blobs/sha256/", mtime=0)
    written: set[Digest] = set()
    index_entries: list[dict[str, Any]] = []
    manifest_json: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for image, refs in images:
        m = image.manifest
        store.event("save", image, str(image.id))
        for digest in [m.config.digest, *(d.digest for d in m.layers), m.digest]:
            if digest in written:
                continue
            written.add(digest)
            _add_blob(w, store, digest, progress)
        desc = {"mediaType": m.media_type, "digest": str(m.digest), "size": len(m.raw)}
        for ref in refs or [None]:  # type: ignore[list-item]
            entry = dict(desc)
            if ref is not None:
                entry["annotations"] = {
                    "io.containerd.image.name": str(ref),
                    "org.opencontainers.image.ref.name": ref.tag or "latest",
                }
                repositories.setdefault(ref.familiar_repository, {})[ref.tag or "latest"] = image.id.hex
            index_entries.append(entry)
        manifest_json.append(
            {
                "Config": f"blobs/sha256/{m.config.digest.hex}",
                "RepoTags": [r.familiar() for r in refs] or None,
                "Layers": [f"blobs/sha256/{d.digest.hex}" for d in m.layers],
            }
        )
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": index_entries}
    w.add_bytes("index.json", _json(index), mtime=0)
    w.add_bytes("manifest.json", _json(manifest_json), mtime=0)
    w.add_bytes("oci-layout", _json({"imageLayoutVersion": "1.0.0"}), mtime=0)
    if repositories:
        w.add_bytes("repositories", _json(repositories), mtime=0)
    w.close()


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _add_blob(w: Any, store: Store, digest: Digest, progress: Progress | None) -> None:
    from imagefmt.tario import TarEntry

    with store.open_blob(digest) as f:
        size = os.fstat(f.fileno()).st_size
        entry = TarEntry(name=f"blobs/sha256/{digest.hex}", type="file", mode=0o644, size=size, mtime=0)
        w.add_entry(entry, f)
    if progress:
        progress(size)


# ------------------------------------------------------------------ load ---


@dataclass
class _Members:
    """What a tarball holds after one pass: blobs put into the store, small JSON kept."""

    json_files: dict[str, bytes] = field(default_factory=dict)
    blob_of: dict[str, Digest] = field(default_factory=dict)  # member path -> stored digest
    added: list[Digest] = field(default_factory=list)  # blobs that were not in the store before


@dataclass(frozen=True)
class Loaded:
    image: StoredImage
    names: list[Reference]


def load(store: Store, src: BinaryIO, progress: Progress | None = None) -> list[Loaded]:
    """Load every image of a save tarball; raise Invalid with a one-line reason.

    On failure the store is as before: blobs this load added are removed."""
    from imagefmt.compress import open_reader

    with store.adding():
        members = _Members()
        snapshots: list[Digest] = []
        try:
            _read_members(store, open_reader(src), members, progress)
            plan = _plan(store, members)
            for manifest, _names in plan:
                _check_media_types(manifest)
                store.ensure_snapshots(_unregistered(store, manifest), snapshots)
            loaded = [Loaded(store.add_image(m, names)[0], names) for m, names in plan]
            for item in loaded:
                store.event("load", item.image, str(item.image.id))
            return loaded
        except DockyardError:
            store.discard(members.added, snapshots)
            raise
        except (OSError, EOFError, ValueError) as err:
            store.discard(members.added, snapshots)
            if isinstance(err, OSError) and err.errno in space.FULL:  # a full disk is no bad archive
                raise DiskFull(space.full_message(store.root, "load")) from err
            raise Invalid(f"load: invalid archive: {err}") from err


def _unregistered(store: Store, manifest: Manifest) -> StoredImage:
    config = ImageConfig.parse(_blob(store, manifest.config.digest, "config"))
    if len(config.diff_ids) != len(manifest.layers):
        raise ManifestInvalid(
            f"load: image config lists {len(config.diff_ids)} layers but its manifest {len(manifest.layers)}"
        )
    return StoredImage(manifest.config.digest, manifest, config)


def _norm(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _read_members(store: Store, src: BinaryIO, members: _Members, progress: Progress | None) -> None:
    from imagefmt.tario import iter_tar

    seen_any = False
    for entry, content in iter_tar(src):
        seen_any = True
        name = _norm(entry.name)
        if entry.type != "file" or not name:
            continue
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "blobs":
            expected = Digest.parse(f"{parts[1]}:{parts[2]}")
            try:
                desc = store.put_blob(content, expected, created=members.added)
            except DigestInvalid as err:
                raise Invalid(f"load: {name}: {err}: the archive is corrupt") from err
            members.blob_of[name] = desc.digest
            if progress:
                progress(entry.size)
        elif name.endswith(".tar") or entry.size > _MAX_JSON:
            desc = store.put_blob(content, created=members.added)
            members.blob_of[name] = desc.digest
            if progress:
                progress(entry.size)
        else:
            members.json_files[name] = content.read()
    if not seen_any:
        raise Invalid("load: empty archive: the file is not a tarball from 'save'")


def _plan(store: Store, m: _Members) -> list[tuple[Manifest, list[Reference]]]:
    if "index.json" in m.json_files:
        plan = _plan_oci(store, m)
        if plan:
            return plan
    if "manifest.json" in m.json_files:
        return _plan_docker(store, m)
    raise Invalid("load: invalid archive: it holds neither manifest.json nor an OCI index.json")


def _plan_oci(store: Store, m: _Members) -> list[tuple[Manifest, list[Reference]]]:
    index = Index.parse(m.json_files["index.json"], mt.OCI_INDEX)
    by_digest: dict[Digest, list[Reference]] = {}
    order: list[Digest] = []
    for desc in index.manifests:
        manifest_desc = _resolve_platform(store, desc)
        if manifest_desc is None:
            continue
        if manifest_desc.digest not in by_digest:
            by_digest[manifest_desc.digest] = []
            order.append(manifest_desc.digest)
        ref = _name_of(desc)
        if ref is not None and ref not in by_digest[manifest_desc.digest]:
            by_digest[manifest_desc.digest].append(ref)
    return [(Manifest.parse(_blob(store, d, "manifest")), by_digest[d]) for d in order]


def _resolve_platform(store: Store, desc: Descriptor, platform: Platform | None = None) -> Descriptor | None:
    raw = _blob(store, desc.digest, "manifest")
    doc = parse_any(raw, desc.media_type)
    if isinstance(doc, Manifest):
        return Descriptor(doc.media_type, desc.digest, len(raw))
    chosen = doc.select(platform or Platform())
    return _resolve_platform(store, chosen, platform)


def _name_of(desc: Descriptor) -> Reference | None:
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = desc.annotations.get(key, "")
        if value and ("/" in value or ":" in value or key.startswith("io.")):
            try:
                return Reference.parse(value)
            except Invalid:
                continue
    return None


def _blob(store: Store, digest: Digest, what: str) -> bytes:
    if not store.has_blob(digest):
        raise Invalid(f"load: invalid archive: {what} blob {digest} is missing")
    return store.read_blob(digest)


def _plan_docker(store: Store, m: _Members) -> list[tuple[Manifest, list[Reference]]]:
    try:
        entries = json.loads(m.json_files["manifest.json"])
    except ValueError as err:
        raise Invalid(f"load: invalid archive: manifest.json: {err}") from err
    if not isinstance(entries, list):
        raise Invalid("load: invalid archive: manifest.json is not a list")
    out = []
    for e in entries:
        config_path = _norm(str(e.get("Config", "")))
        raw = m.json_files.get(config_path)
        if raw is None and config_path in m.blob_of:
            raw = store.read_blob(m.blob_of[config_path])
        if raw is None:
            raise Invalid(f"load: invalid archive: config {config_path!r} is missing")
        config = ImageConfig.parse(raw)
        cdesc = store.put_bytes(raw, mt.OCI_CONFIG)
        layers = _docker_layers(store, m, [_norm(p) for p in e.get("Layers") or []], config.diff_ids)
        manifest = Manifest.build(cdesc, layers)
        store.put_bytes(manifest.raw, mt.OCI_MANIFEST)
        names = [Reference.parse(t) for t in e.get("RepoTags") or []]
        out.append((manifest, names))
    return out


def _docker_layers(store: Store, m: _Members, paths: list[str], diff_ids: list[Digest]) -> list[Descriptor]:
    if len(paths) != len(diff_ids):
        raise Invalid(f"load: invalid archive: {len(paths)} layers but the config lists {len(diff_ids)}")
    out = []
    for path, diff_id in zip(paths, diff_ids, strict=True):
        digest = m.blob_of.get(path)
        if digest is None:
            raise Invalid(f"load: invalid archive: layer {path!r} is missing")
        with store.open_blob(digest) as f:
            head = f.read(512)
        from imagefmt.compress import detect

        comp = detect(head)
        if comp == "none" and digest != diff_id:
            raise Invalid(f"load: layer {path} does not match its diff_id {diff_id} (got {digest})")
        media = {"none": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}.get(comp)
        if media is None:
            raise Invalid(f"load: layer {path} is compressed with {comp}, which layers cannot use")
        out.append(Descriptor(media, digest, store.blob_path(digest).stat().st_size))
    return out


def _check_media_types(manifest: Manifest) -> None:
    for d in manifest.blobs():
        if not mt.is_layer(d.media_type) and d is not manifest.config:
            raise Invalid(f"load: unknown layer media type {d.media_type!r} for {d.digest}: cannot unpack it")
