"""A read-only view of an image's root filesystem straight from its overlay lowerdirs.

The builder reads images without mounting them: to resolve a COPY
destination, to look names up in /etc/passwd for ``--chown``, to copy files
out of another stage.  Lookups follow overlayfs's rules: the uppermost layer
that has a name wins; a 0/0 char device (whiteout) hides the name below it;
a directory with ``trusted.overlay.opaque=y`` hides everything below it.
Symlinks are resolved as if the view were ``/``: ``..`` and absolute targets
never leave it, so an image cannot point the builder at host files.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

_MAX_LINKS = 255
OPAQUE = "trusted.overlay.opaque"


@dataclass(frozen=True, slots=True)
class Found:
    """A name in the view: the host path of its uppermost copy and its lstat."""

    host: bytes
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)


def _lstat(path: bytes) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: bytes) -> bool:
    try:
        return os.getxattr(path, OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def split(path: str) -> list[str]:
    """Components of a path inside the view, with ``.`` and empty parts dropped."""
    return [p for p in path.split("/") if p not in ("", ".")]


class RootView:
    """The merged, read-only view of ``layers`` (host dirs, uppermost first), or of
    what the callable ``layers`` returns when the view is first read (so that an
    image's layers are unpacked only if something looks inside it)."""

    def __init__(self, layers: Sequence[Path | str] | Callable[[], Sequence[Path | str]]) -> None:
        self._source = layers
        self._layers: list[bytes] | None = None

    @property
    def layers(self) -> list[bytes]:
        if self._layers is None:
            src = self._source() if callable(self._source) else self._source
            self._layers = [os.fsencode(os.fspath(p)) for p in src]
        return self._layers

    def _descend(self, contribs: list[bytes], name: str) -> tuple[Found | None, list[bytes]]:
        """The uppermost ``name`` under the directories ``contribs`` (uppermost first) and,
        when it is a directory, the layers' copies of it that the view merges."""
        raw = os.fsencode(name)
        top: Found | None = None
        merged: list[bytes] = []
        for d in contribs:
            p = d + b"/" + raw
            st = _lstat(p)
            if st is None:
                continue
            if top is None:
                if _is_whiteout(st):
                    return None, []
                top = Found(p, st)
                if not stat.S_ISDIR(st.st_mode):
                    return top, []
            elif not stat.S_ISDIR(st.st_mode):
                break  # a file or whiteout here hides the lower copies
            merged.append(p)
            if _opaque(p):
                break
        return top, merged

    def _root_contribs(self) -> list[bytes]:
        out = []
        for d in self.layers:
            out.append(d)
            if _opaque(d):
                break
        return out

    def lookup(self, parts: Sequence[str]) -> tuple[Found | None, list[bytes]]:
        """The object at the already-resolved path ``parts`` (no symlinks followed)."""
        contribs = self._root_contribs()
        if not parts:
            if not contribs:
                return None, []
            return Found(contribs[0], os.lstat(contribs[0])), contribs
        found: Found | None = None
        for i, part in enumerate(parts):
            found, contribs = self._descend(contribs, part)
            if found is None or (i < len(parts) - 1 and not found.is_dir):
                return None, []
        return found, contribs

    def resolve(self, path: str, follow_last: bool = True) -> list[str]:
        """The components of ``path`` with every symlink resolved inside the view.

        Missing components are kept as they are; a loop stops after 255 links."""
        parts = split(path)
        resolved: list[str] = []
        links = 0
        contribs = self._root_contribs()
        missing = False
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                contribs = self.lookup(resolved)[1]
                missing = False
                continue
            if missing:
                resolved.append(part)
                continue
            found, sub = self._descend(contribs, part)
            if found is not None and found.is_link and (parts or follow_last) and links < _MAX_LINKS:
                links += 1
                target = os.fsdecode(os.readlink(found.host))
                if target.startswith("/"):
                    resolved = []
                    contribs = self._root_contribs()
                parts = split(target) + parts
                continue
            resolved.append(part)
            if found is None or not found.is_dir:
                missing = True
            contribs = sub
        return resolved

    def stat(self, path: str) -> Found | None:
        """The object at ``path``, symlinks (also the last one) followed inside the view."""
        return self.lookup(self.resolve(path))[0]

    def lstat(self, path: str) -> Found | None:
        return self.lookup(self.resolve(path, follow_last=False))[0]

    def read_bytes(self, path: str, limit: int = 1 << 20) -> bytes | None:
        """A regular file's content (at most ``limit`` bytes), or None."""
        found = self.stat(path)
        if found is None or not stat.S_ISREG(found.st.st_mode):
            return None
        with open(found.host, "rb") as f:
            return f.read(limit)

    def children(self, contribs: list[bytes]) -> list[tuple[str, Found, list[bytes]]]:
        """The merged entries of a directory given by its layers' copies, sorted by name."""
        names: set[bytes] = set()
        for d in contribs:
            try:
                names.update(os.listdir(d))
            except OSError:
                continue
        out = []
        for raw in sorted(names):
            name = os.fsdecode(raw)
            found, sub = self._descend(contribs, name)
            if found is not None:
                out.append((name, found, sub))
        return out

    def walk(self, parts: Sequence[str]) -> Iterator[tuple[str, Found]]:
        """Everything below the directory ``parts`` (resolved) as (path relative to
        it, object): a directory's entries sorted by name, each directory before
        what it holds."""
        found, contribs = self.lookup(parts)
        if found is None or not found.is_dir:
            return
        stack = [("", contribs)]
        while stack:
            prefix, dirs = stack.pop()
            subdirs = []
            for name, child, sub in self.children(dirs):
                rel = f"{prefix}{name}"
                yield rel, child
                if child.is_dir:
                    subdirs.append((rel + "/", sub))
            stack.extend(reversed(subdirs))
