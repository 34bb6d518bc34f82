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
    # create's: 125 for a bad option, else 1 (the daemon's refusal)
    ("create", "--pull", "never", "nosuch-image"),
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
