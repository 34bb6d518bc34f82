"""Helpers for the build tests: a context on disk, a build through the CLI, a look inside images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from builder.rootview import RootView
from imagefmt.store import Store
from tests.conftest import Dockyard, Result


def make_context(root: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    """Write ``Dockerfile`` and ``files`` (relative path → content) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def build(dy: Dockyard, ctx: Path, *args: str) -> Result:
    return dy("build", *args, str(ctx))


def build_ok(dy: Dockyard, ctx: Path, *args: str) -> str:
    r = build(dy, ctx, *args)
    assert r.code == 0, f"build failed ({r.code}): {r.err}\n{r.out}"
    return r.out


def image(dy: Dockyard, ref: str) -> Any:
    return Store(dy.root).image(ref)


def view(dy: Dockyard, ref: str) -> RootView:
    store = Store(dy.root)
    return RootView(store.lowerdirs(store.image(ref)))


def read(dy: Dockyard, ref: str, path: str) -> str | None:
    data = view(dy, ref).read_bytes(path)
    return None if data is None else data.decode()


def config(dy: Dockyard, ref: str) -> dict[str, Any]:
    return dict(image(dy, ref).config.config)


def created_by(dy: Dockyard, ref: str) -> list[str]:
    return [h.get("created_by", "") for h in image(dy, ref).config.history]


def stat(dy: Dockyard, ref: str, path: str) -> os.stat_result | None:
    found = view(dy, ref).lstat(path)
    return None if found is None else found.st


def mounts_under(path: Path) -> set[str]:
    """Mount points on the host below ``path`` (a build must leave none)."""
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f if line.split()[4].startswith(str(path))}
