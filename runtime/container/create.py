"""``docker create``: validate the options and write a container's record.

Every flag is checked before anything is written, so bad input leaves nothing
behind; a failure half-way (a name taken by a racing create) undoes itself.
ENTRYPOINT/CMD, Env, WorkingDir, User, volumes and ports merge image config
and options exactly as Docker does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from imagefmt.errors import DockyardError
from imagefmt.records import TYPE_CHECKING, NamedTuple
from runtime.container.store import Container, ContainerStore, new_state, now_rfc3339
from runtime.errors import BadSpec, StartFailed
from runtime.fs import rmtree
from runtime.kernel.cgroups import Limits, check_parent, default_parent
from runtime.kernel.syscalls import CAP_NAMES, DEFAULT_CAPS
from runtime.network import etcfiles
from runtime.network.ports import PortBinding, parse_expose, parse_publish
from runtime.process.rootfs import MASKED, READONLY
from runtime.spec import merge_env, parse_signal
from runtime.units import ram_in_bytes
from runtime.volumes import VolumeSpec, VolumeStore, parse_mount, parse_volume

if TYPE_CHECKING:
    from typing import Any

NAME_RE = r"[a-zA-Z0-9][a-zA-Z0-9_.-]+"  # compiled on first use: re.compile at import costs start time
MIN_MEMORY = 6 * 1024 * 1024


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
    log_driver: str = "json-file"
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


def parse_log_opts(driver: str, opts: tuple[str, ...]) -> dict[str, str]:
    if driver not in ("json-file", "none"):
        raise BadSpec(f'logger: no log driver named "{driver}" is registered')
    out: dict[str, str] = {}
    for item in opts:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadSpec(f"invalid key value pair format in log options: {item}")
        if key not in ("max-size", "max-file", "compress", "labels", "env", "tag"):
            raise BadSpec(f"unknown log opt '{key}' for {driver} log driver")
        if key == "max-size":
            ram_in_bytes(value, "--log-opt max-size")
        if key == "max-file" and (not value.isdigit() or int(value) < 1):
            raise BadSpec("max-file cannot be less than 1")
        out[key] = value
    if "max-file" in out and int(out["max-file"]) > 1 and "max-size" not in out:
        raise BadSpec("max-file cannot be set without max-size")
    return out


def validate(opts: CreateOptions) -> None:
    """The checks Docker makes before creating anything. Raises BadSpec."""
    if opts.name and not re.fullmatch(NAME_RE, opts.name.lstrip("/")):
        raise BadSpec(f"Invalid container name ({opts.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
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


def validate_limits(lim: Limits) -> None:
    """Docker's checks of resource limits (create and update). Raises BadSpec."""
    if lim.memory and lim.memory < MIN_MEMORY:
        raise BadSpec("Minimum memory limit allowed is 6MB")
    if lim.memory_swap and not lim.memory:
        raise BadSpec("You should always set the Memory limit when using Memoryswap limit, see usage")
    if lim.memory_swap > 0 and lim.memory_swap < lim.memory:
        raise BadSpec("Minimum memoryswap limit should be larger than memory limit, see usage")
    if lim.nano_cpus and (lim.cpu_period or lim.cpu_quota):
        raise BadSpec("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    n = os.cpu_count() or 1
    if lim.nano_cpus < 0 or lim.nano_cpus > n * 1_000_000_000:
        raise BadSpec(f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available")
    if lim.cpu_period and not 1000 <= lim.cpu_period <= 1_000_000:
        raise BadSpec("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if lim.cpu_quota and 0 < lim.cpu_quota < 1000:
        raise BadSpec("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if lim.cpuset_cpus and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", lim.cpuset_cpus):
        raise BadSpec(f"Invalid value {lim.cpuset_cpus} for cpuset cpus")
    if lim.pids_limit < -1:
        raise BadSpec("invalid pids limit")


def set_limits(host_config: dict[str, Any], lim: Limits) -> None:
    """Write ``lim`` into a record's HostConfig (the inverse of limits_of)."""
    host_config.update(
        Memory=lim.memory,
        MemorySwap=lim.memory_swap,
        NanoCpus=lim.nano_cpus,
        CpuShares=lim.cpu_shares,
        CpusetCpus=lim.cpuset_cpus,
        CpuPeriod=lim.cpu_period,
        CpuQuota=lim.cpu_quota,
        PidsLimit=lim.pids_limit or None,
        BlkioDeviceReadBps=[{"Path": p, "Rate": r} for p, r in lim.read_bps],
        BlkioDeviceWriteBps=[{"Path": p, "Rate": r} for p, r in lim.write_bps],
    )


def random_name(store: ContainerStore) -> str:
    from runtime.container.names import generate

    for _ in range(20):
        name = generate()
        if not os.path.lexists(store.names / name):
            return name
    return generate() + f"_{os.urandom(2).hex()}"


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
    log_config = parse_log_opts(opts.log_driver, opts.log_opts)
    bindings = [b for spec in opts.publish for b in parse_publish(spec)]
    exposed = dict.fromkeys(
        list(cfg.get("ExposedPorts") or {}) + [p for e in opts.expose for p in parse_expose(e)]
    )
    exposed.update(dict.fromkeys(b.key for b in bindings))
    mount_opts = [parse_mount(m) for m in opts.mounts]
    vol_specs = [parse_volume(v) for v in opts.volumes] + [m.volume for m in mount_opts if m.volume]
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
    name = opts.name.lstrip("/") or random_name(store)
    store.reserve_name(name, cid)
    cdir = store.dir / cid
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
            "HostConfig": _host_config(opts, log_config, bindings, peer, [m.doc for m in mount_opts]),
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
        return c
    except BaseException:
        store.release_name(name, cid)
        rmtree(cdir, ignore_errors=True)
        for v in made_volumes:
            vstore.remove(v, force=True)
        raise


def _abs(cwd: str, d: str) -> str:
    return d if d.startswith("/") else os.path.join(cwd, d)


def write_etc_files(c: Container, address: str | None = None, dns: str | None = None) -> None:
    """hostname, hosts and resolv.conf in the container's directory (bind-mounted at start)."""
    hc = c.host_config
    hostname = c.config["Hostname"]
    host_mode = hc["NetworkMode"] == "host"
    extra = tuple(parse_add_host(h) for h in hc.get("ExtraHosts") or ())
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
        Ulimits=[_ulimit_doc(u) for u in opts.ulimits],
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


def limits_of(host_config: dict[str, Any]) -> Limits:
    """The cgroup limits a record's HostConfig asks for."""
    hc = host_config
    return Limits(
        memory=hc.get("Memory") or 0,
        memory_swap=hc.get("MemorySwap") or 0,
        nano_cpus=hc.get("NanoCpus") or 0,
        cpu_shares=hc.get("CpuShares") or 0,
        cpuset_cpus=hc.get("CpusetCpus") or "",
        cpu_period=hc.get("CpuPeriod") or 0,
        cpu_quota=hc.get("CpuQuota") or 0,
        pids_limit=hc.get("PidsLimit") or 0,
        read_bps=tuple((d["Path"], d["Rate"]) for d in hc.get("BlkioDeviceReadBps") or []),
        write_bps=tuple((d["Path"], d["Rate"]) for d in hc.get("BlkioDeviceWriteBps") or []),
    )


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


def _network_peer(store: ContainerStore, mode: str) -> str:
    if not mode.startswith("container:"):
        return ""
    return store.get(mode.split(":", 1)[1]).id


def _mounts(
    vstore: VolumeStore,
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
            name, _ = vstore.create("")
            made.append(name)
            out[dest] = _volume_mount(vstore, name, dest, "", True, False)
    return list(out.values())


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


def _healthcheck(opts: CreateOptions, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """Config.Healthcheck: the image's, with what ``--health-*`` sets (docker's merge),
    or Test ["NONE"] for ``--no-healthcheck``. Raises BadSpec with docker's words."""
    given = opts.health_cmd or opts.health_interval or opts.health_timeout or opts.health_start_period
    if not (given or opts.health_retries or opts.no_healthcheck):
        return image or None  # nothing to import on a plain start
    from imagefmt.changes import parse_duration
    from runtime.container.health import merged

    if opts.no_healthcheck:
        if given or opts.health_retries:
            raise BadSpec("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    durations = {}
    for field, text in (
        ("Interval", opts.health_interval),
        ("Timeout", opts.health_timeout),
        ("StartPeriod", opts.health_start_period),
    ):
        try:
            durations[field] = parse_duration(text) if text else 0
        except DockyardError:
            raise BadSpec(f'invalid argument "{text}" for "--health-{field.lower()}" flag') from None
        if 0 < durations[field] < 10**6 or durations[field] < 0:
            raise BadSpec(f"{field} in Healthcheck cannot be less than 1ms")
    if opts.health_retries < 0:
        raise BadSpec("--health-retries cannot be negative")
    flags: dict[str, Any] = {"Test": ["CMD-SHELL", opts.health_cmd] if opts.health_cmd else None, **durations}
    flags["Retries"] = opts.health_retries
    return merged(image, flags)


# docker's ValidateSysctl: the sysctls a container's own namespaces hold
SYSCTLS = (
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
    "kernel.shmmni", "kernel.shm_rmid_forced",
)  # fmt: skip
SYSCTL_PREFIXES = ("fs.mqueue.", "net.")


def parse_sysctl(text: str) -> tuple[str, str]:
    """``net.ipv4.ip_forward=1``, one that lives in the container's namespaces. Raises BadSpec."""
    key, sep, value = text.partition("=")
    if not sep or not (key in SYSCTLS or key.startswith(SYSCTL_PREFIXES)) or "/" in key or ".." in key:
        raise BadSpec(f'invalid argument "{text}" for "--sysctl" flag: sysctl \'{text}\' is not allowed')
    return key, value


def parse_security_opt(text: str) -> tuple[str, str]:
    """``no-new-privileges[:true|false]``, ``seccomp=unconfined``, ``apparmor=…``, ``label=…``:
    dockyard has no seccomp or AppArmor profiles to load, so only what turns them off (or
    does not need them) is accepted. Raises BadSpec."""
    key, sep, value = text.replace(":", "=", 1).partition("=")
    if key == "no-new-privileges":
        if value not in ("", "true", "false"):
            raise BadSpec(f'invalid --security-opt 2: "{text}"')
        return key, value or "true"
    if key == "seccomp" and sep:
        if value != "unconfined":
            raise BadSpec(
                f"--security-opt {text}: dockyard loads no seccomp profiles; use seccomp=unconfined"
            )
        return key, value
    if key in ("apparmor", "label") and sep:
        return key, value  # no AppArmor or SELinux here: nothing to confine, as on such a docker host
    raise BadSpec(f'Invalid --security-opt: "{text}"')


def restart_policy(text: str) -> dict[str, Any]:
    """``--restart``: docker's HostConfig.RestartPolicy, checked as docker does. Raises BadSpec."""
    name, _, count = text.partition(":")
    if text.count(":") > 1:
        raise BadSpec("invalid restart policy format")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise BadSpec("invalid restart policy format: maximum retry count must be an integer") from None
    name = name or "no"
    if name in ("always", "unless-stopped", "no") and retries:
        raise BadSpec(f"maximum retry count cannot be used with restart policy '{name}'")
    if name == "on-failure" and retries < 0:
        raise BadSpec("maximum retry count cannot be negative")
    if name not in ("always", "unless-stopped", "no", "on-failure"):
        raise BadSpec(f"invalid restart policy '{name}'")
    return {"Name": name, "MaximumRetryCount": retries}


def normalize_caps(names: tuple[str, ...], field: str) -> list[str]:
    """``net_admin``, ``CAP_NET_ADMIN`` or ``ALL`` as docker records them. Raises BadSpec."""
    out = []
    for name in names:
        cap = name.upper()
        if cap != "ALL":
            cap = cap if cap.startswith("CAP_") else f"CAP_{cap}"
            if cap[4:] not in CAP_NAMES:
                raise BadSpec(f'invalid {field}: unknown capability: "{cap}"')
        if cap not in out:
            out.append(cap)
    return out


def capabilities_of(add: list[str], drop: list[str]) -> frozenset[int]:
    """Docker's TweakCapabilities: the default set, or every one with ALL added,
    or none with ALL dropped, then ``add`` and less ``drop``."""
    if "ALL" in add:
        base = set(CAP_NAMES.values())
    elif "ALL" in drop:
        base = set()
    else:
        base = set(DEFAULT_CAPS)
    base |= {CAP_NAMES[c[4:]] for c in add if c != "ALL"}
    if "ALL" not in add:
        base -= {CAP_NAMES[c[4:]] for c in drop if c != "ALL"}
    return frozenset(base)


def parse_add_host(text: str) -> tuple[str, str]:
    """``name:ip`` (an IPv6 address may hold colons). Raises BadSpec with docker's words."""
    import ipaddress

    name, sep, address = text.partition(":")
    if not sep or not name:
        raise BadSpec(f'invalid argument "{text}" for "--add-host" flag: bad format for add-host: "{text}"')
    try:
        ipaddress.ip_address(address)
    except ValueError:
        why = f'invalid IP address in add-host: "{address}"'
        raise BadSpec(f'invalid argument "{text}" for "--add-host" flag: {why}') from None
    return name, address


ULIMITS = (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
    "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip


def parse_ulimit(text: str) -> tuple[str, int, int]:
    """``nofile=1024[:2048]`` as (name, soft, hard). Raises BadSpec with docker's words."""

    def bad(why: str) -> BadSpec:
        return BadSpec(f'invalid argument "{text}" for "--ulimit" flag: {why}')

    name, sep, limits = text.partition("=")
    if not sep:
        raise bad(f"invalid ulimit argument: {text}")
    if name not in ULIMITS:
        raise bad(f"invalid ulimit type: {name}")
    soft_text, _, hard_text = limits.partition(":")
    values = []
    for part in (soft_text, hard_text or soft_text):
        try:
            values.append(int(part))
        except ValueError:
            raise bad(f'strconv.ParseInt: parsing "{part}": invalid syntax') from None
    soft, hard = values
    if soft > hard:
        raise bad(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return name, soft, hard


def _ulimit_doc(text: str) -> dict[str, Any]:
    name, soft, hard = parse_ulimit(text)
    return {"Hard": hard, "Name": name, "Soft": soft}


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
