"""Containers as dockerd lists and shows them: ps's selection, filters and rows, and
the inspect document.  (Their sizes are in engine.disk, pruning in engine.prune and
the image hold a removed container gives back in engine.holds: ps loads neither the
image store, nor the runtime's lifecycle, nor the digest parser.)"""

from __future__ import annotations

import re

from engine.errors import FilterInvalid, FilterSyntax
from engine.filters import label_match
from imagefmt import errors
from imagefmt.records import TYPE_CHECKING, NamedTuple
from runtime.container.store import LINKED_BY, Container, ContainerStore, parse_time

if TYPE_CHECKING:
    from typing import Any

PS_FILTERS = ("id", "name", "status", "exited", "label", "ancestor", "volume", "network", "health")


class PsOptions(NamedTuple):
    all: bool = False  # stopped containers too
    latest: bool = False  # only the newest
    last: int = -1  # only the N newest (any state)
    filters: tuple[str, ...] = ()  # KEY=VALUE, KEY in PS_FILTERS


def check_filters(filters: tuple[str, ...]) -> None:
    """ps's filters are KEY=VALUE with a known KEY (docker's CLI checks them before
    listing). Raises FilterInvalid."""
    for f in filters:
        key, sep, _ = f.partition("=")
        if not sep:
            raise FilterSyntax(f"bad format of filter (expected name=value): {f}")
        if key not in PS_FILTERS:
            raise FilterInvalid(f"invalid filter '{f}'")


def list_containers(cstore: ContainerStore, opts: PsOptions) -> list[Container]:
    """The containers ``docker ps`` lists, newest first. Raises FilterInvalid."""
    check_filters(opts.filters)
    cs = cstore.all()
    if not opts.all and not opts.latest and opts.last < 0:
        cs = [c for c in cs if c.running or c.restarting]
    cs = [c for c in cs if matches(c, opts.filters)]
    if opts.latest:
        cs = cs[:1]
    elif opts.last >= 0:
        cs = cs[: opts.last]
    return cs


def matches(c: Container, filters: tuple[str, ...]) -> bool:
    """Whether ``c`` passes every filter: values of one key are alternatives. Raises FilterInvalid."""
    by: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise FilterSyntax(f"bad format of filter (expected name=value): {f}")
        by.setdefault(key, []).append(value)
    for key, values in by.items():
        if key == "id":
            ok = any(c.id.startswith(v) for v in values)
        elif key == "name":
            ok = any(re.search(v.lstrip("/"), c.name) for v in values)
        elif key == "status":
            ok = c.status in values
        elif key == "exited":
            ok = c.status == "exited" and str(c.state.get("ExitCode")) in values
        elif key == "label":
            labels = c.config.get("Labels") or {}
            ok = all(label_match(labels, v) for v in values)
        elif key == "ancestor":
            ok = any(v in (c.config.get("Image"), c.record["Image"], c.record["Image"][7:19]) for v in values)
        elif key == "volume":
            ok = any(
                v in (m.get("Name"), m.get("Destination"))
                for m in c.record.get("Mounts") or []
                for v in values
            )
        elif key == "network":
            ok = c.host_config.get("NetworkMode") in values
        elif key == "health":  # starting, healthy, unhealthy, or none without a check
            ok = ((c.state.get("Health") or {}).get("Status") or "none") in values
        else:
            raise FilterInvalid(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


class PortRow(NamedTuple):
    """A port of ps's PORTS: published (host address and port) or only exposed."""

    private: str  # 80/tcp
    published: bool
    host_ip: str | None = None
    host_port: str | None = None


class ContainerRow(NamedTuple):
    """A line of ``docker ps``."""

    id: str
    name: str
    image: str  # as given to run (or the image ID)
    image_id: str
    command: str  # path and arguments, those with a space quoted
    created: float  # seconds since the epoch
    ports: list[PortRow]
    state: str  # created, running, paused, restarting, exited, dead
    status: str  # Up 3 seconds, Exited (0) 2 minutes ago, …
    labels: dict[str, str]
    mounts: list[str]  # volume names or bind sources
    network_mode: str
    local_volumes: int
    link_names: list[str]  # PARENT/ALIAS of the links to it (docker's other Names)


def row(c: Container, now: float, store: ContainerStore | None = None) -> ContainerRow:
    """A line of ``docker ps``; with ``store``, the names of the links to it too."""
    labels = c.config.get("Labels") or {}
    mounts = c.record.get("Mounts") or []
    link_names: list[str] = []
    if store is not None and (c.dir / LINKED_BY).is_dir():
        from runtime.container import links

        link_names = links.names_of(store, c)
    return ContainerRow(
        id=c.id,
        name=c.name,
        image=c.config.get("Image") or c.record["Image"],
        image_id=c.record["Image"],
        command=c.command(),
        created=parse_time(c.record["Created"]),
        ports=ports(c),
        state=c.status,
        status=c.status_text(now),
        labels=labels,
        mounts=[m.get("Name") or m.get("Source", "") for m in mounts],
        network_mode=c.host_config.get("NetworkMode", ""),
        local_volumes=sum(1 for m in mounts if m.get("Type") == "volume"),
        link_names=link_names,
    )


def ports(c: Container) -> list[PortRow]:
    """Published and exposed ports in docker's order (by number, then protocol)."""
    published = c.network_settings().get("Ports") or {}
    out = []
    for key in sorted(set(published) | set(c.config.get("ExposedPorts") or {}), key=port_key):
        bindings = published.get(key) or []
        if not bindings:
            out.append(PortRow(key, False))
        for b in bindings:
            out.append(PortRow(key, True, b.get("HostIp"), b.get("HostPort")))
    return out


def port_key(key: str) -> tuple[int, str]:
    num, _, proto = key.partition("/")
    return (int(num) if num.isdigit() else 0, proto)


def inspect(cstore: ContainerStore, name: str) -> dict[str, Any] | None:
    """``docker container inspect NAME``'s document; None when there is no such container."""
    try:
        return cstore.get(name).inspect()
    except errors.NotFound:
        return None
