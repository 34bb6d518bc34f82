"""The CLI's failures as docker's CLI has them: the same exit codes for the same
commands, run side by side with the real docker CLI on a private dockerd."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.buildhelp import make_context
from tests.conftest import Ctl, docker

MISSING = "/nonexistent-dir-h12"  # a directory that exists on neither side

# Commands whose status must be docker's, as they are typed (busybox:latest exists).
EXIT_CASES: list[tuple[str, ...]] = [
    # a reported error, whatever its kind: 1
    ("rmi", "nosuch"),
    ("logs", "nosuch"),
    ("history", "nosuch"),
    ("inspect", "nosuch"),
    ("image", "inspect", "nosuch"),
    ("rm", "nosuch"),
    ("stop", "nosuch"),
    ("start", "nosuch"),
    ("tag", "nosuch", "x"),
    ("commit", "nosuch"),
    ("exec", "nosuch", "true"),
    ("volume", "rm", "nosuch"),
    ("volume", "create", "bad name"),
    ("ps", "--filter", "color=red"),
    ("pull", "-a", "busybox:1"),
    ("load", "-i", f"{MISSING}/x.tar"),
    ("save", "-o", f"{MISSING}/x.tar", "busybox"),
    # a wrong number of arguments or an unknown command: 1
    ("rmi",),
    ("tag", "a"),
    ("exec", "nosuch"),
    ("frobnicate",),
    ("pul",),
    ("image", "frob"),
    # a group verb alone: its help, 0
    ("image",),
    ("container",),
    # a flag that cannot be parsed: 125
    ("ps", "--nosuch"),
    ("--nosuchglobal", "ps"),
    ("images", "--filter", "foo"),
    ("ps", "--filter", "foo"),
    ("run", "--cpu-shares", "abc", "busybox"),
    ("create", "--cpus", "abc", "busybox"),
    ("logs", "--tail"),
    # run's own failures: 125; the command cannot be executed: 126; is not found: 127
    ("run", "-p", "abc:def:ghi:jk", "busybox"),
    ("create", "-p", "abc:def:ghi:jk", "busybox"),
    ("run", "--rm", "--pull", "never", "nosuch-image"),
    ("run", "--rm", "--env-file", f"{MISSING}/env", "busybox", "true"),
    ("run", "--rm", "--cidfile", f"{MISSING}/cid", "busybox", "true"),  # docker reads "no such file": 127
    ("run", "--rm", "busybox", "nosuchcmd"),
    ("run", "--rm", "busybox", "/etc"),
    ("run", "--rm", "busybox", "sh", "-c", "exit 3"),
    ("run", "--rm", "--cpuset-cpus", "99999", "busybox", "true"),
    # create's: 125 for a malformed option, else 1 (what the daemon refuses)
    ("create", "--pull", "never", "nosuch-image"),
    ("create", "--cpuset-cpus", "99999", "busybox"),
    ("create", "--cpuset-cpus", "8000", "busybox"),
    ("create", "--cpuset-cpus", "3-1", "busybox"),
    ("create", "--name", "c", "busybox"),
    ("create", "--cap-add", "FOO", "busybox"),
    ("create", "--memory", "1k", "busybox"),
    ("create", "--mount", f"type=bind,src={MISSING},dst=/x", "busybox"),
    ("create", "--sysctl", "foo.bar=1", "busybox"),
    ("create", "--env-file", f"{MISSING}/env", "busybox"),
    ("create", "--cidfile", f"{MISSING}/cid", "busybox"),
]


def _docker_busybox(host: str, busybox_tar: Path) -> None:
    if docker(host, "image", "inspect", "busybox:latest", check=False).returncode != 0:
        docker(host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")


def test_exit_codes_are_dockers(ctl: Ctl, docker_host: str, busybox_tar: Path) -> None:
    _docker_busybox(docker_host, busybox_tar)
    differ = []
    for args in EXIT_CASES:
        theirs = docker(docker_host, *args, check=False, stdin=-3, timeout=60)  # -3: DEVNULL
        ours = ctl(*args)
        if ours.code != theirs.returncode:
            differ.append(
                f"{' '.join(args)}: ours {ours.code} ({ours.err.strip()!r}), docker {theirs.returncode}"
            )
    assert not differ, "\n".join(differ)
    assert ctl.ok("ps", "-aq") == ""  # no failure left a container behind


def test_build_exit_codes_are_dockers(ctl: Ctl, docker_host: str, busybox_tar: Path, tmp_path: Path) -> None:
    """A failed RUN's status (docker's classic builder), 1 for any other failure."""
    _docker_busybox(docker_host, busybox_tar)
    contexts = {
        "run-fails": "FROM busybox\nRUN exit 3\n",
        "copy-missing": "FROM busybox\nCOPY nosuch /\n",
        "bad-instruction": "FROM busybox\nFROB x\n",
        "no-base": "FROM nosuch-base-h12:1\n",
    }
    differ = []
    for name, dockerfile in contexts.items():
        ctx = make_context(tmp_path / name, dockerfile)
        tag = f"h12cli-{uuid.uuid4().hex[:8]}"
        theirs = docker(docker_host, "build", "--force-rm", "-q", "-t", tag, str(ctx), check=False)
        ours = ctl("build", "-q", "--pull=false", "-t", tag, str(ctx))
        if ours.code != theirs.returncode:
            differ.append(f"{name}: ours {ours.code} ({ours.err.strip()!r}), docker {theirs.returncode}")
    assert not differ, "\n".join(differ)


def test_path_flags_are_one_line_and_make_nothing(ctl: Ctl, tmp_path: Path) -> None:
    """Every flag naming a file, given one in a directory that does not exist: docker's
    one line (Go's ``open PATH: no such file or directory``), no traceback, and
    nothing made: no container, no image, no file, no directory."""
    missing = tmp_path / "nodir"
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN true\n")
    box = ctl.ok("create", "--name", "box", "busybox").strip()
    images = ctl.ok("images", "-aq", "--no-trunc")
    m = str(missing)
    cases: list[tuple[tuple[str, ...], int, str]] = [
        (
            ("save", "-o", f"{m}/x.tar", "busybox"),
            1,
            f"failed to save image: invalid output path: stat {m}: ",
        ),
        (
            ("export", "-o", f"{m}/x.tar", "box"),
            1,
            f"failed to export container: invalid output path: stat {m}: ",
        ),
        (("load", "-i", f"{m}/x.tar"), 1, f"open {m}/x.tar: no such file or directory"),
        (("import", f"{m}/x.tar", "imported:1"), 1, f"open {m}/x.tar: no such file or directory"),
        (
            ("run", "--rm", "--cidfile", f"{m}/cid", "busybox", "true"),
            127,
            f"failed to create the container ID file: open {m}/cid: no such file or directory",
        ),
        (("create", "--cidfile", f"{m}/cid", "busybox"), 1, f"open {m}/cid: no such file or directory"),
        (("run", "--rm", "--env-file", f"{m}/env", "busybox", "true"), 125, f"open {m}/env: no such file"),
        (("create", "--label-file", f"{m}/l", "busybox"), 125, f"open {m}/l: no such file or directory"),
        (("exec", "--env-file", f"{m}/env", "box", "true"), 1, f"open {m}/env: no such file or directory"),
        (("build", "-q", "--iidfile", f"{m}/iid", str(ctx)), 1, f"open {m}/iid: no such file or directory"),
        (("build", "-q", "-f", f"{m}/Dockerfile", str(ctx)), 1, f"{m}/Dockerfile: no such file or directory"),
        (
            ("build", "-q", "--secret", f"id=s,src={m}/s", str(ctx)),
            1,
            f"open {m}/s: no such file or directory",
        ),
        (("build", "-q", m), 1, f'unable to prepare context: path "{m}" not found'),
        (("cp", f"{m}/x", "box:/"), 1, f"lstat {m}/x: no such file or directory"),
        (("cp", "box:/etc/passwd", f"{m}/x"), 1, f"destination directory {m} does not exist"),
        (
            ("registry", "serve", "--addr", "127.0.0.1:0", "--config", f"{m}/c.toml"),
            1,
            f"open {m}/c.toml: no such",
        ),
        (
            ("registry", "serve", "--addr", "127.0.0.1:0", "--acl", f"{m}/acl.json"),
            1,
            f"open {m}/acl.json: no such",
        ),
        (("registry", "serve", "--addr", "127.0.0.1:0", "--htpasswd", f"{m}/h"), 1, f"open {m}/h: no such"),
        (
            ("registry", "serve", "--addr", "127.0.0.1:0", "--tls-cert", f"{m}/c", "--tls-key", f"{m}/k"),
            1,
            f"open {m}/c: no such file or directory",
        ),
        (
            ("registry", "serve", "--addr", "127.0.0.1:0", "--access-log", f"{m}/log"),
            1,
            f"open {m}/log: no such",
        ),
        (
            ("registry", "garbage-collect", "--root", f"{m}/reg"),
            1,
            f"registry root {m}/reg: no such directory",
        ),
        (("registry", "gen-certs", f"{m}/certs"), 1, f"mkdir {m}/certs: no such file or directory"),
    ]
    for args, code, words in cases:
        r = ctl(*args)
        lines = r.err.strip().splitlines()
        assert (r.code, len(lines)) == (code, 1) and words in lines[0], (args, r)
        assert "Traceback" not in r.err and not missing.exists(), args
    assert ctl.ok("ps", "-aq", "--no-trunc").split() == [box]
    assert ctl.ok("images", "-aq", "--no-trunc") == images


def test_cpuset_out_of_range_is_refused_at_create(ctl: Ctl) -> None:
    """docker's words for a cpuset the host cannot give, at create: no raw ERANGE
    from the cgroup at start, and no container left behind."""
    for cpus, words in (
        ("99999", "Invalid value 99999 for cpuset cpus: value of out range, maximum is 8192"),
        ("3-1", "Invalid value 3-1 for cpuset cpus: invalid format: 3-1"),
        ("8000", "Requested CPUs are not available - requested 8000, available: "),
    ):
        for verb, code in (("run", 125), ("create", 1)):
            r = ctl(verb, "--cpuset-cpus", cpus, "busybox", "true")
            assert r.code == code and r.err.startswith(f"Error: {words}"), (verb, r)
    r = ctl("create", "--name", "c1", "busybox")
    assert r.code == 0
    r = ctl("update", "--cpuset-cpus", "99999", "c1")
    assert r.code == 1 and "value of out range" in r.err and "Errno" not in r.err
    ctl.ok("rm", "c1")
    assert ctl.ok("ps", "-aq") == ""
