"""Volumes: ``-v`` parsing (Docker's rules and wording) and the local volume store.

    volumes/<name>/
    ├── _data/        the content, bind-mounted into containers
    └── meta.json     Name, CreatedAt, Labels, Options, Anonymous

A volume is in use while a container's record mounts it; ``rm`` refuses
then, as Docker does.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from imagefmt import journal
from imagefmt.errors import Conflict
from imagefmt.records import TYPE_CHECKING, NamedTuple
from runtime.errors import BadSpec, NoSuchVolume, SpecRefused
from runtime.fs import read_json, rmtree, write_json

if TYPE_CHECKING:
    from typing import Any

NAME_RE = r"[a-zA-Z0-9][a-zA-Z0-9_.-]+"
_MODES = {"ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "rshared", "slave", "rslave"}
ANON_LABEL = "com.docker.volume.anonymous"


class VolumeSpec(NamedTuple):
    """One parsed ``-v``: ``kind`` is "bind" (``source`` a host path), "volume"
    (``source`` a name) or "anonymous" (no source)."""

    kind: str
    source: str
    destination: str
    readonly: bool = False
    mode: str = ""
    nocopy: bool = False


def parse_volume(spec: str) -> VolumeSpec:
    """Parse ``/host:/ctr[:ro]``, ``name:/ctr[:opts]`` or ``/ctr``. Raises BadSpec."""
    parts = spec.split(":")
    if len(parts) > 3 or any(p == "" for p in parts):
        if any(p == "" for p in parts):
            raise BadSpec(f"invalid spec: {spec}: empty section between colons")
        raise BadSpec(f"invalid volume specification: '{spec}'")
    mode = parts[2] if len(parts) == 3 else ""
    opts = mode.split(",") if mode else []
    for opt in opts:
        if opt not in _MODES:
            raise BadSpec(f"invalid mode: {mode}")
    if len(parts) == 1:
        kind, source, dest = "anonymous", "", parts[0]
    else:
        source, dest = parts[0], parts[1]
        kind = "bind" if source.startswith("/") else "volume"
    if not dest.startswith("/"):
        mtype = "bind" if kind == "bind" else "volume"
        raise BadSpec(
            f"invalid volume specification: '{spec}': invalid mount config for type \"{mtype}\": "
            f"invalid mount path: '{dest}' mount path must be absolute"
        )
    if os.path.normpath(dest) == "/":
        raise BadSpec(
            f"invalid volume specification: '{spec}': invalid mount config: destination can't be '/'"
        )
    if kind == "volume":
        check_name(source)
    return VolumeSpec(kind, source, os.path.normpath(dest), "ro" in opts, mode, "nocopy" in opts)


class MountOpt(NamedTuple):
    """One ``--mount``: docker's HostConfig.Mounts entry (``doc``) and what the
    runtime needs of it.  ``volume`` is the VolumeSpec of a bind or volume
    mount; a tmpfs has none, and ``tmpfs`` holds its mount data."""

    doc: dict[str, Any]
    volume: VolumeSpec | None
    tmpfs: str = ""


_TRUE = {"1": True, "t": True, "true": True, "TRUE": True, "True": True}
_FALSE = {"0": False, "f": False, "false": False, "FALSE": False, "False": False}


def parse_mount(text: str) -> MountOpt:
    """``--mount type=bind|volume|tmpfs,src=…,dst=…[,readonly][,volume-nocopy]
    [,tmpfs-size=…][,tmpfs-mode=…]``, checked as docker's CLI and daemon check
    it. Raises BadSpec."""
    import csv

    from runtime.units import ram_in_bytes

    def bad(why: str) -> BadSpec:
        return BadSpec(f'invalid argument "{text}" for "--mount" flag: {why}')

    doc: dict[str, Any] = {"Type": "volume", "Source": "", "Target": ""}
    nocopy, size, mode = False, 0, 0
    for field in next(csv.reader([text])) if text else []:
        key, eq, value = field.partition("=")
        key = key.lower()
        if not eq and key in ("readonly", "ro", "volume-nocopy"):
            value = "true"
        elif not eq:
            raise bad(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            doc["Type"] = value.lower()
        elif key in ("source", "src"):
            doc["Source"] = value
        elif key in ("target", "dst", "destination"):
            doc["Target"] = value
        elif key in ("readonly", "ro", "volume-nocopy"):
            if value not in _TRUE and value not in _FALSE:
                raise bad(f"invalid value for {key}: {value}")
            flag = _TRUE.get(value, False)
            if key == "volume-nocopy":
                nocopy = flag
            else:
                doc["ReadOnly"] = flag
        elif key == "bind-propagation":
            doc["BindOptions"] = {"Propagation": value.lower()}
        elif key == "tmpfs-size":
            try:
                size = ram_in_bytes(value, key)
            except BadSpec:
                raise bad(f"invalid value for {key}: {value}") from None
        elif key == "tmpfs-mode":
            try:
                mode = int(value, 8)
            except ValueError:
                raise bad(f"invalid value for {key}: {value}") from None
        elif key in ("consistency", "volume-driver", "volume-label", "volume-opt", "bind-nonrecursive"):
            continue  # accepted and without effect here, as docker's local driver
        else:
            raise bad(f"unexpected key '{key}' in '{field}'")
    kind, source, target = doc["Type"], doc.pop("Source"), doc["Target"]
    if source:  # docker's HostConfig.Mounts leaves out what is not set
        doc = {"Type": kind, "Source": source, **{k: v for k, v in doc.items() if k != "Type"}}
    if not doc.get("ReadOnly"):
        doc.pop("ReadOnly", None)
    if kind not in ("bind", "volume", "tmpfs"):
        raise SpecRefused(f'invalid mount config for type "{kind}": mount type unknown')
    if not target:
        raise bad("target is required")
    config = f'invalid mount config for type "{kind}": '
    if not target.startswith("/"):
        raise SpecRefused(f"{config}invalid mount path: '{target}' mount path must be absolute")
    if kind == "tmpfs":
        if source:
            raise SpecRefused(f"{config}field Source must not be specified")
        if size or mode:
            doc["TmpfsOptions"] = {k: v for k, v in (("SizeBytes", size), ("Mode", mode)) if v}
        data = ",".join([*([f"size={size}"] if size else []), *([f"mode={mode:o}"] if mode else [])])
        return MountOpt(doc, None, ",".join(["noexec", "nosuid", "nodev", *([data] if data else [])]))
    if nocopy:
        doc["VolumeOptions"] = {"NoCopy": True, "DriverConfig": {}}
    readonly = bool(doc.get("ReadOnly"))
    if kind == "bind":
        if not source:
            raise SpecRefused(f"{config}field Source must not be empty")
        if not os.path.exists(source):
            raise SpecRefused(f"{config}bind source path does not exist: {source}")
        return MountOpt(doc, VolumeSpec("bind", os.path.normpath(source), os.path.normpath(target), readonly))
    if source:
        check_name(source)
    spec = VolumeSpec(
        "volume" if source else "anonymous", source, os.path.normpath(target), readonly, "", nocopy
    )
    return MountOpt(doc, spec)


def check_name(name: str) -> None:
    if not re.fullmatch(NAME_RE, name):
        raise BadSpec(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. '
            "If you intended to pass a host directory, use absolute path"
        )


def _created_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class VolumeStore:
    """Local volumes under ``<root>/volumes``."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "volumes"

    def path(self, name: str) -> Path:
        return self.dir / name / "_data"

    def names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.dir) if (self.dir / n / "meta.json").exists())
        except FileNotFoundError:
            return []

    def get(self, name: str) -> dict[str, Any]:
        """The volume's ``docker volume inspect`` document. Raises NoSuchVolume."""
        try:
            meta = read_json(self.dir / name / "meta.json")
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchVolume(f"get {name}: no such volume") from None
        return {
            "CreatedAt": meta["CreatedAt"],
            "Driver": "local",
            "Labels": dict(sorted(meta["Labels"].items()))
            if meta.get("Labels")
            else None,  # Go: sorted, or null
            "Mountpoint": str(self.path(name)),
            "Name": name,
            "Options": dict(sorted(meta["Options"].items())) if meta.get("Options") else None,
            "Scope": "local",
        }

    def create(
        self, name: str = "", labels: dict[str, str] | None = None, options: dict[str, str] | None = None
    ) -> tuple[str, bool]:
        """Create ``name`` (a random anonymous name when empty); return (name, created).
        Creating an existing volume is a no-op, as in Docker. Raises BadSpec."""
        anonymous = not name
        if anonymous:
            name = os.urandom(32).hex()
            labels = {**(labels or {}), ANON_LABEL: ""}
        check_name(name)
        journal.emit(
            self.dir.parent, "volume", "create", name, {"driver": "local"}
        )  # also when it exists, as docker
        if (self.dir / name / "meta.json").exists():
            return name, False
        vdir = self.dir / name
        (vdir / "_data").mkdir(parents=True, exist_ok=True)
        meta = {"Name": name, "CreatedAt": _created_at(), "Labels": labels or {}, "Options": options or {}}
        write_json(vdir / "meta.json", meta)
        return name, True

    def is_anonymous(self, name: str) -> bool:
        try:
            return ANON_LABEL in (read_json(self.dir / name / "meta.json").get("Labels") or {})
        except OSError:
            return False

    def remove(self, name: str, users: Iterable[str] = (), force: bool = False) -> None:
        """Remove a volume unless containers (``users``: their IDs) use it. Raises
        NoSuchVolume (unless ``force``) or Conflict with Docker's wording."""
        if not (self.dir / name / "meta.json").exists():
            if force:
                return
            raise NoSuchVolume(f"get {name}: no such volume")
        users = list(users)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        rmtree(self.dir / name)
        journal.emit(self.dir.parent, "volume", "destroy", name, {"driver": "local"})

    def size(self, name: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.path(name)):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total
