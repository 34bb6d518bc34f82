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
import csv
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
from builder.rootview import RootView
from runtime.spec import Mount

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")


@dataclass(frozen=True, slots=True)
class MountSpec:
    """One ``--mount=`` flag, parsed (not yet expanded against the build)."""

    type: str
    target: str
    source: str = ""
    from_: str = ""
    id: str = ""
    sharing: str = "shared"
    readonly: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: str = ""
    required: bool = False
    env: str = ""


def _bool(value: str) -> bool:
    return value.lower() in ("", "true", "1", "yes")


def parse_mount(text: str, line: int = 0) -> MountSpec:
    """Parse ``type=cache,target=/root/.cache,sharing=locked`` (CSV, as BuildKit)."""
    fields = next(csv.reader([text]), [])
    values: dict[str, str] = {}
    flags: set[str] = set()
    for f in fields:
        key, eq, value = f.strip().partition("=")
        key = key.lower()
        if eq:
            values[key] = value
        else:
            flags.add(key)
    kind = values.get("type", "bind")
    if kind not in MOUNT_TYPES:
        raise DockerfileError(f"unsupported mount type {kind!r}", line)
    if kind == "ssh":
        raise DockerfileError("RUN --mount=type=ssh is not supported by dockyard", line)
    target = values.get("target") or values.get("dst") or values.get("destination") or ""
    ident = values.get("id", "")
    if kind == "secret":
        ident = ident or posixpath.basename(target)
        if not ident:
            raise DockerfileError("secret mount needs an id or a target", line)
        if not target and "env" not in values:
            target = f"/run/secrets/{ident}"
    if not target and kind != "secret":
        raise DockerfileError(f"mount type {kind} needs a target", line)
    ro_default = kind in ("bind", "secret")
    readonly = ro_default
    if "ro" in flags or "readonly" in flags or _bool(values.get("ro", "false")) and "ro" in values:
        readonly = True
    if "rw" in flags or "readwrite" in flags or ("rw" in values and _bool(values["rw"])):
        readonly = False
    sharing = values.get("sharing", "shared")
    if sharing not in ("shared", "private", "locked"):
        raise DockerfileError(f"invalid sharing {sharing!r}: use shared, private or locked", line)

    def num(key: str, base: int = 10) -> int | None:
        if key not in values:
            return None
        try:
            return int(values[key], base)
        except ValueError:
            raise DockerfileError(f"invalid {key} {values[key]!r} in --mount", line) from None

    return MountSpec(
        kind,
        target,
        values.get("source") or values.get("src") or "",
        values.get("from", ""),
        ident,
        sharing,
        readonly,
        num("mode", 8),
        num("uid"),
        num("gid"),
        values.get("size", ""),
        "required" in flags or _bool(values.get("required", "false")) and "required" in values,
        values.get("env", ""),
    )


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
