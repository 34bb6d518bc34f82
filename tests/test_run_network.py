"""What ``run`` gives a container on the default bridge beyond the bridge itself:
outbound NAT through the host (the rule, forwarding, the default route, and a masqueraded
connection to a namespace the test made), legacy ``--link``, and the blkio iops limits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.container.store import ContainerStore
from runtime.network.bridge import NetworkStore
from tests.conftest import Ctl, docker


def _iptables_has(table: str, chain: str, *rule: str) -> bool:
    return (
        subprocess.run(["iptables", "-w", "-t", table, "-C", chain, *rule], capture_output=True).returncode
        == 0
    )


@pytest.fixture
def outside() -> Iterator[str]:
    """A network namespace of the test's own behind a veth on the host (198.18.N.0/30,
    the benchmarking range): an address past the host that a container can only reach
    through forwarding and NAT. Yields the namespace's name; its address is .2."""
    n = os.getpid() % 250
    ns, host_if = f"natout{os.getpid()}", f"nato{os.getpid()}"
    cmds = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns],
        ["ip", "addr", "add", f"198.18.{n}.1/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", ns, "addr", "add", f"198.18.{n}.2/30", "dev", "eth0"],
        ["ip", "-n", ns, "link", "set", "eth0", "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
    ]
    try:
        for cmd in cmds:
            subprocess.run(cmd, check=True, capture_output=True)
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_default_bridge_is_natted_as_dockers(ctl: Ctl, outside: str) -> None:
    n = os.getpid() % 250
    # a server in the outside namespace that answers with the address it saw
    serve = (
        f"import socket; s = socket.create_server(('198.18.{n}.2', 8080)); print('ready', flush=True);"
        " c, a = s.accept(); c.sendall(('seen ' + a[0] + chr(10)).encode()); c.close()"
    )
    server = subprocess.Popen(
        ["ip", "netns", "exec", outside, sys.executable, "-c", serve], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        out = ctl.ok("run", "--rm", "busybox", "sh", "-c", f"ip route; nc -w 5 198.18.{n}.2 8080 </dev/null")
    finally:
        server.kill()
        server.communicate(timeout=10)
    nstore = NetworkStore(ctl.root)
    subnet = nstore.get("bridge")["IPAM"]["Config"][0]
    bridge = nstore.default_bridge()
    assert f"default via {subnet['Gateway']} dev eth0" in out
    assert _iptables_has("nat", "POSTROUTING", "-s", subnet["Subnet"], "!", "-o", bridge, "-j", "MASQUERADE")
    assert _iptables_has("filter", "FORWARD", "-i", bridge, "!", "-o", bridge, "-j", "ACCEPT")
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    # the connection reached the namespace past the host, from the host's address there
    assert f"seen 198.18.{n}.1\n" in out, out


def test_nat_rules_go_with_the_bridge(ctl: Ctl) -> None:
    ctl.ok("network", "create", "natnet")
    ctl.ok("run", "--rm", "--network", "natnet", "busybox", "true")
    doc = NetworkStore(ctl.root).get("natnet")
    bridge, subnet = doc["Options"]["com.docker.network.bridge.name"], doc["IPAM"]["Config"][0]["Subnet"]
    rule = ("-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE")
    assert _iptables_has("nat", "POSTROUTING", *rule)
    ctl.ok("network", "rm", "natnet")
    assert not _iptables_has("nat", "POSTROUTING", *rule)
    # an --internal network: no NAT, no default route
    ctl.ok("network", "create", "--internal", "inner")
    out = ctl.ok("run", "--rm", "--network", "inner", "busybox", "ip", "route")
    assert "default" not in out
    ctl.ok("network", "rm", "inner")


# -------------------------------------------------------------------- --link ---


def _masked(text: str) -> str:
    """Link variables with the linked container's address masked (the test engine has
    no bridge: its links carry an empty address)."""
    text = re.sub(r"(?<=://)[0-9.]*(?=:)", "IP", text)
    return re.sub(r"_ADDR=[0-9.]*", "_ADDR=IP", text)


def test_link_hosts_and_env_as_docker(ctl: Ctl, docker_host: str, busybox_tar: Path) -> None:
    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    script = "env | grep ^DBALIAS_ | sort; grep -w dbalias /etc/hosts || true"
    outs = []

    def on_docker(*args: str) -> str:
        return docker(docker_host, *args).stdout

    for run in (on_docker, ctl.ok):
        run("run", "-d", "--name", "lkdb", "--expose", "5432", "--expose", "53/udp", "-e", "SECRET=s",
            "busybox", "sleep", "60")  # fmt: skip
        try:
            doc = json.loads(run("inspect", "lkdb"))[0]
            text = run(
                "run", "--rm", "--name", "lkweb", "--link", "lkdb:dbalias", "busybox", "sh", "-c", script
            )
        finally:
            run("rm", "-f", "lkdb")
        outs.append((text, doc["NetworkSettings"]["IPAddress"], doc["Config"]["Hostname"]))
    (theirs, _, _), (ours, ip, hostname) = outs

    def env(text: str) -> str:
        return _masked("\n".join(line for line in text.splitlines() if line.startswith("DBALIAS_")))

    assert env(ours) == env(theirs)
    assert f"DBALIAS_PORT_5432_TCP_ADDR={ip}" in ours and "DBALIAS_PORT_53_UDP=udp://" in ours
    assert "DBALIAS_ENV_SECRET=s" in ours and "DBALIAS_NAME=/lkweb/dbalias" in ours
    # docker's hosts entry (daemon/container_operations_unix.go): alias, hostname, name
    assert f"{ip}\tdbalias {hostname} lkdb\n" in ours


def test_link_port_range_env_as_docker(ctl: Ctl, docker_host: str, busybox_tar: Path) -> None:
    """moby's ToEnv for runs of ports (``_START``, ``_END``, ``_PORT_START``, ``_PORT_END``):
    its notion of a run (three entries or more, counted across protocols) and the
    order the container sees, where a key set twice keeps its first place."""
    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    expose = ["7000-7002", "8080/udp", "8081", "8080", "9000/udp", "9001/udp", "6000-6001"]
    outs = []

    def on_docker(*args: str) -> str:
        return docker(docker_host, *args).stdout

    for run in (on_docker, ctl.ok):
        run("run", "-d", "--name", "lkrange", *(f"--expose={e}" for e in expose), "busybox", "sleep", "60")
        try:
            text = run("run", "--rm", "--name", "lkuser", "--link", "lkrange:db", "busybox", "env")
        finally:
            run("rm", "-f", "lkrange")
        outs.append([_masked(line) for line in text.splitlines() if line.startswith("DB_")])
    theirs, ours = outs
    assert ours == theirs
    assert ours[:7] == [
        "DB_PORT=tcp://IP:6000",
        "DB_PORT_7000_TCP_START=tcp://IP:7000",
        "DB_PORT_7000_TCP_ADDR=IP",
        "DB_PORT_7000_TCP_PROTO=tcp",
        "DB_PORT_7000_TCP_PORT_START=7000",
        "DB_PORT_7000_TCP_END=tcp://IP:7002",
        "DB_PORT_7000_TCP_PORT_END=7002",
    ]
    assert "DB_PORT_8080_TCP_END=tcp://IP:8081" in ours  # 8080/tcp, 8080/udp, 8081/tcp: a run
    assert not any(v.startswith(("DB_PORT_6000_TCP_START", "DB_PORT_9000_UDP_START")) for v in ours)


def _hosts_after_restarts(run: Callable[..., tuple[int, str]]) -> list[str]:
    """The linking container's /etc/hosts after each step, read by an exec (linked
    containers stopped, started and restarted: each then takes the lowest free
    address), with every address and hostname named after its container (``?`` for an
    address no container has; lines sorted); an exec while a linked container is
    stopped is refused."""
    for name in ("lka1", "lka2", "lka3"):
        run("run", "-d", "--name", name, "busybox", "sleep", "100")
    run("run", "-d", "--name", "lkp", "--link", "lka2:db", "--link", "lka2:db.x", "--link", "lka3",
        "busybox", "sleep", "100")  # fmt: skip
    steps = [(), ("stop", "-t", "0", "lka1", "lka2"), ("start", "lka2"), ("restart", "-t", "0", "lka3")]
    out = []
    try:
        for step in steps:
            if step:
                run(*step)
            code, text = run("exec", "lkp", "cat", "/etc/hosts")
            if code:  # the link it names: docker's first in a Go map's order, db or db.x
                out.append(f"{code}: {text}".replace("/lkp/db.x", "/lkp/db"))
                continue
            for name in ("lka1", "lka2", "lka3", "lkp"):
                doc = json.loads(run("inspect", name)[1])[0]
                text = text.replace(doc["Config"]["Hostname"], f"<host of {name}>")
                if address := doc["NetworkSettings"]["IPAddress"]:
                    text = re.sub(rf"^{re.escape(address)}\t", f"<{name}>\t", text, flags=re.M)
            text = re.sub(r"^(?!127\.0\.0\.1)[0-9.]+\t", "?\t", text, flags=re.M)
            out.append("".join(sorted(text.splitlines(keepends=True))))  # docker's links: a Go map's order
    finally:
        run("rm", "-f", "lkp", "lka1", "lka2", "lka3")
    return out


def test_link_hosts_follow_a_restarted_container_as_docker(
    ctl: Ctl, bridged_docker_host: str, busybox_tar: Path
) -> None:
    """docker (libnetwork's updateParentHosts) rewrites the address of a linked
    container in the /etc/hosts of the running containers linking to it when it
    starts again; alias ``db``'s pattern also matches ``db.x``.  An exec computes the
    link variables again, so it is refused while a linked container is stopped."""
    docker(bridged_docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")

    def on_docker(*args: str) -> tuple[int, str]:
        r = docker(bridged_docker_host, *args, check=args[0] != "exec")
        return r.returncode, r.stdout + r.stderr.replace("Error response from daemon: ", "")

    def on_ours(*args: str) -> tuple[int, str]:
        r = ctl(*args)
        assert r.code == 0 or args[0] == "exec", r.err
        return r.code, r.out + r.err.replace("Error: ", "")

    theirs = _hosts_after_restarts(on_docker)
    ours = _hosts_after_restarts(on_ours)
    assert ours == theirs
    assert ours[1] == "1: Cannot link to a non running container: /lka2 AS /lkp/db\n"
    assert "<lka2>\tdb <host of lka2> lka2\n<lka2>\tdb.x <host of lka2> lka2\n" in ours[-1]
    assert "<lka3>\tlka3 <host of lka3>\n" in ours[-1] and "?" not in ours[-1]


def test_exec_gets_the_link_variables_as_docker(
    ctl: Ctl, bridged_docker_host: str, busybox_tar: Path
) -> None:
    """An exec's environment holds the link variables, as the container's own."""
    docker(bridged_docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    outs = []

    def on_docker(*args: str) -> str:
        return docker(bridged_docker_host, *args).stdout

    for run in (on_docker, ctl.ok):
        run("run", "-d", "--name", "lkx", "-e", "FOO=1", "--expose", "80", "busybox", "sleep", "100")
        run("run", "-d", "--name", "lkxp", "--link", "lkx:db", "busybox", "sleep", "100")
        try:
            outs.append(_masked(run("exec", "-e", "DB_NAME=mine", "lkxp", "env")))
        finally:
            run("rm", "-f", "lkxp", "lkx")
    theirs, ours = (re.sub(r"HOSTNAME=\w+", "HOSTNAME=H", text) for text in outs)
    assert ours == theirs
    assert "DB_PORT_80_TCP_ADDR=IP\nDB_PORT_80_TCP_PORT=80\n" in ours and "DB_NAME=mine\n" in ours


def test_links_follow_renames_as_docker(ctl: Ctl, bridged_docker_host: str, busybox_tar: Path) -> None:
    """docker's link graph follows a rename of either end: HostConfig.Links, the
    variables and the hosts entry after a restart name the new names."""
    docker(bridged_docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    outs = []

    def on_docker(*args: str) -> str:
        return docker(bridged_docker_host, *args).stdout

    for run in (on_docker, ctl.ok):
        run("run", "-d", "--name", "rnc", "busybox", "sleep", "100")
        run("run", "-d", "--name", "rnp", "--link", "rnc:db", "busybox", "sleep", "100")
        try:
            run("rename", "rnc", "rnc2")
            run("rename", "rnp", "rnp2")
            run("restart", "-t", "0", "rnp2")
            links = run("inspect", "-f", "{{json .HostConfig.Links}}", "rnp2")
            seen = run("exec", "rnp2", "sh", "-c", "env | grep ^DB_NAME; grep -w db /etc/hosts | cut -f2")
            outs.append((links, re.sub(r" \w{12} ", " H ", seen)))
        finally:
            run("rm", "-f", "rnp2", "rnc2")
    theirs, ours = outs
    assert ours == theirs
    assert ours == ('["/rnc2:/rnp2/db"]\n', "DB_NAME=/rnp2/db\ndb H rnc2\n")


def test_rm_link_as_docker(ctl: Ctl, bridged_docker_host: str, busybox_tar: Path) -> None:
    """``rm --link /PARENT/ALIAS`` takes the link out of PARENT (gone at its next start),
    both containers stay; an unknown link or a container's own name is refused."""
    docker(bridged_docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    outs = []

    def on_docker(*args: str) -> tuple[int, str]:
        r = docker(bridged_docker_host, *args, check=False)
        return r.returncode, r.stdout + r.stderr.replace("Error response from daemon: ", "")

    def on_ours(*args: str) -> tuple[int, str]:
        r = ctl(*args)
        return r.code, r.out + r.err.replace("Error: ", "")

    for run in (on_docker, on_ours):
        run("run", "-d", "--name", "rmc", "busybox", "sleep", "100")
        run(
            "run", "-d", "--name", "rmp", "--link", "rmc:db", "--link", "rmc:other", "busybox", "sleep", "100"
        )
        try:
            got = [
                run("rm", "--link", ref) for ref in ("/rmp/db", "/rmp/db", "rmp/nope", "/nosuch/db", "rmp")
            ]
            got.append(run("inspect", "-f", "{{json .HostConfig.Links}}", "rmp"))
            run("restart", "-t", "0", "rmp")
            got.append(run("exec", "rmp", "sh", "-c", "env | grep -c ^DB_; grep -c -w other /etc/hosts"))
            got.append(run("ps", "--filter", "name=rm", "--format", "{{.Names}}"))
        finally:
            run("rm", "-f", "rmp", "rmc")
        outs.append(got)
    theirs, ours = outs
    assert ours == theirs
    assert ours[:6] == [
        (0, "/rmp/db\n"),
        (1, "No such container: rmp/db\n"),
        (1, "No such container: rmp/nope\n"),
        (1, "No such container: nosuch/db\n"),
        (1, "Conflict, cannot remove the default link name of the container\n"),
        (0, '["/rmc:/rmp/other"]\n'),
    ]


def test_health_probe_gets_the_link_variables_as_docker(
    ctl: Ctl, bridged_docker_host: str, busybox_tar: Path
) -> None:
    """A health probe is an exec: it sees the link variables, and while a linked
    container is stopped it fails with docker's words (exit -1), no exec started."""
    docker(bridged_docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    outs = []

    def on_docker(*args: str) -> str:
        return docker(bridged_docker_host, *args).stdout

    def reach(run: Callable[..., str], status: str) -> None:
        deadline = time.monotonic() + 60  # a guard against a hang, not a measure
        while run("inspect", "-f", "{{.State.Health.Status}}", "hlp").strip() != status:
            assert time.monotonic() < deadline, f"never {status}"
            time.sleep(0.2)

    for run in (on_docker, ctl.ok):
        run("run", "-d", "--name", "hlc", "busybox", "sleep", "100")
        run("run", "-d", "--name", "hlp", "--link", "hlc:db", "--health-cmd", "env | grep -q ^DB_NAME=",
            "--health-interval", "1s", "--health-retries", "1", "busybox", "sleep", "100")  # fmt: skip
        try:
            reach(run, "healthy")
            run("stop", "-t", "0", "hlc")
            reach(run, "unhealthy")
            last = json.loads(run("inspect", "-f", "{{json .State.Health}}", "hlp"))["Log"][-1]
            outs.append((last["ExitCode"], last["Output"]))
        finally:
            run("rm", "-f", "hlp", "hlc")
    theirs, ours = outs
    assert ours == theirs == (-1, "Cannot link to a non running container: /hlc AS /hlp/db")


def test_link_on_a_user_network_as_docker(ctl: Ctl, bridged_docker_host: str, busybox_tar: Path) -> None:
    """On a user network a link is only a name: the endpoint's Links as given, its alias
    (and ALIAS.network) answered by the embedded DNS for the linking container alone, no
    variables, no hosts entry, nothing checked at create."""
    docker(bridged_docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    outs = []
    lookups = "for n in al2 al2.lnk; do nslookup -type=a $n 127.0.0.11; done"
    script = f"env | grep -c AL2_; grep -c al2 /etc/hosts; {lookups}"

    def on_docker(*args: str) -> str:
        return docker(bridged_docker_host, *args, check=args[0] != "exec").stdout

    for run in (on_docker, ctl.ok):
        run("network", "create", "lnk")
        run("run", "-d", "--name", "ulc", "--network", "lnk", "-e", "FOO=1", "busybox", "sleep", "100")
        try:
            run("run", "-d", "--name", "ulu", "--network", "lnk", "--link", "ulc", "--link", "/ulc:al2",
                "--link", "nosuch:x", "busybox", "sleep", "100")  # fmt: skip
            links = "{{json .HostConfig.Links}} {{json .NetworkSettings.Networks.lnk.Links}}"
            got = [run("inspect", "-f", links, "ulu")]
            address = run("inspect", "-f", "{{.NetworkSettings.Networks.lnk.IPAddress}}", "ulc").strip()
            got.append(run("exec", "ulu", "sh", "-c", script).replace(address, "ADDR"))
            outs.append(got)
        finally:
            run("rm", "-f", "ulu", "ulc")
            run("network", "rm", "lnk")
    theirs, ours = outs
    assert ours == theirs
    assert ours[0] == 'null ["ulc","/ulc:al2","nosuch:x"]\n'
    assert "Name:\tal2\nAddress: ADDR\n" in ours[1] and "Name:\tal2.lnk\nAddress: ADDR\n" in ours[1]


def test_ps_names_a_linked_container_by_its_links_as_docker(
    ctl: Ctl, bridged_docker_host: str, busybox_tar: Path
) -> None:
    """docker's Names of a linked container: its own, then each link's PARENT/ALIAS
    (sorted), which ``ps`` shows with ``--no-trunc``."""
    docker(bridged_docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    outs = []

    def on_docker(*args: str) -> str:
        return docker(bridged_docker_host, *args).stdout

    for run in (on_docker, ctl.ok):
        run("run", "-d", "--name", "pnc", "busybox", "sleep", "100")
        run("run", "-d", "--name", "pnq", "--link", "pnc:zz", "busybox", "sleep", "100")
        run("run", "-d", "--name", "pnp", "--link", "pnc:db", "--link", "pnc:db2", "busybox", "sleep", "100")
        try:
            outs.append([run("ps", *flags, "--filter", "name=pn", "--format", "{{.Names}}")
                         for flags in ((), ("--no-trunc",))])  # fmt: skip
        finally:
            run("rm", "-f", "pnp", "pnq", "pnc")
    theirs, ours = outs
    assert ours == theirs
    assert "pnc,pnp/db,pnp/db2,pnq/zz\n" in ours[1] and "pnc\n" in ours[0]


def test_linked_container_removed_as_docker(ctl: Ctl, bridged_docker_host: str, busybox_tar: Path) -> None:
    """A linked container removed: the link stays in HostConfig.Links and the linking
    container cannot start again, in docker's words (restart's "Cannot restart
    container NAME:" first)."""
    docker(bridged_docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    outs = []

    def on_docker(*args: str) -> tuple[int, str]:
        r = docker(bridged_docker_host, *args, check=False)
        lines = r.stderr.replace("Error response from daemon: ", "").splitlines()
        return r.returncode, r.stdout + (lines[0] if lines else "")

    def on_ours(*args: str) -> tuple[int, str]:
        r = ctl(*args)
        return r.code, r.out + r.err.removeprefix("Error: ").strip()

    for run in (on_docker, on_ours):
        run("run", "-d", "--name", "rmc", "busybox", "sleep", "100")
        run("run", "-d", "--name", "rmp", "--link", "rmc:db", "busybox", "sleep", "100")
        try:
            run("rm", "-f", "rmc")
            got = [
                run("inspect", "-f", "{{json .HostConfig.Links}}", "rmp"),
                run("restart", "-t", "0", "rmp"),
            ]
            outs.append([*got, run("start", "rmp")[0]])
        finally:
            run("rm", "-f", "rmp")
    theirs, ours = outs
    assert ours == theirs
    assert ours[1] == (
        1,
        "Cannot restart container rmp: Cannot link to a non running container: /rmc AS /rmp/db",
    )


def test_network_connect_link_as_docker(ctl: Ctl, bridged_docker_host: str, busybox_tar: Path) -> None:
    """``network connect --link NAME:ALIAS``: the endpoint's Links, and the alias answered
    by the embedded DNS for the connected container (one already on a user network)."""
    docker(bridged_docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    outs = []

    def on_docker(*args: str) -> str:
        return docker(bridged_docker_host, *args).stdout

    for run in (on_docker, ctl.ok):
        run("network", "create", "cnl1")
        run("network", "create", "cnl2")
        run("run", "-d", "--name", "cnc", "--network", "cnl2", "busybox", "sleep", "100")
        run("run", "-d", "--name", "cnu", "--network", "cnl1", "busybox", "sleep", "100")
        try:
            run("network", "connect", "--link", "cnc:al", "cnl2", "cnu")
            links = run("inspect", "-f", "{{json .NetworkSettings.Networks.cnl2.Links}}", "cnu")
            address = run("inspect", "-f", "{{.NetworkSettings.Networks.cnl2.IPAddress}}", "cnc").strip()
            answer = run("exec", "cnu", "nslookup", "-type=a", "al", "127.0.0.11").replace(address, "ADDR")
            outs.append((links, answer))
        finally:
            run("rm", "-f", "cnu", "cnc")
            run("network", "rm", "cnl1", "cnl2")
    theirs, ours = outs
    assert ours == theirs
    assert ours[0] == '["cnc:al"]\n' and "Name:\tal\nAddress: ADDR\n" in ours[1]


def test_links_refused_with_host_or_container_networks_as_docker(
    ctl: Ctl, bridged_docker_host: str, busybox_tar: Path
) -> None:
    docker(bridged_docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    outs = []

    def on_docker(*args: str) -> tuple[int, str]:
        r = docker(bridged_docker_host, *args, check=False)
        lines = r.stderr.replace("docker: Error response from daemon: ", "").splitlines()
        return r.returncode, lines[0] if lines else ""

    def on_ours(*args: str) -> tuple[int, str]:
        r = ctl(*args)
        return r.code, r.err.removeprefix("Error: ").strip()

    for run in (on_docker, on_ours):
        run("run", "-d", "--name", "lnc", "busybox", "sleep", "100")
        try:
            outs.append([run("run", "--rm", "--network", net, "--link", "lnc:x", "busybox", "true")
                         for net in ("container:lnc", "host", "none")])  # fmt: skip
        finally:
            run("rm", "-f", "lnc")
    theirs, ours = outs
    assert ours == theirs
    assert ours[0] == (
        125,
        "conflicting options: container type network can't be used with links. "
        "This would result in undefined behavior",
    )


def test_link_to_a_container_that_does_not_run(ctl: Ctl) -> None:
    ctl.ok("create", "--name", "idle", "busybox", "true")
    r = ctl("run", "--rm", "--link", "idle", "busybox", "true")
    assert r.code != 0 and "Cannot link to a non running container: /idle AS /" in r.err
    r = ctl("run", "--rm", "--link", "ghost:g", "busybox", "true")
    assert r.code != 0 and "could not get container for ghost" in r.err


# ------------------------------------------------------------------ blkio iops ---


def _block_device() -> str:
    for name in ("vda", "sda", "nvme0n1", "xvda"):
        if Path(f"/dev/{name}").exists():
            return f"/dev/{name}"
    pytest.skip("no block device to throttle on this host")


def test_device_iops_limits_as_docker(ctl: Ctl, docker_host: str, busybox_tar: Path) -> None:
    dev = _block_device()
    args = ("--device-read-iops", f"{dev}:1000", "--device-write-iops", f"{dev}:500")
    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    docker(docker_host, "create", "--name", "iops", *args, "busybox", "true")
    theirs = json.loads(docker(docker_host, "inspect", "iops").stdout)[0]["HostConfig"]
    docker(docker_host, "rm", "iops")
    ctl.ok("run", "-d", "--name", "iops", "--network", "none", *args, "busybox", "sleep", "60")
    ours = json.loads(ctl.ok("inspect", "iops"))[0]["HostConfig"]
    for key in ("BlkioDeviceReadIOps", "BlkioDeviceWriteIOps"):
        assert ours[key] == theirs[key]
    assert ours["BlkioDeviceReadIOps"] == [{"Path": dev, "Rate": 1000}]
    c = ContainerStore(ctl.root).get("iops")
    blkio = Path("/sys/fs/cgroup/blkio")
    if blkio.is_dir():
        d = blkio / c.cgroup().parent / c.cgroup().name
        major_minor = f"{os.major(os.stat(dev).st_rdev)}:{os.minor(os.stat(dev).st_rdev)}"
        assert f"{major_minor} 1000" in (d / "blkio.throttle.read_iops_device").read_text()
        assert f"{major_minor} 500" in (d / "blkio.throttle.write_iops_device").read_text()
    ctl.ok("rm", "-f", "iops")
    r = ctl("run", "--rm", "--device-read-iops", f"{dev}:fast", "busybox", "true")
    assert r.code == 125
    assert f'invalid argument "{dev}:fast" for "--device-read-iops" flag: invalid rate for device' in r.err
