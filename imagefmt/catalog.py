"""The store's on-disk layout and its read side: what starting a container needs.

:class:`Catalog` owns the paths under the store root (see :mod:`imagefmt.store`
for the layout), its locks, the ``images.json`` index and name lookup, holds,
and the snapshot links; :class:`imagefmt.store.Store` builds on it to add,
unpack and remove content.  This module parses no manifests and imports
neither dataclasses nor hashlib: ``dockyard run`` resolves its image through
:meth:`Catalog.launchable` alone, and every millisecond of import is a
millisecond of container start-up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from imagefmt.digest import Digest, chain_ids
from imagefmt.errors import BlobUnknown, Invalid
from imagefmt.records import TYPE_CHECKING, NamedTuple
from imagefmt.reference import Reference

if TYPE_CHECKING:
    from typing import IO, Any, BinaryIO


def unique() -> str:
    """A random name part for temp files (uuid4's randomness, without importing uuid)."""
    return os.urandom(16).hex()


def tree_size(path: os.PathLike[str] | str) -> int:
    """Bytes of the files under ``path`` (as docker sizes layers and upperdirs);
    files that vanish meanwhile count as nothing."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class Launchable(NamedTuple):
    """An image ready to run: its ID, config document and overlay lowerdirs
    (``l/<link>`` paths relative to the store root, uppermost first)."""

    id: Digest
    config: dict[str, Any]
    lowerdirs: tuple[str, ...]


class Catalog:
    """The store rooted at ``root`` (created on first use), read side."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.tmp = self.root / "tmp"
        self.snapshots = self.root / "snapshots"
        self.links = self.root / "l"
        self.holds = self.root / "holds"
        self.index_path = self.root / "images.json"
        try:
            for d in (self.blobs, self.tmp, self.snapshots, self.links, self.holds):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            reason = (err.strerror or str(err)).lower()
            raise Invalid(
                f"cannot use {self.root} as the store: {err.filename}: {reason};"
                " give --root (or DOCKYARD_ROOT) a directory of its own"
            ) from None

    # ------------------------------------------------------------ locks ---

    @contextlib.contextmanager
    def _flock(self, name: str, mode: int) -> Iterator[None]:
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock for a short read-modify-write of the index."""
        return self._flock("lock", fcntl.LOCK_EX)

    def adding(self) -> contextlib.AbstractContextManager[None]:
        """Held (shared) while content is added: removals wait for it."""
        return self._flock("gc.lock", fcntl.LOCK_SH)

    def removing(self) -> contextlib.AbstractContextManager[None]:
        return self._flock("gc.lock", fcntl.LOCK_EX)

    # ------------------------------------------------------------ blobs ---

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def has_blob(self, digest: Digest) -> bool:
        return self.blob_path(digest).exists()

    def open_blob(self, digest: Digest) -> BinaryIO:
        """Open a blob for reading; raise BlobUnknown."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} not found in the local store") from None

    def read_blob(self, digest: Digest) -> bytes:
        with self.open_blob(digest) as f:
            return f.read()

    def temp_file(self) -> tuple[Path, IO[bytes]]:
        """A new temp file in the store (same filesystem as blobs/, for rename), named
        after this process so that it is reclaimed if the process dies (imagefmt.tempstate)."""
        from imagefmt.tempstate import owned_name

        path = self.tmp / owned_name("blob", ".part")
        return path, open(path, "wb")

    # ------------------------------------------------------------ index ---

    def _read_index(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.index_path.read_bytes())
        except FileNotFoundError:
            doc = {}
        doc.setdefault("images", {})
        doc.setdefault("tags", {})
        return doc

    def _write_index(self, doc: dict[str, Any]) -> None:
        from imagefmt.tempstate import owned_name

        tmp = self.tmp / owned_name("index", ".json")
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.index_path)

    def _find(self, name: str, doc: dict[str, Any]) -> str | None:
        """The image ID that ``name`` (name[:tag], name@digest, ID or ID prefix) denotes."""
        images: dict[str, Any] = doc["images"]
        hexpart = name.removeprefix("sha256:")
        if len(hexpart) >= 1 and all(c in "0123456789abcdef" for c in hexpart):
            if name.startswith("sha256:") and f"sha256:{hexpart}" in images:
                return f"sha256:{hexpart}"
            matches = [i for i in images if i[7:].startswith(hexpart)]
            if len(matches) == 1 and (len(hexpart) >= 3 or name.startswith("sha256:")):
                return matches[0]
        try:
            ref = Reference.parse(name)
        except Invalid:
            return None
        if ref.digest is not None:
            for image_id, rec in images.items():
                if any(
                    rd.endswith(f"@{ref.digest}") and rd.startswith(ref.repository + "@")
                    for rd in rec.get("repo_digests", [])
                ) or rec.get("manifest") == str(ref.digest):
                    return str(image_id)
            return None
        return doc["tags"].get(str(ref))  # type: ignore[no-any-return]

    def launchable(self, name: str) -> Launchable | None:
        """The image ``name`` denotes, when it exists and every layer is unpacked
        (the image ID is its config's digest, so no manifest is read); None
        otherwise, and :meth:`imagefmt.store.Store.image` says why or unpacks."""
        image_id = self._find(name, self._read_index())
        if image_id is None:
            return None
        digest = Digest.parse(image_id)
        try:
            config: dict[str, Any] = json.loads(self.read_blob(digest))
            diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]
        except (BlobUnknown, Invalid, ValueError, KeyError, TypeError):
            return None
        chains = chain_ids(diff_ids)
        if not all(self.has_snapshot(c) for c in chains):
            return None
        return Launchable(digest, config, tuple(f"l/{self._link_name(c)}" for c in reversed(chains)))

    # ------------------------------------------------------------ holds ---

    def add_hold(self, image_id: Digest, holder: str) -> None:
        d = self.holds / image_id.hex
        d.mkdir(parents=True, exist_ok=True)
        (d / holder).touch()

    def remove_hold(self, image_id: Digest, holder: str) -> None:
        (self.holds / image_id.hex / holder).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (self.holds / image_id.hex).rmdir()

    def release_holds(self, is_live: Callable[[str], bool]) -> None:
        """Drop every hold whose holder ``is_live`` denies (containers removed by
        someone who did not release their image, e.g. a --rm container's monitor).
        Each holder is checked after its hold was seen, so a hold taken meanwhile
        by a new container (which exists before it takes the hold) is kept."""
        for image_dir in list(self.holds.iterdir()):
            for holder in list(image_dir.iterdir()):
                if not is_live(holder.name):
                    holder.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                image_dir.rmdir()

    def holders(self, image_id: Digest) -> list[str]:
        d = self.holds / image_id.hex
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    # -------------------------------------------------------- snapshots ---

    def snapshot_dir(self, chain: Digest) -> Path:
        return self.snapshots / chain.hex / "diff"

    def snapshot_size(self, chain_hex: str) -> int:
        try:
            return int((self.snapshots / chain_hex / "size").read_text())
        except (OSError, ValueError):
            return 0

    def has_snapshot(self, chain: Digest) -> bool:
        return (self.snapshots / chain.hex / "link").exists()

    @staticmethod
    def _link_name(chain: Digest) -> str:
        return chain.hex[:16]
