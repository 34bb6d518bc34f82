"""Thin ctypes wrappers for the Linux calls Python 3.11 lacks.

unshare(2), setns(2), mount(2), umount2(2), pivot_root(2), prctl(2), capset(2)
and sethostname(2).  Each wrapper raises ``OSError`` with errno and the call's
arguments, as ``os`` functions do; callers turn it into a dockyard error.
ctypes (3 ms) and libc are loaded on first use, so that the modules which only
need the constants (the container record's capabilities) stay cheap to import.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

# clone(2) / unshare(2) / setns(2) flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Docker's default capability set (moby oci/caps/defaults.go), by number.
CAP_NAMES = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}  # fmt: skip
DEFAULT_CAPS = frozenset(
    CAP_NAMES[n]
    for n in (
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
        "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
    )
)  # fmt: skip

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        import ctypes

        lib = ctypes.CDLL(None, use_errno=True)
        cstr = ctypes.c_char_p
        lib.mount.argtypes = [cstr, cstr, cstr, ctypes.c_ulong, cstr]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.unshare.argtypes = [ctypes.c_int]
        lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        lib.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.syscall.restype = ctypes.c_long
        _libc = lib
    return _libc


def _check(rc: int, what: str, path: str | None = None) -> None:
    if rc < 0:
        import ctypes

        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}", path)


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def unshare(flags: int) -> None:
    _check(libc().unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(libc().setns(fd, nstype), "setns")


def mount(
    source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None
) -> None:
    _check(
        libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
        f"mount {fstype or ''} {source or ''} on {target}".replace("  ", " "),
        target,
    )


def umount(target: str, flags: int = 0) -> None:
    _check(libc().umount2(_b(target), flags), f"umount {target}", target)


def pivot_root(new_root: str, put_old: str) -> None:
    machine = os.uname().machine
    nr = _SYS_PIVOT_ROOT.get(machine)
    if nr is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {machine}")
    _check(libc().syscall(nr, _b(new_root), _b(put_old)), "pivot_root", new_root)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    rc = int(libc().prctl(option, arg2, arg3, arg4, arg5))
    _check(rc, f"prctl({option})")
    return rc


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(libc().sethostname(raw, len(raw)), "sethostname")


def set_process_name(name: str) -> None:
    """The 15-character ``comm`` that ps and top show."""
    import ctypes

    buf = ctypes.create_string_buffer(name.encode()[:15])
    libc().prctl(PR_SET_NAME, ctypes.addressof(buf), 0, 0, 0)


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 40


def bounding_set() -> frozenset[int]:
    """The capabilities this process may still hold (CapBnd): a host that runs us
    without some (a sandbox) cannot give them to a container either."""
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("CapBnd:"))
    mask = int(line.split()[1], 16)
    return frozenset(cap for cap in range(mask.bit_length()) if mask >> cap & 1)


def drop_bounding(keep: Iterable[int]) -> None:
    """Drop every capability not in ``keep`` from the bounding set and clear the
    ambient set.  Needs CAP_SETPCAP: call it before changing user."""
    keep = frozenset(keep)
    for cap in range(last_cap() + 1):
        if cap not in keep:
            prctl(PR_CAPBSET_DROP, cap)
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass  # kernels before 4.3 have no ambient set


def set_capabilities(keep: Iterable[int]) -> None:
    """Set the effective and permitted sets to ``keep``, inheritable to none
    (moby since CVE-2022-24769).  A later setuid to non-root clears them all."""
    import ctypes

    mask = 0
    top = last_cap()
    for cap in keep:
        if cap <= top:
            mask |= 1 << cap
    lo, hi = mask & 0xFFFFFFFF, mask >> 32
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)(lo, lo, 0, hi, hi, 0)  # {effective, permitted, inheritable} x 2 words
    _check(libc().capset(header, data), "capset")


def cloexec_from(first: int) -> None:
    """Mark every fd >= ``first`` close-on-exec (close_range(2) with
    CLOSE_RANGE_CLOEXEC, or a walk of /proc/self/fd on older kernels)."""
    lib = libc()
    if hasattr(lib, "close_range") and lib.close_range(first, 0xFFFFFFFF, 4) == 0:
        return
    import fcntl

    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
            except OSError:
                pass


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)
