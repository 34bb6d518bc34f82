"""Container records on disk: lookup by ID, name or prefix; state; Docker's status words.

Layout under the store root (every write is atomic, temp file + rename)::

    containers/
    ├── .names/<name> -> <id>        a symlink per name: creating it reserves the name
    └── <id>/
        ├── config.v2.json           Docker-shaped record: Config, HostConfig, Mounts…
        ├── state.json               State: Status, Pid, ExitCode, StartedAt… (+ the monitor's pid)
        ├── hostname, hosts, resolv.conf
        ├── <id>-json.log[.N]        json-file log, rotated
        ├── upper/ work/             the overlay's writable layer
        └── attach.sock              the monitor's socket, while it runs

A per-container ``flock`` on the directory serialises state changes made by
commands; the monitor (the only writer while the container runs) writes
state.json whole.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagefmt.records import TYPE_CHECKING
from runtime.errors import NameInUse, NoSuchContainer
from runtime.fs import read_json, rmtree, write_json
from runtime.kernel.cgroups import PARENT, Cgroup

if TYPE_CHECKING:
    from typing import Any


def purge(path: Path) -> None:
    """Delete a detached container directory."""
    rmtree(path, ignore_errors=True)
    if path.exists():  # a lingering overlay work dir: retry once
        rmtree(path, ignore_errors=True)


ZERO_TIME = "0001-01-01T00:00:00Z"
STOP_MARK = "stopped-by-hand"  # in a container's dir: stop or kill came first, so no restart
LINKED_BY = "linked-by"  # in a container's dir: an empty file per container linking to it (links.py)
DOCKER_NS_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("LinkLocalIPv6Address", ""),
    ("LinkLocalIPv6PrefixLen", 0),
    ("SecondaryIPAddresses", None),
    ("SecondaryIPv6Addresses", None),
    ("EndpointID", ""),
    ("GlobalIPv6Address", ""),
    ("GlobalIPv6PrefixLen", 0),
    ("IPv6Gateway", ""),
)
EMPTY_ENDPOINT = {
    "IPAMConfig": None,
    "Links": None,
    "Aliases": None,
    "NetworkID": "",
    "EndpointID": "",
    "Gateway": "",
    "IPAddress": "",
    "IPPrefixLen": 0,
    "MacAddress": "",
}


def now_rfc3339() -> str:
    """UTC with nanoseconds, as Docker writes its timestamps."""
    ns = time.time_ns()
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"
    )


def parse_time(text: str) -> float:
    """Seconds since the epoch for our RFC 3339 timestamps (0.0 for the zero time)."""
    if not text or text.startswith("0001-"):
        return 0.0
    import calendar

    base, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, which ``docker ps`` uses."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: tells a live process from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def new_state() -> dict[str, Any]:
    return {
        "Status": "created",
        "Running": False,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": ZERO_TIME,
        "FinishedAt": ZERO_TIME,
    }


class Container:
    """One container's record and state, as loaded; ``refresh`` re-reads state."""

    def __init__(self, cdir: Path, record: dict[str, Any], state: dict[str, Any]) -> None:
        self.dir = cdir
        self.record = record
        self.state = state

    @property
    def id(self) -> str:
        return str(self.record["Id"])

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return str(self.record["Name"]).lstrip("/")

    @property
    def config(self) -> dict[str, Any]:
        return self.record["Config"]  # type: ignore[no-any-return]

    @property
    def host_config(self) -> dict[str, Any]:
        return self.record["HostConfig"]  # type: ignore[no-any-return]

    @property
    def private(self) -> dict[str, Any]:
        """What only dockyard reads: lowerdirs, mount cwd, network allocations."""
        return self.record["Dockyard"]  # type: ignore[no-any-return]

    @property
    def status(self) -> str:
        return str(self.state["Status"])

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused")

    @property
    def restarting(self) -> bool:
        """Between runs, its monitor waiting out the restart policy's back-off."""
        return self.status == "restarting"

    @property
    def pid(self) -> int:
        return int(self.state.get("Pid") or 0)

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.id}-json.log"

    @property
    def socket_path(self) -> Path:
        return self.dir / "attach.sock"

    def cgroup(self) -> Cgroup:
        """The container's cgroups (under the parent it was created with)."""
        return Cgroup(self.id, self.host_config.get("CgroupParent") or PARENT)

    def command(self) -> str:
        """docker ps's COMMAND: arguments with a space are single-quoted (moby daemon/list.go)."""
        args = [f"'{a}'" if " " in a else a for a in self.record["Args"]]
        return " ".join([self.record["Path"], *args]).strip()

    def monitor_alive(self) -> bool:
        pid = int(self.state.get("MonitorPid") or 0)
        return bool(pid) and process_start_time(pid) == self.state.get("MonitorStart")

    def status_text(self, now: float | None = None) -> str:
        """Docker's STATUS column: Created, Up 3 seconds (Paused), Exited (0) 2 minutes ago, Dead."""
        now = time.time() if now is None else now
        st = self.status
        if st in ("running", "paused"):
            text = "Up " + human_duration(now - parse_time(self.state["StartedAt"]))
            if st == "paused":
                return text + " (Paused)"
            health = (self.state.get("Health") or {}).get("Status")
            if health:
                return text + (" (health: starting)" if health == "starting" else f" ({health})")
            return text
        if st == "exited":
            ago = human_duration(now - parse_time(self.state["FinishedAt"]))
            return f"Exited ({self.state['ExitCode']}) {ago} ago"
        if st == "restarting":
            ago = human_duration(now - parse_time(self.state["FinishedAt"]))
            return f"Restarting ({self.state['ExitCode']}) {ago} ago"
        if st == "dead":
            return "Dead"
        if st == "removing":
            return "Removal In Progress"
        return "Created"

    def created_ago(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        return human_duration(now - parse_time(self.record["Created"])) + " ago"

    def inspect(self) -> dict[str, Any]:
        """``docker inspect``'s document for this container."""
        rec = {k: v for k, v in self.record.items() if k != "Dockyard"}
        state = {k: v for k, v in self.state.items() if k in new_state() or k == "Health"}
        out: dict[str, Any] = {"Id": rec.pop("Id"), "Created": rec.pop("Created")}
        out.update(Path=rec.pop("Path"), Args=rec.pop("Args"), State=state)
        out.update(rec)
        out["NetworkSettings"] = self.network_settings()
        return out

    def network_settings(self) -> dict[str, Any]:
        """NetworkSettings as Docker shows them: the record's, with the addresses
        and published ports of the running container (from its state)."""
        ns = dict(self.record.get("NetworkSettings") or {})
        live = self.state.get("Network") or {}
        mode = self.host_config.get("NetworkMode", "")
        nets = {
            k: {f: v for f, v in e.items() if f != "HostVeth"}
            for k, e in (live.get("Networks") or {}).items()
        }
        if not nets:
            names = list(self.private.get("Networks") or {}) or [mode.split(":")[0]]
            nets = {n: dict(EMPTY_ENDPOINT) for n in names}
        ns["Networks"] = nets
        ports = live.get("Ports")
        ns["Ports"] = ports if ports is not None else {k: None for k in self.config.get("ExposedPorts") or {}}
        main = nets.get("bridge") or {}
        for key, empty in (("IPAddress", ""), ("IPPrefixLen", 0), ("Gateway", ""), ("MacAddress", "")):
            ns[key] = main.get(key, empty)
        for key, empty in DOCKER_NS_DEFAULTS:
            ns.setdefault(key, empty)
        return ns


class ContainerStore:
    """The containers under one store root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "containers"
        self.names = self.dir / ".names"

    # ------------------------------------------------------------ lookup ---

    def ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.dir) if len(n) == 64 and not n.startswith(".")]
        except FileNotFoundError:
            return []

    def load(self, cid: str) -> Container:
        cdir = self.dir / cid
        try:
            record = read_json(cdir / "config.v2.json")
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchContainer(f"No such container: {cid}") from None
        try:
            state = read_json(cdir / "state.json")
        except FileNotFoundError:
            state = new_state()
        c = Container(cdir, record, state)
        self._check_monitor(c)
        return c

    def _check_monitor(self, c: Container) -> None:
        """A running container whose monitor is gone is dead, not Up: its pid 1
        was killed with the monitor (PR_SET_PDEATHSIG), and nobody recorded why."""
        if (c.running or c.restarting) and not c.monitor_alive():
            try:
                c.state = read_json(c.dir / "state.json")  # the monitor may have just finished
            except FileNotFoundError:
                pass
            if (c.running or c.restarting) and not c.monitor_alive():
                c.state.update(
                    Status="dead",
                    Running=False,
                    Paused=False,
                    Dead=True,
                    Pid=0,
                    ExitCode=255,
                    Error="the dockyard monitor of this container exited unexpectedly",
                    FinishedAt=now_rfc3339(),
                )

    def get(self, ref: str) -> Container:
        """By full ID, then exact name, then unique ID prefix (Docker's order).
        Raises NoSuchContainer ("No such container: x") or, for an ambiguous
        prefix, NoSuchContainer with Docker's wording."""
        ref = ref.lstrip("/")
        if len(ref) == 64 and (self.dir / ref).is_dir():
            return self.load(ref)
        try:
            return self.load(os.readlink(self.names / ref))
        except (FileNotFoundError, NotADirectoryError, OSError):
            pass
        if ref and all(ch in "0123456789abcdef" for ch in ref):
            hits = [i for i in self.ids() if i.startswith(ref)]
            if len(hits) == 1:
                return self.load(hits[0])
            if len(hits) > 1:
                raise NoSuchContainer(f"multiple IDs found with provided prefix: {ref}")
        raise NoSuchContainer(f"No such container: {ref}")

    def all(self) -> list[Container]:
        """Every container, newest first (docker ps order)."""
        out = []
        for cid in self.ids():
            try:
                out.append(self.load(cid))
            except NoSuchContainer:
                continue  # removed meanwhile
        out.sort(key=lambda c: c.record["Created"], reverse=True)
        return out

    # ------------------------------------------------------------ writes ---

    def reserve_name(self, name: str, cid: str) -> None:
        """Atomically claim ``name`` for ``cid``; raise NameInUse with Docker's message."""
        self.names.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(cid, self.names / name)
        except FileExistsError:
            try:
                other = os.readlink(self.names / name)
            except OSError:
                other = "?"
            if not (self.dir / other).is_dir():  # a stale reservation from a crash
                os.unlink(self.names / name)
                return self.reserve_name(name, cid)
            raise NameInUse(
                f'Conflict. The container name "/{name}" is already in use by container "{other}". '
                "You have to remove (or rename) that container to be able to reuse that name."
            ) from None

    def release_name(self, name: str, cid: str) -> None:
        try:
            if os.readlink(self.names / name) == cid:
                os.unlink(self.names / name)
        except OSError:
            pass

    def save_record(self, c: Container) -> None:
        write_json(c.dir / "config.v2.json", c.record)

    def save_state(self, c: Container) -> None:
        write_json(c.dir / "state.json", c.state)

    def delete(self, c: Container) -> None:
        """Remove the record, its name and its files. Idempotent."""
        purge(self.detach(c))

    def detach(self, c: Container) -> Path:
        """Remove the record and its name at once, renaming its directory aside
        (out of :meth:`ids`' sight); return that directory, for :func:`purge`
        once nobody waits (unlinking a container's files takes milliseconds)."""
        self.release_name(c.name, c.id)
        aside = self.dir / f".gone-{c.id}-{os.urandom(4).hex()}"
        try:
            os.rename(c.dir, aside)
        except FileNotFoundError:
            pass
        except OSError:  # cannot rename (busy): remove it in place
            return c.dir
        return aside

    @contextmanager
    def locked(self, c: Container) -> Iterator[Container]:
        """Hold the container's lock and yield it reloaded (so its state is current)."""
        try:
            fd = os.open(c.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NoSuchContainer(f"No such container: {c.name or c.id}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self.load(c.id)
        finally:
            os.close(fd)
