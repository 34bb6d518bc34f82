"""The service: every module's routes in one table over a store root."""

from __future__ import annotations

from pathlib import Path

from api import build, containers, execs, images, objects, system
from api.server import Service


def service(root: Path, debug: bool = False) -> Service:
    s = Service(root, debug)
    for module in (system, images, containers, execs, objects, build):
        s.add(module.ROUTES)
    return s
