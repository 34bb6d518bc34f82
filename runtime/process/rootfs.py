"""Build a container's root inside its fresh mount namespace, then pivot_root.

Runs in the container's first process, after ``unshare(CLONE_NEWNS)``.
Everything is mounted in that private namespace, so nothing appears in the
host's mount table and nothing can leak: the mounts die with the namespace.
The layout follows runc's defaults for Docker: /proc, a tmpfs /dev with the
standard nodes, devpts, /dev/shm, /dev/mqueue, read-only /sys, masked and
read-only /proc paths.  The shared init layer (``ensure_init_layer``) holds the
placeholders of what is mounted over, so that no upperdir ever holds them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from imagefmt.securepath import Root
from runtime.fs import rmtree, temp_name
from runtime.kernel import syscalls as L
from runtime.spec import Mount, Rootfs, Spec

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
INIT_PATH = "/sbin/docker-init"  # --init's tini, bound here

# moby's oci.DefaultSpec: masked (hidden) and read-only paths
MASKED = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
)  # fmt: skip
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (
    ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"),
)  # fmt: skip


def overlay_options(rootfs: Rootfs) -> str:
    """The overlay mount data; raise OSError(E2BIG) past a page, which the kernel
    would reject with a less helpful EINVAL."""
    opts = "lowerdir=" + ":".join(rootfs.lowerdirs)
    if rootfs.upperdir:
        opts += f",upperdir={rootfs.upperdir},workdir={rootfs.workdir}"
        if rootfs.volatile:
            opts += ",volatile"
    opts += ",index=off,redirect_dir=off"  # plain copy-ups only: what a layer tar can express
    if len(opts) >= PAGE_SIZE:
        raise OSError(7, f"overlay options are {len(opts)} bytes, over a page: use shorter lowerdir links")
    return opts


def mount_overlay(rootfs: Rootfs) -> None:
    """Mount the overlay on ``rootfs.target``; relative dirs resolve against mount_cwd."""
    opts = overlay_options(rootfs)
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chdir(rootfs.mount_cwd)
        L.mount("overlay", rootfs.target, "overlay", 0, opts)
    finally:
        os.fchdir(cwd)
        os.close(cwd)


def _ensure(path: str, is_dir: bool) -> None:
    if os.path.lexists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if is_dir:
        os.mkdir(path, 0o755)
    else:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def mount_dev(root: str, shm_size: int = 64 << 20) -> None:
    dev = f"{root}/dev"
    _ensure(dev, True)
    L.mount("tmpfs", dev, "tmpfs", L.MS_NOSUID | L.MS_STRICTATIME, "mode=755,size=65536k")
    old = os.umask(0)
    try:
        for name, major, minor in DEVICES:
            os.mknod(f"{dev}/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        for name, target in DEV_LINKS:
            os.symlink(target, f"{dev}/{name}")
        if os.path.exists("/proc/kcore"):  # runc links core only where the kernel has one
            os.symlink("/proc/kcore", f"{dev}/core")
        os.mkdir(f"{dev}/pts", 0o755)
        os.mkdir(f"{dev}/shm", 0o1777)
        os.mkdir(f"{dev}/mqueue", 0o755)
    finally:
        os.umask(old)
    pts_opts = "newinstance,ptmxmode=0666,mode=0620,gid=5"
    L.mount("devpts", f"{dev}/pts", "devpts", L.MS_NOSUID | L.MS_NOEXEC, pts_opts)
    shm_opts = f"mode=1777,size={shm_size // 1024}k"
    L.mount("shm", f"{dev}/shm", "tmpfs", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC, shm_opts)
    L.mount("mqueue", f"{dev}/mqueue", "mqueue", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)


_RO = L.MS_RDONLY | L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC


def _bind_ro(src: str, dst: str, recursive: bool = False) -> None:
    """Bind ``src`` on ``dst`` and make that read-only, nosuid, nodev, noexec."""
    L.mount(src, dst, None, L.MS_BIND | (L.MS_REC if recursive else 0))
    L.mount(None, dst, None, L.MS_BIND | L.MS_REMOUNT | _RO)


def mount_cgroups(root: str, views: tuple[tuple[str, str], ...]) -> None:
    """Docker's /sys/fs/cgroup: on v1 a read-only tmpfs holding the container's
    own group of each hierarchy, bound read-only under the hierarchy's name (with
    the host's aliases, like cpu -> cpu,cpuacct); on v2 the group itself.  So
    programs that size themselves from their limits (JVMs, Node) read ours."""
    base = f"{root}/sys/fs/cgroup"
    if not views or not os.path.isdir(base):
        return
    if views[0][0] == "":
        _bind_ro(views[0][1], base)
        return
    L.mount("tmpfs", base, "tmpfs", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC, "mode=555")
    names = set()
    for name, group in views:
        os.mkdir(f"{base}/{name}", 0o555)
        _bind_ro(group, f"{base}/{name}")
        names.add(name)
    with os.scandir("/sys/fs/cgroup") as host:  # still the host's: before pivot_root
        for entry in host:
            if entry.is_symlink() and os.readlink(entry.path) in names:
                os.symlink(os.readlink(entry.path), f"{base}/{entry.name}")
    L.mount(None, base, None, L.MS_REMOUNT | _RO)


def mount_proc_sys(root: str, writable: bool = False) -> None:
    _ensure(f"{root}/proc", True)
    L.mount("proc", f"{root}/proc", "proc", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
    _ensure(f"{root}/sys", True)
    try:
        L.mount("sysfs", f"{root}/sys", "sysfs", _RO & ~L.MS_RDONLY if writable else _RO)
    except OSError:  # no new net namespace of our own (container:X): bind the host's read-only
        _bind_ro("/sys", f"{root}/sys", recursive=True)


def host_devices(root: str) -> None:
    """--privileged: every device node of the host's /dev (and its subdirectories
    but pts, shm and mqueue), made again in the container's /dev, as docker does."""
    for dirpath, dirs, files in os.walk("/dev"):
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in ("/dev/pts", "/dev/shm", "/dev/mqueue")]
        for name in files:
            src = os.path.join(dirpath, name)
            dst = root + src
            st = os.lstat(src)
            if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) or os.path.lexists(dst):
                continue
            os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
            os.mknod(dst, st.st_mode, st.st_rdev)
            os.chmod(dst, stat.S_IMODE(st.st_mode))  # past the umask
            os.chown(dst, st.st_uid, st.st_gid)


def mask_paths(root: str) -> None:
    """Hide and write-protect the kernel interfaces Docker hides (needs /dev/null)."""
    for p in MASKED:
        path = root + p
        if not os.path.lexists(path):
            continue
        if os.path.isdir(path):
            L.mount("tmpfs", path, "tmpfs", L.MS_RDONLY)
        else:
            L.mount(f"{root}/dev/null", path, None, L.MS_BIND)
    for p in READONLY:
        path = root + p
        if os.path.lexists(path):
            _bind_ro(path, path, recursive=True)


def copy_up(src: str, dst: str) -> None:
    """Fill the empty volume ``dst`` with ``src``'s content, owners and modes kept
    (Docker copies an image's files into a new volume on first mount)."""
    if not os.path.isdir(src) or os.listdir(dst):
        return
    import shutil

    for entry in os.scandir(src):
        to = os.path.join(dst, entry.name)
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(entry.path, to, symlinks=True, copy_function=_copy_owned)
            _chown_tree(entry.path, to)
        else:
            _copy_owned(entry.path, to)
    st = os.stat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, stat.S_IMODE(st.st_mode))


def _copy_owned(src: str, dst: str) -> str:
    import shutil

    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)
    st = os.lstat(src)
    os.lchown(dst, st.st_uid, st.st_gid)
    return dst


def _chown_tree(src: str, dst: str) -> None:
    for dirpath, _dirs, _files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        st = os.lstat(dirpath)
        os.lchown(os.path.join(dst, rel), st.st_uid, st.st_gid)


_TMPFS_FLAGS = {
    "ro": (L.MS_RDONLY, True), "rw": (L.MS_RDONLY, False), "nosuid": (L.MS_NOSUID, True),
    "suid": (L.MS_NOSUID, False), "nodev": (L.MS_NODEV, True), "dev": (L.MS_NODEV, False),
    "noexec": (L.MS_NOEXEC, True), "exec": (L.MS_NOEXEC, False), "noatime": (L.MS_NOATIME, True),
    "strictatime": (L.MS_STRICTATIME, True), "relatime": (0, True),
}  # fmt: skip


def tmpfs_options(options: str) -> tuple[int, str]:
    """Mount flags and data from ``noexec,size=64m,mode=1777``-like options (nosuid
    and nodev unless ``suid``/``dev`` say otherwise); the last word of a pair wins."""
    flags = L.MS_NOSUID | L.MS_NODEV
    data = []
    for word in filter(None, options.split(",")):
        if word in _TMPFS_FLAGS:
            bit, on = _TMPFS_FLAGS[word]
            flags = flags | bit if on else flags & ~bit
        else:
            data.append(word)
    return flags, ",".join(data)


def bind(root: str | Root, m: Mount) -> None:
    """Mount ``m`` at its destination resolved inside ``root`` (no symlink escape: the
    mount goes onto the fd the resolution ended on, as runc's does)."""
    if isinstance(root, str):
        with Root.open(root) as r:
            bind(r, m)
        return
    is_dir = m.type == "tmpfs" or os.path.isdir(m.source)
    fd = root.make(m.destination, is_dir)
    try:
        dest = root.host_path(fd)  # for the remount below: a mount point is reached by path
        on = f"/proc/self/fd/{fd}"
        if m.type == "tmpfs":
            flags, data = tmpfs_options(m.options)
            L.mount("tmpfs", on, "tmpfs", flags, data or None)
        else:
            if m.copy_up:
                copy_up(on, m.source)
            L.mount(m.source, on, None, L.MS_BIND | L.MS_REC)
    finally:
        os.close(fd)
    if m.readonly:
        L.mount(None, dest, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY)


def _bind_file(root: Root, dest: str, src: str) -> None:
    """Bind the host file ``src`` over ``dest`` inside ``root`` (made if missing)."""
    fd = root.make(dest, False)
    try:
        L.mount(src, f"/proc/self/fd/{fd}", None, L.MS_BIND)
    finally:
        os.close(fd)


def setup(spec: Spec) -> None:
    """Mount the whole root at ``spec.rootfs.target`` and pivot_root into it.

    Raises OSError; the caller is the container's doomed first process."""
    root = spec.rootfs.target
    L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
    mount_overlay(spec.rootfs)
    mount_proc_sys(root, writable=spec.privileged)
    for key, value in spec.sysctls:  # before /proc/sys goes read-only (mask_paths)
        with open(f"{root}/proc/sys/{key.replace('.', '/')}", "w") as f:
            f.write(value)
    mount_cgroups(root, spec.cgroup_views)
    mount_dev(root, spec.shm_size)
    if spec.privileged:
        host_devices(root)
    elif spec.masked:
        mask_paths(root)
    with Root.open(root) as inside:
        for dest, src in spec.etc_files:
            _bind_file(inside, dest, src)
        for m in spec.mounts:
            bind(inside, m)
        if spec.process.init:  # where docker puts it: `diff` shows it, and ps names pid 1 docker-init
            _bind_file(inside, INIT_PATH, spec.process.init)
    if spec.rootfs.readonly:
        L.mount(None, root, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY)
    os.chdir(root)
    L.pivot_root(".", ".")
    L.umount(".", L.MNT_DETACH)
    os.chdir("/")


# The init layer: placeholders for what the runtime mounts over, so that the
# container's upperdir (and so ``commit`` and the builder's layers) never holds
# them.  Docker keeps the same in each container's "-init" layer; ours is
# identical for every container, so one read-only copy is shared.
INIT_DIRS = ("proc", "sys", "dev", "dev/pts", "dev/shm", "etc")
INIT_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv")


def ensure_init_layer(path: Path) -> Path:
    """Create the shared init layer at ``path`` once (idempotent, atomic by rename)."""
    if path.is_dir():
        return path
    tmp = temp_name(path)
    tmp.mkdir(parents=True)
    for d in INIT_DIRS:
        (tmp / d).mkdir(mode=0o755, exist_ok=True)
    for f in INIT_FILES:
        (tmp / f).touch(mode=0o644)
    try:
        os.rename(tmp, path)
    except OSError:  # another process won the race
        rmtree(tmp, ignore_errors=True)
    return path
