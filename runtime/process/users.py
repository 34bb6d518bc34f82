"""Docker's ``-u`` resolution through a container's /etc/passwd and /etc/group.

Follows runc's ``user.GetExecUser``: a name must exist in passwd; a numeric
uid need not (gid 0, home /); ``:group`` overrides the primary group; the
supplementary groups are the primary one and those of /etc/group listing the
user's name, as ``docker run busybox id`` shows.
"""

from __future__ import annotations

from imagefmt.records import NamedTuple
from runtime.errors import UserNotFound


class ExecUser(NamedTuple):
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def _rows(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve(user: str, root: str = "/") -> ExecUser:
    """Resolve ``user`` (``name|uid[:group|gid]``, "" for root) in the files under
    ``root``.  Raises UserNotFound with runc's wording."""
    root = root.rstrip("/")
    name, _, group = (user or "0").partition(":")
    passwd = _rows(f"{root}/etc/passwd")
    match = [r for r in passwd if len(r) >= 6 and (r[0] == name or (name.isdigit() and r[2] == name))]
    entry = match[0] if match else None
    if entry is None and not name.isdigit():
        raise UserNotFound(f"unable to find user {name}: no matching entries in passwd file")
    if entry is not None:
        uid, gid, home, login = int(entry[2]), int(entry[3] or 0), entry[5] or "/", entry[0]
    else:
        uid, gid, home, login = int(name), 0, "/", ""
    groups = _rows(f"{root}/etc/group")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            g = next((r for r in groups if len(r) >= 3 and r[0] == group), None)
            if g is None:
                raise UserNotFound(f"unable to find group {group}: no matching entries in group file")
            gid = int(g[2])
    extra: list[int] = []
    if login:
        for r in groups:
            if len(r) >= 4 and login in r[3].split(",") and r[2].isdigit() and int(r[2]) not in extra:
                extra.append(int(r[2]))
    if gid not in extra:  # docker lists the primary group too: groups=0(root),10(wheel)
        extra.insert(0, gid)
    return ExecUser(uid, gid, tuple(extra), home)


def group_ids(names: tuple[str, ...], root: str = "/") -> list[int]:
    """``--group-add`` names or gids as gids, through the group file under ``root``.
    Raises UserNotFound with docker's wording."""
    rows = _rows(f"{root.rstrip('/')}/etc/group") if any(not n.isdigit() for n in names) else []
    out = []
    for name in names:
        if name.isdigit():
            out.append(int(name))
            continue
        row = next((r for r in rows if len(r) >= 3 and r[0] == name and r[2].isdigit()), None)
        if row is None:
            raise UserNotFound(f"Unable to find group {name}: no matching entries in group file")
        out.append(int(row[2]))
    return out
