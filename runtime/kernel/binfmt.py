"""Running another CPU's binaries: binfmt_misc entries for qemu-user-static.

A container (a build's RUN, ``run``) of another architecture runs its binaries
through the kernel's binfmt_misc: an ELF of that machine is handed to a qemu
interpreter.  Debian's qemu-user-static ships the entries in
``/usr/lib/binfmt.d/qemu-*.conf`` with the F flag (the interpreter is opened
when registered, so it works inside a container's mount namespace without being
in its root), which systemd-binfmt registers at boot.  Where nothing registered
them (a container host, a fresh machine), :func:`ensure` does it as docker's
``tonistiigi/binfmt`` image would: mount binfmt_misc, write the entry.
"""

from __future__ import annotations

import platform
from pathlib import Path

from runtime.errors import RuntimeFailure
from runtime.kernel import syscalls

BINFMT = Path("/proc/sys/fs/binfmt_misc")
CONFS = (Path("/usr/lib/binfmt.d"), Path("/etc/binfmt.d"))

# OCI architecture -> qemu's name for it (the suffix of its binfmt entry)
QEMU = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm": "arm",
    "386": "i386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64le": "mips64el",
}
_HOST = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def host_arch() -> str:
    """This machine's architecture in OCI words (amd64, arm64 …)."""
    machine = platform.machine()
    return _HOST.get(machine, machine)


def native(arch: str) -> bool:
    """Whether ``arch`` runs without emulation here (i386 on amd64 does)."""
    return arch == host_arch() or (arch == "386" and host_arch() == "amd64")


def ensure(arch: str) -> None:
    """Make binaries of ``arch`` runnable here: nothing for the host's own, else the
    qemu binfmt entry, registered from qemu-user-static's file when missing.
    RuntimeFailure naming the fix when that cannot be done."""
    if native(arch):
        return
    name = QEMU.get(arch)
    if name is None:
        raise RuntimeFailure(f"cannot run linux/{arch} binaries: no emulator is known for {arch}")
    entry = BINFMT / f"qemu-{name}"
    if not (BINFMT / "register").exists():
        _mount()
    if entry.exists():
        if entry.read_text().startswith("enabled"):
            return
        entry.write_text("1")
        return
    line = _conf_line(name)
    if line is None:
        raise RuntimeFailure(
            f"cannot run linux/{arch} binaries on this linux/{host_arch()} machine: "
            f"install qemu-user-static (apt-get install qemu-user-static) for its binfmt entries"
        )
    try:
        (BINFMT / "register").write_text(line)
    except FileExistsError:  # registered meanwhile by another process
        return
    except OSError as err:
        raise RuntimeFailure(
            f"registering the qemu-{name} binfmt entry: {err.strerror} (run as root)"
        ) from None


def _mount() -> None:
    try:
        syscalls.mount("binfmt_misc", str(BINFMT), "binfmt_misc")
    except OSError:
        pass
    if not (BINFMT / "register").exists():
        raise RuntimeFailure(
            f"cannot run foreign binaries: binfmt_misc is not mounted at {BINFMT} and mounting it failed "
            "(run as root, or mount it: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc)"
        )


def _conf_line(name: str) -> str | None:
    """The registration line of ``qemu-<name>.conf`` (with the F flag it ships)."""
    for d in CONFS:
        conf = d / f"qemu-{name}.conf"
        if conf.is_file():
            line = conf.read_text().strip()
            if line.startswith(":"):
                return line
    return None
