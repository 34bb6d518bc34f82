"""Volume and network routes: create, list, inspect, remove, prune; connect and disconnect."""

from __future__ import annotations

from api.server import Reply, Request, Routes
from engine import endpoints
from engine import networks as enetworks
from engine import prune as eprune
from engine import volumes as evolumes
from imagefmt import errors
from runtime.container.store import ContainerStore
from runtime.network.bridge import NetworkStore
from runtime.volumes import VolumeStore

ROUTES = Routes()


@ROUTES("GET", "/volumes")
def list_volumes(req: Request) -> Reply:
    vstore = VolumeStore(req.service.root)
    names = evolumes.list_volumes(vstore, ContainerStore(req.service.root), req.filter_list())
    return Reply({"Volumes": [vstore.get(n) for n in names], "Warnings": None})


@ROUTES("POST", "/volumes/create")
def create_volume(req: Request) -> Reply:
    body = req.json()
    vstore = VolumeStore(req.service.root)
    name = evolumes.create(
        vstore, body.get("Name") or "", body.get("Driver") or "local", body.get("Labels") or {},
        body.get("DriverOpts") or {},
    )  # fmt: skip
    return Reply(vstore.get(name), 201)


@ROUTES("GET", "/volumes/{name}")
def inspect_volume(req: Request) -> Reply:
    doc = evolumes.inspect(VolumeStore(req.service.root), req.params["name"])
    if doc is None:
        raise errors.NotFound(f"get {req.params['name']}: no such volume")
    return Reply(doc)


@ROUTES("DELETE", "/volumes/{name}")
def remove_volume(req: Request) -> Reply:
    users = evolumes.users(ContainerStore(req.service.root))
    name = req.params["name"]
    VolumeStore(req.service.root).remove(name, users.get(name, []), force=req.flag("force"))
    return Reply(None, 204)


@ROUTES("POST", "/volumes/prune")
def prune_volumes(req: Request) -> Reply:
    names, freed = eprune.prune_volumes(req.service.root, req.filter_list())
    return Reply({"VolumesDeleted": names or None, "SpaceReclaimed": freed})


@ROUTES("GET", "/networks")
def list_networks(req: Request) -> Reply:
    docs = enetworks.list_networks(NetworkStore(req.service.root), req.filter_list())
    return Reply([enetworks.inspect_doc(d) for d in docs])


@ROUTES("GET", "/networks/{id}")
def inspect_network(req: Request) -> Reply:
    return Reply(enetworks.inspect_doc(NetworkStore(req.service.root).get(req.params["id"])))


@ROUTES("POST", "/networks/create")
def create_network(req: Request) -> Reply:
    body = req.json()
    ipam = ((body.get("IPAM") or {}).get("Config") or [{}])[0] or {}
    nstore = NetworkStore(req.service.root)
    if body.get("CheckDuplicate") is not False:
        try:
            nstore.get(body.get("Name") or "")
            raise errors.Conflict(f"network with name {body.get('Name')} already exists")
        except errors.NotFound:
            pass
    doc = nstore.create(
        body.get("Name") or "",
        subnet=ipam.get("Subnet") or "",
        ip_range=ipam.get("IPRange") or "",
        gateway=ipam.get("Gateway") or "",
        labels=body.get("Labels") or {},
        internal=bool(body.get("Internal")),
        driver=body.get("Driver") or "bridge",
    )
    return Reply({"Id": doc["Id"], "Warning": ""}, 201)


@ROUTES("DELETE", "/networks/{id}")
def remove_network(req: Request) -> Reply:
    NetworkStore(req.service.root).remove(req.params["id"])
    return Reply(None, 204)


@ROUTES("POST", "/networks/prune")
def prune_networks(req: Request) -> Reply:
    return Reply({"NetworksDeleted": eprune.prune_networks(req.service.root, req.filter_list()) or None})


@ROUTES("POST", "/networks/{id}/connect")
def connect(req: Request) -> Reply:
    body = req.json()
    cfg = body.get("EndpointConfig") or {}
    root = req.service.root
    endpoints.connect(
        root, ContainerStore(root), NetworkStore(root), body.get("Container") or "", req.params["id"],
        tuple(cfg.get("Aliases") or ()), (cfg.get("IPAMConfig") or {}).get("IPv4Address") or "",
        tuple(cfg.get("Links") or ()),
    )  # fmt: skip
    return Reply(None, 200)


@ROUTES("POST", "/networks/{id}/disconnect")
def disconnect(req: Request) -> Reply:
    body = req.json()
    root = req.service.root
    endpoints.disconnect(
        ContainerStore(root), NetworkStore(root), body.get("Container") or "", req.params["id"],
        force=bool(body.get("Force")),
    )  # fmt: skip
    return Reply(None, 200)
