"""Helpers for layer tests: build a tree with every kind of file, and snapshot trees to compare."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

IS_ROOT = os.geteuid() == 0
LONG_150 = "n" * 150
LONG_DIRS = "/".join(["deep" * 20] * 4)  # > 255 bytes with the file name


def make_tree(root: Path, *, devices: bool = IS_ROOT) -> Path:
    """A tree with files, dirs, long and non-ASCII names, links, fifos, xattrs, odd modes and owners."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/empty").touch()
    (root / "bin").mkdir()
    big = root / "bin/big"
    big.write_bytes(os.urandom(300_000))
    big.chmod(0o4755)
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    (root / "bin/sh").symlink_to("big")
    (root / "abs-link").symlink_to("/etc/passwd")
    os.link(root / "etc/passwd", root / "bin/passwd-hardlink")
    os.mkfifo(root / "fifo")
    (root / "caf\u00e9.txt").write_text("unicode name\n")
    (root / LONG_150).write_text("long name\n")
    (root / LONG_DIRS).mkdir(parents=True)
    (root / LONG_DIRS / "file").write_text("very long path\n")
    (root / LONG_DIRS / LONG_150).symlink_to("../" + LONG_150)  # long link target too
    os.setxattr(root / "etc/passwd", "user.comment", b"hello\0binary\xff")
    if IS_ROOT:
        os.chown(root / "etc/passwd", 1000, 2000)
        os.chown(root / "bin/sh", 3000, 4000, follow_symlinks=False)
        os.chown(root / "tmp", 2_500_000, 2_500_001)  # beyond ustar's 7 octal digits
        os.setxattr(root / "bin/big", "security.capability", _CAP_NET_BIND)
        os.setxattr(root / "etc", "trusted.dockyard", b"dir xattr")
    if devices:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(root / "loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    return root


# struct vfs_cap_data, revision 2, effective: magic_etc 0x02000001, permitted = cap_net_bind_service
_CAP_NET_BIND = (0x02000001).to_bytes(4, "little") + (1 << 10).to_bytes(4, "little") + bytes(12)


def snapshot(root: Path, *, mtimes: bool = True, xattrs: bool = True) -> dict[str, dict[str, Any]]:
    """Everything tar should keep about each path under root, plus hardlink groups."""
    out: dict[str, dict[str, Any]] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            info: dict[str, Any] = {
                "type": stat.S_IFMT(st.st_mode),
                "mode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
            }
            if mtimes and not stat.S_ISDIR(st.st_mode):
                info["mtime"] = st.st_mtime_ns // 1_000_000_000
            if mtimes and stat.S_ISDIR(st.st_mode):
                info["mtime"] = st.st_mtime_ns // 1_000_000_000
            if stat.S_ISREG(st.st_mode):
                info["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                if st.st_nlink > 1:
                    info["link_group"] = inodes.setdefault((st.st_dev, st.st_ino), rel)
            if stat.S_ISLNK(st.st_mode):
                info["target"] = os.readlink(path)
                info.pop("mode")
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if xattrs:
                try:
                    names = os.listxattr(path, follow_symlinks=False)
                except OSError:
                    names = []
                info["xattrs"] = {
                    n: os.getxattr(path, n, follow_symlinks=False)
                    for n in sorted(names)
                    if not n.startswith("security.selinux")
                }
            out[rel] = info
    return out
