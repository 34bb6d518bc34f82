"""Bridge networks: the network store, IP address management, and wiring containers in.

    networks/<id>.json   Docker's ``network inspect`` document, with the
                          addresses leased to containers under "Containers"

The default ``bridge`` network is the ``dockyard0`` bridge on 10.89.0.0/24
(for another ``--root``: ``dy0-<hash of the root>`` on the next free subnet,
so that two stores on one host never share a bridge or an address); user
networks get ``dy-<id>`` bridges on the next free 10.89.N.0/24 unless
``--subnet`` says otherwise.  "Free" means used by no network of this store
and routed nowhere on the host (other stores' bridges included).

Each container gets a veth pair: ``vethXXXXXXX`` on the bridge, ``eth0``
(``eth1``… for ``network connect``) in its namespace, with Docker's MAC
scheme.  Nothing is routed or NATed to the outside, and containers get no
default route (unlike Docker): only their own subnet and its gateway (the
host) are reachable, which also keeps user networks apart without firewall
rules.  A published port is served by a userspace proxy (runtime.network.proxy), as
docker-proxy does.  Leases are taken under an flock on the networks directory.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagefmt import journal
from imagefmt.errors import Conflict
from imagefmt.records import TYPE_CHECKING, NamedTuple
from runtime.errors import BadSpec, NameInUse, NoSuchNetwork, RuntimeFailure
from runtime.fs import read_json, write_json
from runtime.kernel.netlink import Netlink, link_exists, mac_for

if TYPE_CHECKING:
    from typing import Any

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "dockyard0"
DEFAULT_ROOT = Path("/var/lib/dockyard")
DEFAULT_SUBNET = "10.89.0.0/24"
POOL = "10.89.0.0/16"
PREDEFINED = ("bridge", "host", "none")
DNS_ADDRESS = "127.0.0.11"


class Endpoint(NamedTuple):
    """A container's attachment to one network."""

    network: str
    network_id: str
    bridge: str
    address: str
    prefixlen: int
    gateway: str
    aliases: tuple[str, ...]
    user_defined: bool

    @property
    def mac(self) -> str:
        return ":".join(f"{b:02x}" for b in mac_for(self.address))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"


class NetworkStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "networks"

    def default_bridge(self) -> str:
        """``dockyard0`` for the standard root, ``dy0-<hash>`` for any other."""
        import hashlib

        root = self.root.resolve()
        if root == DEFAULT_ROOT:
            return DEFAULT_BRIDGE
        return "dy0-" + hashlib.sha256(str(root).encode()).hexdigest()[:11]

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _docs(self) -> list[dict[str, Any]]:
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        return [read_json(self.dir / n) for n in names if n.endswith(".json")]

    def _save(self, doc: dict[str, Any]) -> None:
        write_json(self.dir / f"{doc['Id']}.json", doc)

    def all(self) -> list[dict[str, Any]]:
        """Every network, the predefined ones included (bridge created on first use)."""
        docs = self._docs()
        names = {d["Name"] for d in docs}
        if DEFAULT_NETWORK not in names:
            docs.append(self.ensure_default())
        return [*docs, *(self._special(n) for n in ("host", "none"))]

    def _special(self, name: str) -> dict[str, Any]:
        doc = _doc(name, name, "", "", "")
        doc.update(Id=(name.encode().hex() * 8)[:64], Driver=name if name == "host" else "null", Options={})
        doc["IPAM"]["Config"] = []
        return doc

    def get(self, ref: str) -> dict[str, Any]:
        """By name, ID or ID prefix. Raises NoSuchNetwork (docker: "network x not found")."""
        if ref in ("host", "none"):
            return self._special(ref)
        if ref == DEFAULT_NETWORK:
            return self.ensure_default()
        return self._find(ref, self._docs())

    def _find(self, ref: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
        for d in docs:
            if d["Name"] == ref or d["Id"] == ref:
                return d
        hits = [d for d in docs if ref and d["Id"].startswith(ref)]
        if len(hits) == 1:
            return hits[0]
        raise NoSuchNetwork(f"network {ref} not found")

    def ensure_default(self) -> dict[str, Any]:
        """The default ``bridge`` network's document, created on first use."""
        for d in self._docs():
            if d["Name"] == DEFAULT_NETWORK:
                return d
        with self.locked():
            return self._default_locked(self._docs())

    def _default_locked(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        for d in docs:
            if d["Name"] == DEFAULT_NETWORK:
                return d
        bridge = self.default_bridge()
        net = _free_subnet(docs, bridge, first=ipaddress.ip_network(DEFAULT_SUBNET))  # type: ignore[arg-type]
        doc = _doc(DEFAULT_NETWORK, os.urandom(32).hex(), bridge, str(net), _gateway(net, ""))
        doc["Options"]["com.docker.network.bridge.default_bridge"] = "true"
        self._save(doc)
        return doc

    def create(
        self,
        name: str,
        *,
        subnet: str = "",
        ip_range: str = "",
        gateway: str = "",
        labels: dict[str, str] | None = None,
        internal: bool = False,
        driver: str = "bridge",
    ) -> dict[str, Any]:
        """``docker network create``. Raises NameInUse, BadSpec."""
        if driver != "bridge":
            raise BadSpec(f'plugin "{driver}" not found')
        if name in PREDEFINED:
            raise NameInUse(f"network with name {name} already exists")
        with self.locked():
            docs = self._docs()
            if any(d["Name"] == name for d in docs):
                raise NameInUse(f"network with name {name} already exists")
            net = _subnet(subnet, docs) if subnet else _free_subnet(self._all_stores_docs(docs))
            gw = _gateway(net, gateway)
            if ip_range:
                try:
                    rng = ipaddress.ip_network(ip_range, strict=False)
                except ValueError:
                    raise BadSpec(f"invalid CIDR address: {ip_range}") from None
                if not rng.subnet_of(net):  # type: ignore[arg-type]
                    raise BadSpec(f"invalid pool request: ip-range {ip_range} is not within subnet {net}")
            nid = os.urandom(32).hex()
            doc = _doc(name, nid, "dy-" + nid[:12], str(net), gw, ip_range)
            doc["Labels"] = labels or {}
            doc["Internal"] = internal
            self._save(doc)
        journal.emit(self.root, "network", "create", nid, {"name": name, "type": "bridge"})
        return doc

    def _all_stores_docs(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """This store's networks plus its default bridge's subnet, created or not."""
        if any(d["Name"] == DEFAULT_NETWORK for d in docs):
            return docs
        return [*docs, self._default_locked(docs)]

    def remove(self, ref: str) -> str:
        """``docker network rm``; refuses a network with attached containers."""
        if ref in PREDEFINED:
            raise Conflict(f"{ref} is a pre-defined network and cannot be removed")
        with self.locked():
            doc = self._find(ref, self._docs())
            if doc["Name"] in PREDEFINED:
                raise Conflict(f"{doc['Name']} is a pre-defined network and cannot be removed")
            if doc["Containers"]:
                name, nid = doc["Name"], doc["Id"]
                raise Conflict(f"error while removing network: network {name} id {nid} has active endpoints")
            bridge = doc["Options"].get("com.docker.network.bridge.name", "")
            if bridge and link_exists(bridge):
                with Netlink() as nl:
                    nl.delete_link(bridge)
            (self.dir / f"{doc['Id']}.json").unlink()
        journal.emit(self.root, "network", "destroy", doc["Id"], {"name": doc["Name"], "type": "bridge"})
        return str(doc["Name"])

    # --------------------------------------------------------------- IPAM ---

    def lease(self, ref: str, cid: str, name: str, aliases: tuple[str, ...] = (), want: str = "") -> Endpoint:
        """Take an address on ``ref`` for container ``cid`` (``want`` a static one).
        Raises NoSuchNetwork, BadSpec or Conflict (no free address)."""
        with self.locked():
            docs = self._docs()
            doc = self._default_locked(docs) if ref == DEFAULT_NETWORK else self._find(ref, docs)
            cfg = doc["IPAM"]["Config"][0]
            net = ipaddress.ip_network(cfg["Subnet"])
            pool = ipaddress.ip_network(cfg.get("IPRange") or cfg["Subnet"])
            taken = {e["IPv4Address"].split("/")[0] for k, e in doc["Containers"].items() if k != cid}
            taken.add(cfg["Gateway"])
            if want:
                try:
                    addr = ipaddress.ip_address(want)
                except ValueError:
                    raise BadSpec(f"invalid IP address: {want}") from None
                if addr not in net:
                    raise BadSpec(f"Address {want} does not belong to the network's subnet {net}")
                if want in taken:
                    raise Conflict(f"Address already in use: {want}")
                chosen = want
            else:
                chosen = next((str(a) for a in pool.hosts() if str(a) not in taken), "")
                if not chosen:
                    name = doc["Name"]
                    raise Conflict(f"no available IPv4 addresses on this network's address pools: {name}")
            bridge = doc["Options"]["com.docker.network.bridge.name"]
            user = doc["Name"] != DEFAULT_NETWORK
            ep = Endpoint(
                doc["Name"], doc["Id"], bridge, chosen, net.prefixlen, cfg["Gateway"], aliases, user
            )
            doc["Containers"][cid] = {
                "Name": name,
                "EndpointID": os.urandom(32).hex(),
                "MacAddress": ep.mac,
                "IPv4Address": f"{chosen}/{net.prefixlen}",
                "IPv6Address": "",
                "Aliases": list(aliases),
            }
            self._save(doc)
        self.event(doc, "connect", cid)
        return ep

    def release_one(self, ref: str, cid: str) -> None:
        with self.locked():
            doc = (
                self._default_locked(self._docs())
                if ref == DEFAULT_NETWORK
                else self._find(ref, self._docs())
            )
            if doc["Containers"].pop(cid, None) is not None:
                self._save(doc)
                self.event(doc, "disconnect", cid)

    def release(self, cid: str) -> None:
        """Drop every lease of ``cid``. Idempotent."""
        with self.locked():
            for doc in self._docs():
                if doc["Containers"].pop(cid, None) is not None:
                    self._save(doc)
                    self.event(doc, "disconnect", cid)

    def event(self, doc: dict[str, Any], action: str, cid: str) -> None:
        """A network event in the store's journal, docker's attributes."""
        attrs = {"container": cid, "name": doc["Name"], "type": "bridge"}
        journal.emit(self.root, "network", action, doc["Id"], attrs)

    def endpoints_of(self, cid: str) -> dict[str, dict[str, Any]]:
        return {d["Name"]: d["Containers"][cid] for d in self._docs() if cid in d["Containers"]}

    def peers(self, network: str) -> list[dict[str, Any]]:
        """The leases on ``network`` (for the embedded DNS)."""
        try:
            return list(self.get(network)["Containers"].values())
        except NoSuchNetwork:
            return []


def _doc(name: str, nid: str, bridge: str, subnet: str, gateway: str, ip_range: str = "") -> dict[str, Any]:
    cfg: dict[str, str] = {"Subnet": subnet, "Gateway": gateway}
    if ip_range:
        cfg["IPRange"] = ip_range
    return {
        "Name": name,
        "Id": nid,
        "Created": _now(),
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [cfg]},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {"com.docker.network.bridge.name": bridge},
        "Labels": {},
    }


def _subnet(text: str, docs: list[dict[str, Any]]) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BadSpec(f"invalid CIDR address: {text}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise BadSpec("IPv6 networks are not supported")
    for d in docs:
        for cfg in d["IPAM"]["Config"]:
            if net.overlaps(ipaddress.ip_network(cfg["Subnet"])):
                raise Conflict("Pool overlaps with other one on this address space")
    for dev, routed in host_routes():  # docker's bridge driver: CheckRouteOverlaps
        if net.overlaps(routed):
            raise Conflict(f"{net} is routed on {dev} already ({routed}): networks have overlapping IPv4")
    return net


def _free_subnet(
    docs: list[dict[str, Any]], own_bridge: str = "", first: ipaddress.IPv4Network | None = None
) -> ipaddress.IPv4Network:
    """The first /24 of the pool (``first`` tried before) that no network of this
    store uses and that is routed nowhere on the host, but on ``own_bridge``."""
    used = [ipaddress.ip_network(c["Subnet"]) for d in docs for c in d["IPAM"]["Config"]]
    if not first:
        used.append(ipaddress.ip_network(DEFAULT_SUBNET))  # kept for the standard store's default bridge
    used += [net for dev, net in host_routes() if dev != own_bridge]
    candidates = [first] if first else []
    pool: list[ipaddress.IPv4Network] = list(ipaddress.IPv4Network(POOL).subnets(new_prefix=24))
    for net in [*candidates, *pool]:
        if not any(net.overlaps(u) for u in used):
            return net
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults")


def host_routes() -> list[tuple[str, ipaddress.IPv4Network]]:
    """(device, destination) of the host's IPv4 routes, the default route left out."""
    import socket
    import struct

    out = []
    try:
        with open("/proc/net/route") as f:
            rows = [line.split() for line in f.read().splitlines()[1:]]
    except OSError:
        return []
    for row in rows:
        if len(row) < 8 or row[1] == "00000000":
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(row[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(row[7], 16)))
        out.append((row[0], ipaddress.ip_network(f"{dest}/{mask}", strict=False)))
    return out  # type: ignore[return-value]


def _gateway(net: ipaddress.IPv4Network, text: str) -> str:
    if not text:
        return str(next(net.hosts()))
    try:
        gw = ipaddress.ip_address(text)
    except ValueError:
        raise BadSpec(f"invalid gateway address: {text}") from None
    if gw not in net:
        raise BadSpec(f"Gateway {text} does not belong to the subnet {net}")
    return text


# ------------------------------------------------------------- wiring ---


def ensure_bridge(ep: Endpoint) -> None:
    """Create the network's bridge with its gateway address, once."""
    with Netlink() as nl:
        if not link_exists(ep.bridge):
            try:
                nl.add_bridge(ep.bridge)
            except FileExistsError:
                pass
        nl.add_address(ep.bridge, ep.gateway, ep.prefixlen)
        nl.set_up(ep.bridge)


def host_veth() -> str:
    return "veth" + os.urandom(4).hex()[:7]


def plug(ep: Endpoint, pid: int, ifname: str, veth: str) -> None:
    """Create the veth pair: ``veth`` on the bridge, ``ifname`` in ``pid``'s namespace.
    Raises RuntimeFailure."""
    import socket

    try:
        master = socket.if_nametoindex(ep.bridge)
        with Netlink() as nl:
            nl.add_veth(veth, ifname, pid, master=master, peer_mac=mac_for(ep.address))
    except OSError as err:
        raise RuntimeFailure(f"failed to set up network {ep.network}: {err.strerror}") from None


def unplug(veth: str, timeout: float = 2.0) -> None:
    """Delete a host veth (its peer goes with it) and wait until it is gone: the
    kernel may be tearing it down already with the container's namespace, which
    it does asynchronously. Nothing if already gone."""
    try:
        with Netlink() as nl:
            nl.delete_link(veth)
    except OSError:
        pass
    deadline = time.monotonic() + timeout
    while link_exists(veth) and time.monotonic() < deadline:
        time.sleep(0.005)
