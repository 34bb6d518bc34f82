"""Filesystem helpers: paths resolved inside a root, atomic writes and JSON files.

``secure_join`` blocks symlink escapes: an image (or a running container) can
plant ``/data -> /../../etc`` to make a mount or a ``cp`` land on the host.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

_MAX_LINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    """``root`` + ``unsafe`` with every symlink resolved as if ``root`` were "/".

    The result is always inside ``root`` (like filepath-securejoin); missing
    components are kept as they are.  Never raises for a dangling or looping
    link: a loop of more than 255 links stops resolution there."""
    root = os.path.abspath(root)
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode) and links < _MAX_LINKS:
            links += 1
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def rmtree(path: Path | str, ignore_errors: bool = False) -> None:
    """shutil.rmtree, imported on first use (shutil is slow to import on the start path)."""
    import shutil

    shutil.rmtree(path, ignore_errors=ignore_errors)


def temp_name(path: Path) -> Path:
    """A sibling temp name unique per process and thread (parallel build stages share a pid)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temp file and rename: readers see the
    old or the new content, never a part."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_json(path: Path, doc: Any) -> None:
    atomic_write(path, json.dumps(doc, indent=None, separators=(",", ":")).encode())


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())
