"""``POST /containers/create``'s body (Config, HostConfig, NetworkingConfig) as the
runtime's CreateOptions: each field in the flag form ``docker run`` would give it."""

from __future__ import annotations

from typing import Any

from imagefmt import errors
from runtime.container.create import CreateOptions
from runtime.kernel.cgroups import Limits


def _seconds(ns: int | None) -> str:
    return f"{ns / 1e9:g}s" if ns else ""


def _publish(bindings: dict[str, list[dict[str, str]] | None]) -> list[str]:
    out = []
    for port, hosts in (bindings or {}).items():
        for h in hosts or [{}]:
            ip, hp = (h or {}).get("HostIp") or "", (h or {}).get("HostPort") or ""
            out.append(":".join(p for p in (ip, hp) if p) + (":" if ip or hp else "") + port)
    return out


def _mount(m: dict[str, Any]) -> str:
    parts = [f"type={m.get('Type') or 'volume'}", f"target={m['Target']}"]
    if m.get("Source"):
        parts.append(f"source={m['Source']}")
    if m.get("ReadOnly"):
        parts.append("readonly")
    return ",".join(parts)


def _limits(h: dict[str, Any]) -> Limits:
    def bps(items: list[dict[str, Any]] | None) -> tuple[tuple[str, int], ...] | None:
        return tuple((d["Path"], int(d["Rate"])) for d in items or []) or None

    return Limits().merged(
        memory=h.get("Memory") or None,
        memory_swap=h.get("MemorySwap") or None,
        nano_cpus=h.get("NanoCpus") or None,
        cpu_shares=h.get("CpuShares") or None,
        cpuset_cpus=h.get("CpusetCpus") or None,
        cpu_period=h.get("CpuPeriod") or None,
        cpu_quota=h.get("CpuQuota") or None,
        pids_limit=h.get("PidsLimit") or None,
        read_bps=bps(h.get("BlkioDeviceReadBps")),
        write_bps=bps(h.get("BlkioDeviceWriteBps")),
    )


def _restart(policy: dict[str, Any] | None) -> str:
    name = (policy or {}).get("Name") or ""
    count = (policy or {}).get("MaximumRetryCount") or 0
    return f"{name}:{count}" if name == "on-failure" and count else name


def _health(cfg: dict[str, Any]) -> dict[str, Any]:
    hc = cfg.get("Healthcheck")
    if not hc:
        return {}
    test = hc.get("Test") or []
    if test[:1] == ["NONE"]:
        return {"no_healthcheck": True}
    out: dict[str, Any] = {
        "health_interval": _seconds(hc.get("Interval")),
        "health_timeout": _seconds(hc.get("Timeout")),
        "health_start_period": _seconds(hc.get("StartPeriod")),
        "health_retries": int(hc.get("Retries") or 0),
    }
    if test[:1] == ["CMD-SHELL"]:
        out["health_cmd"] = " ".join(test[1:])
    elif test[:1] == ["CMD"]:
        import shlex

        out["health_cmd"] = shlex.join(test[1:])
    return out


def create_options(name: str, body: dict[str, Any]) -> tuple[str, CreateOptions]:
    """(the image asked for, the options). Raises Invalid."""
    image = body.get("Image") or ""
    if not image:
        raise errors.Invalid("Config cannot be empty in order to create a container")
    h: dict[str, Any] = body.get("HostConfig") or {}
    cmd = body.get("Cmd") or []
    cmd = [cmd] if isinstance(cmd, str) else list(cmd)
    ep = body.get("Entrypoint")
    ep = [ep] if isinstance(ep, str) else ep
    entrypoint: str | None = None
    if ep is not None:  # the runtime takes one word; the others lead the command, as docker runs them
        entrypoint = ep[0] if ep else ""
        cmd = list(ep[1:]) + cmd
    attach = tuple(
        s for s, on in (("stdin", body.get("AttachStdin")), ("stdout", body.get("AttachStdout")),
                        ("stderr", body.get("AttachStderr"))) if on
    )  # fmt: skip
    endpoints: dict[str, Any] = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    network = h.get("NetworkMode") or "bridge"
    network = "bridge" if network == "default" else network
    aliases: list[str] = []
    ip = ""
    for net, ep_cfg in endpoints.items():
        if net == network or len(endpoints) == 1:
            network = net if network == "bridge" and net not in ("bridge", "default") else network
            aliases += (ep_cfg or {}).get("Aliases") or []
            ip = ((ep_cfg or {}).get("IPAMConfig") or {}).get("IPv4Address") or ""
    log = h.get("LogConfig") or {}
    opts = CreateOptions(
        command=tuple(cmd),
        entrypoint=entrypoint,
        name=name,
        env=tuple(body.get("Env") or ()),
        workdir=body.get("WorkingDir") or "",
        user=body.get("User") or "",
        hostname=body.get("Hostname") or "",
        tty=bool(body.get("Tty")),
        interactive=bool(body.get("OpenStdin")),
        attach=attach,
        auto_remove=bool(h.get("AutoRemove")),
        read_only=bool(h.get("ReadonlyRootfs")),
        init=bool(h.get("Init")),
        labels=tuple(f"{k}={v}" for k, v in (body.get("Labels") or {}).items()),
        volumes=tuple([*(h.get("Binds") or ()), *(body.get("Volumes") or {})]),
        mounts=tuple(_mount(m) for m in h.get("Mounts") or ()),
        tmpfs=tuple(f"{k}:{v}" if v else k for k, v in (h.get("Tmpfs") or {}).items()),
        volumes_from=tuple(h.get("VolumesFrom") or ()),
        publish=tuple(_publish(h.get("PortBindings") or {})),
        publish_all=bool(h.get("PublishAllPorts")),
        expose=tuple(body.get("ExposedPorts") or {}),
        network=network,
        network_aliases=tuple(aliases),
        ip=ip,
        limits=_limits(h),
        log_driver=log.get("Type") or "",  # "": the store's daemon.json default, as dockerd's
        log_opts=tuple(f"{k}={v}" for k, v in (log.get("Config") or {}).items()),
        stop_signal=body.get("StopSignal") or "",
        stop_timeout=body.get("StopTimeout"),
        cgroup_parent=h.get("CgroupParent") or "",
        cap_add=tuple(h.get("CapAdd") or ()),
        cap_drop=tuple(h.get("CapDrop") or ()),
        group_add=tuple(h.get("GroupAdd") or ()),
        add_hosts=tuple(h.get("ExtraHosts") or ()),
        links=tuple(h.get("Links") or ()),
        dns=tuple(h.get("Dns") or ()),
        dns_search=tuple(h.get("DnsSearch") or ()),
        dns_options=tuple(h.get("DnsOptions") or ()),
        ulimits=tuple(f"{u['Name']}={u['Soft']}:{u['Hard']}" for u in h.get("Ulimits") or ()),
        shm_size=str(h["ShmSize"]) if h.get("ShmSize") else "",
        pid=h.get("PidMode") or "",
        ipc=h.get("IpcMode") or "",
        uts=h.get("UTSMode") or "",
        privileged=bool(h.get("Privileged")),
        restart=_restart(h.get("RestartPolicy")),
        sysctls=tuple(f"{k}={v}" for k, v in (h.get("Sysctls") or {}).items()),
        security_opts=tuple(h.get("SecurityOpt") or ()),
        **_health(body),
    )
    return image, opts
