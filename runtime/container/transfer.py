"""Files in and out of containers: ``commit``, ``export`` and ``cp``.

``cp`` and ``export`` work in a forked helper that sees the container's root
as its own "/": for a running container it joins the container's mount
namespace, for a stopped one it mounts the overlay (and volumes) in a private
namespace.  Paths are therefore resolved by the kernel inside the container
root, so a symlink planted in the container (``/x -> /../../etc``) cannot
reach the host; the host side is only touched by the parent, through a tar
stream on a pipe, as ``docker cp`` does.
"""

from __future__ import annotations

import itertools
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from imagefmt.errors import DockyardError, NotFound
from runtime.container.store import Container, ContainerStore
from runtime.errors import BadSpec, RuntimeFailure
from runtime.kernel import syscalls as L
from runtime.process import rootfs
from runtime.process.rootfs import ensure_init_layer
from runtime.spec import Mount, Rootfs

# --------------------------------------------------------------- views ---


def _view(store: ContainerStore, c: Container, *, volumes: bool, writable: bool) -> None:
    """In a forked helper: make the container's root this process's "/"."""
    if c.running and c.pid and volumes:
        fd = os.open(f"/proc/{c.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        L.setns(fd, L.CLONE_NEWNS)
        os.close(fd)
        os.chdir("/")
        return
    rt = store.root / "runtime"
    init = ensure_init_layer(rt / "init")
    target = rt / "mnt"
    target.mkdir(exist_ok=True)
    priv = c.private
    lowers = (str(init), *priv["Lowerdirs"])
    if writable:
        fs = Rootfs(lowers, str(c.dir / "upper"), str(c.dir / "work"), priv["MountCwd"], str(target))
    else:  # the upperdir as the top lowerdir: safe while the container runs (export)
        fs = Rootfs((str(c.dir / "upper"), *lowers), None, None, priv["MountCwd"], str(target))
    L.unshare(L.CLONE_NEWNS)
    L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
    rootfs.mount_overlay(fs)
    if volumes:
        for m in c.record.get("Mounts") or []:
            rootfs.bind(str(target), Mount(m["Destination"], m["Source"], readonly=not m.get("RW", True)))
    os.chdir(target)
    os.chroot(".")
    os.chdir("/")


def _helper(
    store: ContainerStore, c: Container, work: Callable[[], None], *, volumes: bool, writable: bool
) -> tuple[int, int]:
    """Fork a helper that enters the container's view and runs ``work``;
    return (pid, read end of its error pipe)."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(err_r)
            _view(store, c, volumes=volumes, writable=writable)
            work()
        except BaseException as exc:
            code = 1
            message = exc.message if isinstance(exc, DockyardError) else f"{exc}"
            kind = "notfound" if isinstance(exc, NotFound | FileNotFoundError) else "error"
            try:
                os.write(err_w, f"{kind}\t{message}".encode())
            except OSError:
                pass
        os._exit(code)
    os.close(err_w)
    return pid, err_r


def _finish(pid: int, err_r: int) -> None:
    with os.fdopen(err_r, "rb") as f:
        kind, _, message = f.read().decode(errors="replace").partition("\t")
    _, status = os.waitpid(pid, 0)
    if status or message:
        raise (NotFound if kind == "notfound" else RuntimeFailure)(message or "copy failed")


# -------------------------------------------------------------- export ---


def export(store: ContainerStore, c: Container, out: int) -> None:
    """Write the container's flattened filesystem (no volumes) as a tar to ``out``."""
    from imagefmt.layer import write_layer

    def work() -> None:
        with os.fdopen(os.dup(out), "wb") as dst:
            write_layer(Path("/"), dst)

    _finish(*_helper(store, c, work, volumes=False, writable=False))


# ---------------------------------------------------------------- diff ---


def changes(store: ContainerStore, c: Container) -> list[tuple[str, str]]:
    """``docker diff``: ("A"|"C"|"D", path) for what the container changed.

    The result of docker's naive diff (moby pkg/archive/changes.go, which docker's
    overlay2 uses on these kernels) between the image's view and the container's,
    computed from the upperdir alone, since only what is there can differ: an
    entry no layer below has is A, with everything under it; one whose mode,
    owner or device (and, for a non-directory, size or mtime) differs is C; an
    overlay whiteout of an entry below, or an entry below hidden by an opaque
    directory, is D; a directory with any change under it is C before them.
    Docker prints these in map order; we print them in name order."""
    upper = str(c.dir / "upper")
    cwd = c.private["MountCwd"]
    lowers = [os.path.join(cwd, d) for d in c.private["Lowerdirs"]]  # the top layer first
    lowers.append(str(ensure_init_layer(store.root / "runtime" / "init")))
    out: list[tuple[str, str]] = []

    def below(path: str) -> os.stat_result | None:
        """The image's entry at ``path``: the top-most layer's, unless it is a whiteout."""
        for layer in lowers:
            try:
                st = os.lstat(layer + path)
            except OSError:
                continue
            return None if _is_whiteout(st) else st
        return None

    def entries(path: str) -> list[os.DirEntry[str]]:
        with os.scandir(upper + path) as it:
            return sorted(it, key=lambda e: e.name)

    def added(rel: str) -> None:
        for entry in entries(rel):
            out.append(("A", f"{rel}/{entry.name}"))
            if entry.is_dir(follow_symlinks=False):
                added(f"{rel}/{entry.name}")

    def visit(rel: str) -> None:
        for entry in entries(rel):
            path = f"{rel}/{entry.name}"
            st = entry.stat(follow_symlinks=False)
            old = below(path)
            if _is_whiteout(st):
                if old is not None:
                    out.append(("D", path))
                continue
            if old is None:
                out.append(("A", path))
                if stat.S_ISDIR(st.st_mode):
                    added(path)
                continue
            mark = len(out)
            changed = _stat_differs(old, st)
            if changed:
                out.append(("C", path))
            if stat.S_ISDIR(st.st_mode):
                visit(path)
                if _opaque(entry.path):
                    present = {e.name for e in entries(path)}
                    hidden = {n for layer in lowers for n in _names(layer + path)} - present
                    out.extend(("D", f"{path}/{n}") for n in sorted(hidden) if below(f"{path}/{n}"))
                if len(out) > mark and not changed:
                    out.insert(mark, ("C", path))

    visit("")
    return out


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _stat_differs(old: os.stat_result, new: os.stat_result) -> bool:
    """moby's statDifferent: a directory's size and mtime are not a change."""
    owner = (old.st_mode, old.st_uid, old.st_gid, old.st_rdev)
    if owner != (new.st_mode, new.st_uid, new.st_gid, new.st_rdev):
        return True
    return not stat.S_ISDIR(old.st_mode) and (old.st_mtime_ns, old.st_size) != (new.st_mtime_ns, new.st_size)


def _names(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


# -------------------------------------------------------------- commit ---


def commit(
    store: ContainerStore,
    c: Container,
    image_store: Any,
    *,
    ref: Any = None,
    author: str = "",
    message: str = "",
    changes: list[str] | None = None,
    pause: bool = True,
) -> Any:
    """``docker commit``: the upperdir becomes a new layer (overlay whiteouts and
    opaque directories turned into ``.wh.`` entries) on the container's image,
    with the container's config and ``changes``.  Pauses a running container
    through the freezer while the layer is read.  Returns the StoredImage."""

    from imagefmt.changes import apply_change
    from imagefmt.config import rfc3339
    from imagefmt.layer import write_layer
    from imagefmt.space import reported

    parent = image_store.image(c.record["Image"])
    doc: dict[str, Any] = {"config": _image_config(c, parent.config.config)}
    for line in changes or []:
        apply_change(doc, line)
    if author:
        doc["author"] = author
    if message:
        doc["comment"] = message  # docker's image Comment
    doc["container"] = c.id
    doc["created"] = rfc3339()
    history = {"created": doc["created"], "created_by": c.command()}
    if author:
        history["author"] = author
    if message:
        history["comment"] = message
    frozen = pause and c.status == "running"
    cg = c.cgroup()
    tmp, f = image_store.temp_file()
    try:
        if frozen:
            cg.freeze(True)
        try:
            with reported(image_store.root, "commit"), f:
                write_layer(c.dir / "upper", f, overlay_whiteouts=True)
        finally:
            if frozen:
                cg.freeze(False)
        image = image_store.commit_image(parent, tmp, doc, history, ref)
    finally:
        tmp.unlink(missing_ok=True)
    from runtime.container import events  # docker's commit event: comment, imageID, imageRef

    imageref = ref.familiar() if ref is not None else ""
    events.container(store.root, c, "commit", comment=message, imageID=str(image.id), imageRef=imageref)
    return image


RUN_KEYS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
)


def _image_config(c: Container, base: dict[str, Any]) -> dict[str, Any]:
    """The image config a commit records: the container's Config (which already
    merges the image's with the run's flags), as Docker does."""
    out = {k: v for k, v in base.items() if k not in RUN_KEYS}
    for key in RUN_KEYS:
        if c.config.get(key) not in (None, "", {}, []):
            out[key] = c.config[key]
    return out


# ------------------------------------------------------------------ cp ---


def split_container_path(arg: str) -> tuple[str | None, str]:
    """``CTR:PATH`` -> (CTR, PATH); a local path -> (None, PATH).  A path with a
    slash before the colon is local, as in docker."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    name, _, path = arg.partition(":")
    if "/" in name:
        return None, arg
    return name, path


def _tar_of(path: str, arcname: str, out: IO[bytes], archive: bool, follow: bool) -> None:
    """Stream ``path`` (a file, link or tree) as ``arcname`` into ``out``."""

    def owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if not archive:
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
        return info

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, dereference=False) as tar:
        if follow and os.path.islink(path):
            path = os.path.realpath(path)
        if arcname == ".":  # "/." : the directory's contents
            for name in sorted(os.listdir(path)):
                tar.add(os.path.join(path, name), arcname=name, filter=owner)
        else:
            tar.add(path, arcname=arcname, filter=owner)


# tarfile's extraction filters came in 3.11.4; "fully_trusted" is the behaviour before them
# (_extract refuses names with .. or a leading /), named where it exists so
# that Python 3.12+ does not warn. Debian 12's interpreter is 3.11.2.
_TRUSTED: dict[str, Any] = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def _extract(
    tar: tarfile.TarFile,
    base: str,
    rename: tuple[str, str] | None,
    members: Iterator[tarfile.TarInfo] | None = None,
) -> None:
    """Extract a tar stream into ``base``; ``rename`` (old, new) renames its
    top-level entry; an existing directory is merged into, as docker cp does."""
    for member in members if members is not None else tar:  # lazily: the tar is a stream
        if rename:
            old, new = rename
            if member.name == old or member.name.startswith(old + "/"):
                member.name = new + member.name[len(old) :]
        if ".." in member.name.split("/") or member.name.startswith("/"):
            raise BadSpec(f"refusing to extract {member.name!r}")
        if member.isdir() and os.path.isdir(os.path.join(base, member.name)):
            continue
        tar.extract(member, base, set_attrs=True, numeric_owner=True, **_TRUSTED)


def copy_from(
    store: ContainerStore, c: Container, src: str, dest: str, *, follow: bool, out: BinaryIO
) -> None:
    """``docker cp CTR:SRC DEST``; DEST "-" writes the tar to ``out``."""
    contents = src.endswith("/.")
    src_path = posixpath.normpath("/" + src)
    r, w = os.pipe2(os.O_CLOEXEC)

    def work() -> None:
        os.close(r)
        try:
            st = os.stat(src_path) if follow else os.lstat(src_path)
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {src} in container {c.name}") from None
        if contents and not stat.S_ISDIR(st.st_mode):
            raise BadSpec(f"{src}: not a directory")
        name = "." if contents else (posixpath.basename(src_path) or ".")
        with os.fdopen(w, "wb") as pipe:
            _tar_of(src_path, name, pipe, archive=True, follow=follow)

    pid, err_r = _helper(store, c, work, volumes=True, writable=False)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as stream:
            if dest == "-":
                while chunk := stream.read(1 << 16):
                    out.write(chunk)
                out.flush()
            else:
                _place(stream, posixpath.basename(src_path), dest, contents)
    finally:
        _finish(pid, err_r)


def _place(stream: IO[bytes], name: str, dest: str, contents: bool) -> None:
    """Docker's rules for where a copied tree lands on the host."""
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        it = iter(tar)
        first = next(it, None)
        if first is None:
            return
        members = itertools.chain([first], it)
        if os.path.isdir(dest):
            _extract(tar, dest, None, members)
            return
        parent = os.path.dirname(os.path.abspath(dest))
        if dest.endswith("/") or not os.path.isdir(parent):
            raise NotFound(f"destination directory {dest if dest.endswith('/') else parent} does not exist")
        if contents:
            os.mkdir(dest)
            _extract(tar, dest, None, members)
            return
        if first.isdir() and os.path.exists(dest):
            raise BadSpec(f"cannot copy a directory to a file: {dest}")
        _extract(tar, parent, (name, os.path.basename(dest)), members)


def copy_to(
    store: ContainerStore,
    c: Container,
    src: str,
    dest: str,
    *,
    archive: bool,
    follow: bool,
    stdin: BinaryIO | None = None,
) -> None:
    """``docker cp SRC CTR:DEST``; SRC "-" reads a tar from ``stdin`` into DEST (a directory)."""
    contents = src.endswith("/.")
    if src != "-" and not os.path.lexists(src):
        raise NotFound(f"lstat {os.path.abspath(src)}: no such file or directory")
    src_is_dir = src != "-" and os.path.isdir(src if follow or not os.path.islink(src) else "")
    name = posixpath.basename(os.path.normpath(src)) if src != "-" else ""
    dest_path = posixpath.normpath("/" + dest)
    r, w = os.pipe2(os.O_CLOEXEC)
    header = json.dumps({"dir": src_is_dir, "contents": contents, "name": name, "stream": src == "-"})

    def work() -> None:
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            pipe.readline()
            with tarfile.open(fileobj=pipe, mode="r|") as tar:
                if src == "-" or contents or os.path.isdir(dest_path):
                    if not os.path.isdir(dest_path):
                        raise NotFound(f"Could not find the file {dest} in container {c.name}")
                    _extract(tar, dest_path, None)
                    return
                parent = posixpath.dirname(dest_path)
                if dest.endswith("/") or not os.path.isdir(parent):
                    raise NotFound(f"Could not find the file {dest} in container {c.name}")
                if src_is_dir and os.path.exists(dest_path):
                    raise BadSpec(f"cannot copy a directory to a file: {dest}")
                _extract(tar, parent, (name, posixpath.basename(dest_path)))

    pid, err_r = _helper(store, c, work, volumes=True, writable=True)
    os.close(r)
    try:
        with os.fdopen(w, "wb") as pipe:
            pipe.write(header.encode() + b"\n")
            if src == "-":
                assert stdin is not None
                while chunk := stdin.read(1 << 16):
                    pipe.write(chunk)
            else:
                _tar_of(src, "." if contents else name, pipe, archive, follow)
    except BrokenPipeError:
        pass
    finally:
        _finish(pid, err_r)
