"""System routes: ping, version, info, disk usage, auth, events."""

from __future__ import annotations

import base64
import json
import os
import platform
import time
from collections.abc import Iterator

from api.server import MIN_API_VERSION, Reply, Request, Routes, Stream
from engine import API_VERSION, VERSION, events
from engine import disk as edisk
from engine import images as eimages
from engine import system as esystem
from engine import volumes as evolumes
from imagefmt import errors
from imagefmt.config import parse_time
from imagefmt.store import Store
from registry.client.credentials import Credentials
from registry.client.registry_client import ClientOptions, RegistryClient, registry_key
from runtime.container.store import ContainerStore
from runtime.volumes import VolumeStore

ROUTES = Routes()
_PING_HEADERS = (
    ("Builder-Version", "1"),  # the classic builder: our /build speaks its JSON stream
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Pragma", "no-cache"),
)


@ROUTES("GET", "/_ping")
def ping(req: Request) -> Reply:
    return Reply(b"OK", content_type="text/plain; charset=utf-8", headers=_PING_HEADERS)


@ROUTES("GET", "/version")
def version(req: Request) -> Reply:
    v = esystem.version()
    doc = {
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "dockyard",
        "GoVersion": f"python{v['PythonVersion']}",
        "Os": "linux",
        "Arch": v["Arch"],
        "KernelVersion": os.uname().release,
        "BuildTime": "",
    }
    component = {"Name": "Engine", "Version": VERSION, "Details": {k: str(v) for k, v in doc.items()}}
    return Reply({"Platform": {"Name": "dockyard"}, "Components": [component], **doc})


@ROUTES("GET", "/info")
def info(req: Request) -> Reply:
    store = Store(req.service.root)
    base = esystem.info(store)
    cs = ContainerStore(req.service.root).all()
    states = [c.status for c in cs]
    doc = {
        "ID": base["Name"],
        "Containers": len(cs),
        "ContainersRunning": states.count("running"),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": len(cs) - states.count("running") - states.count("paused"),
        "DriverStatus": [],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": None,
            "Log": ["json-file", "none"],
        },
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "Debug": req.service.debug,
        "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "NEventsListener": 0,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
        "Runtimes": {"runc": {"path": "dockyard"}},
        "DefaultRuntime": "runc",
        "Swarm": {"LocalNodeState": "inactive", "ControlAvailable": False, "NodeID": "", "NodeAddr": ""},
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "tini",
        "SecurityOptions": ["name=seccomp,profile=builtin", f"name=cgroupns,v{base['CgroupVersion']}"],
        "ExperimentalBuild": False,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Labels": [],
        "Warnings": [],
        **base,
        "KernelVersion": platform.release(),
    }
    return Reply(doc)


@ROUTES("GET", "/system/df")
def df(req: Request) -> Reply:
    root = req.service.root
    store = eimages.store_in_use(root)
    cstore = ContainerStore(root)
    cs = cstore.all()
    holders: dict[str, int] = {}
    for c in cs:
        holders[c.record["Image"]] = holders.get(c.record["Image"], 0) + 1
    images = []
    for img in store.images():
        size = store.image_size(img)
        images.append(
            {
                "Id": str(img.id),
                "ParentId": "",
                "RepoTags": img.familiar_tags,
                "RepoDigests": list(img.repo_digests),
                "Created": int(parse_time(img.config.created or "")),
                "Size": size,
                "SharedSize": 0,
                "VirtualSize": size,
                "Labels": img.config.config.get("Labels") or {},
                "Containers": holders.get(str(img.id), 0),
            }
        )
    from api.containers import summary  # the ps document, shared with /containers/json

    sizes = edisk.container_sizes(store, cs)
    containers = []
    for c, (rw, virtual) in zip(cs, sizes, strict=True):
        doc = summary(c, time.time(), cstore)
        doc["SizeRw"], doc["SizeRootFs"] = rw, virtual
        containers.append(doc)
    vstore = VolumeStore(root)
    users = evolumes.users(cstore)
    volumes = []
    for name in evolumes.list_volumes(vstore, cstore, ()):
        doc = evolumes.inspect(vstore, name) or {}
        doc["UsageData"] = {"Size": -1, "RefCount": len(users.get(name, []))}
        volumes.append(doc)
    usage = {u.type: u for u in edisk.disk_usage(root)}
    return Reply(
        {
            "LayersSize": usage["Images"].size if "Images" in usage else 0,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }
    )


def registry_auth(header: str | None) -> Credentials | None:
    """X-Registry-Auth / X-Registry-Config: base64url JSON {username, password, …}."""
    if not header:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        return None
    if not isinstance(doc, dict) or not doc.get("username"):
        return None
    return Credentials(str(doc["username"]), str(doc.get("password", "")))


def registry_configs(header: str | None) -> dict[str, Credentials]:
    """X-Registry-Config (a build's): base64url JSON {registry: {username, password}, …},
    by registry key (``registry_key``: docker.io for Docker Hub's addresses)."""
    if not header:
        return {}
    try:
        doc = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    out: dict[str, Credentials] = {}
    for server, entry in doc.items():
        if isinstance(entry, dict) and entry.get("username"):
            out[registry_key(str(server))] = Credentials(
                str(entry["username"]), str(entry.get("password", ""))
            )
    return out


@ROUTES("POST", "/auth")
def auth(req: Request) -> Reply:
    doc = req.json()
    user, password = doc.get("username", ""), doc.get("password", "")
    if not user:
        raise errors.Invalid("username is required")
    host = registry_key(doc.get("serveraddress") or "docker.io")
    with (
        RegistryClient(ClientOptions.from_env()) as client,
        client.transport(host, Credentials(user, password)) as t,
    ):
        t.login()  # checked, not stored: the client keeps its own credentials, as docker's does
    return Reply({"Status": "Login Succeeded", "IdentityToken": ""})


@ROUTES("GET", "/events")
def events_stream(req: Request) -> Stream:
    """The store's event journal (engine.events), as dockerd streams it: without
    ``since``/``until`` only the events to come; with ``until`` the stream ends there."""
    filters = events.parse_filters(list(req.filter_list()))
    since_text, until_text = req.arg("since"), req.arg("until")
    since = events.parse_time(since_text) if since_text else None
    until = events.parse_time(until_text) if until_text else None
    if since is not None and until is not None and since > until:
        raise errors.Invalid(f"`since` time ({since_text}) cannot be after `until` time ({until_text})")
    reader = events.Reader(req.service.root, since, until, filters)

    def body() -> Iterator[bytes]:
        if since is None and until is None:
            reader.skip()
        else:
            for ev in reader.read():
                yield json.dumps(ev.to_json()).encode() + b"\n"
        if until is not None and until <= time.time_ns():
            return
        for ev in reader.follow(req.client_gone):
            yield json.dumps(ev.to_json()).encode() + b"\n"

    return Stream(body())
