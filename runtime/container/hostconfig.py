"""HostConfig fields from docker's flags, checked with docker's words, and read back.

``--restart``, ``--cap-add``/``--cap-drop``, ``--sysctl``, ``--security-opt``,
``--add-host``, ``--ulimit`` and the resource limits: each parser raises BadSpec
as docker does; ``set_limits``/``limits_of`` write cgroup Limits into a record's
HostConfig and read them back (create and update write, a start and stats read).
"""

from __future__ import annotations

import os
import re

from imagefmt.records import TYPE_CHECKING
from runtime.errors import BadSpec, SpecRefused
from runtime.kernel.cgroups import Limits, available_cpus
from runtime.kernel.syscalls import CAP_NAMES, DEFAULT_CAPS

if TYPE_CHECKING:
    from typing import Any


MIN_MEMORY = 6 * 1024 * 1024


def validate_limits(lim: Limits) -> None:
    """Docker's checks of resource limits (create and update). Raises BadSpec."""
    if lim.memory and lim.memory < MIN_MEMORY:
        raise SpecRefused("Minimum memory limit allowed is 6MB")
    if lim.memory_swap and not lim.memory:
        raise SpecRefused("You should always set the Memory limit when using Memoryswap limit, see usage")
    if lim.memory_swap > 0 and lim.memory_swap < lim.memory:
        raise SpecRefused("Minimum memoryswap limit should be larger than memory limit, see usage")
    if lim.nano_cpus and (lim.cpu_period or lim.cpu_quota):
        raise SpecRefused("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    n = os.cpu_count() or 1
    if lim.nano_cpus < 0 or lim.nano_cpus > n * 1_000_000_000:
        raise SpecRefused(f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available")
    if lim.cpu_period and not 1000 <= lim.cpu_period <= 1_000_000:
        raise SpecRefused(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if lim.cpu_quota and 0 < lim.cpu_quota < 1000:
        raise SpecRefused("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if lim.cpuset_cpus:
        check_cpuset(lim.cpuset_cpus)
    if lim.pids_limit < -1:
        raise SpecRefused("invalid pids limit")


MAX_CPUSET = 8192  # docker's sysinfo.IsCpusetCpusAvailable maximum


def parse_cpu_list(text: str) -> set[int]:
    """A cpuset list (``0-2,5``), as docker's parsers.ParseUintList reads it. Raises
    ValueError with docker's reason."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not re.fullmatch(r"\d+", low) or (dash and not re.fullmatch(r"\d+", high)):
            raise ValueError(f"invalid format: {text}")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"invalid format: {text}")
        if last > MAX_CPUSET:
            raise ValueError(f"value of out range, maximum is {MAX_CPUSET}")
        cpus.update(range(first, last + 1))
    return cpus


def check_cpuset(text: str) -> None:
    """``--cpuset-cpus``: a well-formed list of CPUs the host has, checked at create
    (the kernel's ERANGE at start would leave a container made). Raises BadSpec
    with docker's words."""
    try:
        wanted = parse_cpu_list(text)
    except ValueError as err:
        raise SpecRefused(f"Invalid value {text} for cpuset cpus: {err}") from None
    available = available_cpus()
    if not wanted <= parse_cpu_list(available):
        raise SpecRefused(f"Requested CPUs are not available - requested {text}, available: {available}")


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
        raise SpecRefused(f"invalid restart policy '{name}'")
    return {"Name": name, "MaximumRetryCount": retries}


def normalize_caps(names: tuple[str, ...], field: str) -> list[str]:
    """``net_admin``, ``CAP_NET_ADMIN`` or ``ALL`` as docker records them. Raises BadSpec."""
    out = []
    for name in names:
        cap = name.upper()
        if cap != "ALL":
            cap = cap if cap.startswith("CAP_") else f"CAP_{cap}"
            if cap[4:] not in CAP_NAMES:
                raise SpecRefused(f'invalid {field}: unknown capability: "{cap}"')
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


def ulimit_doc(text: str) -> dict[str, Any]:
    name, soft, hard = parse_ulimit(text)
    return {"Hard": hard, "Name": name, "Soft": soft}
