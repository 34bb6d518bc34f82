"""Outbound traffic of a bridge's containers, as docker's bridge driver sets it up:
IPv4 forwarding on, and iptables rules for the bridge (docker's, by its name)::

    -t nat -A POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE
    -t filter -A FORWARD -i BRIDGE -o BRIDGE -j ACCEPT
    -t filter -A FORWARD -i BRIDGE -o dy-+ -j DROP         (docker's DOCKER-ISOLATION: no
    -t filter -A FORWARD -i BRIDGE -o dy0-+ -j DROP         bridge reaches another; ours are
    -t filter -A FORWARD -i BRIDGE -o dockyard+ -j DROP     dockyard0, dy0-HASH and dy-ID)
    -t filter -A FORWARD -i BRIDGE ! -o BRIDGE -j ACCEPT
    -t filter -A FORWARD -o BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT

Only the bridge's own subnet is masqueraded, and only when it leaves by another
interface. The rules are made with the bridge and dropped with it (``disable``). A
host without iptables gets no NAT: containers then reach nothing past the host.
"""

from __future__ import annotations

import shutil
import subprocess

from runtime.errors import RuntimeFailure

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def rules(bridge: str, subnet: str) -> list[tuple[str, str, list[str]]]:
    """(table, chain, rule) for a bridge and its subnet."""
    return [
        ("nat", "POSTROUTING", ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"]),
        ("filter", "FORWARD", ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]),
        ("filter", "FORWARD", ["-i", bridge, "-o", "dy-+", "-j", "DROP"]),
        ("filter", "FORWARD", ["-i", bridge, "-o", "dy0-+", "-j", "DROP"]),
        ("filter", "FORWARD", ["-i", bridge, "-o", "dockyard+", "-j", "DROP"]),
        ("filter", "FORWARD", ["-i", bridge, "!", "-o", bridge, "-j", "ACCEPT"]),
        (
            "filter",
            "FORWARD",
            ["-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
        ),
    ]


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("iptables")
    assert exe is not None
    return subprocess.run([exe, "-w", *args], capture_output=True, text=True, check=False)


def available() -> bool:
    return shutil.which("iptables") is not None


def enable(bridge: str, subnet: str) -> None:
    """Forwarding on and the bridge's rules in place (each added once). Raises
    RuntimeFailure when iptables refuses a rule."""
    if not available():
        return
    with open(IP_FORWARD) as f:
        if f.read().strip() != "1":
            with open(IP_FORWARD, "w") as w:
                w.write("1")
    for table, chain, rule in rules(bridge, subnet):
        if _iptables("-t", table, "-C", chain, *rule).returncode == 0:
            continue
        r = _iptables("-t", table, "-A", chain, *rule)
        if r.returncode:
            raise RuntimeFailure(f"failed to set up NAT for {bridge}: iptables: {r.stderr.strip()}")


def disable(bridge: str) -> None:
    """Drop every rule that names ``bridge`` (its subnet need not be known). Idempotent."""
    if not available():
        return
    for table, chain in (("nat", "POSTROUTING"), ("filter", "FORWARD")):
        listed = _iptables("-t", table, "-S", chain).stdout.splitlines()
        for line in listed:
            words = line.split()
            if words[:2] != ["-A", chain] or bridge not in words:
                continue
            _iptables("-t", table, "-D", *words[1:])
