"""``RUN --mount``: what each mount adds to the step's key, and the runtime mount it becomes.

Cache mounts persist under ``<store>/buildcache/mounts/<id>`` between builds
(``sharing=shared|private|locked``).  Binds of another stage's files are
made from that stage's image view: read-only, or a throwaway copy with
``rw``.  An SSH mount relays to the client's agent (builder.sshforward).
Secrets are copied into a private file (mode 0400 by default) that
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
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from builder import copier
from builder.context import checksum
from builder.errors import DockerfileError
from builder.flags import MountSpec
from builder.instructions.step import StepState
from builder.parser import Instruction
from builder.rootview import RootView
from builder.sshforward import forward
from runtime.spec import Mount


class Prepared:
    """What one RUN's mounts need: runtime mounts, extra env, their targets, held locks."""

    def __init__(self) -> None:
        self.mounts: list[Mount] = []
        self.env: list[str] = []
        self.targets: list[str] = []
        self.stack = contextlib.ExitStack()  # cache mount locks

    def close(self) -> None:
        self.stack.close()


def mount_key(state: StepState, spec: MountSpec, ins: Instruction) -> dict[str, Any]:
    """What a mount adds to the RUN's cache key: a bind of the context by content, of a
    stage by the mounted content, a secret by id (never by value).  Refuses a missing
    required secret."""
    key: dict[str, Any] = {
        "type": spec.type,
        "target": spec.target,
        "readonly": spec.readonly,
        "id": spec.id,
        "env": spec.env,
        "mode": spec.mode,
        "uid": spec.uid,
        "gid": spec.gid,
    }
    if spec.type == "bind":
        if spec.from_:  # by what is mounted, not by the stage's image (as COPY --from)
            view = state.view(state.from_image(spec.from_, ins.line))
            found = copier.view_sources(view, [spec.source or "/"], "mount", ins.line)
            key["source"] = spec.source
            key["content"] = checksum([it for s in found for it in s.items], "", state.cache.sums)
        else:
            context = state.context
            items = context.items(context.select(spec.source or ".", ins.line)[0])
            key["source"] = spec.source
            key["content"] = checksum(items, "", state.cache.sums)
    elif spec.type == "secret" and spec.required and spec.id not in state.options.secrets:
        raise DockerfileError(
            f"secret {spec.id} is required but was not given (--secret id={spec.id},src=…)", ins.line
        )
    elif spec.type == "ssh" and spec.required and spec.id not in state.options.ssh:
        raise DockerfileError(
            f"no SSH key {spec.id!r} forwarded from the client: give --ssh {spec.id}[=SOCKET]", ins.line
        )
    return key


def prepare(
    state: StepState, specs: list[MountSpec], prepared: Prepared, work: Path, workdir: str, ins: Instruction
) -> None:
    """The runtime mounts (and secret env) of ``specs``, their sources made under ``work``."""
    for n, spec in enumerate(specs):
        target = absolute(spec.target, workdir) if spec.target else ""
        if spec.type == "tmpfs":
            opts = f"size={spec.size}" if spec.size else ""
            prepared.mounts.append(Mount(target, "", "tmpfs", False, opts))
        elif spec.type == "cache":
            prepared.mounts.append(_cache_mount(state, spec, target, prepared, work, n))
        elif spec.type == "secret":
            secret = state.options.secrets.get(spec.id)
            if secret is None:
                continue
            if spec.env:
                prepared.env.append(f"{spec.env}={secret.decode(errors='replace')}")
            if not target:
                continue
            path = work / f"secret-{n}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as f:
                f.write(secret)
            os.chown(path, spec.uid or 0, spec.gid or 0)
            os.chmod(path, spec.mode if spec.mode is not None else 0o400)
            prepared.mounts.append(Mount(target, str(path), "bind", True))
        elif spec.type == "ssh":
            agent = state.options.ssh.get(spec.id)
            if agent is None:
                continue
            target = (
                target or f"/run/buildkit/ssh_agent.{sum(1 for t in prepared.targets if '/ssh_agent.' in t)}"
            )
            mode = spec.mode if spec.mode is not None else 0o600
            sock = prepared.stack.enter_context(forward(Path(agent), spec.uid or 0, spec.gid or 0, mode))
            prepared.mounts.append(Mount(target, str(sock), "bind", False))
            if not any(e.startswith("SSH_AUTH_SOCK=") for e in prepared.env):
                prepared.env.append(f"SSH_AUTH_SOCK={target}")
        else:
            prepared.mounts.append(_bind_mount(state, spec, target, work, n, ins))
        if target:
            prepared.targets.append(target)


def _cache_mount(
    state: StepState, spec: MountSpec, target: str, prepared: Prepared, work: Path, n: int
) -> Mount:
    ident = spec.id or target
    base = cache_dir(state.cache.mounts, ident)
    data = base / "data"
    if not data.exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".new-{uuid.uuid4().hex}"
        tmp.mkdir(mode=0o755)
        os.chown(tmp, spec.uid or 0, spec.gid or 0)
        os.chmod(tmp, spec.mode if spec.mode is not None else 0o755)
        try:
            os.rename(tmp, data)
        except OSError:
            tmp.rmdir()
    source = data
    if spec.sharing == "locked":
        prepared.stack.enter_context(_locked(base / ".lock"))
    elif spec.sharing == "private":
        if not prepared.stack.enter_context(_locked(base / ".lock", blocking=False)):
            source = work / f"cache-{n}"
            source.mkdir()
    return Mount(target, str(source), "bind", spec.readonly)


def _bind_mount(
    state: StepState, spec: MountSpec, target: str, work: Path, n: int, ins: Instruction
) -> Mount:
    if spec.from_:
        image = state.from_image(spec.from_, ins.line)
        view = state.view(image)
        parts = view.resolve(spec.source or "/")
        found = view.lookup(parts)[0]
        if found is None:
            raise DockerfileError(f"mount source {spec.source!r} not found in {spec.from_}", ins.line)
        if spec.readonly and not found.is_dir:  # a layer's file never changes: bind it as it is
            return Mount(target, os.fsdecode(found.host), "bind", True)
        # a directory is merged from layers (and may hold whiteouts): give the command a copy
        copy_to = work / f"bind-{n}"
        materialize(view, parts, copy_to)
        return Mount(target, str(copy_to), "bind", spec.readonly)
    context = state.context
    if context.root is None:
        raise DockerfileError("RUN --mount=type=bind needs a build context", ins.line)
    rel = context.select(spec.source or ".", ins.line)[0]
    host = os.fsdecode(context.source(rel))  # a link is followed inside the context, never out
    if spec.readonly:
        return Mount(target, host, "bind", True)
    copy_to = work / f"bind-{n}"
    if os.path.isdir(host):
        shutil.copytree(host, copy_to, symlinks=True)
    else:
        shutil.copy2(host, copy_to, follow_symlinks=False)
    return Mount(target, str(copy_to), "bind", False)


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
