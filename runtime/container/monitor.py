"""The per-container monitor, dockyard's conmon: one forked process per running container.

``start`` double-forks a monitor (setsid, so it outlives the CLI) connected to
the caller by a socketpair.  The monitor creates the cgroups, spawns the
container (``launch.spawn``) from its record's launch spec (``launchspec``),
records the state, serves its output to the log driver and attach clients on
``attach.sock`` (``streams``), runs its health checks, and when pid 1 exits
records the exit code and OOMKilled, removes the cgroups (and the container
with ``--rm``), then tells its clients EXIT and exits, or starts it again as
its restart policy says.  The container's waiter
and pid 1 die with their parent (PR_SET_PDEATHSIG), so a killed monitor takes
its container with it, and ``ContainerStore`` reports it Dead, never Up.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import time
from pathlib import Path

from imagefmt.errors import DockyardError
from imagefmt.records import TYPE_CHECKING
from runtime import trace
from runtime.container import attach as A
from runtime.container import events
from runtime.container.hostconfig import limits_of
from runtime.container.launchspec import log_driver, needs_wiring, spec_of, write_etc_files
from runtime.container.store import (
    LINKED_BY,
    STOP_MARK,
    Container,
    ContainerStore,
    now_rfc3339,
    process_start_time,
    purge,
)
from runtime.container.streams import Attach, Streams
from runtime.errors import RuntimeFailure, StartFailed
from runtime.fs import read_json
from runtime.logs.drivers import Copier
from runtime.process import launch

if TYPE_CHECKING:
    from typing import Any

Started = tuple[socket.socket, A.FrameReader, int]


def start(store: ContainerStore, c: Container, attach: Attach) -> Started:
    """Fork the monitor and wait until the container runs.

    Returns the socket (attached as ``attach`` asks), the frame reader holding
    any output already received, and the container's host pid.  Raises
    StartFailed (with docker's exit code) when it could not start."""
    if attach.stdin or attach.stdout or attach.stderr:  # docker: attach, then start
        events.container(store.root, c, "attach")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked monitor
        code = 0
        try:
            os.setsid()
            if os.fork():
                os._exit(0)
            ours.close()
            Monitor(store, c, theirs, attach).run()
        except BaseException:
            code = 1
        os._exit(code)
    theirs.close()
    os.waitpid(pid, 0)
    reader = A.FrameReader()
    first = A.read_frame(ours, reader)
    if first is None or first[0] not in (A.STARTED, A.ERROR):
        ours.close()
        raise RuntimeFailure(f"container {c.short_id}: the monitor exited before starting it")
    doc = json.loads(first[1])
    if first[0] == A.ERROR:
        ours.close()
        raise StartFailed(doc["message"], int(doc.get("code", 125)))
    return ours, reader, int(doc["pid"])


class Monitor:
    def __init__(self, store: ContainerStore, c: Container, first: socket.socket, attach: Attach) -> None:
        self.store = store
        self.c = c
        self.first = first
        self.attach = attach
        self.cgroup = c.cgroup()
        self.sel: selectors.BaseSelector
        self.streams: Streams  # this run's, made by _start
        self.wiring: Any = None
        self.backoff = 0.0  # the last restart's delay

    # ------------------------------------------------------------ start ---

    def run(self) -> None:
        """Start the container, watch it, and start it again as its restart policy
        says (docker's back-off: 100 ms doubling to a minute, back to 100 ms after
        10 s of running) until it exits for good or is stopped by hand."""
        self._isolate()
        self.sel = selectors.DefaultSelector()
        first = True
        while True:
            try:
                spawned = self._start(announce=first)
            except BaseException as exc:
                self._failed(exc, announce=first)
                return
            began = time.monotonic()
            try:
                code = self._loop(spawned.waiter, first)
            except BaseException:  # a bug: leave the traceback where `inspect` points, then die
                import traceback

                (self.c.dir / "monitor.log").write_text(traceback.format_exc())
                raise
            delay = self._restart_delay(code, time.monotonic() - began)
            if delay is None or not self._wait_to_restart(code, delay):
                break
            first = False
        self._done(code)

    def _isolate(self) -> None:
        """Detach from the CLI: /dev/null stdio, no inherited fds or locks, no terminal signals."""
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        keep = self.first.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 16)
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGTTOU, signal.SIGTTIN):
            signal.signal(sig, signal.SIG_IGN)
        from runtime.kernel import syscalls

        syscalls.set_process_name("dockyard-mon")

    def _start(self, announce: bool = True) -> launch.Spawned:
        c = self.c
        trace.mark("monitor")
        self.streams = streams = Streams(c, self.sel)
        procs = self.cgroup.create(limits_of(c.host_config))
        trace.mark("cgroup")
        window = self.attach.window or (24, 80)
        streams.log = Copier(log_driver(c))
        linked = []
        if c.host_config.get("Links"):
            from runtime.container import links

            linked = links.resolve(self.store, c)
        if needs_wiring(c):
            from runtime.container.wiring import Wiring

            self.wiring = Wiring(self.store.root, c)
            self.wiring.prepare()
            primary = self.wiring.primary
            on_bridge = [ep.address for ep, _, _ in self.wiring.endpoints if ep.network == "bridge"]
            if on_bridge and (c.dir / LINKED_BY).is_dir():  # a container links to it
                from runtime.container import links

                links.update_parents(self.store, c, on_bridge[0])
            hosts = tuple(lk.hosts for lk in linked)
            write_etc_files(c, primary.address if primary else None, self.wiring.dns, hosts)
        link_env = tuple(e for lk in linked for e in lk.env)
        spec = spec_of(self.store, c, procs, window, self.wiring, link_env)
        streams.listen()
        trace.mark("spec")
        stdio = streams.child_stdio(spec.process.tty)
        try:
            spawned = launch.spawn(spec, stdio, self.wiring.plug if self.wiring else None)
            pid = spawned.pid
            trace.mark("spawned")
        finally:
            streams.close_child_ends()
        streams.take_console()
        if self.wiring:
            self.wiring.started(pid)
        c.state.update(
            Status="running",
            Running=True,
            Paused=False,
            Dead=False,
            OOMKilled=False,
            Pid=pid,
            ExitCode=0,
            Error="",
            StartedAt=now_rfc3339(),
            FinishedAt="0001-01-01T00:00:00Z",
            MonitorPid=os.getpid(),
            MonitorStart=process_start_time(os.getpid()),
            Network=self.wiring.settings() if self.wiring else {},
        )
        if c.config.get("Healthcheck"):  # "(health: starting)" from the first look, as docker's
            from runtime.container import health

            if health.probe_of(c.config) is not None:
                health.reset(c)
        self.store.save_state(c)
        self._volume_events("mount")
        events.container(self.store.root, c, "start")
        if announce:
            self.first.sendall(A.frame_json(A.STARTED, {"pid": pid}))
        return spawned

    def _failed(self, exc: BaseException, announce: bool = True) -> None:
        """Start failed: docker leaves the container Created with the error and exit code."""
        code = exc.exit_code if isinstance(exc, StartFailed) else 125
        if isinstance(exc, DockyardError):
            message = exc.message
        elif isinstance(exc, OSError):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
        try:
            self.cgroup.remove()
        except OSError:
            pass
        if self.wiring:
            self.wiring.teardown()
        self.streams.close_log()
        self.streams.close_listener()
        c = self.c
        c.state.update(Status="created", Running=False, Pid=0, ExitCode=code, Error=message, Network={})
        if c.host_config.get("AutoRemove"):
            purge(remove_files(self.store, c))
            events.container(self.store.root, c, "destroy")
        else:
            self.store.save_state(c)
        if not announce:
            return
        try:
            self.first.sendall(A.frame_json(A.ERROR, {"message": message, "code": code}))
        except OSError:
            pass

    # ------------------------------------------------------------- loop ---

    def _loop(self, waiter: int, first: bool = True) -> int:
        """Serve the container's streams and clients until it exits; its exit code."""
        pidfd = os.pidfd_open(waiter)
        self.sel.register(pidfd, selectors.EVENT_READ, "exit")
        self.streams.serve((self.first, self.attach) if first else None)
        checker = self._health_checker()
        exited = False
        while not exited:
            for key, _ in self.sel.select(checker.due() if checker else None):
                if key.data == "exit":
                    exited = True
                elif key.data == "probe-out" and checker and key.fd == checker.out_r:
                    checker.output()
                elif key.data == "probe-exit" and checker and key.fd == checker.pidfd:
                    checker.exited()
                else:
                    self.streams.handle(key)
            if checker and not exited:
                checker.tick()
        if checker:
            checker.close()
        return self._reap(waiter, pidfd)

    def _health_checker(self) -> Any:
        """The container's health.Checker, or None without a health check."""
        if not self.c.config.get("Healthcheck"):
            return None
        from runtime.container import health

        probe = health.probe_of(self.c.config)
        if probe is None:
            return None
        root, c = self.store.root, self.c
        return health.Checker(
            c,
            probe,
            self.sel,
            lambda: self.store.save_state(c),
            lambda action, **extra: events.container(root, c, action, **extra),
            lambda: _link_env(self.store, c),
        )

    # ----------------------------------------------------------- finish ---

    def _reap(self, waiter: int, pidfd: int) -> int:
        """The container exited: its status, output, log and cgroups settled and the
        state written (exited); returns the exit code."""
        trace.mark("exited")
        self.streams.close_listener()
        _, status = os.waitpid(waiter, 0)
        os.close(pidfd)
        code = launch.exit_status(status)
        self.streams.finish()
        trace.mark("drained")
        oom = self.cgroup.oom_killed()
        events.container(
            self.store.root, self.c, "die", exitCode=str(code)
        )  # before the disconnects, as docker
        if self.wiring:
            self.wiring.teardown()
            self._unplug_connected()
        error = ""
        try:
            self.cgroup.remove()
        except OSError as err:
            error = f"removing cgroup: {err}"
        c = self.c
        c.state.update(
            Status="exited",
            Running=False,
            Paused=False,
            Pid=0,
            ExitCode=code,
            OOMKilled=oom,
            Error=error,
            FinishedAt=now_rfc3339(),
            Network={},
        )
        if not c.host_config.get("AutoRemove"):
            self.store.save_state(c)
        self._volume_events("unmount")
        return code

    def _volume_events(self, action: str) -> None:
        """docker's volume mount (at a start) and unmount (at an exit) events."""
        for m in self.c.record.get("Mounts") or []:
            if m.get("Type") != "volume":
                continue
            extra = {"container": self.c.id}
            if action == "mount":
                extra |= {
                    "destination": m["Destination"],
                    "propagation": m.get("Propagation") or "",
                    "read/write": "true" if m.get("RW", True) else "false",
                }
            events.volume(self.store.root, m["Name"], action, **extra)

    def _done(self, code: int) -> None:
        """The end: --rm removes the container, then the clients hear EXIT."""
        removed = remove_files(self.store, self.c) if self.c.host_config.get("AutoRemove") else None
        if removed is not None:
            events.container(self.store.root, self.c, "destroy")
        trace.mark("cleaned")
        self.streams.tell_exit(code)
        if removed is not None:  # gone from the store already: unlink its files unwatched
            purge(removed)

    # ----------------------------------------------------------- restart ---

    def _restart_delay(self, code: int, ran: float) -> float | None:
        """Seconds to wait before starting again, or None when the restart policy
        (or a stop by hand: STOP_MARK) says the container stays exited."""
        if self.c.host_config.get("AutoRemove"):
            return None  # --rm has no restart policy (create and update refuse one): no reading on its exit
        try:  # `update --restart` may have changed it since the start
            self.c.record["HostConfig"]["RestartPolicy"] = read_json(self.c.dir / "config.v2.json")[
                "HostConfig"
            ]["RestartPolicy"]
        except (OSError, ValueError, KeyError):
            pass
        policy = self.c.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name == "no" or (self.c.dir / STOP_MARK).exists():
            return None
        if name == "on-failure":
            retries = int(policy.get("MaximumRetryCount") or 0)
            if code == 0 or (retries and int(self.c.record.get("RestartCount") or 0) >= retries):
                return None
        self.backoff = 0.1 if ran >= 10 or not self.backoff else min(self.backoff * 2, 60.0)
        return self.backoff

    def _wait_to_restart(self, code: int, delay: float) -> bool:
        """Restarting: the clients of this run hear EXIT; True once ``delay`` has
        passed, False (exited for good) if the container was stopped meanwhile."""
        c = self.c
        # restarting before the count grows: a reader never sees the last run's "exited"
        # beside the next run's count (two files, written one after the other)
        c.state.update(Status="restarting", Restarting=True)
        self.store.save_state(c)
        c.record["RestartCount"] = int(c.record.get("RestartCount") or 0) + 1
        self.store.save_record(c)
        self.streams.tell_exit(code)
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            if (c.dir / STOP_MARK).exists():
                break
            time.sleep(min(left, 0.05))
        c.state.update(Status="exited", Restarting=False)
        if (c.dir / STOP_MARK).exists():
            self.store.save_state(c)
            return False
        self._reset_streams()
        return True

    def _reset_streams(self) -> None:
        """Before a new run (whose streams _start makes): the last run's pipes closed, a fresh selector."""
        self.streams.close_pipes()
        self.sel.close()
        self.sel = selectors.DefaultSelector()

    def _unplug_connected(self) -> None:
        """Veths that ``network connect`` added while the container ran."""
        from runtime.container.wiring import unplug_recorded
        from runtime.fs import read_json

        try:
            unplug_recorded(self.store.root, self.c.id, read_json(self.c.dir / "state.json"))
        except (OSError, ValueError):
            pass


def _link_env(store: ContainerStore, c: Container) -> tuple[str, ...]:
    """A probe's link variables, from the record as it is now (a rename moves links)."""
    if not c.host_config.get("Links"):
        return ()
    from runtime.container import links

    return links.env_of(store, store.load(c.id))


def remove_files(store: ContainerStore, c: Container) -> Path:
    """Delete a stopped container and its anonymous volumes (``--rm``, ``rm -v``);
    an anonymous volume another container still uses stays.  The container's own
    directory is only detached: returns it, for :func:`purge`."""
    if c.host_config.get("Links"):
        from runtime.container import links

        links.forget(store, c)
    removed = store.detach(c)
    names = [m["Name"] for m in c.record.get("Mounts") or [] if m.get("Type") == "volume"]
    if not names:
        return removed
    from runtime.volumes import VolumeStore

    vstore = VolumeStore(store.root)
    for name in names:
        if not vstore.is_anonymous(name):
            continue
        users = [
            o.id for o in store.all() if any(m.get("Name") == name for m in o.record.get("Mounts") or [])
        ]
        try:
            vstore.remove(name, users)
        except DockyardError:
            pass
    return removed
