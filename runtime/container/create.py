"""``docker create``: validate the options and write a container's record.

Every flag is checked before anything is written, so bad input leaves nothing
behind; a failure half-way (a name taken by a racing create) undoes itself.
ENTRYPOINT/CMD, Env, WorkingDir, User, volumes and ports merge image config
and options exactly as Docker does.  The HostConfig flags are parsed in
``hostconfig``; what a start makes of the record is ``launchspec``'s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from imagefmt.records import TYPE_CHECKING, NamedTuple
from runtime.container import events, links
from runtime.container.hostconfig import (
    capabilities_of,
    normalize_caps,
    parse_add_host,
    parse_security_opt,
    parse_sysctl,
    parse_ulimit,
    restart_policy,
    set_limits,
    ulimit_doc,
    validate_limits,
)
from runtime.container.launchspec import write_etc_files
from runtime.container.store import Container, ContainerStore, new_state, now_rfc3339
from runtime.errors import BadSpec, SpecRefused, StartFailed
from runtime.fs import rmtree
from runtime.kernel.cgroups import Limits, check_parent, default_parent
from runtime.logs import drivers
from runtime.process.rootfs import MASKED, READONLY
from runtime.spec import merge_env, parse_signal
from runtime.units import ram_in_bytes

if TYPE_CHECKING:
    from typing import Any

    from runtime.network.ports import PortBinding
    from runtime.volumes import MountOpt, VolumeSpec, VolumeStore

NAME_RE = r"[a-zA-Z0-9][a-zA-Z0-9_.-]+"  # compiled on first use: re.compile at import costs start time


class ImageInfo(NamedTuple):
    """What the runtime needs of an image: ID, the name asked for, the config's
    ``config`` object and the overlay lowerdirs (uppermost first, relative to
    ``mount_cwd`` or absolute)."""

    id: str
    name: str
    config: dict[str, Any]
    lowerdirs: tuple[str, ...]
    mount_cwd: str


class CreateOptions(NamedTuple):
    """``docker create``/``run`` flags; defaults are Docker's."""

    command: tuple[str, ...] = ()
    entrypoint: str | None = None
    name: str = ""
    env: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    tty: bool = False
    interactive: bool = False
    attach: tuple[str, ...] = ()
    auto_remove: bool = False
    read_only: bool = False
    init: bool = False
    labels: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()  # --mount
    tmpfs: tuple[str, ...] = ()  # --tmpfs
    volumes_from: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    publish_all: bool = False
    expose: tuple[str, ...] = ()
    network: str = "bridge"
    network_aliases: tuple[str, ...] = ()
    ip: str = ""
    limits: Limits = Limits()
    links: tuple[str, ...] = ()  # --link NAME[:ALIAS]
    log_driver: str = ""  # "": the store's default (daemon.json's log-driver, else json-file)
    log_opts: tuple[str, ...] = ()
    stop_signal: str = ""
    stop_timeout: int | None = None
    cgroup_parent: str = ""
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    group_add: tuple[str, ...] = ()
    add_hosts: tuple[str, ...] = ()  # --add-host name:ip
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    ulimits: tuple[str, ...] = ()  # --ulimit name=soft[:hard]
    shm_size: str = ""
    pid: str = ""  # "", host or container:NAME
    ipc: str = ""  # "", private, shareable, none, host or container:NAME
    uts: str = ""  # "" or host
    privileged: bool = False
    restart: str = ""  # no, always, unless-stopped, on-failure[:N]
    health_cmd: str = ""
    health_interval: str = ""
    health_timeout: str = ""
    health_start_period: str = ""
    health_retries: int = 0
    no_healthcheck: bool = False
    sysctls: tuple[str, ...] = ()  # --sysctl key=value
    security_opts: tuple[str, ...] = ()  # --security-opt


def read_env_file(path: str) -> list[str]:
    """Docker's --env-file: KEY=VALUE lines, # comments, a bare KEY copies the host's."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise BadSpec(f"open {path}: {(err.strerror or str(err)).lower()}") from None
    out: list[str] = []
    for raw in lines:
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        if any(c.isspace() for c in key):
            raise BadSpec(f"variable '{key}' contains whitespaces")
        out.extend(_env_item(line if sep else key))
    return out


def _env_item(item: str) -> list[str]:
    if "=" in item:
        return [item]
    value = os.environ.get(item)
    return [f"{item}={value}"] if value is not None else []


def entrypoint_and_cmd(image_cfg: dict[str, Any], opts: CreateOptions) -> tuple[list[str], list[str]]:
    """Docker's rules: ``--entrypoint`` replaces the image's and drops its CMD;
    run arguments replace CMD."""
    if opts.entrypoint is not None:
        entrypoint = [opts.entrypoint] if opts.entrypoint else []
        cmd = list(opts.command)
    else:
        entrypoint = list(image_cfg.get("Entrypoint") or [])
        cmd = list(opts.command) or list(image_cfg.get("Cmd") or [])
    return entrypoint, cmd


def validate(opts: CreateOptions) -> None:
    """The checks Docker makes before creating anything. Raises BadSpec."""
    if opts.name and not re.fullmatch(NAME_RE, opts.name.lstrip("/")):
        raise SpecRefused(f"Invalid container name ({opts.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    if opts.workdir and not opts.workdir.startswith("/"):
        raise BadSpec(f"the working directory '{opts.workdir}' is invalid, it needs to be an absolute path")
    validate_limits(opts.limits)
    if opts.stop_signal:
        parse_signal(opts.stop_signal)
    capabilities_of(normalize_caps(opts.cap_add, "CapAdd"), normalize_caps(opts.cap_drop, "CapDrop"))
    for host in opts.add_hosts:
        parse_add_host(host)
    for item in opts.ulimits:
        parse_ulimit(item)
    if opts.shm_size:
        ram_in_bytes(opts.shm_size, "--shm-size")
    _healthcheck(opts, None)
    for item in opts.sysctls:
        parse_sysctl(item)
    for item in opts.security_opts:
        parse_security_opt(item)
    policy = restart_policy(opts.restart)
    if opts.auto_remove and policy["Name"] != "no":
        raise BadSpec("conflicting options: cannot specify both --restart and --rm")
    if opts.pid not in ("", "host") and not opts.pid.startswith("container:"):
        raise BadSpec("--pid: invalid PID mode")
    if opts.ipc not in ("", "private", "shareable", "none", "host") and not opts.ipc.startswith("container:"):
        raise BadSpec("--ipc: invalid IPC mode")
    if opts.uts not in ("", "host"):
        raise BadSpec("--uts: invalid UTS mode")
    if opts.uts == "host" and opts.hostname:
        raise BadSpec("conflicting options: hostname and the UTS mode")
    mode = opts.network
    if mode.startswith("container:") and (opts.publish or opts.publish_all):  # none and host discard them
        raise BadSpec("conflicting options: port publishing and the container type network mode")
    if opts.hostname and (mode == "host" or mode.startswith("container:")):
        raise BadSpec("conflicting options: hostname and the network mode")


def create(store: ContainerStore, image: ImageInfo, opts: CreateOptions) -> Container:
    """Validate ``opts`` against ``image`` and write the container (status
    "created"). Raises BadSpec, NameInUse, NoSuchContainer (--volumes-from,
    container:X) or StartFailed("No command specified"). Leaves nothing on error."""
    validate(opts)
    cfg = image.config
    entrypoint, cmd = entrypoint_and_cmd(cfg, opts)
    argv = entrypoint + cmd
    if not argv:
        raise StartFailed("No command specified", 125)
    env_items: list[str] = []
    for path in opts.env_files:
        env_items += read_env_file(path)
    for item in opts.env:
        env_items += _env_item(item)
    env = merge_env(list(cfg.get("Env") or []), env_items)
    log_type, log_config = drivers.resolve(store.root, opts.log_driver, opts.log_opts)
    opts = opts._replace(log_driver=log_type)
    bindings, expose = _ports(opts)
    exposed = dict.fromkeys(list(cfg.get("ExposedPorts") or {}) + expose)
    exposed.update(dict.fromkeys(b.key for b in bindings))
    mount_opts, vol_specs = _volume_flags(opts)
    tmpfs = _tmpfs(opts.tmpfs)
    tmpfs.update((m.doc["Target"], m.tmpfs) for m in mount_opts if not m.volume)
    from_mounts = _volumes_from(store, opts.volumes_from)
    peer = _network_peer(store, opts.network)
    networks = _attachments(store.root, opts)
    labels = dict(cfg.get("Labels") or {})
    for item in opts.labels:
        k, _, v = item.partition("=")
        labels[k] = v

    cid = os.urandom(32).hex()
    name = opts.name.lstrip("/")
    if not name:
        from runtime.container.names import random_name

        name = random_name(store)
    link_docs = _links(store, opts, networks, name, cid)
    store.reserve_name(name, cid)
    cdir = store.dir / cid
    vstore = None
    if vol_specs or cfg.get("Volumes"):
        from runtime.volumes import VolumeStore

        vstore = VolumeStore(store.root)
    made_volumes: list[str] = []
    try:
        (cdir / "upper").mkdir(parents=True)
        (cdir / "work").mkdir()
        mounts = _mounts(vstore, vol_specs, from_mounts, cfg, made_volumes)
        mounts += [_tmpfs_mount(m.doc) for m in mount_opts if not m.volume]
        hostname = opts.hostname or (os.uname().nodename if opts.network == "host" else cid[:12])
        config: dict[str, Any] = {
            "Hostname": hostname,
            "Domainname": "",
            "User": opts.user or cfg.get("User") or "",
            "AttachStdin": "stdin" in opts.attach,
            "AttachStdout": "stdout" in opts.attach,
            "AttachStderr": "stderr" in opts.attach,
            **({"ExposedPorts": {k: {} for k in exposed}} if exposed else {}),
            "Tty": opts.tty,
            "OpenStdin": opts.interactive,
            "StdinOnce": opts.interactive and "stdin" in opts.attach,
            "Env": env or None,
            "Cmd": cmd or None,
            "Image": image.name,
            "Volumes": {m["Destination"]: {} for m in mounts if m["Type"] == "volume"} or None,
            "WorkingDir": opts.workdir or cfg.get("WorkingDir") or "",
            "Entrypoint": entrypoint or None,
            "OnBuild": None,
            "Labels": labels,
        }
        healthcheck = _healthcheck(opts, cfg.get("Healthcheck"))
        if healthcheck:
            config["Healthcheck"] = healthcheck
        stop_signal = opts.stop_signal or cfg.get("StopSignal")
        if stop_signal:
            config["StopSignal"] = stop_signal
        if opts.stop_timeout is not None:
            config["StopTimeout"] = opts.stop_timeout
        record = {
            "Id": cid,
            "Created": now_rfc3339(),
            "Path": argv[0],
            "Args": argv[1:],
            "Image": image.id,
            "ResolvConfPath": str(cdir / "resolv.conf"),
            "HostnamePath": str(cdir / "hostname"),
            "HostsPath": str(cdir / "hosts"),
            "LogPath": str(cdir / f"{cid}-json.log"),
            "Name": "/" + name,
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": {
                **_host_config(opts, log_config, bindings, peer, [m.doc for m in mount_opts]),
                "Links": link_docs,
            },
            "GraphDriver": {
                "Name": "overlay2",
                "Data": {
                    "LowerDir": ":".join(_abs(image.mount_cwd, d) for d in image.lowerdirs),
                    "UpperDir": str(cdir / "upper"),
                    "WorkDir": str(cdir / "work"),
                    "MergedDir": "",
                },
            },
            "Mounts": mounts,
            "Config": config,
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": "",
                "HairpinMode": False,
                "Ports": {},
                "SandboxKey": "",
                "IPAddress": "",
                "IPPrefixLen": 0,
                "Gateway": "",
                "MacAddress": "",
                "Networks": {},
            },
            "Dockyard": {
                "Lowerdirs": list(image.lowerdirs),
                "MountCwd": image.mount_cwd,
                "NetworkPeer": peer,
                "Networks": networks,
                "Tmpfs": tmpfs,  # destination -> mount options, from --tmpfs and --mount type=tmpfs
            },
        }
        c = Container(cdir, record, new_state())
        write_etc_files(c)
        store.save_record(c)
        events.container(store.root, c, "create")
        return c
    except BaseException:
        store.release_name(name, cid)
        rmtree(cdir, ignore_errors=True)
        for v in made_volumes:
            assert vstore is not None
            vstore.remove(v, force=True)
        raise


def _ports(opts: CreateOptions) -> tuple[list[PortBinding], list[str]]:
    """``-p`` and ``--expose`` parsed (the parser is imported only when they are given:
    a plain start does without it)."""
    if not (opts.publish or opts.expose):
        return [], []
    from runtime.network.ports import parse_expose, parse_publish

    return [b for s in opts.publish for b in parse_publish(s)], [
        p for e in opts.expose for p in parse_expose(e)
    ]


def _volume_flags(opts: CreateOptions) -> tuple[list[MountOpt], list[VolumeSpec]]:
    """``--mount`` and ``-v`` parsed (runtime.volumes is imported only when they are
    given or the image declares volumes: a plain start does without it)."""
    if not (opts.mounts or opts.volumes):
        return [], []
    from runtime.volumes import parse_mount, parse_volume

    mount_opts = [parse_mount(m) for m in opts.mounts]
    return mount_opts, [parse_volume(v) for v in opts.volumes] + [m.volume for m in mount_opts if m.volume]


def _abs(cwd: str, d: str) -> str:
    return d if d.startswith("/") else os.path.join(cwd, d)


def _host_config(
    opts: CreateOptions,
    log_config: dict[str, str],
    bindings: list[PortBinding],
    peer: str,
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    ports: dict[str, list[dict[str, str]]] = {}
    for b in bindings:
        ports.setdefault(b.key, []).append({"HostIp": b.host_ip, "HostPort": str(b.host_port or "")})
    network = opts.network if not opts.network.startswith("container:") else f"container:{peer}"
    host_config: dict[str, Any] = {
        "Binds": list(opts.volumes) or None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": opts.log_driver, "Config": log_config},
        "NetworkMode": network,
        "PortBindings": ports,
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": opts.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": list(opts.volumes_from) or None,
        "CapAdd": None,
        "CapDrop": None,
        "CgroupnsMode": "host",
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
        "GroupAdd": None,
        "IpcMode": "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": False,
        "PublishAllPorts": opts.publish_all,
        "ReadonlyRootfs": opts.read_only,
        "SecurityOpt": None,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": 67108864,
        "Runtime": "dockyard",
        "ConsoleSize": [0, 0],
        "Isolation": "",
        "CgroupParent": check_parent(opts.cgroup_parent or default_parent()),
        "CpusetMems": "",
        "MemoryReservation": 0,
        "OomKillDisable": False,
        "BlkioWeight": 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [],
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "Devices": [],
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "KernelMemory": 0,
        "KernelMemoryTCP": 0,
        "MemorySwappiness": None,
        "Ulimits": [],
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": list(MASKED),
        "ReadonlyPaths": list(READONLY),
    }
    if opts.init:
        host_config["Init"] = True
    host_config.update(
        CapAdd=normalize_caps(opts.cap_add, "CapAdd") or None,
        CapDrop=normalize_caps(opts.cap_drop, "CapDrop") or None,
        GroupAdd=list(opts.group_add) or None,
        ExtraHosts=list(opts.add_hosts) or None,
        Dns=list(opts.dns),
        DnsSearch=list(opts.dns_search),
        DnsOptions=list(opts.dns_options),
        Ulimits=[ulimit_doc(u) for u in opts.ulimits],
        ShmSize=ram_in_bytes(opts.shm_size, "--shm-size") if opts.shm_size else 64 << 20,
        RestartPolicy=restart_policy(opts.restart),
        Sysctls=dict(parse_sysctl(item) for item in opts.sysctls) or None,
        SecurityOpt=list(opts.security_opts) or None,
        PidMode=opts.pid,
        IpcMode=opts.ipc or "private",
        UTSMode=opts.uts,
        Privileged=opts.privileged,
    )
    if opts.privileged:
        host_config.update(MaskedPaths=None, ReadonlyPaths=None)
    if mounts:
        host_config["Mounts"] = mounts
    if opts.tmpfs:
        host_config["Tmpfs"] = {d: o for d, _, o in (t.partition(":") for t in opts.tmpfs)}
    set_limits(host_config, opts.limits)
    return host_config


def _volumes_from(store: ContainerStore, refs: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for ref in refs:
        name, _, mode = ref.partition(":")
        if mode not in ("", "ro", "rw"):
            raise BadSpec(f"invalid mode for volumes-from: {mode}")
        src = store.get(name)
        for m in src.record.get("Mounts") or []:
            m = dict(m)
            if mode:
                m["RW"] = mode == "rw"
                m["Mode"] = mode
            out.append(m)
    return out


def _attachments(root: Path, opts: CreateOptions) -> dict[str, dict[str, Any]]:
    """The networks a container joins: {name: {Aliases, IP}}; checks Docker's rules."""
    mode = opts.network
    if mode in ("none", "host") or mode.startswith("container:"):
        if opts.network_aliases:
            raise BadSpec("network-scoped alias is supported only for containers in user defined networks")
        if opts.ip:
            raise BadSpec("user specified IP address is supported on user defined networks only")
        return {}
    from runtime.network.bridge import DEFAULT_NETWORK, NetworkStore

    name = NetworkStore(root).get(mode)["Name"]
    if name == DEFAULT_NETWORK and opts.network_aliases:
        raise BadSpec("network-scoped alias is supported only for containers in user defined networks")
    if name == DEFAULT_NETWORK and opts.ip:
        raise BadSpec("user specified IP address is supported on user defined networks only")
    return {name: {"Aliases": list(opts.network_aliases), "IP": opts.ip}}


def _links(
    store: ContainerStore, opts: CreateOptions, networks: dict[str, dict[str, Any]], name: str, cid: str
) -> list[str] | None:
    """HostConfig.Links of ``--link`` on the default bridge (links.record); on a user
    network, as docker's, the links go to its endpoint's Links as given (names its
    DNS answers for this container alone), checked only when it starts."""
    from runtime.network.bridge import DEFAULT_NETWORK

    user_net = next((n for n in networks if n != DEFAULT_NETWORK), None)
    if user_net and opts.links:
        networks[user_net]["Links"] = list(opts.links)
        return None
    return links.record(store, opts.links, name, cid, opts.network)


def _network_peer(store: ContainerStore, mode: str) -> str:
    if not mode.startswith("container:"):
        return ""
    return store.get(mode.split(":", 1)[1]).id


def _mounts(
    vstore: VolumeStore | None,
    specs: list[VolumeSpec],
    inherited: list[dict[str, Any]],
    cfg: dict[str, Any],
    made: list[str],
) -> list[dict[str, Any]]:
    """Docker's Mounts: -v first, then --volumes-from, then the image's VOLUMEs
    that nothing else covers (as anonymous volumes)."""
    out: dict[str, dict[str, Any]] = {}
    for s in specs:
        if s.kind == "bind":
            os.makedirs(s.source, exist_ok=True)
            out[s.destination] = {
                "Type": "bind",
                "Source": s.source,
                "Destination": s.destination,
                "Mode": s.mode,
                "RW": not s.readonly,
                "Propagation": "rprivate",
            }
            continue
        assert vstore is not None
        name, created = vstore.create(s.source)
        if created:
            made.append(name)
        out[s.destination] = _volume_mount(
            vstore, name, s.destination, s.mode or "z", not s.readonly, s.nocopy
        )
    for m in inherited:
        out.setdefault(m["Destination"], m)
    for dest in cfg.get("Volumes") or {}:
        dest = os.path.normpath(dest)
        if dest not in out:
            assert vstore is not None
            name, _ = vstore.create("")
            made.append(name)
            out[dest] = _volume_mount(vstore, name, dest, "", True, False)
    return list(out.values())


def _healthcheck(opts: CreateOptions, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """Config.Healthcheck (health.from_flags). Raises BadSpec with docker's words."""
    given = opts.health_cmd or opts.health_interval or opts.health_timeout or opts.health_start_period
    if not (given or opts.health_retries or opts.no_healthcheck):
        return image or None  # nothing to import on a plain start
    from runtime.container import health

    durations = {
        "Interval": opts.health_interval,
        "Timeout": opts.health_timeout,
        "StartPeriod": opts.health_start_period,
    }
    return health.from_flags(image, opts.health_cmd, durations, opts.health_retries, opts.no_healthcheck)


def _tmpfs(specs: tuple[str, ...]) -> dict[str, str]:
    """``--tmpfs /dest[:opts]``: destination -> mount options, after docker's
    defaults (noexec, nosuid, nodev, which ``exec``, ``suid``, ``dev`` undo)."""
    out: dict[str, str] = {}
    for spec in specs:
        dest, _, options = spec.partition(":")
        if not dest.startswith("/"):
            raise BadSpec(f"invalid mount path: '{dest}' mount path must be absolute")
        out[os.path.normpath(dest)] = ",".join(["noexec", "nosuid", "nodev", *([options] if options else [])])
    return out


def _tmpfs_mount(doc: dict[str, Any]) -> dict[str, Any]:
    """A --mount type=tmpfs as docker's inspect shows it in Mounts."""
    return {
        "Type": "tmpfs",
        "Source": "",
        "Destination": os.path.normpath(doc["Target"]),
        "Mode": "",
        "RW": not doc.get("ReadOnly"),
        "Propagation": "",
    }


def _volume_mount(
    vstore: VolumeStore, name: str, dest: str, mode: str, rw: bool, nocopy: bool
) -> dict[str, Any]:
    m = {
        "Type": "volume",
        "Name": name,
        "Source": str(vstore.path(name)),
        "Destination": dest,
        "Driver": "local",
        "Mode": mode,
        "RW": rw,
        "Propagation": "",
    }
    if nocopy:
        m["NoCopy"] = True
    return m
