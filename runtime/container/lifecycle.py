"""Container lifecycle: start, stop, kill, wait, restart, rm, rename, pause, prune.

Each takes a ``ContainerStore`` and a container reference, holds the
container's lock for its state change, and raises the runtime's leaf errors
with Docker's wording.
"""

from __future__ import annotations

import json
import os
import select
import signal
from collections.abc import Callable

from imagefmt.catalog import tree_size
from imagefmt.errors import DockyardError
from runtime.container import attach as A
from runtime.container import events, monitor
from runtime.container.store import LINKED_BY, STOP_MARK, Container, ContainerStore, process_start_time, purge
from runtime.container.streams import Attach
from runtime.errors import BadSpec, ContainerRunning, NameInUse, NotRunning, SpecRefused
from runtime.fs import write_json
from runtime.spec import parse_signal

NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"


def start(store: ContainerStore, c: Container, attach: Attach | None = None) -> monitor.Started | None:
    """Start a created or stopped container; None if it already runs (docker
    start is then a no-op). Raises StartFailed, NotRunning (container:X)."""
    with store.locked(c) as cur:
        if cur.running or cur.restarting:
            return None
        _clean_dead(store, cur)
        (cur.dir / STOP_MARK).unlink(missing_ok=True)  # started by hand: the restart policy applies again
        return monitor.start(store, cur, attach or Attach())


def _clean_dead(store: ContainerStore, c: Container) -> None:
    """What a monitor that died could not undo: cgroups, veths, address leases."""
    cg = c.cgroup()
    if cg.exists():
        cg.remove()
    if (c.state.get("Network") or {}).get("Networks"):
        from runtime.container.wiring import unplug_recorded

        unplug_recorded(store.root, c.id, c.state)


def _monitor_pidfd(c: Container) -> int | None:
    pid = int(c.state.get("MonitorPid") or 0)
    if not pid:
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    if process_start_time(pid) != c.state.get("MonitorStart"):
        os.close(fd)
        return None
    return fd


def wait_stopped(c: Container, timeout: float | None = None) -> bool:
    """Wait until the container's monitor has exited (state written, --rm done).
    True when it has (or was not running)."""
    fd = _monitor_pidfd(c)
    if fd is None:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def kill(store: ContainerStore, c: Container, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the container's pid 1. Raises NotRunning with Docker's wording."""
    c = store.load(c.id)
    if sig >= signal.NSIG:
        raise BadSpec(f"Cannot kill container: {c.name}: The linux daemon does not support signal {sig}")
    if c.restarting:  # no process now: that it stays so is enough, as in docker
        (c.dir / STOP_MARK).touch()
        return
    if not c.running or not c.pid:
        raise NotRunning(f"Cannot kill container: {c.name}: Container {c.id} is not running")
    (c.dir / STOP_MARK).touch()
    events.container(store.root, c, "kill", signal=str(sig))  # before: the monitor's die comes after it
    try:
        os.kill(c.pid, sig)
    except ProcessLookupError:
        pass


def stop(store: ContainerStore, c: Container, timeout: int | None = None) -> None:
    """STOPSIGNAL (default SIGTERM), then SIGKILL after ``timeout`` seconds
    (default the container's StopTimeout or 10). No-op when not running."""
    c = store.load(c.id)
    if c.restarting:
        (c.dir / STOP_MARK).touch()
        wait_stopped(c, 30)
        return
    if not c.running:
        return
    (c.dir / STOP_MARK).touch()  # the restart policy does not undo a stop
    sig = parse_signal(c.config.get("StopSignal") or "SIGTERM")
    if timeout is None:
        timeout = c.config.get("StopTimeout", 10)
    if c.status == "paused":
        c.cgroup().freeze(False)
    events.container(store.root, c, "kill", signal=str(sig))
    try:
        os.kill(c.pid, sig)
    except ProcessLookupError:
        pass
    if not (timeout is not None and timeout >= 0 and wait_stopped(c, timeout)):
        events.container(store.root, c, "kill", signal=str(int(signal.SIGKILL)))
        try:
            os.kill(c.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_stopped(c, 30)
    events.container(store.root, c, "stop")


def wait(store: ContainerStore, c: Container) -> int:
    """Block until the container stops; return its exit code (also for --rm)."""
    if c.running:
        try:
            sock = A.connect(c.socket_path)
        except OSError:
            sock = None
        if sock is not None:
            with sock:
                sock.sendall(A.frame_json(A.HELLO, {}))
                reader = A.FrameReader()
                while (got := A.read_frame(sock, reader)) is not None:
                    if got[0] == A.EXIT:
                        return int(json.loads(got[1])["code"])
        wait_stopped(c)
    try:
        return int(store.load(c.id).state.get("ExitCode") or 0)
    except Exception:
        return int(c.state.get("ExitCode") or 0)


def remove(store: ContainerStore, c: Container, force: bool = False, volumes: bool = False) -> None:
    """``docker rm``: refuse a running container unless ``force`` (then SIGKILL
    it); remove its files, cgroups and (with ``volumes``) anonymous volumes."""
    with store.locked(c) as cur:
        if cur.running or cur.restarting:
            if not force:
                state = "restarting" if cur.restarting else "running"
                raise ContainerRunning(
                    f"You cannot remove a {state} container {cur.id}. "
                    "Stop the container before attempting removal or force remove"
                )
            (cur.dir / STOP_MARK).touch()
            if cur.pid:
                events.container(store.root, cur, "kill", signal=str(int(signal.SIGKILL)))
                try:
                    os.kill(cur.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_stopped(cur, 30)
        _clean_dead(store, cur)
        if volumes:
            purge(monitor.remove_files(store, cur))
        else:
            store.delete(cur)
        events.container(store.root, cur, "destroy")


def rename(store: ContainerStore, c: Container, new: str) -> None:
    import re

    new = new.lstrip("/")
    if not re.fullmatch(NAME_CHARS + "+", new):
        raise SpecRefused(f"Invalid container name ({new}), only {NAME_CHARS} are allowed")
    with store.locked(c) as cur:
        if cur.name == new:
            raise NameInUse("Renaming a container with the same name as its current name")
        store.reserve_name(new, cur.id)
        old = cur.name
        cur.record["Name"] = "/" + new
        if cur.host_config.get("Links"):
            from runtime.container import links

            cur.host_config["Links"] = links.renamed_parent(cur.host_config["Links"], old, new)
        store.save_record(cur)
        store.release_name(old, cur.id)
        events.container(store.root, cur, "rename", oldName="/" + old)
    if (cur.dir / LINKED_BY).is_dir():  # after letting go of its lock: no two held at once
        from runtime.container import links

        links.renamed_child(store, cur, old, new)


def set_paused(store: ContainerStore, c: Container, paused: bool) -> None:
    """``docker pause``/``unpause`` through the freezer cgroup."""
    with store.locked(c) as cur:
        if not cur.running:
            raise NotRunning(f"Container {cur.id} is not running")
        if (cur.status == "paused") == paused:
            raise NotRunning(f"Container {cur.id} is {'already' if paused else 'not'} paused")
        cur.cgroup().freeze(paused)
        cur.state.update(Status="paused" if paused else "running", Paused=paused)
        write_json(cur.dir / "state.json", cur.state)
        events.container(store.root, cur, "pause" if paused else "unpause")


def prune(store: ContainerStore, select: Callable[[Container], bool] | None = None) -> tuple[list[str], int]:
    """Remove every stopped container (that ``select`` accepts: prune's --filter);
    return their IDs and the bytes freed."""
    removed, freed = [], 0
    for c in store.all():
        if c.running or c.restarting or (select is not None and not select(c)):
            continue
        size = tree_size(c.dir / "upper")
        try:
            remove(store, c)
        except (ContainerRunning, NotRunning):
            continue
        removed.append(c.id)
        freed += size
    for leftover in store.dir.glob(".gone-*"):  # detached by a monitor that died before purging
        purge(leftover)
    return removed, freed


def restart(store: ContainerStore, c: Container, timeout: int | None = None, given: str = "") -> None:
    """``docker restart``: stop, start. A failure is docker's "Cannot restart container
    NAME: …", NAME as the user gave it (``given``)."""
    try:
        stop(store, c, timeout)
        got = start(store, store.load(c.id))
    except DockyardError as exc:
        exc.message = f"Cannot restart container {given or c.name}: {exc.message}"
        exc.args = (exc.message,)
        raise
    if got is not None:
        got[0].close()
    events.container(store.root, c, "restart")
