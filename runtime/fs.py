"""Filesystem helpers: atomic writes, JSON files, temp names, rmtree.

Paths inside a container's root are resolved by imagefmt.securepath, never here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


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
