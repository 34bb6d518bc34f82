"""Health checks (HEALTHCHECK, ``--health-*``), run by the container's monitor.

Docker's rules (moby daemon/health.go): the first probe runs one interval after
the container starts; a probe is the Test exec'd in the container (``CMD``: an
argv, ``CMD-SHELL``: ``/bin/sh -c``); exit 0 is healthy, anything else (or
running past the timeout: exit -1) a failure; ``Retries`` failures in a row make
the container unhealthy, except failures in the start period before any success,
which do not count.  State.Health keeps the last five probes, each output cut to
4096 bytes.  Each probe is an exec, with its ``exec_create``/``exec_start``/``exec_die``
events, and a change of state is a ``health_status: <state>`` event (after the probe's
exec_die; a timed-out probe's state comes first, its exec_die when it is gone).
"""

from __future__ import annotations

import os
import selectors
import signal
import time

from imagefmt.errors import DockyardError
from imagefmt.records import TYPE_CHECKING, NamedTuple
from runtime.container import events
from runtime.container.store import Container, now_rfc3339
from runtime.errors import BadSpec

if TYPE_CHECKING:
    from typing import Any

SECOND = 10**9
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_RETRIES = 3
MAX_LOG = 5
MAX_OUTPUT = 4096


class Probe(NamedTuple):
    """A container's health check: the argv to exec and its timing (seconds)."""

    argv: tuple[str, ...]
    interval: float
    timeout: float
    start_period: float
    retries: int


def reset(c: Any) -> None:
    """docker's initHealthMonitor: starting again, the log of the runs before kept."""
    c.state["Health"] = {
        "Status": "starting",
        "FailingStreak": 0,
        "Log": (c.state.get("Health") or {}).get("Log") or [],
    }


def probe_of(config: dict[str, Any]) -> Probe | None:
    """The check a container's Config.Healthcheck asks for; None for none (or NONE)."""
    hc = config.get("Healthcheck") or {}
    test = hc.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":  # the container's SHELL, as docker's getShell
        argv: tuple[str, ...] = (*(config.get("Shell") or ("/bin/sh", "-c")), *test[1:])
    elif test[0] == "CMD":
        argv = tuple(test[1:])
    else:
        return None
    if not argv:
        return None
    return Probe(
        argv=argv,
        interval=(hc.get("Interval") or DEFAULT_INTERVAL) / SECOND,
        timeout=(hc.get("Timeout") or DEFAULT_TIMEOUT) / SECOND,
        start_period=(hc.get("StartPeriod") or 0) / SECOND,
        retries=int(hc.get("Retries") or DEFAULT_RETRIES),
    )


def merged(image: dict[str, Any] | None, flags: dict[str, Any]) -> dict[str, Any] | None:
    """The container's Healthcheck: the image's, each field that ``--health-*`` set
    replacing its own (docker's merge); ``--no-healthcheck`` is Test ["NONE"]."""
    if not flags:
        return image or None
    out = dict(image or {})
    out.update({k: v for k, v in flags.items() if v})
    return out


def from_flags(
    image: dict[str, Any] | None, cmd: str, durations: dict[str, str], retries: int, disabled: bool
) -> dict[str, Any] | None:
    """Config.Healthcheck from ``--health-cmd``, the ``--health-interval``/``-timeout``/
    ``-start-period`` ``durations`` (by field), ``--health-retries`` and
    ``--no-healthcheck`` (``disabled``): the image's merged with them, or Test ["NONE"].
    Raises BadSpec with docker's words."""
    from imagefmt.changes import parse_duration

    given = cmd or any(durations.values())
    if disabled:
        if given or retries:
            raise BadSpec("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    parsed = {}
    for field, text in durations.items():
        try:
            parsed[field] = parse_duration(text) if text else 0
        except DockyardError:
            raise BadSpec(f'invalid argument "{text}" for "--health-{field.lower()}" flag') from None
        if 0 < parsed[field] < 10**6 or parsed[field] < 0:
            raise BadSpec(f"{field} in Healthcheck cannot be less than 1ms")
    if retries < 0:
        raise BadSpec("--health-retries cannot be negative")
    flags: dict[str, Any] = {"Test": ["CMD-SHELL", cmd] if cmd else None, **parsed}
    flags["Retries"] = retries
    return merged(image, flags)


def go_duration(seconds: float) -> str:
    """Go's Duration.String for the timeout message: ``30s``, ``1m0s``, ``500ms``."""
    ns = round(seconds * SECOND)
    if ns < SECOND:
        return f"{ns // 10**6}ms" if ns % 10**6 == 0 else f"{ns / 10**6:g}ms"
    minutes, rest = divmod(ns, 60 * SECOND)
    hours, minutes = divmod(minutes, 60)
    secs = f"{rest / SECOND:g}s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def _kill(helper: int) -> None:
    """Kill a probe: the process in the container, which its exec helper reaps (a
    killed helper would leave it a zombie of the host's init, inside the container's
    pid namespace, and pid 1's end would wait for it); the helper itself when it has
    no child to kill."""
    try:
        with open(f"/proc/{helper}/task/{helper}/children") as f:
            children = [int(pid) for pid in f.read().split()]
    except OSError:
        children = []
    for pid in children or [helper]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Checker:
    """One container's probes, driven by the monitor's loop: ``due`` says how long
    its selector may sleep, ``tick`` starts a probe when one is due (registering
    its output as "probe-out" and its end as "probe-exit") and stops one that ran
    past its timeout; ``output``/``exited`` take what the probe wrote.  ``save``
    writes c.state; ``event(action, **attributes)`` records a container event;
    ``link_env()`` gives the variables of the container's links, as each exec gets
    them (raising NotRunning while a linked container is stopped: the probe fails
    with that, before any exec event, as docker's)."""

    def __init__(
        self, c: Container, probe: Probe, sel: selectors.BaseSelector, save: Any, event: Any, link_env: Any
    ) -> None:
        self.c = c
        self.probe = probe
        self.sel = sel
        self.save = save
        self.event = event
        self.link_env = link_env
        self.exec_id = ""
        self.started = time.monotonic()
        self.next_at = self.started + probe.interval
        self.pid = 0
        self.out_r = -1
        self.pidfd = -1
        self.deadline = 0.0
        self.began = ""
        self.buf = bytearray()
        reset(c)
        save()

    def due(self) -> float:
        """Seconds until the next thing to do (a probe to start or to time out)."""
        return max(0.0, (self.deadline if self.pid else self.next_at) - time.monotonic())

    def tick(self) -> None:
        """Start a probe if one is due; kill one past its timeout and record the failure."""
        now = time.monotonic()
        if self.pid and now >= self.deadline:
            pid = self.pid
            _kill(pid)
            self._record(-1, f"Health check exceeded timeout ({go_duration(self.probe.timeout)})")
            self._died(pid)  # docker: the state first, the exec_die once the probe is gone
            return
        if self.pid or now < self.next_at:
            return
        from runtime.container import execute
        from runtime.container.launchspec import process_of
        from runtime.process import launch

        self.began = now_rfc3339()
        try:
            link_env = self.link_env()
        except DockyardError as exc:
            self._record(-1, exc.message)
            return
        r, w = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        argv = list(self.probe.argv)
        proc = process_of(self.c, argv, tty=False, window=(24, 80), link_env=link_env)
        self.exec_id = os.urandom(32).hex()
        what = events.exec_action(argv)
        self.event(f"exec_create: {what}", execID=self.exec_id)
        self.event(f"exec_start: {what}", execID=self.exec_id)
        try:
            self.pid = execute.spawn(self.c, proc, launch.Stdio(null, w, w))
        except Exception as exc:  # the container is going away, or cannot run it: no exec_die
            os.close(r)
            self.pid = 0
            self._record(-1, str(exc))
            return
        finally:
            os.close(w)
            os.close(null)
        os.set_blocking(r, False)
        self.out_r, self.pidfd = r, os.pidfd_open(self.pid)
        self.sel.register(self.out_r, selectors.EVENT_READ, "probe-out")
        self.sel.register(self.pidfd, selectors.EVENT_READ, "probe-exit")
        self.deadline = now + self.probe.timeout
        self.buf.clear()

    def output(self) -> None:
        try:
            data = os.read(self.out_r, 65536)
        except BlockingIOError:
            return
        self.buf += data[: max(0, MAX_OUTPUT - len(self.buf))]

    def exited(self) -> None:
        pid = self.pid
        code = self._died(pid)
        self.output()
        self._record(code, self.buf.decode(errors="replace"))

    def close(self) -> None:
        """The container exited: stop a probe that still runs (its exec_die, as docker's);
        the state is "unhealthy" then, as docker's CloseMonitorChannel leaves it (no event)."""
        if self.pid:
            _kill(self.pid)
            self._died(self.pid)
            self.pid = 0
        self._close_fds()
        self.c.state["Health"]["Status"] = "unhealthy"

    def _died(self, pid: int) -> int:
        """Reap the probe's helper, record its exec_die; its exit code."""
        from runtime.process import launch

        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return -1
        code = launch.exit_status(status)
        self.event("exec_die", execID=self.exec_id, exitCode=str(code))
        return code

    def _close_fds(self) -> None:
        for fd in (self.out_r, self.pidfd):
            if fd >= 0:
                try:
                    self.sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
                os.close(fd)
        self.out_r = self.pidfd = -1

    def _record(self, code: int, output: str) -> None:
        """docker's handleProbeResult."""
        health = self.c.state["Health"]
        before = health["Status"]
        health["Log"] = [
            *health["Log"],
            {"Start": self.began, "End": now_rfc3339(), "ExitCode": code, "Output": output},
        ][-MAX_LOG:]
        if code == 0:
            health.update(Status="healthy", FailingStreak=0)
        elif not (
            health["Status"] == "starting" and time.monotonic() - self.started < self.probe.start_period
        ):
            health["FailingStreak"] += 1
            if health["FailingStreak"] >= self.probe.retries:
                health["Status"] = "unhealthy"
        self.pid = 0
        self._close_fds()
        self.next_at = time.monotonic() + self.probe.interval
        self.save()
        if health["Status"] != before:
            self.event(f"health_status: {health['Status']}")
