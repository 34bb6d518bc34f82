"""``system check``: the store's consistency check (fsck), and its repair.

What is checked, under the store's exclusive ``gc.lock`` (so adds in progress
finish first and nothing is added meanwhile):

- ``images.json``: readable; every record names a manifest; every tag points at a record;
- every blob under ``blobs/sha256``: its content hashes to its name;
- every image: its manifest, config and layer blobs are present and verified, the
  config is the image ID and lists as many layers as the manifest;
- blobs and snapshots that no image uses (what a removal sweeps);
- every snapshot: complete (``diff/``, ``size``, ``link``) and linked from ``l/``;
  every ``l/`` link resolves;
- holds of images that are gone, and stale temp state (see imagefmt.tempstate).

A snapshot's files are not re-hashed (a layer can be unpacked again from its blob,
which is verified); a missing snapshot is no problem either (unpacked on demand).

``repair`` removes what is corrupt, unreferenced or stale, untags the images whose
content is gone and deletes their records (an image a container holds stays,
untagged, as ``rmi -f`` leaves it), recreates missing ``l/`` links, and then
sweeps what no image uses any more.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagefmt import tempstate
from imagefmt.config import ImageConfig
from imagefmt.digest import Digest
from imagefmt.errors import DockyardError
from imagefmt.manifest import Manifest
from imagefmt.reference import Reference
from imagefmt.store import Store


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the store: what, why, and what a repair does about it."""

    what: str
    why: str
    fix: str  # "" when a repair cannot fix it

    def line(self, repaired: bool = False) -> str:
        done = f": {self.fix}" if repaired and self.fix else (": not repaired" if repaired else "")
        return f"{self.what}: {self.why}{done}"


@dataclass
class _Check:
    store: Store
    problems: list[Problem] = field(default_factory=list)
    bad_blobs: set[str] = field(default_factory=set)  # hexes of blobs missing or corrupt
    verified: dict[str, bool] = field(default_factory=dict)  # hex -> content matches

    def add(self, what: str, why: str, fix: str) -> None:
        self.problems.append(Problem(what, why, fix))


def check(store: Store, repair: bool = False) -> list[Problem]:
    """Check the store; with ``repair``, fix what can be fixed.  Returns the problems
    found (before the repair).  Raise nothing for a damaged store: damage is reported."""
    with store.removing():
        c = _Check(store)
        doc = _index(c)
        if doc is None:
            return c.problems
        _blobs(c)
        broken = _images(c, doc)
        dangling = _tags(c, doc)
        live_blobs, live_chains = store._live(doc)
        _unreferenced(c, live_blobs, live_chains)
        snaps = _snapshots(c, live_chains)
        links = _links(c)
        holds = _holds(c, doc)
        temps = _temps(c)
        if repair:
            _repair(c, doc, broken, dangling, snaps, links, holds, temps)
    return c.problems


# ------------------------------------------------------------------ checks ---


def _index(c: _Check) -> dict[str, Any] | None:
    try:
        doc = c.store._read_index()
    except (OSError, ValueError) as err:
        c.add("images.json", f"unreadable ({err})", "")
        return None
    if not isinstance(doc.get("images"), dict) or not isinstance(doc.get("tags"), dict):
        c.add("images.json", "not an index of images and tags", "")
        return None
    return doc


def _verify(c: _Check, hexd: str) -> bool:
    """True when blobs/sha256/HEX exists and hashes to HEX (each blob hashed once)."""
    if hexd not in c.verified:
        try:
            with open(c.store.blobs / hexd, "rb") as f:
                c.verified[hexd] = hashlib.file_digest(f, "sha256").hexdigest() == hexd
        except OSError:
            c.verified[hexd] = False
    return c.verified[hexd]


def _blobs(c: _Check) -> None:
    for p in sorted(c.store.blobs.iterdir()):
        if len(p.name) != 64 or any(ch not in "0123456789abcdef" for ch in p.name) or not p.is_file():
            c.add(f"blobs/sha256/{p.name}", "not a blob", "removed")
            c.bad_blobs.add(p.name)
        elif not _verify(c, p.name):
            c.add(f"blob sha256:{p.name}", "content does not match its digest", "removed")
            c.bad_blobs.add(p.name)


def _names(doc: dict[str, Any], image_id: str) -> str:
    tags = sorted(Reference.parse(t).familiar() for t, i in doc["tags"].items() if i == image_id)
    return f"image {image_id[7:19]}" + (f" ({', '.join(tags)})" if tags else "")


def _images(c: _Check, doc: dict[str, Any]) -> dict[str, str]:
    """Images whose content is gone or wrong: {image ID: why}."""
    broken: dict[str, str] = {}
    for image_id, rec in sorted(doc["images"].items()):
        why = _image_problem(c, image_id, rec)
        if why:
            broken[image_id] = why
            held = c.store.holders(Digest.parse(image_id)) if image_id.startswith("sha256:") else []
            c.add(
                _names(doc, image_id), why, "untagged (a container uses it)" if held else "untagged, deleted"
            )
    return broken


def _blob_gone(c: _Check, digest: Digest) -> bool:
    return digest.algorithm != "sha256" or digest.hex in c.bad_blobs or not _verify(c, digest.hex)


def _image_problem(c: _Check, image_id: str, rec: Any) -> str:
    try:
        if not isinstance(rec, dict):
            return "its record is not an object"
        md = Digest.parse(str(rec.get("manifest", "")))
        if _blob_gone(c, md):
            return f"its manifest blob {md} is missing or corrupt"
        manifest = Manifest.parse(c.store.read_blob(md))
        if str(manifest.config.digest) != image_id:
            return f"its manifest names config {manifest.config.digest}, not the image ID"
        if _blob_gone(c, manifest.config.digest):
            return f"its config blob {manifest.config.digest} is missing or corrupt"
        config = ImageConfig.parse(c.store.read_blob(manifest.config.digest))
        if len(config.diff_ids) != len(manifest.layers):
            return f"its config lists {len(config.diff_ids)} layers, its manifest {len(manifest.layers)}"
        for d in manifest.layers:
            if _blob_gone(c, d.digest):
                return f"its layer blob {d.digest} is missing or corrupt"
    except DockyardError as err:
        return f"unreadable ({err})"
    return ""


def _tags(c: _Check, doc: dict[str, Any]) -> list[str]:
    dangling = []
    for tag, image_id in sorted(doc["tags"].items()):
        if image_id not in doc["images"]:
            dangling.append(tag)
            c.add(
                f"tag {tag}", f"points to image {str(image_id)[7:19]}, which is not in the store", "removed"
            )
    return dangling


def _unreferenced(c: _Check, live_blobs: set[str], live_chains: set[str]) -> None:
    """Blobs and snapshots no image uses (those of broken images are swept by the repair)."""
    for p in sorted(c.store.blobs.iterdir()):
        if p.name not in live_blobs and p.name not in c.bad_blobs:
            c.add(f"blob sha256:{p.name}", "used by no image", "removed")
    for p in sorted(c.store.snapshots.iterdir()):
        if not p.name.startswith("tmp-") and p.name not in live_chains:
            c.add(f"snapshot {p.name[:12]}", "used by no image", "removed")


def _snapshots(c: _Check, live_chains: set[str]) -> dict[str, str]:
    """Snapshots in use that are incomplete ("drop") or whose link is missing ("link")."""
    out: dict[str, str] = {}
    for p in sorted(c.store.snapshots.iterdir()):
        if p.name.startswith("tmp-") or p.name not in live_chains:
            continue
        missing = [n for n in ("diff", "size", "link") if not (p / n).exists()]
        if missing:
            out[p.name] = "drop"
            c.add(f"snapshot {p.name[:12]}", f"incomplete (no {', '.join(missing)})", "removed")
            continue
        link = c.store.links / p.name[:16]
        target = os.readlink(link) if link.is_symlink() else None
        if target != f"../snapshots/{p.name}/diff":
            out[p.name] = "link"
            c.add(f"snapshot {p.name[:12]}", f"its link l/{p.name[:16]} is missing", "link recreated")
    return out


def _links(c: _Check) -> list[Path]:
    dangling = []
    for p in sorted(c.store.links.iterdir()):
        if not p.is_symlink() or not p.exists():
            dangling.append(p)
            c.add(f"l/{p.name}", "a link to no snapshot", "removed")
    return dangling


def _holds(c: _Check, doc: dict[str, Any]) -> list[Path]:
    stale = []
    for p in sorted(c.store.holds.iterdir()):
        if f"sha256:{p.name}" not in doc["images"]:
            stale.append(p)
            c.add(f"holds/{p.name[:12]}", "holds an image that is not in the store", "removed")
    return stale


def _temps(c: _Check) -> list[Path]:
    stale = []
    for e in tempstate.entries(c.store.tmp, c.store.snapshots):
        if e.stale:
            stale.append(e.path)
            owner = "its owner is gone" if tempstate.owner_alive(e.path.name) is False else "left over"
            rel = e.path.relative_to(c.store.root)
            c.add(str(rel), f"stale temp state ({owner}), {e.size} bytes", "removed")
    return stale


# ------------------------------------------------------------------ repair ---


def _repair(
    c: _Check,
    doc: dict[str, Any],
    broken: dict[str, str],
    dangling: list[str],
    snaps: dict[str, str],
    links: list[Path],
    holds: list[Path],
    temps: list[Path],
) -> None:
    store = c.store
    for hexd in c.bad_blobs:
        tempstate.remove(store.blobs / hexd)
    with store.lock():
        doc = store._read_index()
        for image_id in broken:
            for t in [t for t, i in doc["tags"].items() if i == image_id]:
                del doc["tags"][t]
            if not (image_id.startswith("sha256:") and store.holders(Digest.parse(image_id))):
                doc["images"].pop(image_id, None)
        for tag in dangling:
            doc["tags"].pop(tag, None)
        store._write_index(doc)
        store._sweep(doc)
    for chain, what in snaps.items():
        snap = store.snapshots / chain
        if what == "drop" and snap.exists():
            store._drop_snapshot(snap)
            link = store.links / chain[:16]
            if link.is_symlink() and os.readlink(link) == f"../snapshots/{chain}/diff":
                link.unlink()
        elif what == "link":
            link = store.links / chain[:16]
            tempstate.remove(link)
            link.symlink_to(f"../snapshots/{chain}/diff")
            (snap / "link").write_text(chain[:16])
    for p in links:
        p.unlink(missing_ok=True)
    for p in holds:
        shutil.rmtree(p, ignore_errors=True)
    for p in temps:
        tempstate.remove(p)
