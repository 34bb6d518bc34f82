"""One container's network plumbing, set up and torn down by its monitor.

``prepare`` leases addresses and binds published ports before the container
exists (so failures leave nothing running); ``plug`` runs from
``launch.spawn``'s hook once the container has its network namespace;
``started`` starts the port proxies and the embedded DNS; ``teardown``
undoes everything.  Only bridge and user networks come here.
"""

from __future__ import annotations

from pathlib import Path

from imagefmt.records import TYPE_CHECKING
from runtime.container.store import Container, ContainerStore
from runtime.network import bridge as N
from runtime.network import proxy
from runtime.network.ports import PortBinding

if TYPE_CHECKING:
    from typing import Any


def attachments(c: Container) -> dict[str, dict[str, Any]]:
    """The networks a container joins at start, primary first."""
    return dict(c.private.get("Networks") or {})


def port_bindings(c: Container) -> list[PortBinding]:
    out = []
    for key, binds in (c.host_config.get("PortBindings") or {}).items():
        port, _, proto = key.partition("/")
        for b in binds or [{}]:
            host_port = int(b.get("HostPort") or 0)
            out.append(PortBinding(int(port), proto or "tcp", b.get("HostIp", ""), host_port))
    if c.host_config.get("PublishAllPorts"):
        have = {b.key for b in out}
        for key in c.config.get("ExposedPorts") or {}:
            if key not in have:
                port, _, proto = key.partition("/")
                out.append(PortBinding(int(port), proto or "tcp"))
    return out


def _link_aliases(items: list[str] | None) -> dict[str, str]:
    """``--link NAME[:ALIAS]`` on a user network: {alias: the linked container's name}."""
    out = {}
    for item in items or ():
        target, _, alias = item.partition(":")
        out[(alias or target).lstrip("/")] = target.lstrip("/")
    return out


class Wiring:
    def __init__(self, root: Path, c: Container) -> None:
        self.root = root
        self.store = N.NetworkStore(root)
        self.c = c
        self.endpoints: list[tuple[N.Endpoint, str, str]] = []  # (endpoint, ifname, host veth)
        self.published: list[proxy.Published] = []
        self.dns_sock: Any = None

    def prepare(self) -> None:
        """Lease, make bridges, bind ports. Raises RuntimeFailure/Conflict/BadSpec (then undone)."""
        try:
            for i, (name, cfg) in enumerate(attachments(self.c).items()):
                aliases = tuple(cfg.get("Aliases") or ())
                ep = self.store.lease(name, self.c.id, self.c.name, aliases, cfg.get("IP") or "")
                N.ensure_bridge(ep)
                self.endpoints.append((ep, f"eth{i}", N.host_veth()))
            self.published = proxy.bind(port_bindings(self.c))
        except BaseException:
            self.teardown()
            raise

    @property
    def primary(self) -> N.Endpoint | None:
        return self.endpoints[0][0] if self.endpoints else None

    @property
    def gateway(self) -> str:
        """The container's default route: its first network's gateway (none when internal)."""
        ep = self.primary
        return ep.gateway if ep is not None and not ep.internal else ""

    @property
    def interfaces(self) -> tuple[tuple[str, str, int], ...]:
        return tuple((ifname, ep.address, ep.prefixlen) for ep, ifname, _ in self.endpoints)

    @property
    def dns(self) -> str | None:
        return N.DNS_ADDRESS if any(ep.user_defined for ep, _, _ in self.endpoints) else None

    def plug(self, pid: int) -> None:
        """The hook of launch.spawn: veths in, and the DNS socket bound in the
        container's namespace before its process can send a query."""
        for ep, ifname, veth in self.endpoints:
            N.plug(ep, pid, ifname, veth)
        if self.dns:
            from runtime.network import dns

            self.dns_sock = dns.open_in_netns(pid)

    def started(self, pid: int) -> None:
        if self.primary is not None:
            proxy.serve(self.published, self.primary.address)
        if self.dns_sock is not None:
            from runtime.network import dns

            dns.serve(self.dns_sock, self.lookup, dns.host_nameservers())

    def lookup(self, name: str) -> list[str] | None:
        """Addresses of the containers called ``name`` (name, short ID, alias, or
        ``name.network``) on the user networks this container is on now; None
        when no container has that name."""
        found: list[str] = []
        now = ContainerStore(self.root).load(self.c.id)  # network connect --link: links added since
        links = {net: _link_aliases(cfg.get("Links")) for net, cfg in attachments(now).items()}
        for doc in self.store.all():
            if self.c.id not in doc.get("Containers", {}) or doc["Name"] == N.DEFAULT_NETWORK:
                continue
            net = doc["Name"]
            # this container's --link ALIAS (or ALIAS.network) is the linked container's name
            wanted = name
            for alias, target in links.get(net, {}).items():
                if name in (alias, f"{alias}.{net}"):
                    wanted = target
            for cid, e in doc["Containers"].items():
                names = {e["Name"], cid[:12], *e.get("Aliases", [])}
                if wanted in names or wanted in {f"{n}.{net}" for n in names}:
                    found.append(e["IPv4Address"].split("/")[0])
        return found or None

    def settings(self) -> dict[str, Any]:
        """What inspect shows under NetworkSettings, for state.json."""
        nets = {}
        for ep, _, veth in self.endpoints:
            nets[ep.network] = {
                "IPAMConfig": None,
                "Links": attachments(self.c).get(ep.network, {}).get("Links"),
                "Aliases": list(ep.aliases) or None,
                "NetworkID": ep.network_id,
                "EndpointID": "",
                "Gateway": ep.gateway,
                "IPAddress": ep.address,
                "IPPrefixLen": ep.prefixlen,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": ep.mac,
                "DriverOpts": None,
                "HostVeth": veth,
            }
        exposed = self.c.config.get("ExposedPorts") or {}
        ports: dict[str, list[dict[str, str]] | None] = dict.fromkeys(exposed)
        for p in self.published:
            host = {"HostIp": p.binding.host_ip or "0.0.0.0", "HostPort": str(p.host_port)}
            ports[p.binding.key] = [*(ports.get(p.binding.key) or []), host]
        return {"Networks": nets, "Ports": ports}

    def teardown(self) -> None:
        for p in self.published:
            p.sock.close()
        for _, _, veth in self.endpoints:
            N.unplug(veth)
        if self.endpoints:
            self.store.release(self.c.id)


def unplug_recorded(root: Path, cid: str, state: dict[str, Any]) -> None:
    """Remove the host veths recorded in a container's state (also those of
    ``network connect``, or left by a dead monitor) and its leases."""
    for net in (state.get("Network") or {}).get("Networks", {}).values():
        if net.get("HostVeth"):
            N.unplug(net["HostVeth"])
    N.NetworkStore(root).release(cid)


def connect(root: Path, c: Container, network: str, aliases: tuple[str, ...], ip: str) -> dict[str, Any]:
    """``docker network connect``: plug a running container into one more
    network (the next ``ethN``); return its NetworkSettings entry. Raises
    BadSpec/Conflict/RuntimeFailure (then undone)."""
    store = N.NetworkStore(root)
    ep = store.lease(network, c.id, c.name, aliases, ip)
    veth = N.host_veth()
    ifname = f"eth{len((c.state.get('Network') or {}).get('Networks') or {})}"
    try:
        N.ensure_bridge(ep)
        N.plug(ep, c.pid, ifname, veth)
        _configure_in(c.pid, ifname, ep)
    except BaseException:
        N.unplug(veth)
        store.release_one(network, c.id)
        raise
    w = Wiring(root, c)
    w.endpoints = [(ep, ifname, veth)]
    return dict(w.settings()["Networks"][ep.network])


def _configure_in(pid: int, ifname: str, ep: N.Endpoint) -> None:
    import os

    from runtime.kernel import syscalls as L
    from runtime.kernel.netlink import Netlink

    child = os.fork()
    if child == 0:
        code = 0
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            L.setns(fd, L.CLONE_NEWNET)
            with Netlink() as nl:
                nl.add_address(ifname, ep.address, ep.prefixlen)
                nl.set_up(ifname)
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(child, 0)
    if status:
        from runtime.errors import RuntimeFailure

        raise RuntimeFailure(f"failed to configure {ifname} in the container for network {ep.network}")
