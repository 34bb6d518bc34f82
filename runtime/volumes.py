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

from imagefmt.errors import Conflict
from imagefmt.records import TYPE_CHECKING, NamedTuple
from runtime.errors import BadSpec, NoSuchVolume
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
            "Labels": meta.get("Labels") or {},
            "Mountpoint": str(self.path(name)),
            "Name": name,
            "Options": meta.get("Options") or {},
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

    def size(self, name: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.path(name)):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total
