"""The local content store: blobs, images, tags and unpacked layer snapshots.

On disk, under the root (``/var/lib/dockyard`` for root, ``--root`` overrides)::

    <root>/
      lock                        flock: exclusive for every read-modify-write of images.json
      gc.lock                     flock: shared while content is added, exclusive while it is removed
      images.json                 {"images": {<image id>: record}, "tags": {<full ref>: <image id>}}
      blobs/sha256/<hex>          content-addressed blobs (manifests, configs, layers as received)
      tmp/                        temp files; renamed into blobs/ only once their digest is verified
                                  (named after their owner process: see imagefmt.tempstate)
      snapshots/<chain hex>/diff  a layer unpacked with overlay-form whiteouts (an overlayfs lowerdir)
      snapshots/<chain hex>/size  bytes of the unpacked layer
      l/<16 hex>                  short symlink -> ../snapshots/<chain hex>/diff, so that the mount
                                  options of deep images fit in one page (Docker overlay2's trick)
      holds/<image hex>/<holder>  a container using an image: rmi refuses without -f

The image ID is the digest of the config (as in Docker).  A record holds the
manifest digest, repo digests and the time it was tagged.  Blobs and
snapshots are reference counted by the images that remain: removing an image
frees exactly what no other image uses.

The layout, locks, index reads and holds live in :class:`imagefmt.catalog.Catalog`
(the lean part a container start imports); :class:`Store` adds the rest.

Concurrency: ``images.json`` is replaced atomically (temp file + rename) under
``lock``, so readers never lock and never see a half-written index.  Adding
content holds ``gc.lock`` shared for the whole operation (so a removal cannot
free a blob that a pull or load is about to reference); removal and prune hold
it exclusively while they sweep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from imagefmt import journal, space, tempstate
from imagefmt import mediatypes as mt
from imagefmt.catalog import Catalog, tree_size
from imagefmt.config import ImageConfig, rfc3339
from imagefmt.digest import CHUNK, Digest, chain_ids
from imagefmt.errors import Conflict, DigestInvalid, Invalid, ManifestInvalid, NotFound
from imagefmt.manifest import Descriptor, Manifest, Platform
from imagefmt.records import NamedTuple
from imagefmt.reference import Reference


@dataclass(frozen=True)
class StoredImage:
    """An image in the store: its manifest, config and names."""

    id: Digest
    manifest: Manifest
    config: ImageConfig
    tags: tuple[Reference, ...] = ()
    repo_digests: tuple[str, ...] = ()
    record: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def familiar_tags(self) -> list[str]:
        return [t.familiar() for t in self.tags]

    @property
    def chain_ids(self) -> list[Digest]:
        return chain_ids(self.config.diff_ids)


class TempUsage(NamedTuple):
    """Temp state in the store (``system df`` counts it in its Build Cache row)."""

    entries: int
    live: int  # owned by a process that is still running
    size: int
    stale: int  # bytes whose owner is gone: what a prune reclaims


_swept: set[Path] = set()  # roots whose dead owners' temp state this process reclaimed


class Store(Catalog):
    """The local store rooted at ``root`` (created on first use): the catalog's
    read side plus adding, unpacking, committing and removing content.

    Opening it reclaims (once per process) the temp state of processes that died
    writing it, e.g. a ``pull`` or ``build`` killed with SIGKILL; never a live
    process's (imagefmt.tempstate tells them apart); ``reclaim=False`` leaves it
    for ``system check`` to report."""

    def __init__(self, root: Path, reclaim: bool = True) -> None:
        super().__init__(root)
        if reclaim and self.root not in _swept:
            _swept.add(self.root)
            tempstate.reclaim(self.tmp, self.snapshots, owned_only=True)

    # ------------------------------------------------------------ blobs ---

    def put_blob(
        self,
        src: BinaryIO,
        expected: Digest | None = None,
        media_type: str = "",
        created: list[Digest] | None = None,
    ) -> Descriptor:
        """Stream ``src`` into the store, hashing as it goes.

        Idempotent and atomic: the blob appears under its digest only after the
        digest matched ``expected`` (DigestInvalid otherwise, leaving nothing).
        A blob that was not in the store before is appended to ``created``."""
        algorithm = expected.algorithm if expected else "sha256"
        if expected and self.has_blob(expected):
            while src.read(CHUNK):  # consume, as a caller streaming a tar expects
                pass
            return Descriptor(media_type, expected, self.blob_path(expected).stat().st_size)
        import hashlib

        h = hashlib.new(algorithm)
        path, out = self.temp_file()
        size = 0
        try:
            with space.reported(self.root, f"writing blob {expected or 'of a new layer'}"), out:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
            got = Digest(algorithm, h.hexdigest())
            if expected and got != expected:
                raise DigestInvalid(f"blob digest mismatch: expected {expected}, got {got}")
            if self.commit_temp(path, got) and created is not None:
                created.append(got)
            return Descriptor(media_type, got, size)
        finally:
            path.unlink(missing_ok=True)

    def commit_temp(self, path: Path, digest: Digest) -> bool:
        """Move a verified temp file into place; False if the blob already existed."""
        dest = self.blob_path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            return False
        os.replace(path, dest)
        return True

    def put_bytes(self, data: bytes, media_type: str = "", created: list[Digest] | None = None) -> Descriptor:
        """Store a small blob (atomic, idempotent); a new one is appended to ``created``."""
        digest = Digest.of(data)
        if not self.has_blob(digest):
            path = self.tmp / tempstate.owned_name("blob", ".part")
            try:
                with space.reported(self.root, f"writing blob {digest}"):
                    path.write_bytes(data)
                if self.commit_temp(path, digest) and created is not None:
                    created.append(digest)
            finally:
                path.unlink(missing_ok=True)
        return Descriptor(media_type, digest, len(data))

    def _load(self, image_id: str, doc: dict[str, Any]) -> StoredImage:
        rec = doc["images"][image_id]
        manifest = Manifest.parse(self.read_blob(Digest.parse(rec["manifest"])))
        config = ImageConfig.parse(self.read_blob(manifest.config.digest))
        tags = tuple(Reference.parse(t) for t, i in sorted(doc["tags"].items()) if i == image_id)
        return StoredImage(
            Digest.parse(image_id), manifest, config, tags, tuple(rec.get("repo_digests", [])), rec
        )

    def images(self) -> list[StoredImage]:
        """Every image, newest first (by the time it was added)."""
        doc = self._read_index()
        ids = sorted(doc["images"], key=lambda i: doc["images"][i].get("added", 0), reverse=True)
        return [self._load(i, doc) for i in ids]

    def image(self, name: str) -> StoredImage:
        """Find an image by name[:tag], name@digest, full ID or an ID prefix.

        Raise NotFound('No such image: NAME') as docker says."""
        doc = self._read_index()
        found = self._find(name, doc)
        if found is None:
            raise NotFound(f"No such image: {_shown(name)}")
        return self._load(found, doc)

    def image_for_platform(self, name: str, platform: Platform) -> StoredImage:
        """``name`` for ``platform``: the member a multi-platform build recorded for it,
        or the image itself when its config is of that platform.  NotFound as docker
        says it, for a missing image or one of another platform."""
        doc = self._read_index()
        found = self._find(name, doc)
        if found is None:
            raise NotFound(f"No such image: {_shown(name)}")
        members: dict[str, str] = doc["images"][found].get("platforms") or {}
        for text, image_id in members.items():
            if Platform.parse(text).matches(platform) and image_id in doc["images"]:
                return self._load(image_id, doc)
        img = self._load(found, doc)
        actual = image_platform(img)
        if not actual.matches(platform):
            raise PlatformMismatch(
                f"image with reference {_shown(name)} was found but does not match the specified "
                f"platform: wanted {platform}, actual: {actual}"
            )
        return img

    def platform_images(self, image: StoredImage) -> list[StoredImage]:
        """The images of the multi-platform build recorded on ``image`` (none for others)."""
        doc = self._read_index()
        members: dict[str, str] = image.record.get("platforms") or {}
        return [self._load(i, doc) for i in members.values() if i in doc["images"]]

    def set_platforms(self, primary: StoredImage, members: Sequence[StoredImage], index: Descriptor) -> None:
        """Record a multi-platform build on its tagged image: the image of each platform
        (kept while ``primary`` is, hidden from ``images`` unless -a) and the OCI index
        listing them, which ``push`` sends under the tag."""
        with self.lock():
            doc = self._read_index()
            rec = doc["images"][str(primary.id)]
            rec["platforms"] = {str(image_platform(m)): str(m.id) for m in members}
            rec["index"] = str(index.digest)
            rec["extra_blobs"] = sorted({*rec.get("extra_blobs", []), index.digest.hex})
            self._write_index(doc)

    def add_image(
        self,
        manifest: Manifest,
        tags: Sequence[Reference] = (),
        repo_digest: Reference | None = None,
        record: dict[str, Any] | None = None,
    ) -> tuple[StoredImage, list[str]]:
        """Register an image whose blobs are all in the store, then tag it.

        ``record`` values (e.g. the builder's ``parent``) are merged into the
        image's record.  Raise ManifestInvalid when a blob is missing or the
        config does not match the layers.  Returns the image and the refs whose
        old image became untagged (docker prints nothing for those)."""
        config_raw = self.read_blob(manifest.config.digest)
        config = ImageConfig.parse(config_raw)
        if len(config.diff_ids) != len(manifest.layers):
            raise ManifestInvalid(
                f"image config lists {len(config.diff_ids)} layers but the manifest {len(manifest.layers)}"
            )
        for d in manifest.layers:
            if not self.has_blob(d.digest):
                raise ManifestInvalid(f"layer {d.digest} is missing from the store")
        if not self.has_blob(manifest.digest):
            self.put_bytes(manifest.raw)
        image_id = str(manifest.config.digest)
        with self.lock():
            doc = self._read_index()
            rec = doc["images"].setdefault(image_id, {"added": time.time()})
            rec["manifest"] = str(manifest.digest)
            if record:
                rec.update(record)
            if repo_digest is not None:
                rd = f"{repo_digest.repository}@{repo_digest.digest}"
                rec["repo_digests"] = sorted({*rec.get("repo_digests", []), rd})
            for t in tags:
                doc["tags"][str(t)] = image_id
                rec["last_tag_time"] = rfc3339()
            self._write_index(doc)
            return self._load(image_id, doc), []

    def tag(self, image: StoredImage, ref: Reference) -> None:
        """Point ``ref`` (a tag) at ``image``; the old image keeps its other names."""
        if ref.tag is None or ref.digest is not None:
            raise Invalid(f"refusing to create a tag with a digest reference: {ref.familiar()}")
        with self.lock():
            doc = self._read_index()
            if str(image.id) not in doc["images"]:
                raise NotFound(f"No such image: {image.id}")
            doc["tags"][str(ref)] = str(image.id)
            doc["images"][str(image.id)]["last_tag_time"] = rfc3339()
            self._write_index(doc)
        self.event("tag", image, ref.familiar())

    def set_record(self, image: StoredImage, **values: Any) -> None:
        with self.lock():
            doc = self._read_index()
            if str(image.id) in doc["images"]:
                doc["images"][str(image.id)].update(values)
                self._write_index(doc)

    # ---------------------------------------------------------- removal ---

    def remove(self, name: str, force: bool = False) -> list[str]:
        """``docker rmi NAME``: untag, and delete the image once it has no name.

        Returns docker's output lines (Untagged: …, Deleted: …).  Raise
        NotFound, or Conflict when the image is in use or has several names
        and was given by ID without ``force``."""
        lines: list[str] = []
        with self.removing(), self.lock():
            doc = self._read_index()
            image_id = self._find(name, doc)
            if image_id is None:
                raise NotFound(f"No such image: {_shown(name)}")
            rec = doc["images"][image_id]
            tags = sorted(t for t, i in doc["tags"].items() if i == image_id)
            by_id = image_id.startswith(f"sha256:{name.removeprefix('sha256:')}")
            by_name = not by_id and "@" not in name
            holders = self.holders(Digest.parse(image_id))
            if by_name and len(tags) > 1:
                ref = str(Reference.parse(name))
                del doc["tags"][ref]
                self._write_index(doc)
                journal.emit(self.root, "image", "untag", image_id, {"name": image_id})
                return [f"Untagged: {Reference.parse(ref).familiar()}"]
            if len(tags) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {image_id[7:19]} (must be forced) - "
                    "image is referenced in multiple repositories"
                )
            if holders and not force:
                what = f'repository reference "{name}"' if by_name else image_id[7:19]  # docker quotes it so
                raise Conflict(
                    f"conflict: unable to remove {what} (must force) - container {holders[0][:12]} "
                    f"is using its referenced image {image_id[7:19]}"
                )
            for t in tags:
                del doc["tags"][t]
                lines.append(f"Untagged: {Reference.parse(t).familiar()}")
            for rd in rec.get("repo_digests", []):
                lines.append(f"Untagged: {Reference.parse(rd).familiar()}")
            for _ in range(len(tags) + len(rec.get("repo_digests", []))):  # docker names the ID in each
                journal.emit(self.root, "image", "untag", image_id, {"name": image_id})
            if holders:  # forced while in use: docker keeps the image, untagged
                self._write_index(doc)
                return lines
            del doc["images"][image_id]
            lines.append(f"Deleted: {image_id}")
            for member in (rec.get("platforms") or {}).values():  # a multi-platform build's other images
                if (
                    member in doc["images"]
                    and member not in doc["tags"].values()
                    and not self.holders(Digest.parse(member))
                ):
                    del doc["images"][member]
                    lines.append(f"Deleted: {member}")
            self._write_index(doc)
            journal.emit(self.root, "image", "delete", image_id, {"name": image_id})
            lines += self._sweep(doc)
        return lines

    def _live(self, doc: dict[str, Any]) -> tuple[set[str], set[str]]:
        """Blobs and snapshot chain hexes that the remaining images use."""
        blobs: set[str] = set()
        chains: set[str] = set()
        for rec in doc["images"].values():
            md = Digest.parse(rec["manifest"])
            blobs.add(md.hex)
            try:
                m = Manifest.parse(self.read_blob(md))
                cfg = ImageConfig.parse(self.read_blob(m.config.digest))
            except (NotFound, Invalid):
                continue
            blobs.update(d.digest.hex for d in m.blobs())
            chains.update(c.hex for c in chain_ids(cfg.diff_ids))
            blobs.update(rec.get("extra_blobs", []))
        return blobs, chains

    def _sweep(self, doc: dict[str, Any]) -> list[str]:
        """Delete blobs and snapshots no image uses (caller holds removing+lock)."""
        live_blobs, live_chains = self._live(doc)
        deleted: list[str] = []
        for snap in sorted(self.snapshots.iterdir()):
            if snap.name not in live_chains and not snap.name.startswith("tmp-"):
                self._drop_snapshot(snap)
                deleted.append(f"Deleted: sha256:{snap.name}")
        for blob in self.blobs.iterdir():
            if blob.name not in live_blobs:
                blob.unlink(missing_ok=True)
        return deleted

    def _drop_snapshot(self, snap: Path) -> None:
        link = snap / "link"
        if link.exists():
            (self.links / link.read_text().strip()).unlink(missing_ok=True)
        trash = self.snapshots / tempstate.owned_name("tmp-del")
        os.replace(snap, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def prune(self, all_images: bool = False) -> tuple[list[str], int]:
        """Remove dangling images (all unused ones with ``all_images``); return lines and bytes freed."""
        before = self.disk_usage()
        lines: list[str] = []
        with self.removing(), self.lock():
            doc = self._read_index()
            tagged = set(doc["tags"].values())
            tagged |= {m for i in tagged for m in (doc["images"].get(i, {}).get("platforms") or {}).values()}
            for image_id in list(doc["images"]):
                if self.holders(Digest.parse(image_id)):
                    continue
                if image_id in tagged and not all_images:
                    continue
                for t in [t for t, i in doc["tags"].items() if i == image_id]:
                    del doc["tags"][t]
                    lines.append(f"untagged: {Reference.parse(t).familiar()}")
                del doc["images"][image_id]
                lines.append(f"deleted: {image_id}")
            self._write_index(doc)
            lines += [ln.lower() for ln in self._sweep(doc)]
        return lines, max(0, before - self.disk_usage()) + self.reclaim_temp()[1]

    def reclaim_temp(self) -> tuple[list[Path], int]:
        """Remove stale temp state: what dead processes left, pull partials no pull
        is writing, and temp state of no known owner over an hour old.  Never what a
        live process writes.  Returns the paths removed and the bytes freed."""
        return tempstate.reclaim(self.tmp, self.snapshots)

    def temp_usage(self) -> TempUsage:
        """What the store's temp state holds, and how much of it is stale."""
        found = list(tempstate.entries(self.tmp, self.snapshots))
        return TempUsage(
            len(found),
            sum(1 for e in found if not e.stale),
            sum(e.size for e in found),
            sum(e.size for e in found if e.stale),
        )

    def disk_usage(self) -> int:
        """Bytes of the blobs and snapshots (temp state not included)."""
        total = 0
        for p in self.blobs.iterdir():
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        for snap in self.snapshots.iterdir():
            if not snap.name.startswith("tmp-"):
                total += self.snapshot_size(snap.name)
        return total

    # -------------------------------------------------------- snapshots ---

    def image_size(self, image: StoredImage) -> int:
        """Bytes of the image's unpacked layers (docker's SIZE), or of its blobs if not unpacked."""
        total = 0
        for c, d in zip(image.chain_ids, image.manifest.layers, strict=False):
            unpacked = (self.snapshots / c.hex / "size").exists()
            total += self.snapshot_size(c.hex) if unpacked else d.size
        return total

    def lowerdirs(self, image: StoredImage) -> list[Path]:
        """Overlay lowerdirs of ``image``, uppermost first; layers are unpacked on demand."""
        self.ensure_snapshots(image)
        return [self.snapshot_dir(c) for c in reversed(image.chain_ids)]

    def short_lowerdirs(self, image: StoredImage) -> list[str]:
        """Like lowerdirs, as ``l/<id>`` paths relative to the store root."""
        self.ensure_snapshots(image)
        return [f"l/{self._link_name(c)}" for c in reversed(image.chain_ids)]

    def ensure_snapshots(self, image: StoredImage, created: list[Digest] | None = None) -> None:
        """Unpack every layer of ``image`` that has no snapshot yet (atomic per layer).

        Verifies each layer against its diff_id; raise Invalid (UnsafeLayer for
        hostile tars).  Chain IDs of new snapshots are appended to ``created``."""
        chains = image.chain_ids
        with self.adding():
            for chain, diff_id, desc in zip(
                chains, image.config.diff_ids, image.manifest.layers, strict=True
            ):
                if self.unpack_layer(chain, diff_id, desc) and created is not None:
                    created.append(chain)

    def discard(self, blobs: list[Digest], chains: list[Digest]) -> None:
        """Roll back what a failed operation added (blobs and snapshots no image uses)."""
        with self.lock():
            live_blobs, live_chains = self._live(self._read_index())
        for c in chains:
            if c.hex not in live_chains and (self.snapshots / c.hex).exists():
                self._drop_snapshot(self.snapshots / c.hex)
        for d in blobs:
            if d.hex not in live_blobs:
                self.blob_path(d).unlink(missing_ok=True)

    def unpack_layer(self, chain: Digest, diff_id: Digest, desc: Descriptor) -> bool:
        """Unpack the layer blob ``desc`` as the snapshot of ``chain``, unless it exists.

        Verified (the tar must hash to ``diff_id``, else DigestInvalid and no
        snapshot) and atomic; layers of one image may be unpacked in any order
        and in parallel.  The caller holds :meth:`adding`.  True when unpacked now."""
        if self.has_snapshot(chain):
            return False
        self._unpack(chain, diff_id, desc)
        return True

    def _unpack(self, chain: Digest, diff_id: Digest, desc: Descriptor) -> None:
        from imagefmt.compress import open_reader
        from imagefmt.digest import HashingReader
        from imagefmt.layer import extract_layer

        work = self.snapshots / tempstate.owned_name("tmp")
        what = f"unpacking layer {desc.digest}"
        try:
            with space.reported(self.root, what), self.open_blob(desc.digest) as blob:
                (work / "diff").mkdir(parents=True)
                comp = mt.compression(desc.media_type) or None
                if comp == "none" and desc.digest == diff_id:
                    # blobs are verified when stored: an uncompressed layer is its own diff_id
                    guarded = space.GuardedReader(blob, self.root, what)
                    stats = extract_layer(guarded, work / "diff", mode="overlay")
                else:
                    # the free space is checked as the layer expands: a gzip bomb stops short of a full disk
                    hr = HashingReader(space.GuardedReader(open_reader(blob, comp), self.root, what))  # type: ignore[arg-type]
                    stats = extract_layer(hr, work / "diff", mode="overlay")
                    hr.drain()
                    hr.verify(diff_id, f"layer {desc.digest}")
                self._install_snapshot(work, chain, stats.bytes)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)

    def _install_snapshot(self, work: Path, chain: Digest, size: int) -> None:
        (work / "size").write_text(str(size))
        name = self._link_name(chain)
        (work / "link").write_text(name)
        final = self.snapshots / chain.hex
        try:
            os.rename(work, final)
        except OSError:  # another process unpacked it first
            return
        link = self.links / name
        link.unlink(missing_ok=True)
        link.symlink_to(f"../snapshots/{chain.hex}/diff")

    def adopt_snapshot(self, chain: Digest, diff: Path, size: int) -> None:
        """Make ``diff`` (e.g. a finished container upperdir, same filesystem) the
        snapshot for ``chain`` by renaming it: no copy, no re-extraction."""
        if (self.snapshots / chain.hex / "link").exists():
            return
        work = self.snapshots / tempstate.owned_name("tmp")
        work.mkdir()
        os.rename(diff, work / "diff")
        self._install_snapshot(work, chain, size)
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)

    # ----------------------------------------------------------- commit ---

    def put_layer_file(
        self, tar_path: Path, created: list[Digest] | None = None
    ) -> tuple[Descriptor, Digest]:
        """Store an uncompressed layer tar file as a blob; return (descriptor, diff_id)."""
        with open(tar_path, "rb") as f:
            desc = self.put_blob(f, media_type=mt.OCI_LAYER, created=created)
        return desc, desc.digest

    def commit_image(
        self,
        parent: StoredImage | None,
        layer_tar: Path | None,
        config_doc: dict[str, Any],
        history: dict[str, Any],
        tag: Reference | None = None,
        upperdir: Path | None = None,
        unpack: bool = False,
    ) -> StoredImage:
        """Make a new image: ``parent``'s layers + ``layer_tar`` (uncompressed; None
        for a metadata-only step), with ``config_doc``'s runtime config and one
        more history entry.  With ``upperdir`` given, that directory becomes the
        new layer's snapshot (renamed, not copied).  With ``unpack``, every layer
        is unpacked before the image is registered: if one cannot be (Invalid,
        DiskFull…), nothing is registered and what this call added is removed."""
        created: list[Digest] = []
        chains: list[Digest] = []
        try:
            return self._commit_image(
                parent, layer_tar, config_doc, history, tag, upperdir, unpack, created, chains
            )
        except BaseException:
            self.discard(created, chains)
            raise

    def _commit_image(
        self,
        parent: StoredImage | None,
        layer_tar: Path | None,
        config_doc: dict[str, Any],
        history: dict[str, Any],
        tag: Reference | None,
        upperdir: Path | None,
        unpack: bool,
        created: list[Digest],
        chains: list[Digest],
    ) -> StoredImage:
        with self.adding():
            layers = list(parent.manifest.layers) if parent else []
            diff_ids = parent.config.diff_ids if parent else []
            doc = (
                parent.config.edit()
                if parent
                else {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
            )
            hist = list(doc.get("history") or [])
            if layer_tar is not None:
                desc, diff_id = self.put_layer_file(layer_tar, created)
                layers.append(desc)
                diff_ids = [*diff_ids, diff_id]
            else:
                history = {**history, "empty_layer": True}
            hist.append(history)
            doc.update({k: v for k, v in config_doc.items() if k not in ("rootfs", "history")})
            doc["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in diff_ids]}
            doc["history"] = hist
            doc.setdefault("created", history.get("created") or rfc3339())
            config = ImageConfig.from_dict(doc)
            cdesc = self.put_bytes(config.raw, mt.OCI_CONFIG, created)
            manifest = Manifest.build(cdesc, layers)
            self.put_bytes(manifest.raw, mt.OCI_MANIFEST, created)
            if upperdir is not None and layer_tar is not None:
                chain = chain_ids(diff_ids)[-1]
                self.adopt_snapshot(chain, upperdir, tree_size(upperdir))
            if unpack:
                self.ensure_snapshots(StoredImage(cdesc.digest, manifest, config), chains)
            # docker's Parent (image inspect): the image this one was made on
            image, _ = self.add_image(
                manifest, [tag] if tag else [], record={"parent": str(parent.id)} if parent else None
            )
            if tag is not None:
                self.event("tag", image, tag.familiar())
            return image

    # ----------------------------------------------------------- events ---

    def event(self, action: str, image: StoredImage | None, name: str, actor: str = "") -> None:
        """An image event in the store's journal as docker's LogImageEvent makes it:
        the image's labels and ``name``; its actor the image ID (or ``actor``: pull
        and push name the reference)."""
        labels = dict((image.config.config.get("Labels") or {}) if image is not None else {})
        journal.emit(
            self.root, "image", action, actor or (str(image.id) if image else name), {**labels, "name": name}
        )


def _shown(name: str) -> str:
    """A name as docker's "No such image" shows it: ``busybox:latest`` for ``busybox``."""
    try:
        return Reference.parse(name).familiar()
    except Invalid:
        return name


class PlatformMismatch(NotFound):
    """The image exists, of another platform than the one asked for."""


def image_platform(img: StoredImage) -> Platform:
    """The platform an image's config declares (linux/amd64 when it says nothing)."""
    return Platform(
        img.config.os or "linux", img.config.architecture or "amd64", img.config.doc.get("variant") or ""
    )
