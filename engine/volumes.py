"""Volumes as dockerd lists them: who uses each, the list's filters, creation with
a driver check, and the inspect document."""

from __future__ import annotations

from engine.errors import FilterInvalid
from engine.filters import label_match
from imagefmt import errors
from imagefmt.records import TYPE_CHECKING
from runtime.container.store import ContainerStore
from runtime.volumes import VolumeStore

if TYPE_CHECKING:
    from typing import Any


def users(cstore: ContainerStore) -> dict[str, list[str]]:
    """Each volume in use: the IDs of the containers that mount it."""
    out: dict[str, list[str]] = {}
    for c in cstore.all():
        for m in c.record.get("Mounts") or []:
            if m.get("Type") == "volume":
                out.setdefault(m["Name"], []).append(c.id)
    return out


def list_volumes(vstore: VolumeStore, cstore: ContainerStore, filters: tuple[str, ...]) -> list[str]:
    """The names ``docker volume ls`` lists (dangling=, name=, label=, driver=). Raises FilterInvalid."""
    names = vstore.names()
    used = users(cstore) if filters else {}
    for f in filters:
        key, _, value = f.partition("=")
        if key == "dangling":
            names = [n for n in names if (n not in used) == (value.lower() in ("true", "1"))]
        elif key == "name":
            names = [n for n in names if value in n]
        elif key == "label":
            names = [n for n in names if label_match(vstore.get(n)["Labels"] or {}, value)]
        elif key != "driver":
            raise FilterInvalid(f"invalid filter '{key}'")
    return names


def create(vstore: VolumeStore, name: str, driver: str, labels: dict[str, str], opts: dict[str, str]) -> str:
    """``docker volume create``: the volume's name (made up when ``name`` is empty).
    Raises NotFound for a driver other than local, BadSpec for a bad name."""
    if driver != "local":
        raise errors.NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
    created, _ = vstore.create(name, labels, opts)
    return created


def inspect(vstore: VolumeStore, name: str) -> dict[str, Any] | None:
    """``docker volume inspect NAME``'s document; None when there is no such volume."""
    try:
        return vstore.get(name)
    except errors.NotFound:
        return None
