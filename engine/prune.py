"""docker's prune of containers, volumes and networks: which unused ones go, under
--filter ``until=``, ``label=``, ``label!=``.  (``system prune`` is in engine.disk.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import FilterInvalid, FilterSyntax
from engine.filters import label_match
from engine.holds import release_image
from engine.volumes import users as volume_users
from imagefmt import errors
from imagefmt.catalog import Catalog
from imagefmt.changes import parse_duration
from runtime.container import lifecycle
from runtime.container.store import ContainerStore, parse_time
from runtime.network.bridge import NetworkStore
from runtime.volumes import VolumeStore

Keep = Callable[[str, dict[str, str] | None], bool]  # (created, labels) -> kept by the filters


def prune_filter(filters: tuple[str, ...], until: bool = True) -> Keep:
    """docker's prune filters as a test of (created RFC 3339 time, labels): ``until=``
    a timestamp or a duration ago (created before it), ``label=k[=v]``, ``label!=k[=v]``.
    Raises FilterInvalid (a malformed filter), Invalid (an unknown key)."""
    cutoffs: list[float] = []
    labels_wanted: list[tuple[str, bool]] = []  # (k[=v], wanted)
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise FilterSyntax(f"bad format of filter (expected name=value): {f}")
        if key == "until" and until:
            cutoffs.append(until_time(value))
        elif key in ("label", "label!"):
            labels_wanted.append((value, key == "label"))
        else:
            raise errors.Invalid(f"Invalid filter '{key}'")

    def keep(created: str, labels: dict[str, str] | None) -> bool:
        when = parse_time(created) if cutoffs else 0.0
        return all(when < cut for cut in cutoffs) and all(
            label_match(labels or {}, spec) == wanted for spec, wanted in labels_wanted
        )

    return keep


def until_time(text: str) -> float:
    """--filter until=: a Go duration ago (10m, 24h), an RFC 3339 time or Unix seconds.
    Raises FilterInvalid."""
    try:
        return time.time() - parse_duration(text) / 1e9
    except errors.DockyardError:
        pass
    try:
        return float(text) if text.replace(".", "", 1).isdigit() else parse_time(text)
    except ValueError:
        raise FilterInvalid(f"invalid filter 'until={text}'") from None


def prune_containers(root: Path, filters: tuple[str, ...] = ()) -> tuple[list[str], int]:
    """Remove the stopped containers the filters keep; (their IDs, bytes freed)."""
    cstore = ContainerStore(root)
    stopped = {c.id: c for c in cstore.all() if not c.running}
    keep = prune_filter(filters)
    removed, freed = lifecycle.prune(cstore, lambda c: keep(c.record["Created"], c.config.get("Labels")))
    catalog = Catalog(root)
    for cid in removed:
        release_image(catalog, stopped[cid])
    return removed, freed


def prune_volumes(root: Path, filters: tuple[str, ...] = ()) -> tuple[list[str], int]:
    """Remove the volumes no container uses that the (label) filters keep; (names, bytes freed)."""
    vstore = VolumeStore(root)
    users = volume_users(ContainerStore(root))
    keep = prune_filter(filters, until=False)  # docker: labels only, for volumes
    removed, freed = [], 0
    for name in vstore.names():
        if name in users or not keep("", vstore.get(name)["Labels"]):
            continue
        size = vstore.size(name)
        vstore.remove(name)
        removed.append(name)
        freed += size
    return removed, freed


def prune_networks(root: Path, filters: tuple[str, ...] = ()) -> list[str]:
    """Remove the user-defined networks no container is connected to that the filters keep; their names."""
    nstore = NetworkStore(root)
    used = {n for c in ContainerStore(root).all() for n in c.private.get("Networks") or {}}
    keep = prune_filter(filters)
    removed = []
    for d in nstore.all():
        if d["Name"] in ("bridge", "host", "none") or d["Name"] in used or d["Containers"]:
            continue
        if not keep(d.get("Created") or "", d.get("Labels")):
            continue
        nstore.remove(d["Name"])
        removed.append(d["Name"])
    return removed
