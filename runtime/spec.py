"""What one container launch needs: its root filesystem, process and mounts.

These frozen values are all the core primitive (``runtime.process.launch.spawn``) reads;
the container store, the builder's ``run_step`` and ``exec`` build them.
"""

from __future__ import annotations

from imagefmt.records import NamedTuple
from runtime.errors import SpecRefused
from runtime.kernel.syscalls import DEFAULT_CAPS

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Mount(NamedTuple):
    """A mount inside the container, made before pivot_root.

    ``type`` "bind" binds the host path ``source`` (a file or directory, which
    must exist); "tmpfs" mounts a fresh tmpfs with ``options`` (flags such as noexec and data
    such as size=64m, see rootfs.tmpfs_options).
    ``copy_up`` fills an empty bind source from the image's content at
    ``destination`` first, as Docker does for a new volume."""

    destination: str
    source: str = ""
    type: str = "bind"
    readonly: bool = False
    options: str = ""
    copy_up: bool = False


class Rootfs(NamedTuple):
    """An overlay of ``lowerdirs`` (uppermost first) and ``upperdir``.

    Relative lower/upper/work paths resolve against ``mount_cwd``, which keeps
    the option string of deep images under a page (Docker's overlay2 ``l/``
    links).  ``upperdir`` None mounts a read-only overlay.  ``target`` is any
    existing host directory: the mount happens in the container's private mount
    namespace, so many containers may share one target.  ``volatile`` skips the
    sync of the upper filesystem when the overlay goes away (tens of ms on a
    busy disk): for upperdirs that are thrown away (--rm) or consumed at once
    (build steps); a crash leaves such an upperdir unusable, by design."""

    lowerdirs: tuple[str, ...]
    upperdir: str | None
    workdir: str | None
    mount_cwd: str
    target: str
    readonly: bool = False
    volatile: bool = False


class Process(NamedTuple):
    """The process to exec: Docker's Path+Args, Env, WorkingDir and User.

    ``user`` is docker's ``-u``: ``name|uid[:group|gid]`` resolved through the
    container's /etc/passwd and /etc/group.  ``init`` is a host path of a static
    init (tini) run as pid 1 in front of ``args``, as ``docker run --init``."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    tty: bool = False
    window: tuple[int, int] = (24, 80)
    capabilities: frozenset[int] = DEFAULT_CAPS
    no_new_privs: bool = True
    init: str | None = None
    groups: tuple[str, ...] = ()  # --group-add: more supplementary groups, names or gids
    rlimits: tuple[tuple[str, int, int], ...] = ()  # --ulimit: (name, soft, hard)


class Spec(NamedTuple):
    """One container: rootfs, process, identity and isolation.

    ``network``: "none" (a new net namespace with only ``lo`` up), "host" (the
    host's), "new" (a new one the parent fills through the ``on_netns`` hook of
    ``spawn``: the child then brings up ``interfaces`` (ifname, address,
    prefixlen) and a default route via ``gateway``) or a path to join
    (``/proc/<pid>/ns/net``: container:X).
    ``etc_files`` maps container paths (/etc/hosts…) to host files bind-mounted
    over them.  ``cgroup_procs`` are cgroup.procs files the process joins;
    ``cgroup_views`` the (name, group dir) pairs mounted read-only under
    /sys/fs/cgroup (see ``runtime.kernel.cgroups.Cgroup.views``)."""

    rootfs: Rootfs
    process: Process
    hostname: str
    etc_files: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount, ...] = ()
    network: str = "none"
    cgroup_procs: tuple[str, ...] = ()
    cgroup_views: tuple[tuple[str, str], ...] = ()
    masked: bool = True
    interfaces: tuple[tuple[str, str, int], ...] = ()
    gateway: str = ""
    shm_size: int = 64 << 20  # bytes of /dev/shm (--shm-size)
    # "new", "host" or a /proc/<pid>/ns/<type> path to join (--pid, --ipc, --uts)
    pid_ns: str = "new"
    ipc_ns: str = "new"
    uts_ns: str = "new"
    privileged: bool = False  # read-write /sys and the host's devices (--privileged)
    sysctls: tuple[tuple[str, str], ...] = ()  # written in the container's namespaces (--sysctl)


def env_get(env: tuple[str, ...] | list[str], key: str, default: str = "") -> str:
    """The last value of ``key`` in a KEY=VALUE list (Docker keeps the last one)."""
    value = default
    prefix = key + "="
    for item in env:
        if item.startswith(prefix):
            value = item[len(prefix) :]
    return value


def parse_signal(text: str | int) -> int:
    """``SIGTERM``, ``TERM``, ``term`` or ``15``. Raises BadSpec."""
    import signal

    if isinstance(text, int) or str(text).isdigit():
        if int(text) > 0:  # any number, as Go's signal.ParseSignal: the kill(2) judges it
            return int(text)
        raise SpecRefused(f"Invalid signal: {text}")
    name = str(text).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise SpecRefused(f"Invalid signal: {text}") from None


def daemon_env(hostname: str, tty: bool, env: list[str] | tuple[str, ...]) -> list[str]:
    """A container process's environment in docker's order (CreateDaemonEnvironment):
    PATH, HOSTNAME, TERM with a tty, then ``env`` (the config's), replacing in place
    or appending.  The runtime appends HOME last when it is missing."""
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}", *(["TERM=xterm"] if tty else [])]
    return merge_env(base, env)


def merge_env(*lists: list[str] | tuple[str, ...]) -> list[str]:
    """Later KEY=VALUE entries replace earlier ones in place, as Docker merges
    image Env with ``-e``; a bare KEY (no '=') is dropped here."""
    order: dict[str, str] = {}
    for items in lists:
        for item in items:
            key, sep, value = item.partition("=")
            if sep:
                order[key] = value
    return [f"{k}={v}" for k, v in order.items()]
