"""``RUN --mount``: cache, bind, tmpfs and secret mounts for one RUN.

Cache mounts persist under ``<store>/buildcache/mounts/<id>`` between builds
(``sharing=shared|private|locked``).  Binds of another stage's files are
made from that stage's image view: read-only, or a throwaway copy with
``rw``.  Secrets are copied into a private file (mode 0400 by default) that
exists only while the command runs; their values never reach the cache key,
the history or a layer.  Mount points that had to be created for a mount are
removed from the step's upperdir afterwards, so they never reach the layer.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import posixpath
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import DockerfileError
from builder.flags import MountSpec
from builder.rootview import RootView
from runtime.spec import Mount


@dataclass
class Prepared:
    """What one RUN's mounts need: runtime mounts, extra env, cleanups, key material."""

    mounts: list[Mount] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    key: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        self.stack.close()
        for c in reversed(self.cleanups):
            c()


def cache_dir(root: Path, ident: str) -> Path:
    """Where the cache mount ``ident`` lives between builds."""
    return root / hashlib.sha256(ident.encode()).hexdigest()[:32]


def materialize(view: RootView, parts: list[str], dst: Path) -> None:
    """Copy the view's ``parts`` (file or directory tree) to the host path ``dst``."""
    found = view.lookup(parts)[0]
    if found is None:
        raise DockerfileError(f"mount source /{'/'.join(parts)} does not exist")
    _copy_one(found.host, found.st, dst)
    if found.is_dir:
        for rel, child in view.walk(parts):
            _copy_one(child.host, child.st, dst / rel)


def _copy_one(host: bytes, st: os.stat_result, dst: Path) -> None:
    if stat.S_ISDIR(st.st_mode):
        dst.mkdir(exist_ok=True)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(host), dst)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(host, dst, follow_symlinks=False)
    else:
        return
    os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))


@contextlib.contextmanager
def _locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def absolute(target: str, workdir: str) -> str:
    return posixpath.normpath(posixpath.join(workdir or "/", target))


def mount_points(view: RootView, targets: list[str]) -> list[tuple[list[str], int]]:
    """For each target, its resolved components and how many of them exist in the
    image: the runtime creates the rest, and ``remove_mount_points`` removes them."""
    out = []
    for t in targets:
        parts = view.resolve(t)
        existing = len(parts)
        for i in range(1, len(parts) + 1):
            if view.lookup(parts[:i])[0] is None:
                existing = i - 1
                break
        out.append((parts, existing))
    return out


def remove_mount_points(upper: Path, view: RootView, planned: list[tuple[list[str], int]]) -> None:
    """Remove, bottom-up, the empty placeholders left in ``upper`` for mount targets,
    and parent directories that were only copied up to hold them."""
    for parts, existing in planned:
        for i in range(len(parts), 0, -1):
            p = upper.joinpath(*parts[:i])
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if os.listdir(p):
                    break
                if i <= existing:
                    lower = view.lookup(parts[:i])[0]
                    if lower is None or not lower.is_dir or _opaque(p) or not _same_attrs(st, lower.st):
                        break
                os.rmdir(p)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0 and i > existing:
                os.unlink(p)
            else:
                break


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _same_attrs(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_mode, a.st_uid, a.st_gid) == (b.st_mode, b.st_uid, b.st_gid)


def secret_env(specs: list[MountSpec], secrets: Mapping[str, bytes]) -> list[str]:
    return [f"{s.env}={secrets[s.id].decode(errors='replace')}" for s in specs if s.env and s.id in secrets]
