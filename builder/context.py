"""The build context: a directory minus .dockerignore, and what COPY selects from it.

Nothing is sent or copied up front: COPY and ADD read the files they name,
and ``checksum`` hashes exactly what a step copies (tarsum-like: name, type,
mode, owner, size, link target and content; never the mtime), so that a
rebuild hits the cache when the content is the same and misses when it is not.
Every path is resolved inside the context: ``..`` that climbs out is refused
with docker's message.  A symlink named as a COPY source is followed as
docker follows it, with the context as its root (``/x`` and ``../..`` stay
inside, never reaching the host); links below a copied directory are copied
as links.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.dockerignore import Matcher, glob_match, has_magic, read_patterns
from builder.errors import DockerfileError
from imagefmt.errors import DockyardError
from imagefmt.securepath import secure_join
from imagefmt.tario import TarEntry


@dataclass(frozen=True, slots=True)
class Item:
    """One object to copy: ``rel`` is its path below the source root ("" for the
    root itself), ``entry`` its tar header (named ``rel``), ``host`` the file to
    read its content from (None: ``data``, or no content)."""

    rel: str
    entry: TarEntry
    host: bytes | None = None
    data: bytes | None = None
    stamp: tuple[int, ...] = ()  # (dev, ino, size, mtime_ns, ctime_ns) of ``host``: see checksum


def stamp(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


_TYPES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
    stat.S_IFIFO: "fifo",
}


def entry_of(rel: str, host: bytes, st: os.stat_result) -> TarEntry | None:
    """A tar header for the object ``host`` (lstat ``st``); None for sockets."""
    kind = _TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    link = os.fsdecode(os.readlink(host)) if kind == "symlink" else ""
    major = os.major(st.st_rdev) if kind in ("char", "block") else 0
    minor = os.minor(st.st_rdev) if kind in ("char", "block") else 0
    return TarEntry(
        rel,
        kind,
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        st.st_size if kind == "file" else 0,
        st.st_mtime_ns / 1e9,
        link,
        major,
        minor,
    )


def checksum(items: Iterable[Item], extra: str = "", memo: Path | None = None) -> str:
    """The content checksum of ``items`` (hex sha256): names, types, modes, owners,
    sizes, link targets and contents, in order; mtimes are left out on purpose.

    With ``memo`` (a directory), files are not read again while their stamps
    (inode, size, mtime and ctime, which no user can set back) are unchanged:
    the checksum is remembered under a hash of the stamps, as BuildKit's
    contenthash cache does.  A touched file has a new ctime, is read again and,
    if its content is the same, gives the same checksum."""
    items = list(items)
    if memo is not None and all(it.stamp or it.entry.type != "file" or it.data is not None for it in items):
        sig = hashlib.sha256(extra.encode())
        for it in items:
            e = it.entry
            sig.update(f"{e.name}\0{e.type}\0{e.mode}\0{e.uid}\0{e.gid}\0{e.linkname}\0{it.stamp}\0".encode(
                "utf-8", "surrogateescape"))  # fmt: skip
            sig.update(it.host or b"")
            if it.data is not None:
                sig.update(hashlib.sha256(it.data).digest())
        path = memo / sig.hexdigest()
        try:
            return path.read_text().strip()
        except OSError:
            value = checksum(items, extra)
            memo.mkdir(parents=True, exist_ok=True)
            tmp = memo / f".{sig.hexdigest()}.{os.getpid()}.{os.urandom(4).hex()}"  # threads share a pid
            tmp.write_text(value)
            os.replace(tmp, path)
            return value
    h = hashlib.sha256(extra.encode())
    for it in items:
        e = it.entry
        h.update(
            f"{e.name}\0{e.type}\0{e.mode:o}\0{e.uid}\0{e.gid}\0{e.size}\0{e.linkname}\0"
            f"{e.devmajor},{e.devminor}\0".encode("utf-8", "surrogateescape")
        )
        if e.type == "file":
            if it.data is not None:
                h.update(hashlib.sha256(it.data).digest())
            elif it.host is not None:
                fh = hashlib.sha256()
                with open(it.host, "rb", buffering=0) as f:
                    while chunk := f.read(1 << 20):
                        fh.update(chunk)
                h.update(fh.digest())
        h.update(b"\n")
    return h.hexdigest()


def clean_source(src: str, line: int = 0) -> str:
    """A COPY source as a context-relative path ("" for the root); raise DockerfileError
    (docker's "forbidden path outside the build context") when it climbs out."""
    rel = posixpath.normpath(src or ".").lstrip("/")
    if rel == ".." or rel.startswith("../"):
        raise DockerfileError(f"forbidden path outside the build context: {src} ()", line)
    return "" if rel == "." else rel


class BuildContext:
    """The context directory ``root`` (None: no context, as ``build -``) and its ignore rules."""

    def __init__(self, root: Path | None, patterns: list[str] | None = None) -> None:
        self.root = Path(root).absolute() if root is not None else None
        self.matcher = Matcher(patterns or [])

    @classmethod
    def open(cls, root: Path | None, dockerfile: Path | None = None) -> BuildContext:
        """Read ``<Dockerfile>.dockerignore`` beside the Dockerfile, else ``.dockerignore``."""
        if root is None:
            return cls(None)
        candidates = [Path(f"{dockerfile}.dockerignore")] if dockerfile is not None else []
        candidates.append(Path(root) / ".dockerignore")
        for c in candidates:
            if c.is_file():
                return cls(root, read_patterns(c.read_text(errors="replace")))
        return cls(root)

    def excluded(self, rel: str) -> bool:
        return bool(rel) and bool(self.matcher) and self.matcher.excluded(rel)

    def host(self, rel: str) -> bytes:
        """The host path of ``rel``: its parents resolved inside the context, the last
        component not followed."""
        assert self.root is not None
        head, _, name = rel.rpartition("/")
        parent = secure_join(str(self.root), head) if head else str(self.root)
        return os.fsencode(os.path.join(parent, name) if name else parent)

    def source(self, rel: str) -> bytes:
        """The host path of the source ``rel`` with every symlink followed, the context
        as its root (docker's FollowSymlinkInScope): always inside the context."""
        assert self.root is not None
        return os.fsencode(secure_join(str(self.root), rel)) if rel else os.fsencode(self.root)

    def _lstat(self, rel: str) -> os.stat_result | None:
        try:
            return os.lstat(self.host(rel))
        except OSError:
            return None

    def select(self, src: str, line: int = 0) -> list[str]:
        """The context paths a COPY source names (a path or a Go glob); raise
        DockerfileError with docker's messages when nothing is there."""
        rel = clean_source(src, line)
        if self.root is None:
            raise DockerfileError(
                f"file not found in build context or excluded by .dockerignore: stat {rel or '.'}: "
                "file does not exist (no build context: the Dockerfile came from stdin)",
                line,
            )
        if not has_magic(rel):
            if not os.path.exists(self.source(rel)) or self.excluded(rel):
                raise DockerfileError(
                    "file not found in build context or excluded by .dockerignore: "
                    f"stat {rel or '.'}: file does not exist",
                    line,
                )
            return [rel]
        matches = sorted(self._glob(rel))
        if not matches:
            raise DockerfileError("no source files were specified", line)
        return matches

    def _glob(self, pattern: str) -> Iterator[str]:
        parts = pattern.split("/")
        level = [""]
        for depth, part in enumerate(parts):
            nxt = []
            for base in level:
                st = self._lstat(base)
                if st is None or not stat.S_ISDIR(st.st_mode):
                    continue
                if has_magic(part):
                    names = sorted(os.fsdecode(n) for n in os.listdir(self.host(base)))
                else:
                    names = [part]
                for name in names:
                    rel = f"{base}/{name}" if base else name
                    if self._lstat(rel) is None or not glob_match(parts[depth], name):
                        continue
                    nxt.append(rel)
            level = nxt
        for rel in level:
            if not self.excluded(rel):
                yield rel

    def items(self, rel: str) -> list[Item]:
        """What copying ``rel`` copies: the object itself (``Item.rel`` "", a symlink
        followed inside the context) and, for a directory, everything below it that
        .dockerignore keeps, parents first."""
        host = self.source(rel)
        try:
            st = os.lstat(host)
        except OSError:
            raise DockerfileError(
                "file not found in build context or excluded by .dockerignore: "
                f"stat {rel}: file does not exist"
            ) from None
        top = entry_of("", host, st)
        if top is None:
            return []
        out = [Item("", top, host if top.type == "file" else None, stamp=stamp(st))]
        if top.type == "dir":
            out.extend(self._walk(rel, host))
        return out

    def _walk(self, rel: str, host: bytes) -> Iterator[Item]:
        stack: list[tuple[str, bytes]] = [("", host)]
        while stack:
            sub, path = stack.pop()
            try:
                entries = sorted(os.scandir(path), key=lambda e: e.name)
            except OSError as err:
                raise DockerfileError(f"cannot read {os.fsdecode(path)}: {err.strerror}") from err
            dirs = []
            for de in entries:
                name = os.fsdecode(de.name)
                child_sub = f"{sub}{name}"
                ctx_rel = f"{rel}/{child_sub}" if rel else child_sub
                st = de.stat(follow_symlinks=False)
                is_dir = stat.S_ISDIR(st.st_mode)
                if self.excluded(ctx_rel):
                    if is_dir and self.matcher.may_reinclude_below(ctx_rel):
                        dirs.append((child_sub + "/", os.fsencode(de.path)))
                    continue
                raw = os.fsencode(de.path)
                entry = entry_of(child_sub, raw, st)
                if entry is None:
                    continue
                yield Item(child_sub, entry, raw if entry.type == "file" else None, stamp=stamp(st))
                if is_dir:
                    dirs.append((child_sub + "/", raw))
            stack.extend(reversed(dirs))


def looks_like_tar(data: bytes) -> bool:
    """Whether ``data`` (``build -``'s stdin) is a tar context rather than a Dockerfile."""
    import io

    from imagefmt.compress import detect, open_reader
    from imagefmt.tarheader import check_block

    if detect(data[:6]) != "none":
        try:
            with open_reader(io.BytesIO(data)) as r:
                data = r.read(512)
        except Exception:  # a codec's own error: not an archive after all
            return False
    if len(data) < 512:
        return False
    try:
        check_block(data[:512], 0)
    except DockyardError:
        return False
    return True


def extract_context(data: bytes, dst: Path) -> None:
    """Unpack a tar context into the empty directory ``dst`` (entries stay inside it)."""
    import io

    from imagefmt.compress import open_reader
    from imagefmt.layer import extract_layer

    with open_reader(io.BytesIO(data)) as r:
        extract_layer(r, dst, mode="apply")
