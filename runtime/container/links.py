"""Legacy links (``--link NAME[:ALIAS]``) on the default bridge, as docker's daemon
makes them: HostConfig.Links ``/child:/parent/alias`` at create, and at each start an
/etc/hosts entry ``IP\\talias hostname name`` and the environment of moby's
daemon/links (ALIAS_PORT, ALIAS_PORT_5432_TCP[_ADDR|_PORT|_PROTO], the
``_START``/``_END`` block of a port range, ALIAS_NAME, ALIAS_ENV_*) for every linked
container, which must be running then.  A linked container's later starts put its
new address in the /etc/hosts of the running containers that link to it (found by
the marks ``record`` leaves in its directory, which ``forget`` takes back).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from imagefmt.errors import Conflict
from imagefmt.records import NamedTuple
from runtime.container.store import LINKED_BY, Container, ContainerStore
from runtime.errors import BadSpec, NoSuchContainer, NotRunning, SpecRefused


class Linked(NamedTuple):
    """What a start gives the container of one link."""

    hosts: tuple[str, str]  # (address, "alias hostname [name]")
    env: tuple[str, ...]


def parse(item: str) -> tuple[str, str]:
    """``NAME[:ALIAS]`` -> (name, alias). Raises BadSpec."""
    name, _, alias = item.partition(":")
    name, alias = name.lstrip("/"), (alias or name).lstrip("/")
    if not name or "/" in alias:
        raise BadSpec(f"invalid argument {item!r} for --link: expected NAME[:ALIAS]")
    return name, alias


def record(
    store: ContainerStore, items: tuple[str, ...], parent: str, parent_id: str, network: str
) -> list[str] | None:
    """HostConfig.Links for ``--link`` at create (None without any), each linked
    container marked as linked to by ``parent_id``. Raises SpecRefused: a container
    that does not exist, or links off the default bridge."""
    if not items:
        return None
    kind = "host type networking" if network == "host" else ""
    kind = "container type network" if network.startswith("container:") else kind
    if kind:
        raise SpecRefused(
            f"conflicting options: {kind} can't be used with links. This would result in undefined behavior"
        )
    out = []
    for item in items:
        name, alias = parse(item)
        try:
            child = store.get(name)
        except NoSuchContainer as err:
            raise SpecRefused(f"could not get container for {name}: {err}") from err
        out.append(f"/{child.name}:/{parent}/{alias}")
        (child.dir / LINKED_BY).mkdir(exist_ok=True)
        (child.dir / LINKED_BY / parent_id).touch()
    return out


def forget(store: ContainerStore, parent: Container) -> None:
    """``parent`` is being removed: take its marks back from the containers it links to."""
    for link in parent.host_config.get("Links") or []:
        try:
            child = store.get(link.partition(":")[0].lstrip("/"))
        except NoSuchContainer:
            continue
        (child.dir / LINKED_BY / parent.id).unlink(missing_ok=True)


def remove(store: ContainerStore, ref: str) -> None:
    """``docker rm --link /PARENT/ALIAS``: take the link out of PARENT's HostConfig.Links
    (its variables and hosts entry go at its next start). Raises NoSuchContainer for a
    link that does not exist, Conflict for a container's own name (docker's rmLink)."""
    name = ref.strip("/")
    parent_name, sep, _ = name.rpartition("/")
    if not sep:
        store.get(name)
        raise Conflict("Conflict, cannot remove the default link name of the container")
    try:
        found = store.get(parent_name)
    except NoSuchContainer:
        raise NoSuchContainer(f"No such container: {name}") from None
    with store.locked(found) as parent:
        items = parent.host_config.get("Links") or []
        kept = [item for item in items if item.partition(":")[2] != f"/{name}"]
        if kept == items:
            raise NoSuchContainer(f"No such container: {name}")
        parent.host_config["Links"] = kept or None
        store.save_record(parent)
    for child_name in {item.partition(":")[0] for item in items} - {item.partition(":")[0] for item in kept}:
        try:
            (store.get(child_name.lstrip("/")).dir / LINKED_BY / parent.id).unlink(missing_ok=True)
        except NoSuchContainer:
            continue


def names_of(store: ContainerStore, c: Container) -> list[str]:
    """The link names by which containers name ``c`` (``PARENT/ALIAS``, sorted), which
    docker lists among its Names after its own."""
    try:
        ids = os.listdir(c.dir / LINKED_BY)
    except FileNotFoundError:
        return []
    out = []
    for parent_id in ids:
        try:
            parent = store.load(parent_id)
        except NoSuchContainer:
            continue
        out += [
            path.lstrip("/")
            for child, _, path in (item.partition(":") for item in parent.host_config.get("Links") or [])
            if child == f"/{c.name}"
        ]
    return sorted(out)


def renamed_parent(items: list[str], old: str, new: str) -> list[str]:
    """HostConfig.Links of a container renamed from ``old`` to ``new``: each link's
    path under its new name (docker's link graph follows a rename)."""
    return [
        f"{child}:/{new}/{path.removeprefix(f'/{old}/')}"
        if path.startswith(f"/{old}/")
        else f"{child}:{path}"
        for child, _, path in (item.partition(":") for item in items)
    ]


def renamed_child(store: ContainerStore, child: Container, old: str, new: str) -> None:
    """``child`` was renamed from ``old`` to ``new``: the links to it, in the
    containers that link to it, name it by its new name."""
    for parent_id in os.listdir(child.dir / LINKED_BY):
        try:
            with store.locked(store.load(parent_id)) as parent:
                items = parent.host_config.get("Links") or []
                moved = [
                    f"/{new}:{item.partition(':')[2]}" if item.startswith(f"/{old}:") else item
                    for item in items
                ]
                if moved != items:
                    parent.host_config["Links"] = moved
                    store.save_record(parent)
        except NoSuchContainer:
            continue


def update_parents(store: ContainerStore, child: Container, address: str) -> None:
    """``child`` starts on the default bridge at ``address``: rewrite, in the /etc/hosts
    of each running container linking to it, the address of every line naming the
    link's alias (libnetwork's updateParentHosts with etchosts.Update's pattern: the
    alias after a tab, then a space or a dot, so alias ``db`` also moves ``db.x``)."""
    try:
        ids = os.listdir(child.dir / LINKED_BY)
    except FileNotFoundError:
        return
    for parent_id in ids:
        try:
            parent = store.load(parent_id)
        except NoSuchContainer:  # being created, or gone
            continue
        if not parent.running:
            continue
        for link in parent.host_config.get("Links") or []:
            child_path, _, link_name = link.partition(":")
            if child_path.lstrip("/") == child.name:
                _update_hosts(parent.dir / "hosts", address, link_name.rsplit("/", 1)[-1])


def _update_hosts(path: Path, address: str, alias: str) -> None:
    """etchosts.Update, in place (the file is bind-mounted: its inode must stay)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    pattern = re.compile(rf"(\S*)(\t{re.escape(alias)})(\s|\.)")
    new = pattern.sub(lambda m: f"{address}{m.group(2)}{m.group(3)}", text)
    if new != text:
        with open(path, "r+") as f:
            f.write(new)
            f.truncate()


def resolve(store: ContainerStore, c: Container) -> list[Linked]:
    """The links of ``c`` as they are now (at its start). Raises NotRunning with
    docker's words for a linked container that does not run."""
    out = []
    for link in c.host_config.get("Links") or []:
        child_path, _, link_name = link.partition(":")
        try:
            child = store.get(child_path.lstrip("/"))
        except NoSuchContainer:  # removed since: docker's words are the same
            raise NotRunning(f"Cannot link to a non running container: {child_path} AS {link_name}") from None
        nets = (child.state.get("Network") or {}).get("Networks") or {}
        address = (nets.get("bridge") or {}).get("IPAddress", "")
        if not child.running or not address:
            raise NotRunning(f"Cannot link to a non running container: /{child.name} AS {link_name}")
        alias = link_name.rsplit("/", 1)[-1]
        names = f"{alias} {child.config['Hostname']}" + (f" {child.name}" if alias != child.name else "")
        out.append(Linked((address, names), tuple(env(link_name, address, child))))
    return out


def env_of(store: ContainerStore, c: Container) -> tuple[str, ...]:
    """The link variables of an exec in ``c`` (docker computes them again for each
    exec, from the linked containers as they are then). Raises NotRunning as ``resolve``."""
    if not c.host_config.get("Links"):
        return ()
    return tuple(e for lk in resolve(store, c) for e in lk.env)


def env(link_name: str, address: str, child: Container) -> list[str]:
    """moby's links.Link.ToEnv: the first port, the ``_START``/``_END`` block of each
    run of ports moby calls contiguous, every port's four variables, the name, the
    linked container's Env.  (A key given twice keeps its first place when the start
    merges the environment, as docker's.)"""
    alias = link_name.rsplit("/", 1)[-1].upper().replace("-", "_")
    ports = [
        (int(p.partition("/")[0]), p.partition("/")[2] or "tcp")
        for p in child.config.get("ExposedPorts") or {}
    ]
    ports.sort(key=lambda pp: (pp[0], pp[1] != "tcp"))  # by number, tcp first (nat.Sort)
    out = []
    if ports:
        port, proto = ports[0]
        out.append(f"{alias}_PORT={proto}://{address}:{port}")
    i = 0
    while i < len(ports):
        j = _next_contiguous(ports, i)
        if j > i + 1:  # moby's test: three ports or more
            (port, proto), (end, end_proto) = ports[i], ports[j]
            key, end_key = f"{alias}_PORT_{port}_{proto.upper()}", f"{alias}_PORT_{port}_{end_proto.upper()}"
            out += [
                f"{key}_START={proto}://{address}:{port}",
                f"{key}_ADDR={address}",
                f"{key}_PROTO={proto}",
                f"{key}_PORT_START={port}",
                f"{end_key}_END={end_proto}://{address}:{end}",
                f"{end_key}_PORT_END={end}",
            ]
            i = j + 1
        else:
            i += 1
    for port, proto in ports:
        key = f"{alias}_PORT_{port}_{proto.upper()}"
        out += [
            f"{key}={proto}://{address}:{port}",
            f"{key}_ADDR={address}",
            f"{key}_PORT={port}",
            f"{key}_PROTO={proto}",
        ]
    out.append(f"{alias}_NAME={link_name}")
    for item in child.config.get("Env") or []:
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "PATH"):
            out.append(f"{alias}_ENV_{key}={value}")
    return out


def _next_contiguous(ports: list[tuple[int, str]], i: int) -> int:
    """moby's nextContiguous: the last index of the run from ``i`` where each entry's
    number is one more than the one before, counting entries, not protocols (so
    8080/tcp, 8080/udp, 8081/tcp is a run)."""
    value = ports[i][0]
    for k in range(i + 1, len(ports)):
        if ports[k][0] > value + 1:
            return k - 1
        value += 1
    return len(ports) - 1
