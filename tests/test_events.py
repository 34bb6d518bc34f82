"""The events journal (imagefmt.journal), docker's events model (engine.events) and
``dockyard events``, compared with what the real docker engine records for the same
commands."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import events
from imagefmt import journal
from imagefmt.errors import Invalid
from tests.conftest import Ctl, docker

# ----------------------------------------------------------------- journal ---


def _writer(root: str, n: int, tag: str) -> None:
    for i in range(n):
        journal.append(
            Path(root), journal.message("container", "start", f"{tag}-{i}", {"pad": "x" * 300}), 8192
        )


def test_journal_concurrent_writers_rotate_and_stay_bounded(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 200, f"w{k}")) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    files = journal.files(tmp_path)
    assert [f.name for f in files] == ["events.log.1", "events.log"]
    for f in files:
        assert f.stat().st_size <= 8192
        lines = f.read_bytes().splitlines()
        # every line whole: no two writers' records interleaved
        assert all(json.loads(line)["Actor"]["Attributes"]["pad"] == "x" * 300 for line in lines)
    kept = [ev.Actor["ID"] for ev in events.Reader(tmp_path).read()]
    assert len(kept) == len(set(kept)) > 0


def test_message_shape_is_dockers() -> None:
    doc = journal.message(
        "container",
        "die",
        "abc",
        {"name": "c", "image": "busybox", "exitCode": "3"},
        1796218632886191693,
        "busybox",
    )
    assert json.dumps(doc, separators=(",", ":")) == (
        '{"status":"die","id":"abc","from":"busybox","Type":"container","Action":"die",'
        '"Actor":{"ID":"abc","Attributes":{"exitCode":"3","image":"busybox","name":"c"}},'
        '"scope":"local","time":1796218632,"timeNano":1796218632886191693}'
    )
    vol = journal.message("volume", "create", "evv", {"driver": "local"}, 1796218637515580659)
    assert list(vol) == ["Type", "Action", "Actor", "scope", "time", "timeNano"]
    line = events.Event(vol).line()
    assert line.startswith("2026-12-02T") and ".515580659" in line
    assert line.endswith(" volume create evv (driver=local)")


# ------------------------------------------------------------ filters, times ---


def _ev(type_: str, action: str, actor: str, **attrs: str) -> events.Event:
    return events.Event(journal.message(type_, action, actor, attrs, 1_000_000_000))


@pytest.mark.parametrize(
    ("filters", "want"),
    [
        (["type=image"], ["tag", "delete"]),
        (["event=die"], ["die"]),
        # the actor's ID (a prefix) or name attribute: a mount's actor is its volume
        (["container=web"], ["start", "die"]),
        (["container=c0ffee"], ["start", "die"]),
        (["image=busybox"], ["start", "die", "tag"]),  # a container's image, an image's name without its tag
        (["label=tier=front"], ["start", "die"]),
        (["label=tier"], ["start", "die"]),
        (["label=tier=back"], []),
        (["volume=data"], ["mount"]),
        (["network=net1"], ["connect"]),
        (["type=container", "event=start", "event=die"], ["start", "die"]),
    ],
)
def test_filters_as_dockerd(filters: list[str], want: list[str]) -> None:
    evs = [
        _ev("container", "start", "c0ffee11", name="web", image="busybox", tier="front"),
        _ev("container", "die", "c0ffee11", name="web", image="busybox", tier="front", exitCode="0"),
        _ev("image", "tag", "sha256:aa", name="busybox:latest"),
        _ev("image", "delete", "sha256:bb", name="sha256:bb"),
        _ev("volume", "mount", "data", container="c0ffee11", driver="local"),
        _ev("network", "connect", "n1id", name="net1", type="bridge", container="c0ffee11"),
    ]
    parsed = events.parse_filters(filters)
    assert [e.Action for e in evs if events.matches(e, parsed)] == want


def test_parse_time_as_docker_cli() -> None:
    now = 1796218640.0
    assert events.parse_time("1796218637", now) == 1796218637_000000000
    assert events.parse_time("1796218637.5", now) == 1796218637_500000000
    assert events.parse_time("10m", now) == int((now - 600) * 1e9)
    assert events.parse_time("1h30m", now) == int((now - 5400) * 1e9)
    assert events.parse_time("2026-12-02T13:37:17Z", now) == 1796218637_000000000
    assert events.parse_time("2026-12-02T14:37:17+01:00", now) == 1796218637_000000000
    with pytest.raises(Invalid, match='failed to parse value as time or duration: "xyz"'):
        events.parse_time("xyz", now)


def test_reader_follow_sees_later_events_across_a_rotation(tmp_path: Path) -> None:
    journal.append(tmp_path, journal.message("image", "tag", "a", {}), 600)
    reader = events.Reader(tmp_path)
    assert [e.ID for e in reader.read()] == ["a"]
    for name in ("b", "c", "d", "e"):  # ~200 bytes each: rotates once
        journal.append(tmp_path, journal.message("image", "tag", name, {}), 600)
    seen: list[str] = []
    for ev in reader.follow(lambda: len(seen) >= 4, interval=0.01):
        seen.append(ev.ID)
    assert seen == ["b", "c", "d", "e"]


# -------------------------------------------------------------------- CLI ---


def _scenario(r: Callable[..., None], tag: str) -> None:
    """The same commands for docker and for dockyard (``run(*args)``)."""
    r("run", "--name", f"{tag}c1", "--network", "none", "--label", "a=b", "busybox", "sh", "-c", "exit 3")
    r("rename", f"{tag}c1", f"{tag}c2")
    r("rm", f"{tag}c2")
    r("run", "-d", "--name", f"{tag}c3", "--network", "none", "busybox", "sleep", "100")
    r("pause", f"{tag}c3")
    r("unpause", f"{tag}c3")
    r("kill", f"{tag}c3")
    r("wait", f"{tag}c3")
    r("rm", f"{tag}c3")
    r("run", "-d", "--name", f"{tag}c4", "--network", "none", "busybox", "sleep", "100")
    r("stop", "-t", "1", f"{tag}c4")
    r("rm", f"{tag}c4")
    r("volume", "create", f"{tag}v")
    r("run", "--rm", "--network", "none", "-v", f"{tag}v:/x", "busybox", "true")
    r("volume", "rm", f"{tag}v")
    r("network", "create", f"{tag}n")
    r("run", "-d", "--name", f"{tag}c5", "--network", f"{tag}n", "busybox", "sleep", "100")
    r("network", "disconnect", f"{tag}n", f"{tag}c5")
    r("rm", "-f", f"{tag}c5")
    r("network", "rm", f"{tag}n")
    r("tag", "busybox", f"{tag}img:two")
    r("rmi", f"{tag}img:two")
    r("run", "-d", "--name", f"{tag}c6", "--network", "none", "busybox", "sleep", "100")
    r("exec", f"{tag}c6", "sh", "-c", "exit 5")
    r("kill", f"{tag}c6")
    r("wait", f"{tag}c6")
    r("commit", "-m", "msg", f"{tag}c6", f"{tag}img:c")
    r("rm", f"{tag}c6")
    r("rmi", f"{tag}img:c")


def _ours(docs: list[dict[str, Any]], tag: str, image_id: str) -> list[tuple[object, ...]]:
    """The scenario's events (the docker engine is shared with other tests): those
    naming ``tag`` or the busybox image, shaped for comparing."""
    return [_shape(d, tag) for d in docs if tag in json.dumps(d) or d["Actor"]["ID"] == image_id]


def _shape(doc: dict[str, Any], tag: str) -> tuple[object, ...]:
    """What must agree: type, action, the attribute keys and the values that do not
    depend on IDs (exit codes, signals, names)."""
    attrs = dict(doc["Actor"]["Attributes"])
    keys = tuple(sorted(attrs))
    values = tuple(
        (k, str(attrs[k]).replace(tag, "T"))
        for k in (
            "exitCode",
            "signal",
            "name",
            "oldName",
            "a",
            "destination",
            "read/write",
            "driver",
            "type",
            "comment",
            "imageRef",
        )
        if k in attrs and not str(attrs[k]).startswith("sha256:") and len(str(attrs[k])) < 40
    )
    legacy = tuple(k for k in ("status", "id", "from") if k in doc)
    return (doc["Type"], doc["Action"], keys, values, legacy)


def test_events_match_dockers_for_the_same_commands(ctl: Ctl, docker_host: str, busybox_tar: Path) -> None:
    tag = f"ev{os.getpid()}"
    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    since = f"{time.time():.9f}"

    def on_docker(*args: str) -> None:
        r = docker(docker_host, *args, check=False)
        assert r.returncode in (0, 3, 5, 137), (
            r.stderr
        )  # the first run exits 3, the exec 5, wait after kill 137

    _scenario(on_docker, tag)
    until = f"{time.time():.9f}"
    got = docker(docker_host, "events", "--since", since, "--until", until, "--format", "{{json .}}").stdout
    image_id = docker(docker_host, "image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    theirs = _ours([json.loads(line) for line in got.splitlines()], tag, image_id)

    since = f"{time.time():.9f}"

    def on_ours(*args: str) -> None:
        r = ctl(*args)
        assert r.code in (0, 3, 5, 137), r.err

    _scenario(on_ours, tag)
    until = f"{time.time():.9f}"
    out = ctl.ok("events", "--since", since, "--until", until, "--format", "{{json .}}")
    image_id = ctl.ok("image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    ours = _ours([json.loads(line) for line in out.splitlines()], tag, image_id)
    assert len(ours) > 30
    assert [str(x) for x in ours] == [str(x) for x in theirs]


def test_events_cli_filters_format_and_follow(ctl: Ctl) -> None:
    since = f"{time.time():.9f}"
    assert (
        ctl(
            "run", "--name", "evf", "--network", "none", "--label", "x=y", "busybox", "sh", "-c", "exit 7"
        ).code
        == 7
    )
    ctl.ok("rm", "evf")
    until = f"{time.time():.9f}"
    out = ctl.ok(
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        "event=die",
        "--format",
        "{{.Status}} {{.Actor.Attributes.exitCode}} {{.From}}",
    )
    assert out == "die 7 busybox\n"
    missing = "{{.Actor.Attributes.exitCode}}|{{json .Actor.Attributes.exitCode}}"
    out = ctl.ok(
        "events", "--since", since, "--until", until, "--filter", "event=destroy", "--format", missing
    )
    assert out == "<no value>|null\n"  # as docker's: a key the map lacks
    out = ctl.ok(
        "system", "events", "--since", since, "--until", until, "-f", "container=evf", "-f", "label=x=y"
    )
    actions = [line.split()[2] for line in out.splitlines()]
    assert actions == ["create", "attach", "start", "die", "destroy"]
    assert out.splitlines()[0].endswith("(image=busybox, name=evf, x=y)")
    r = ctl("events", "--since", "nonsense", "--until", until)
    assert (r.code, r.err.strip()) == (1, 'failed to parse value as time or duration: "nonsense"')
    # following: a second process sees the events recorded after it began
    follower = subprocess.Popen(
        [*ctl.argv("events", "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)  # let it reach the journal's end (it shows only what comes after)
        ctl.ok("volume", "create", "followed")
        ctl.ok("volume", "rm", "followed")
        assert follower.stdout is not None
        assert follower.stdout.readline() == "create followed\n"
        assert follower.stdout.readline() == "destroy followed\n"
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


# ---------------------------------------------------------- health checks ---


def _health_scenario(r: Callable[..., str], tag: str, probe_dir: Path) -> None:
    """Two containers with health checks, for docker and dockyard (``r(*args)`` returns
    stdout): one whose probe tests a file of a bind-mounted host directory (made
    and removed here, so each change of state is ours), one whose probe runs past its
    timeout."""

    def reach(name: str, status: str) -> None:
        deadline = time.monotonic() + 60  # a guard against a hang, not a measure
        while r("inspect", "-f", "{{.State.Health.Status}}", name).strip() != status:
            assert time.monotonic() < deadline, f"{name} never became {status}"
            time.sleep(0.2)

    probe_dir.mkdir()
    often = ["--health-interval", "1s", "--network", "none", "--label", "a=b"]
    r("run", "-d", "--name", f"{tag}h", *often, "-v", f"{probe_dir}:/h", "--health-retries", "2",
      "--health-cmd", "test -e /h/ok", "busybox", "sleep", "100")  # fmt: skip
    reach(f"{tag}h", "unhealthy")
    (probe_dir / "ok").touch()
    reach(f"{tag}h", "healthy")
    (probe_dir / "ok").unlink()
    reach(f"{tag}h", "unhealthy")
    r("run", "-d", "--name", f"{tag}t", *often, "--health-timeout", "1s", "--health-retries", "1",
      "--health-cmd", "sleep 5", "busybox", "sleep", "100")  # fmt: skip
    reach(f"{tag}t", "unhealthy")
    r("rm", "-f", f"{tag}h", f"{tag}t")


Probe = tuple[tuple[str, tuple[str, ...], str | None], ...]  # (action, attribute keys, exitCode)s
Shape = tuple[list[tuple[str, tuple[str, ...]]], list[tuple[str, str | None]], list[Probe]]


def _health_shape(docs: list[dict[str, Any]], name: str, timed_out: bool = False) -> Shape:
    """What must agree for one container, however many probes ran: its events other
    than the probes' (with their attribute keys), the event before each
    ``health_status`` (a probe's exec_die and its code, or for a timed-out probe its
    exec_start), and the kinds of probe (each probe's actions, attribute keys and exit
    code; the last one, which ``rm -f`` may cut short, left out; without codes, those
    that did not end).  A timed-out probe's
    probe (``timed_out``) is compared without its code and the event before its
    health_status: docker's depend on how, and how fast, the runtime ends it."""
    mine = [d for d in docs if d["Type"] == "container" and d["Actor"]["Attributes"].get("name") == name]

    def code(d: dict[str, Any]) -> str | None:
        return None if timed_out else d["Actor"]["Attributes"].get("exitCode")

    def keys(d: dict[str, Any]) -> tuple[str, ...]:
        return tuple(sorted(d["Actor"]["Attributes"]))

    main = [(d["Action"], keys(d)) for d in mine if not d["Action"].startswith("exec_")]
    before = [
        (prev["Action"], code(prev))
        for prev, d in zip(mine, mine[1:], strict=False)
        if d["Action"].startswith("health_status") and not timed_out
    ]
    probes: dict[str, list[tuple[str, tuple[str, ...], str | None]]] = {}
    for d in mine:
        if d["Action"].startswith("exec_"):
            probes.setdefault(d["Actor"]["Attributes"]["execID"], []).append((d["Action"], keys(d), code(d)))
    groups = list(probes.values())
    kept = [p for p in groups if p[-1][0] == "exec_die"] if timed_out else groups[:-1]
    kinds = {tuple(p) for p in kept}
    return (main, before, sorted(kinds, key=str))


def test_health_check_events_match_dockers(
    ctl: Ctl, docker_host: str, busybox_tar: Path, tmp_path: Path
) -> None:
    tag = f"hc{os.getpid()}"
    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")

    def on_docker(*args: str) -> str:
        return docker(docker_host, *args).stdout

    since = f"{time.time():.9f}"
    _health_scenario(on_docker, tag, tmp_path / "docker")
    until = f"{time.time():.9f}"
    got = docker(docker_host, "events", "--since", since, "--until", until, "--format", "{{json .}}").stdout
    theirs = [json.loads(line) for line in got.splitlines()]

    since = f"{time.time():.9f}"
    _health_scenario(ctl.ok, tag, tmp_path / "ours")
    until = f"{time.time():.9f}"
    out = ctl.ok("events", "--since", since, "--until", until, "--format", "{{json .}}")
    ours = [json.loads(line) for line in out.splitlines()]

    assert _health_shape(ours, f"{tag}h") == _health_shape(theirs, f"{tag}h")
    assert _health_shape(ours, f"{tag}t", True) == _health_shape(theirs, f"{tag}t", True)
    main, before, kinds = _health_shape(ours, f"{tag}h")
    assert [a for a, _ in main if a.startswith("health")] == [
        "health_status: unhealthy",
        "health_status: healthy",
        "health_status: unhealthy",
    ]
    assert before == [("exec_die", "1"), ("exec_die", "0"), ("exec_die", "1")]
    assert [k[0][0] for k in kinds] == ["exec_create: /bin/sh -c test -e /h/ok"] * 2
    # filters: docker's prefix match for health_status
    out = ctl.ok("events", "--since", since, "--until", until, "--filter", "event=health_status",
                 "--format", "{{.Action}}")  # fmt: skip
    assert out.splitlines() == [
        "health_status: unhealthy",
        "health_status: healthy",
        "health_status: unhealthy",
        "health_status: unhealthy",
    ]


# ------------------------------------------------------------ detached exec ---


def _detached_execs(r: Callable[..., tuple[int, str]], tag: str) -> list[tuple[int, str]]:
    """Detached execs, for docker and dockyard (``r(*args)`` returns (exit code, stderr)):
    one that exits 4, one on a terminal that runs a second and exits 5, one that cannot
    start; waits for the first two to end (their exec_die) before removing the container."""
    out = [r("run", "-d", "--name", f"{tag}x", "--network", "none", "busybox", "sleep", "100")]
    out.append(r("exec", "-d", f"{tag}x", "sh", "-c", "exit 4"))
    out.append(r("exec", "-d", "-t", f"{tag}x", "sh", "-c", "sleep 1; exit 5"))
    out.append(r("exec", "-d", f"{tag}x", "nonexist"))
    deadline = time.monotonic() + 30  # a guard against a hang, not a measure
    while r("events", "--since", "1h", "--until", f"{time.time():.9f}", "--filter", f"container={tag}x",
            "--filter", "event=exec_die", "--format", "{{.ID}}")[1].count("\n") < 2:  # fmt: skip
        assert time.monotonic() < deadline, "the detached execs never ended"
        time.sleep(0.2)
    r("rm", "-f", f"{tag}x")
    return out


def _execs(docs: list[dict[str, Any]], name: str) -> list[tuple[str, ...]]:
    """Each exec's events (its actions, and the exit code of its exec_die), in the
    order the execs were created."""
    execs: dict[str, list[str]] = {}
    for d in docs:
        attrs = d["Actor"]["Attributes"]
        if attrs.get("name") == name and "execID" in attrs:
            code = f" {attrs['exitCode']}" if "exitCode" in attrs else ""
            execs.setdefault(attrs["execID"], []).append(d["Action"] + code)
    return [tuple(v) for v in execs.values()]


def test_detached_exec_events_match_dockers(ctl: Ctl, docker_host: str, busybox_tar: Path) -> None:
    """``exec -d``: the exec runs to its end (a terminal's too) and its exec_die comes
    then; one that cannot start is the daemon's error (exit 1)."""
    tag = f"dx{os.getpid()}"
    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")

    def on_docker(*args: str) -> tuple[int, str]:
        r = docker(docker_host, *args, check=False)
        return r.returncode, r.stdout if args[0] == "events" else r.stderr

    def on_ours(*args: str) -> tuple[int, str]:
        r = ctl(*args)
        return r.code, r.out if args[0] == "events" else r.err

    since = f"{time.time():.9f}"
    theirs_codes = _detached_execs(on_docker, tag)
    until = f"{time.time():.9f}"
    got = docker(docker_host, "events", "--since", since, "--until", until, "--format", "{{json .}}").stdout
    theirs = _execs([json.loads(line) for line in got.splitlines()], f"{tag}x")

    since = f"{time.time():.9f}"
    ours_codes = _detached_execs(on_ours, tag)
    until = f"{time.time():.9f}"
    out = ctl.ok("events", "--since", since, "--until", until, "--format", "{{json .}}")
    ours = _execs([json.loads(line) for line in out.splitlines()], f"{tag}x")

    assert ours == theirs
    assert ours == [
        ("exec_create: sh -c exit 4", "exec_start: sh -c exit 4", "exec_die 4"),
        ("exec_create: sh -c sleep 1; exit 5", "exec_start: sh -c sleep 1; exit 5", "exec_die 5"),
        ("exec_create: nonexist ", "exec_start: nonexist "),
    ]
    assert [code for code, _ in ours_codes] == [code for code, _ in theirs_codes] == [0, 0, 0, 1]
    assert "executable file not found in $PATH" in ours_codes[3][1]


def _health_across_a_restart(r: Callable[..., str], name: str) -> list[tuple[str, int, bool]]:
    """A container's State.Health when healthy, after a stop, and after a start again:
    (status, failing streak, whether the log holds the first probe)."""
    r("run", "-d", "--name", name, "--network", "none", "--health-cmd", "true", "--health-interval", "1s",
      "busybox", "sleep", "100")  # fmt: skip

    def health() -> dict[str, Any]:
        return dict(json.loads(r("inspect", "-f", "{{json .State.Health}}", name)))

    deadline = time.monotonic() + 60  # a guard against a hang, not a measure
    while health()["Status"] != "healthy":
        assert time.monotonic() < deadline, "never healthy"
        time.sleep(0.2)
    first = health()["Log"][0]
    out = []
    for step in ((), ("stop", "-t", "0", name), ("start", name)):
        if step:
            r(*step)
        h = health()
        out.append((h["Status"], h["FailingStreak"], h["Log"][0] == first))
    r("rm", "-f", name)
    return out


def test_health_state_across_a_restart_as_docker(ctl: Ctl, docker_host: str, busybox_tar: Path) -> None:
    """A stopped container's health is "unhealthy" (docker's CloseMonitorChannel); a start
    makes it "starting" again with a zero streak, the log of the earlier run kept."""
    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    theirs = _health_across_a_restart(lambda *a: docker(docker_host, *a).stdout, f"hr{os.getpid()}")
    ours = _health_across_a_restart(ctl.ok, f"hr{os.getpid()}")
    assert ours == theirs == [("healthy", 0, True), ("unhealthy", 0, True), ("starting", 0, True)]
