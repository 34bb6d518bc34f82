"""A container's endpoints on networks: ``docker network connect`` and ``disconnect``."""

from __future__ import annotations

from pathlib import Path

from imagefmt import errors
from runtime.container.store import ContainerStore
from runtime.container.wiring import connect as plug
from runtime.network.bridge import NetworkStore, unplug


def connect(
    root: Path, cstore: ContainerStore, nstore: NetworkStore, container: str, network: str,
    aliases: tuple[str, ...] = (), ip: str = "", links: tuple[str, ...] = (),
) -> None:  # fmt: skip
    """``docker network connect``: a running container gets an interface now, any
    container the network from its next start; ``links`` (``--link NAME[:ALIAS]``)
    are names the network's DNS answers for it. Raises NotFound, Conflict."""
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
        nets[doc["Name"]] = {"Aliases": list(aliases), "IP": ip, **({"Links": list(links)} if links else {})}
        if cur.running:
            entry = plug(root, cur, doc["Name"], aliases, ip)
            live = cur.state.setdefault("Network", {}).setdefault("Networks", {})
            live[doc["Name"]] = entry
            cstore.save_state(cur)
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
            # dockerd 20.10 records a running container's disconnect twice (the endpoint's
            # leave and the sandbox's); the journal says what docker's says
            nstore.event(doc, "disconnect", cur.id)
