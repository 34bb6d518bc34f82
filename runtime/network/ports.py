"""``-p``/``--expose`` parsing with Docker's rules and wording (docker/go-connections nat)."""

from __future__ import annotations

from imagefmt.records import NamedTuple
from runtime.errors import BadSpec


class PortBinding(NamedTuple):
    """``host_ip:host_port -> container_port/proto``; host_port 0 picks a free port."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


def _range(text: str, what: str) -> list[int]:
    lo, sep, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise BadSpec(f"invalid {what}: {text}") from None
    if not (0 < a <= 65535 and 0 < b <= 65535) or b < a:
        raise BadSpec(f"invalid {what}: {text}")
    return list(range(a, b + 1))


def parse_publish(spec: str) -> list[PortBinding]:
    """``[ip:][hostPort:]containerPort[/proto]``, ranges allowed. Raises BadSpec."""
    body, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise BadSpec(f"invalid proto: {proto}")
    ip = ""
    if body.startswith("["):  # [v6]:host:ctr
        end = body.find("]")
        ip, body = body[1:end], body[end + 2 :]
    parts = body.split(":")
    if len(parts) > 3:
        head = ":".join(parts[:-2])
        parts = [head, parts[-2], parts[-1]]
    if len(parts) == 3:
        ip, host, ctr = ip or parts[0], parts[1], parts[2]
    elif len(parts) == 2:
        host, ctr = parts
    else:
        host, ctr = "", parts[0]
    if ip:
        import ipaddress

        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise BadSpec(f"invalid IP address: {ip}") from None
    ctr_ports = _range(ctr, "containerPort")
    host_ports = _range(host, "hostPort") if host else [0] * len(ctr_ports)
    if len(host_ports) != len(ctr_ports):
        if len(host_ports) > 1:
            raise BadSpec(f"invalid ranges specified for container and host Ports: {ctr} and {host}")
        host_ports = host_ports * len(ctr_ports)
    return [PortBinding(c, proto, ip, h) for c, h in zip(ctr_ports, host_ports, strict=True)]


def parse_expose(spec: str) -> list[str]:
    """``--expose 80[-90][/proto]`` -> ["80/tcp", …]. Raises BadSpec."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    return [f"{p}/{proto}" for p in _range(body, "range format for --expose")]
