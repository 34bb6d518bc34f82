"""Layers as directory diffs: write a tree (or an overlayfs upperdir) as a
layer tar, and extract a layer tar into a snapshot, whiteouts included.

Whiteouts follow the OCI image-spec layer.md: ``.wh.<name>`` deletes
``<name>`` from the lower layers and ``.wh..wh..opq`` hides every lower child
of its directory. On disk (overlayfs) a whiteout is a 0/0 char device and an
opaque directory carries ``trusted.overlay.opaque=y``.

Extraction never writes outside its target: every path is resolved inside
the target as if it were the root (openat2 RESOLVE_IN_ROOT, or the same walk
done one component at a time), so ``..``, absolute paths and symlinks all
stay inside; a name that climbs out with ``..`` is refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imagefmt.errors import Invalid, Unsupported
from imagefmt.extractor import CHUNK, OPAQUE_MARKER, OVERLAY_OPAQUE, WHITEOUT_PREFIX, Extractor
from imagefmt.streams import Readable, Writable
from imagefmt.tario import TarEntry, TarWriter, iter_tar, read_xattrs

OVERLAY_XATTR_PREFIX = "trusted.overlay."


@dataclass(frozen=True, slots=True)
class ExtractStats:
    """What ``extract_layer`` did: tar entries processed, bytes written (file content and
    symlink targets: the st_size sum docker reports as a layer's size)."""

    entries: int
    bytes: int


def _keep_xattr(name: str) -> bool:
    # overlayfs bookkeeping (opaque, origin, redirect, impure…) describes the
    # snapshot, never the image content.
    return not name.startswith(OVERLAY_XATTR_PREFIX)


def write_layer(
    root: Path,
    dst: Writable,
    *,
    overlay_whiteouts: bool = False,
    mtime_clamp: int | None = None,
    skip: Callable[[str], bool] | None = None,
) -> int:
    """Write the tree under ``root`` (not ``root`` itself) as a layer tar to ``dst``.

    Entries come depth first, each directory's children sorted by name, named
    like Docker's (``etc/``, ``etc/passwd``: no leading ``./`` or ``/``).
    ``skip(name)`` returning True leaves out an entry (a directory with its
    subtree); ``name`` has no trailing slash. With ``overlay_whiteouts`` the
    tree is an overlayfs upperdir: a 0/0 char device becomes an empty file
    ``.wh.<name>`` (mode 0600) and a directory with ``trusted.overlay.opaque=y``
    is followed by ``<dir>/.wh..wh..opq``; an upperdir with metacopy or
    redirect xattrs raises Unsupported (its diff is not in the upperdir
    alone). ``trusted.overlay.*`` xattrs are never written. ``mtime_clamp``
    caps all mtimes, so that a tree gives byte-identical layers. The tar is
    closed (end blocks written) but ``dst`` is neither flushed nor closed.
    Returns the number of entries written."""
    writer = TarWriter(dst, mtime_clamp=mtime_clamp, xattr_filter=_keep_xattr)
    base = os.fsencode(root)
    stack = [(base + b"/", b"", iter(sorted(os.listdir(base))))]
    while stack:
        dir_path, dir_arc, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        path, arc = dir_path + name, dir_arc + name
        if skip is not None and skip(os.fsdecode(arc)):
            continue
        st = os.lstat(path)
        if not overlay_whiteouts:
            writer.add_stat(path, arc, st)
        else:
            _add_upper(writer, path, arc, st)
        if stat.S_ISDIR(st.st_mode):
            stack.append((path + b"/", arc + b"/", iter(sorted(os.listdir(path)))))
    writer.close()
    return writer.entries


def _add_upper(writer: TarWriter, path: bytes, arc: bytes, st: os.stat_result) -> None:
    """One overlayfs upperdir object, with its whiteout conversions."""
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        head, _, name = arc.rpartition(b"/")
        wh_name = os.fsdecode((head + b"/" if head else b"") + WHITEOUT_PREFIX.encode() + name)
        # Docker's overlay2 native diff: mode 0600, the device's owner and mtime
        writer.add_entry(TarEntry(wh_name, "file", 0o600, st.st_uid, st.st_gid, 0, st.st_mtime))
        return
    xattrs = read_xattrs(path)
    for key in ("trusted.overlay.metacopy", "trusted.overlay.redirect"):
        if key in xattrs:
            raise Unsupported(
                f"write layer: {os.fsdecode(path)!r} has {key}: mount the overlay with "
                "metacopy=off,redirect_dir=off to diff its upperdir"
            )
    writer.add_stat(path, arc, st, xattrs)
    if stat.S_ISDIR(st.st_mode) and xattrs.get(OVERLAY_OPAQUE) == b"y":
        # as Docker writes it: the directory's permissions and owner, mtime 0
        marker = os.fsdecode(arc) + "/" + OPAQUE_MARKER
        writer.add_entry(TarEntry(marker, "file", st.st_mode & 0o777, st.st_uid, st.st_gid, 0, 0))


def extract_layer(src: Readable, target: Path, *, mode: str = "overlay") -> ExtractStats:
    """Extract the layer tar ``src`` into the directory ``target``.

    mode="overlay": ``target`` is a fresh, empty snapshot to be used as an
    overlayfs lowerdir above the lower snapshots; ``.wh.<name>`` becomes a 0/0
    char device ``<name>`` and ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y``
    on its directory. mode="apply": ``target`` already holds the lower layers;
    ``.wh.<name>`` removes ``<name>`` and ``.wh..wh..opq`` removes every child
    of its directory that this layer did not write, wherever the marker is in
    the tar. Whiteouts only ever hide what lower layers made, in either mode:
    stacking overlay snapshots shows what applying the layers gives.

    In both modes an entry over an existing path replaces it (a directory over
    a directory keeps it and updates its attributes); ownership, modes
    (setuid, sticky), mtimes, xattrs (except ``trusted.overlay.*``), devices,
    fifos, symlinks and hardlinks are kept. Missing parent directories are
    created (0755, root). ``src`` is read to its end (so a HashingReader
    around it sees every byte).

    Raises UnsafeLayer for a name or hardlink that climbs out with ``..``,
    a bare ``.wh.`` or other reserved whiteout name, or an entry replacing
    the root with a non-directory; Invalid for a corrupt or truncated tar, a
    path through a file or dangling symlink, or a hardlink to nothing;
    Unsupported for sparse members; OSError for file system failures. On any error the target is left half
    written: the caller deletes it. Needs root for ownership and devices;
    without it, chown failures are ignored."""
    if mode not in ("overlay", "apply"):
        raise Invalid(f"extract layer: unknown mode {mode!r} (use 'overlay' or 'apply')")
    with Extractor(target, apply=mode == "apply") as extractor:
        for entry, content in iter_tar(src):
            extractor.extract(entry, content)
        extractor.finish()
    while src.read(CHUNK):
        pass
    return ExtractStats(extractor.entries, extractor.bytes)
