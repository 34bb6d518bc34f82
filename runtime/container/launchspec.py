"""A container record -> what launching it needs: the Spec the monitor starts, the Process
an exec or a health probe runs, the /etc files, and the log driver (and reader) its
LogConfig names.

``create`` writes the record; everything that runs something in the container reads
it through here (monitor, execute, health), so that the main process, ``exec`` and the
probes agree on environment, user, capabilities, groups and rlimits.
"""

from __future__ import annotations

import os
from pathlib import Path

from imagefmt.records import TYPE_CHECKING
from runtime.container.hostconfig import capabilities_of, parse_add_host, parse_security_opt
from runtime.container.store import Container, ContainerStore
from runtime.errors import NotRunning, RuntimeFailure, StartFailed
from runtime.logs import drivers
from runtime.logs.drivers import LogInfo
from runtime.network import etcfiles
from runtime.process.rootfs import ensure_init_layer
from runtime.spec import Mount, Process, Rootfs, Spec, daemon_env

if TYPE_CHECKING:
    from typing import Any

    from runtime.logs.drivers import LogDriver, LogReader

INIT_CANDIDATES = ("/usr/bin/docker-init", "/usr/bin/tini-static", "/usr/libexec/docker/docker-init")


def runtime_dir(root: Path) -> Path:
    """Where the store keeps the shared init layer and the mount target."""
    return root / "runtime"


def find_init() -> str:
    """The host's static init for ``--init``. Raises RuntimeFailure without one."""
    for path in INIT_CANDIDATES:
        if os.path.exists(path):
            return path
    raise RuntimeFailure("--init: no docker-init (tini-static) found on this host")


def spec_of(
    store: ContainerStore,
    c: Container,
    cgroup_procs: tuple[str, ...],
    window: tuple[int, int],
    wiring: Any = None,
    link_env: tuple[str, ...] = (),
) -> Spec:
    """The launch spec of a container record (``wiring``: its
    runtime.container.wiring.Wiring, if any). Raises NotRunning or StartFailed
    for a namespace it cannot join (container:X) and StartFailed for a --sysctl
    in a namespace shared with the host."""
    rt = runtime_dir(store.root)
    init_layer = ensure_init_layer(rt / "init")
    target = rt / "mnt"
    target.mkdir(exist_ok=True)
    priv = c.private
    rootfs = Rootfs(
        lowerdirs=(str(init_layer), *priv["Lowerdirs"]),
        upperdir=str(c.dir / "upper"),
        workdir=str(c.dir / "work"),
        mount_cwd=priv["MountCwd"],
        target=str(target),
        readonly=bool(c.host_config.get("ReadonlyRootfs")),
        volatile=bool(c.host_config.get("AutoRemove")),
    )
    cfg = c.config
    proc = process_of(
        c,
        (c.record["Path"], *c.record["Args"]),
        tty=bool(cfg.get("Tty")),
        window=window,
        init=find_init() if c.host_config.get("Init") else None,
        link_env=link_env,
    )
    binds = [
        Mount(
            destination=m["Destination"],
            source=m["Source"],
            readonly=not m.get("RW", True),
            copy_up=m["Type"] == "volume" and not m.get("NoCopy"),
        )
        for m in c.record.get("Mounts") or []
        if m["Type"] != "tmpfs"
    ]
    tmpfs = [Mount(dest, type="tmpfs", options=o) for dest, o in (priv.get("Tmpfs") or {}).items()]
    # parents before what is mounted inside them, as docker sorts them
    mounts = tuple(sorted(binds + tmpfs, key=lambda m: m.destination.rstrip("/").count("/")))
    etc = tuple((f"/etc/{n}", str(c.dir / n)) for n in ("hostname", "hosts", "resolv.conf"))
    return Spec(
        rootfs=rootfs,
        process=proc,
        hostname=cfg["Hostname"],
        etc_files=etc,
        mounts=mounts,
        network="new"
        if wiring is not None
        else _namespace(store, c.host_config["NetworkMode"], "net", "none"),
        cgroup_procs=cgroup_procs,
        cgroup_views=c.cgroup().views(),
        interfaces=wiring.interfaces if wiring is not None else (),
        # the default route through the first network's bridge, NATed by the host
        # (runtime.network.nat) as docker's; none on an --internal network
        gateway=wiring.gateway if wiring is not None else "",
        shm_size=int(c.host_config.get("ShmSize") or 64 << 20),
        pid_ns=_namespace(store, c.host_config.get("PidMode") or "", "pid"),
        ipc_ns=_namespace(store, c.host_config.get("IpcMode") or "", "ipc"),
        uts_ns="host" if c.host_config.get("UTSMode") == "host" else "new",
        privileged=bool(c.host_config.get("Privileged")),
        sysctls=_sysctls(c),
    )


def process_of(
    c: Container,
    args: tuple[str, ...] | list[str],
    *,
    tty: bool,
    window: tuple[int, int],
    privileged: bool = False,
    init: str | None = None,
    link_env: tuple[str, ...] = (),
) -> Process:
    """A process of container ``c`` running ``args`` as its record says: the
    environment as docker makes it (PATH, HOSTNAME, TERM with a tty, then the
    config's Env), its WorkingDir and User, and the capabilities, groups and rlimits
    of its HostConfig (every capability with ``privileged``, exec's --privileged).
    The container's own process, a health probe, and what an exec starts from."""
    cfg = c.config
    hc = {**c.host_config, "Privileged": True} if privileged else c.host_config
    return Process(
        args=tuple(args),
        env=tuple(daemon_env(cfg["Hostname"], tty, [*link_env, *(cfg.get("Env") or [])])),
        cwd=cfg.get("WorkingDir") or "/",
        user=cfg.get("User") or "",
        tty=tty,
        window=window,
        init=init,
        **process_extras(hc),
    )


def process_extras(host_config: dict[str, Any]) -> dict[str, Any]:
    """The Process fields a record's HostConfig sets: capabilities (--cap-add,
    --cap-drop), more groups (--group-add) and rlimits (--ulimit)."""
    add = ["ALL"] if host_config.get("Privileged") else host_config.get("CapAdd") or []
    security = dict(parse_security_opt(o) for o in host_config.get("SecurityOpt") or ())
    return {
        "no_new_privs": security.get("no-new-privileges", "true") == "true",
        "capabilities": capabilities_of(add, host_config.get("CapDrop") or []),
        "groups": tuple(host_config.get("GroupAdd") or ()),
        "rlimits": tuple((u["Name"], u["Soft"], u["Hard"]) for u in host_config.get("Ulimits") or ()),
    }


def needs_wiring(c: Container) -> bool:
    """Whether the container joins bridge networks (so its monitor wires it in)."""
    mode = c.host_config["NetworkMode"]
    return mode not in ("none", "host") and not mode.startswith("container:")


def write_etc_files(
    c: Container,
    address: str | None = None,
    dns: str | None = None,
    linked: tuple[tuple[str, str], ...] = (),
) -> None:
    """hostname, hosts and resolv.conf in the container's directory (bind-mounted at
    start); ``linked``: (address, names) of --link's containers, after --add-host's."""
    hc = c.host_config
    hostname = c.config["Hostname"]
    host_mode = hc["NetworkMode"] == "host"
    extra = tuple(parse_add_host(h) for h in hc.get("ExtraHosts") or ())
    extra += tuple((names, addr) for addr, names in linked)
    if host_mode:
        hosts = Path("/etc/hosts").read_text() + "".join(f"{a}\t{n}\n" for n, a in extra)
    else:
        hosts = etcfiles.hosts_file(hostname, address, extra)
    resolv = etcfiles.resolv_conf("host" if host_mode else "private", dns=dns)
    if not host_mode and (hc.get("Dns") or hc.get("DnsSearch") or hc.get("DnsOptions")):
        servers = [] if dns else hc.get("Dns") or []  # a user network keeps its embedded server
        resolv = etcfiles.with_dns(resolv, servers, hc.get("DnsSearch") or [], hc.get("DnsOptions") or [])
    files = {"hostname": etcfiles.hostname_file(hostname), "hosts": hosts, "resolv.conf": resolv}
    for fname, text in files.items():
        (c.dir / fname).write_text(text)


def log_info(c: Container) -> LogInfo:
    """What the container's log driver is told of it (moby's logger.Info)."""
    cfg = c.config
    return LogInfo(
        config=dict((c.host_config.get("LogConfig") or {}).get("Config") or {}),
        container_id=c.id,
        container_name=c.name,
        image_id=c.record["Image"],
        image_name=cfg.get("Image") or "",
        env=tuple(cfg.get("Env") or ()),
        labels=dict(cfg.get("Labels") or {}),
        log_path=c.log_path,
    )


def log_driver_name(c: Container) -> str:
    """The log driver the record's LogConfig names (json-file when it names none)."""
    return str((c.host_config.get("LogConfig") or {}).get("Type") or drivers.DEFAULT)


def log_driver(c: Container) -> LogDriver:
    """A new log driver for a run of the container (its monitor's). Raises BadSpec."""
    return drivers.new_driver(log_driver_name(c), log_info(c))


def log_reader(c: Container) -> LogReader:
    """A reader of the container's logs (``docker logs``). Raises Unsupported, docker's
    "configured logging driver does not support reading", when its driver cannot be read."""
    return drivers.open_reader(log_driver_name(c), log_info(c))


def _sysctls(c: Container) -> tuple[tuple[str, str], ...]:
    """--sysctl, refused as runc refuses a namespace the container shares with the host."""
    items = tuple((c.host_config.get("Sysctls") or {}).items())
    for key, _ in items:
        shared = (key.startswith("net.") and c.host_config["NetworkMode"] == "host") or (
            not key.startswith("net.") and c.host_config.get("IpcMode") == "host"
        )
        if shared:
            kind = "network" if key.startswith("net.") else "IPC"
            raise StartFailed(f'sysctl "{key}" not allowed in host {kind} namespace')
    return items


def _namespace(store: ContainerStore, mode: str, kind: str, own: str = "new") -> str:
    """--network/--pid/--ipc: "host", a running container's /proc/<pid>/ns/<kind>
    (container:NAME), or ``own`` for a namespace of the container's own."""
    if mode == "host":
        return "host"
    if mode.startswith("container:"):
        peer = store.get(mode.split(":", 1)[1])
        if not peer.running or not peer.pid:
            what = "network" if kind == "net" else f"{kind} namespace"
            raise NotRunning(f"cannot join {what} of a non running container: {peer.id}")
        if kind == "ipc" and peer.host_config.get("IpcMode") not in ("shareable", "host"):
            raise StartFailed(
                f"can't join IPC of container {peer.id}: non-shareable IPC"
                " (hint: use IpcMode:shareable for the donor container)"
            )
        return f"/proc/{peer.pid}/ns/{kind}"
    return own
