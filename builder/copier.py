"""COPY and ADD as layer tars: sources in, one tar of what the step adds out.

``plan`` decides every entry of the new layer (names, owners, modes) and the
sources' content checksum, without writing anything; ``write`` streams the
entries into a tar.  The destination is resolved inside the image's own
view (``RootView``): a symlink in the image is followed as the container
would follow it, never on the host.  Directories the destination passes
through are written with the image's own attributes (what an overlay
copy-up would keep), new ones as 0755 root (or the ``--chown`` owner).
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from builder.context import BuildContext, Item, checksum, entry_of, stamp
from builder.dockerignore import glob_match, has_magic
from builder.errors import DockerfileError
from builder.rootview import RootView, split
from imagefmt.rootfs import climbs_out
from imagefmt.streams import Writable
from imagefmt.tario import TarEntry, TarWriter, iter_tar

MULTI_DEST = (
    "When using COPY with more than one source file, the destination must be a directory and end with a /"
)


@dataclass(frozen=True, slots=True)
class Source:
    """One source root to copy: ``name`` is the basename a file keeps under a
    directory destination; ``items[0]`` is the root itself (rel "")."""

    name: str
    items: tuple[Item, ...]
    archive: bool = False  # ADD of a local tar: its entries are extracted
    parents: tuple[str, ...] | None = None  # COPY --parents: the source's own kept path (copyparents)
    path: str = ""  # where it was found: context-relative, or in the --from image


@dataclass(frozen=True, slots=True)
class Planned:
    entry: TarEntry
    item: Item | None = None
    archive: bool = False  # ``item`` is a tar whose entries go below ``entry.name``


@dataclass
class CopyPlan:
    """Every entry of the layer to write, and the checksum of the sources."""

    entries: list[Planned] = field(default_factory=list)
    digest: str = ""
    kind: str = "file"  # docker's created_by prefix: file, dir or multi


# --------------------------------------------------------------------- owners ---


def _lookup(view: RootView | None, path: str, name: str, field_index: int) -> int | None:
    if view is None:
        return None
    data = view.read_bytes(path)
    if data is None:
        return None
    for line in data.decode("utf-8", "replace").splitlines():
        cols = line.split(":")
        if len(cols) > field_index and cols[0] == name and cols[field_index].isdigit():
            return int(cols[field_index])
    return None


def parse_chown(spec: str, view: RootView | None, line: int = 0) -> tuple[int, int]:
    """``user[:group]`` (names from the image's /etc/passwd and /etc/group) as
    (uid, gid); a lone user means gid = uid, as docker does."""
    user, _, group = spec.partition(":")
    if user.isdigit():
        uid = int(user)
    else:
        found = _lookup(view, "/etc/passwd", user, 2)
        if found is None:
            raise DockerfileError(
                f"unable to convert uid/gid chown string to host mapping: can't find uid for user {user}: "
                f"no such user: {user}",
                line,
            )
        uid = found
    if not group:
        return uid, uid
    if group.isdigit():
        return uid, int(group)
    gid = _lookup(view, "/etc/group", group, 2)
    if gid is None:
        raise DockerfileError(
            f"unable to convert uid/gid chown string to host mapping: can't find gid for group {group}: "
            f"no such group: {group}",
            line,
        )
    return uid, gid


_PERM_BITS = {"r": 0o444, "w": 0o222, "x": 0o111, "s": 0o6000, "t": 0o1000}
_WHO_BITS = {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}


def chmod_function(spec: str, line: int = 0) -> Callable[[int, bool], int]:
    """``--chmod``: octal (``0755``) or symbolic (``u+x,go-w``); returns mode(old, is_dir) -> new."""
    if spec and all(c in "01234567" for c in spec):
        octal = int(spec, 8)
        if octal > 0o7777:
            raise DockerfileError(f"invalid chmod parameter {spec!r}", line)
        return lambda _old, _is_dir: octal
    clauses = []
    for clause in spec.split(","):
        i = 0
        while i < len(clause) and clause[i] in "ugoa":
            i += 1
        who = clause[:i] or "a"
        if i >= len(clause) or clause[i] not in "+-=" or any(c not in "rwxXst" for c in clause[i + 1 :]):
            raise DockerfileError(f"invalid chmod parameter {spec!r}: use octal (0755) or u+x style", line)
        clauses.append((who, clause[i], clause[i + 1 :]))

    def apply(old: int, is_dir: bool) -> int:
        mode = old & 0o7777
        for who, op, perms in clauses:
            mask = 0
            for w in who:
                mask |= _WHO_BITS[w]
            bits = 0
            for p in perms:
                if p == "X":
                    if is_dir or mode & 0o111:
                        bits |= 0o111
                else:
                    bits |= _PERM_BITS[p]
            bits &= mask
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                mode = (mode & ~(mask & 0o777)) | bits
        return mode

    return apply


# -------------------------------------------------------------------- sources ---


def context_sources(ctx: BuildContext, patterns: Sequence[str], line: int, archives: bool) -> list[Source]:
    """COPY/ADD sources from the build context (globs expanded, .dockerignore applied)."""
    out = []
    for pattern in patterns:
        for rel in ctx.select(pattern, line):
            items = tuple(ctx.items(rel))
            if not items:
                continue
            is_archive = archives and items[0].entry.type == "file" and _is_archive(items[0].host)
            out.append(Source(posixpath.basename(rel) or "", items, is_archive, path=rel))
    return out


def _view_glob(view: RootView, pattern: str) -> list[list[str]]:
    level: list[list[str]] = [[]]
    for part in split(pattern):
        nxt = []
        for base in level:
            parts = view.resolve("/" + "/".join(base))
            found, contribs = view.lookup(parts)
            if found is None or not found.is_dir:
                continue
            if not has_magic(part):
                if view.lookup([*parts, part])[0] is not None:
                    nxt.append([*parts, part])
                continue
            for name, _child, _sub in view.children(contribs):
                if glob_match(part, name):
                    nxt.append([*parts, name])
        level = nxt
    return level


def view_sources(view: RootView, patterns: Sequence[str], what: str, line: int) -> list[Source]:
    """COPY --from sources from another stage's or image's file system."""
    out = []
    for pattern in patterns:
        if has_magic(pattern):
            matches = _view_glob(view, pattern)
            if not matches:
                raise DockerfileError("no source files were specified", line)
        else:
            parts = view.resolve(pattern, follow_last=False)
            if view.lookup(parts)[0] is None:
                raise DockerfileError(f"{what}: stat {pattern}: file does not exist", line)
            matches = [parts]
        for parts in matches:
            found = view.lookup(parts)[0]
            assert found is not None
            top = entry_of("", found.host, found.st)
            if top is None:
                continue
            items = [Item("", top, found.host if top.type == "file" else None, stamp=stamp(found.st))]
            if top.type == "dir":
                for rel, child in view.walk(parts):
                    e = entry_of(rel, child.host, child.st)
                    if e is not None:
                        host = child.host if e.type == "file" else None
                        items.append(Item(rel, e, host, stamp=stamp(child.st)))
            out.append(Source(parts[-1] if parts else "", tuple(items), path="/".join(parts)))
    return out


def data_source(name: str, data: bytes, mode: int = 0o644, mtime: float | None = None) -> Source:
    """A file made of ``data`` (a heredoc, a downloaded URL)."""
    entry = TarEntry("", "file", mode, 0, 0, len(data), time.time() if mtime is None else mtime)
    return Source(name, (Item("", entry, None, data),))


def _is_archive(host: bytes | None) -> bool:
    """Whether a file is a tar, plain or gzip/bzip2/xz/zstd-compressed (by content)."""
    if host is None:
        return False
    from imagefmt.compress import open_reader
    from imagefmt.tarheader import check_block

    try:
        with open(host, "rb") as f, open_reader(f) as r:
            block = r.read(512)
    except Exception:  # OSError, EOFError or a codec's own error: a file that only looks compressed
        return False
    if len(block) < 512 or (block[257:262] != b"ustar" and not block[:100].strip(b"\0")):
        return False
    try:
        check_block(block, 0)
    except Exception:
        return False
    return True


# ----------------------------------------------------------------------- plan ---


@dataclass
class Placement:
    """Where sources land and with which owner and mode."""

    dest: str  # absolute, as the Dockerfile gave it joined with WORKDIR
    dest_is_dir: bool  # ends with "/" (or is "." …)
    view: RootView | None  # the image copied into; None with --link (no symlink following)
    owner: tuple[int, int] | None  # --chown
    keep_owner: bool  # sources' owners kept (--from, archives) when no --chown
    chmod: Callable[[int, bool], int] | None = None
    now: float = field(default_factory=time.time)


def summarize(
    sources: list[Source], dest: str, dest_is_dir: bool, line: int = 0, memo: Path | None = None
) -> tuple[str, str]:
    """(kind, checksum) of a copy: docker's created_by prefix (file, dir or multi)
    and the sources' content checksum, enough for the cache key.  Raise
    DockerfileError for several sources and a destination without a trailing /."""
    many = len(sources) > 1
    if many and not dest_is_dir:
        raise DockerfileError(MULTI_DEST, line)
    kind = "multi" if many else ("dir" if sources and sources[0].items[0].entry.type == "dir" else "file")
    return kind, checksum([it for s in sources for it in s.items], dest, memo)


def plan(
    sources: list[Source], where: Placement, line: int = 0, summary: tuple[str, str] | None = None
) -> CopyPlan:
    """Decide the layer's entries for ``sources`` copied to ``where`` (``summary``:
    ``summarize``'s result, if already known); raise DockerfileError for a
    multi-source copy to a non-directory or a destination under a file."""
    kind, digest = summary or summarize(sources, where.dest, where.dest_is_dir, line)
    if where.view is not None:
        parts = where.view.resolve(where.dest)
        found = where.view.lookup(parts)[0]
        dest_dir = where.dest_is_dir or (found is not None and found.is_dir)
    else:
        parts, found, dest_dir = split(where.dest), None, where.dest_is_dir
    out = CopyPlan(digest=digest, kind=kind)
    made: set[str] = set()
    for src in sources:
        root = src.items[0]
        if src.parents is not None:  # COPY --parents: dest/<kept path>, for a file or a directory
            _place_with_parents(out, src, [*parts, *src.parents], where, made, line)
            continue
        if root.entry.type == "dir" or src.archive:
            parents(out, parts, where, made, line)
            if src.archive:
                out.entries.append(Planned(TarEntry("/".join(parts)), root, archive=True))
                continue
            for it in src.items[1:]:
                out.entries.append(_placed(it, [*parts, *it.rel.split("/")], where))
            continue
        target = [*parts, src.name] if dest_dir else parts
        if not target:
            raise DockerfileError("cannot copy a file onto the root directory", line)
        parents(out, target[:-1], where, made, line)
        out.entries.append(_placed(root, target, where))
    return out


def _place_with_parents(
    out: CopyPlan, src: Source, target: list[str], where: Placement, made: set[str], line: int
) -> None:
    root = src.items[0]
    if root.entry.type == "dir":
        parents(out, target, where, made, line)
        for it in src.items[1:]:
            out.entries.append(_placed(it, [*target, *it.rel.split("/")], where))
        return
    if not target:
        raise DockerfileError("cannot copy a file onto the root directory", line)
    parents(out, target[:-1], where, made, line)
    out.entries.append(_placed(root, target, where))


def _placed(it: Item, target: list[str], where: Placement) -> Planned:
    e = it.entry
    uid, gid = (e.uid, e.gid) if where.keep_owner else (0, 0)
    if where.owner is not None:
        uid, gid = where.owner
    mode = e.mode
    if where.chmod is not None and e.type != "symlink":
        mode = where.chmod(mode, e.type == "dir")
    name = "/".join(target)
    entry = TarEntry(name, e.type, mode, uid, gid, e.size, e.mtime, e.linkname, e.devmajor, e.devminor)
    return Planned(entry, it)


def parents(out: CopyPlan, chain: list[str], where: Placement, made: set[str], line: int) -> None:
    """Directory entries for ``chain`` and its parents: the image's own (copy-up) or new."""
    contribs_view = where.view
    for i in range(1, len(chain) + 1):
        name = "/".join(chain[:i])
        if name in made:
            continue
        made.add(name)
        found = contribs_view.lookup(chain[:i])[0] if contribs_view is not None else None
        if found is not None:
            if not found.is_dir:
                raise DockerfileError(f"cannot copy to /{name}: a parent is not a directory", line)
            st = found.st
            entry = TarEntry(
                name, "dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, 0, st.st_mtime_ns / 1e9
            )
        else:
            uid, gid = where.owner if where.owner is not None else (0, 0)
            entry = TarEntry(name, "dir", 0o755, uid, gid, 0, where.now)
        out.entries.append(Planned(entry))


# ---------------------------------------------------------------------- write ---


def write(copy_plan: CopyPlan, dst: Writable, mtime_clamp: int | None = None) -> int:
    """Write the planned entries as a layer tar to ``dst``; return the entry count.

    Raises Invalid when a source changed size since it was planned."""
    writer = TarWriter(dst, mtime_clamp=mtime_clamp)
    for p in copy_plan.entries:
        if p.archive:
            assert p.item is not None and p.item.host is not None
            _extract_into(writer, p.item.host, p.entry.name)
            continue
        content: BinaryIO | None = None
        try:
            if p.entry.type == "file" and p.item is not None:
                if p.item.data is not None:
                    content = io.BytesIO(p.item.data)
                elif p.item.host is not None:
                    fd = os.open(p.item.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                    content = open(fd, "rb", buffering=0)
            writer.add_entry(p.entry, content)
        finally:
            if content is not None:
                content.close()
    writer.close()
    return writer.entries


def _extract_into(writer: TarWriter, archive: bytes, prefix: str) -> None:
    """ADD's auto-extraction: the archive's entries below ``prefix``; names that
    climb out with ``..`` are refused, whiteout names are dropped."""
    from imagefmt.compress import open_reader
    from imagefmt.errors import UnsafeLayer

    with open(archive, "rb") as f, open_reader(f) as r:
        for entry, content in iter_tar(r):
            rel = posixpath.normpath("/" + entry.name).lstrip("/")
            if climbs_out(entry.name) or (entry.type == "hardlink" and climbs_out(entry.linkname)):
                raise UnsafeLayer(f"ADD {os.fsdecode(archive)}: archive entry {entry.name!r} climbs out")
            if not rel or rel == "." or posixpath.basename(rel).startswith(".wh."):
                continue
            name = f"{prefix}/{rel}" if prefix else rel
            fixed = replace(entry, name=name)
            if entry.type == "hardlink":
                target = posixpath.normpath("/" + entry.linkname).lstrip("/")
                fixed = replace(fixed, linkname=f"{prefix}/{target}" if prefix else target)
            writer.add_entry(fixed, content if entry.type == "file" else None)
