"""Networking: none/host/container:X, the default bridge, published ports, user networks with DNS.

Traffic stays on this host: to 127.0.0.1 published ports, or between
containers on bridges these tests create.  Every test ends with the leak
check (no veths, mounts or cgroups left).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import urllib.request

import pytest

from tests.conftest import Ctl

pytestmark = pytest.mark.privileged

HTTPD = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, tries: int = 50) -> str:
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no answer from {url}")


def test_none_host_and_container_modes(ctl: Ctl) -> None:
    assert ctl.ok("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net") == "lo\n"
    hostname = socket.gethostname()
    assert ctl.ok("run", "--rm", "--network", "host", "busybox", "hostname") == hostname + "\n"
    ctl.ok(
        "run", "-d", "--name", "owner", "busybox", "sh", "-c", "nc -l -p 7777 -e echo shared-netns; sleep 60"
    )
    time.sleep(0.3)
    out = ctl.ok("run", "--rm", "--network", "container:owner", "busybox", "nc", "127.0.0.1", "7777")
    assert out == "shared-netns\n"  # the same loopback: the same network namespace


def test_default_bridge_address_and_files(ctl: Ctl) -> None:
    cid = ctl.ok("run", "-d", "busybox", "sleep", "60").strip()
    doc = json.loads(ctl.ok("inspect", cid))[0]
    ns = doc["NetworkSettings"]
    ip = ns["IPAddress"]
    subnet = json.loads(ctl.ok("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet["Subnet"]) and ip.startswith("10.89.")
    assert ns["Gateway"] == subnet["Gateway"] and ns["IPPrefixLen"] == 24
    assert ns["MacAddress"] == "02:42:" + ":".join(f"{int(x):02x}" for x in ip.split("."))
    addrs = ctl.ok("exec", cid, "ip", "addr", "show", "eth0")
    assert f"inet {ip}/24" in addrs
    assert f"{ip}\t{cid[:12]}" in ctl.ok("exec", cid, "cat", "/etc/hosts")
    routes = ctl.ok("exec", cid, "ip", "route")
    assert f"{subnet['Subnet']} dev eth0" in routes
    assert f"default via {subnet['Gateway']} dev eth0" in routes  # NATed out by the host, as docker


def test_published_port_serves_httpd(ctl: Ctl) -> None:
    port = free_port()
    ctl.ok("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD)
    cid = ctl.ok("inspect", "-f", "{{.Id}}", "web").strip()
    assert get(f"http://127.0.0.1:{port}/") == f"hello-from-{cid[:12]}\n"
    assert f"127.0.0.1:{port}->80/tcp" in ctl.ok("ps")
    ports = json.loads(ctl.ok("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web"))
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert ctl.ok("port", "web") == f"80/tcp -> 127.0.0.1:{port}\n"
    assert ctl.ok("port", "web", "80") == f"127.0.0.1:{port}\n"
    # -P publishes the exposed ports on free host ports
    ctl.ok("run", "-d", "--name", "anyport", "-P", "--expose", "80", "busybox", "sh", "-c", HTTPD)
    host_port = json.loads(ctl.ok("inspect", "-f", "{{json .NetworkSettings.Ports}}", "anyport"))["80/tcp"][0]
    assert get(f"http://127.0.0.1:{host_port['HostPort']}/").startswith("hello-from-")
    # the same host port again: the start fails, docker's message, nothing left running
    r = ctl("run", "--name", "clash", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
    assert r.code == 125 and "address already in use" in r.err
    assert ctl.ok("inspect", "-f", "{{.State.Status}}", "clash") == "created\n"


def test_user_network_names_and_aliases(ctl: Ctl) -> None:
    nid = ctl.ok(
        "network", "create", "--subnet", "10.89.77.0/24", "--gateway", "10.89.77.254", "appnet"
    ).strip()
    assert len(nid) == 64
    for name in ("one", "two"):
        ctl.ok(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "appnet",
            "--network-alias",
            "svc",
            "busybox",
            "sh",
            "-c",
            HTTPD,
        )
    ips = {
        n: ctl.ok("inspect", "-f", "{{.NetworkSettings.Networks.appnet.IPAddress}}", n).strip()
        for n in ("one", "two")
    }
    assert all(ip.startswith("10.89.77.") for ip in ips.values())
    # containers reach each other by name through the embedded DNS
    script = (
        "cat /etc/resolv.conf; wget -qO- http://one/; wget -qO- http://two.appnet/; wget -qO- http://svc/"
    )
    out = ctl.ok("run", "--rm", "--network", "appnet", "busybox", "sh", "-c", script)
    one = ctl.ok("inspect", "-f", "{{.Id}}", "one")[:12]
    two = ctl.ok("inspect", "-f", "{{.Id}}", "two")[:12]
    lines = out.splitlines()
    assert "nameserver 127.0.0.11" in lines
    assert lines[-3:-1] == [f"hello-from-{one}", f"hello-from-{two}"] and lines[-1].startswith("hello-from-")
    # the alias answers with both addresses, in varying order (round-robin)
    script = "for i in $(seq 12); do nslookup svc 127.0.0.11 | grep '^Address' | tail -2 | head -1; done"
    firsts = ctl.ok("run", "--rm", "--network", "appnet", "busybox", "sh", "-c", script).split()
    assert {f for f in firsts if f.startswith("10.")} == {ips["one"], ips["two"]}
    # a container on the default bridge cannot resolve them
    r = ctl("run", "--rm", "busybox", "nslookup", "one")
    assert r.code != 0
    doc = json.loads(ctl.ok("network", "inspect", "appnet"))[0]
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.89.77.0/24", "Gateway": "10.89.77.254"}]
    assert sorted(e["Name"] for e in doc["Containers"].values()) == ["one", "two"]
    r = ctl("network", "rm", "appnet")
    assert r.code == 1 and "has active endpoints" in r.err


def test_network_verbs_and_connect(ctl: Ctl) -> None:
    ctl.ok("network", "create", "n1")
    ctl.ok("network", "create", "--subnet", "10.89.88.0/24", "--ip-range", "10.89.88.128/25", "n2")
    out = ctl.ok("network", "ls")
    assert out.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert {line.split()[1] for line in out.splitlines()[1:]} >= {"bridge", "host", "none", "n1", "n2"}
    r = ctl("network", "create", "n1")
    assert r.code == 1 and "network with name n1 already exists" in r.err
    r = ctl("network", "create", "--subnet", "10.89.88.0/26", "n3")
    assert r.code == 1 and "overlaps" in r.err
    from runtime.network.bridge import host_routes

    other = next(((d, n) for d, n in host_routes() if not d.startswith(("dy", "dockyard"))), None)
    if other is not None:  # a subnet the host routes elsewhere (eth0's here)
        r = ctl("network", "create", "--subnet", str(other[1]), "n4")
        assert r.code == 1 and f"is routed on {other[0]} already" in r.err
    ctl.ok(
        "run", "-d", "--name", "srv", "--network", "n2", "--ip", "10.89.88.200", "busybox", "sh", "-c", HTTPD
    )
    assert ctl.ok("inspect", "-f", "{{.NetworkSettings.Networks.n2.IPAddress}}", "srv") == "10.89.88.200\n"
    ctl.ok("run", "-d", "--name", "cli1", "--network", "n1", "busybox", "sleep", "60")
    r = ctl("exec", "cli1", "wget", "-T", "3", "-qO-", "http://10.89.88.200/")
    assert r.code != 0  # different bridges: the host drops what one sends another (docker's isolation)
    ctl.ok("network", "connect", "--alias", "client", "n2", "cli1")
    ip = ctl.ok("inspect", "-f", "{{.NetworkSettings.Networks.n2.IPAddress}}", "cli1").strip()
    assert ip.startswith("10.89.88.") and int(ip.split(".")[-1]) >= 128  # from --ip-range
    assert ctl.ok("exec", "cli1", "wget", "-qO-", "http://10.89.88.200/").startswith("hello-from-")
    ctl.ok("network", "disconnect", "n2", "cli1")
    assert "eth1" not in ctl.ok("exec", "cli1", "ip", "addr")
    r = ctl("run", "--network", "nonet", "busybox")
    assert r.code == 125 and "network nonet not found" in r.err
    r = ctl("run", "--network-alias", "x", "busybox")
    assert r.code == 125 and "only for containers in user defined networks" in r.err
    ctl.ok("rm", "-f", "srv", "cli1")
    assert ctl.ok("network", "rm", "n1", "n2") == "n1\nn2\n"
    r = ctl("network", "rm", "bridge")
    assert r.code == 1 and "pre-defined network" in r.err
