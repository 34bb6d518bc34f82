"""Networks as dockerd shows them: the inspect document, the list's filters, and
connecting a container to one more network or disconnecting it."""

from __future__ import annotations

from pathlib import Path

from engine.errors import FilterInvalid
from engine.filters import label_match
from imagefmt import errors
from imagefmt.records import TYPE_CHECKING
from runtime.containers import ContainerStore
from runtime.network import NetworkStore, unplug
from runtime.wiring import connect as plug

if TYPE_CHECKING:
    from typing import Any

BUILTIN = ("bridge", "host", "none")


def inspect_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The inspect document (lease bookkeeping left out)."""
    out = dict(doc)
    out["Containers"] = {
        cid: {k: v for k, v in e.items() if k != "Aliases"}
        for cid, e in (doc.get("Containers") or {}).items()
    }
    return out


def inspect(nstore: NetworkStore, name: str) -> dict[str, Any] | None:
    """``docker network inspect NAME``'s document; None when there is no such network."""
    try:
        return inspect_doc(nstore.get(name))
    except errors.NotFound:
        return None


def list_networks(nstore: NetworkStore, filters: tuple[str, ...]) -> list[dict[str, Any]]:
    """The networks ``docker network ls`` lists, by name (name=, driver=, id=, label=,
    type=builtin|custom). Raises FilterInvalid."""
    docs = nstore.all()
    for f in filters:
        key, _, value = f.partition("=")
        if key == "name":
            docs = [d for d in docs if value in d["Name"]]
        elif key == "driver":
            docs = [d for d in docs if d["Driver"] == value]
        elif key == "id":
            docs = [d for d in docs if d["Id"].startswith(value)]
        elif key == "label":
            docs = [d for d in docs if label_match(d.get("Labels") or {}, value)]
        elif key == "type":
            docs = [d for d in docs if (d["Name"] in BUILTIN) == (value == "builtin")]
        else:
            raise FilterInvalid(f"invalid filter '{key}'")
    docs.sort(key=lambda d: d["Name"])
    return docs


def connect(
    root: Path, cstore: ContainerStore, nstore: NetworkStore, container: str, network: str,
    aliases: tuple[str, ...] = (), ip: str = "",
) -> None:  # fmt: skip
    """``docker network connect``: a running container gets an interface now, any
    container the network from its next start. Raises NotFound, Conflict."""
    c = cstore.get(container)
    doc = nstore.get(network)
    if doc["Name"] in ("host", "none") or c.host_config.get("NetworkMode") in ("host", "none"):
        raise errors.Conflict(
            "container cannot be disconnected from host network or connected to host network"
        )
    with cstore.locked(c) as cur:
        nets = cur.private.setdefault("Networks", {})
        if doc["Name"] in nets:
            raise errors.Conflict(f"endpoint with name {cur.name} already exists in network {doc['Name']}")
        if cur.running:
            entry = plug(root, cur, doc["Name"], aliases, ip)
            live = cur.state.setdefault("Network", {}).setdefault("Networks", {})
            live[doc["Name"]] = entry
            cstore.save_state(cur)
        nets[doc["Name"]] = {"Aliases": list(aliases), "IP": ip}
        cstore.save_record(cur)


def disconnect(
    cstore: ContainerStore, nstore: NetworkStore, container: str, network: str, force: bool = False
) -> None:
    """``docker network disconnect``. Raises NotFound, Conflict (not connected, unless ``force``)."""
    c = cstore.get(container)
    doc = nstore.get(network)
    with cstore.locked(c) as cur:
        nets = cur.private.get("Networks") or {}
        if doc["Name"] not in nets and not force:
            raise errors.Conflict(f"container {cur.id} is not connected to network {doc['Name']}")
        nets.pop(doc["Name"], None)
        live = (cur.state.get("Network") or {}).get("Networks") or {}
        entry = live.pop(doc["Name"], None)
        if entry and entry.get("HostVeth"):
            unplug(entry["HostVeth"])
        nstore.release_one(doc["Name"], cur.id)
        cstore.save_record(cur)
        if entry:
            cstore.save_state(cur)
