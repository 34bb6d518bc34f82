"""The same Dockerfile built by Docker 20.10's classic builder and by dockyard: the
same files, config and history; and Docker runs what we built."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.buildhelp import build, build_ok, config, created_by, make_context, read, view
from tests.conftest import Dockyard, docker

pytestmark = [pytest.mark.interop, pytest.mark.privileged]

DOCKERFILE = """\
ARG BASE=busybox
FROM $BASE AS build
ARG GREETING=hello
WORKDIR /src
COPY app/ ./
RUN echo "$GREETING from build" > /src/generated && chmod 750 /src/generated
FROM busybox
LABEL org.example.name="demo app" version=1
ENV APP_HOME=/app PATH=/app/bin:$PATH
WORKDIR $APP_HOME
COPY --from=build /src/ ./
COPY --chown=nobody:nogroup app/conf.ini /etc/app/
RUN rm /etc/group && mkdir -p /var/log/app && ln -s /app/generated /app/latest
EXPOSE 8080 9000/udp
VOLUME ["/var/log/app"]
USER nobody
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=10s CMD wget -q -O- localhost:8080 || exit 1
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $APP_HOME"]
"""
FILES: dict[str, str | bytes] = {
    "app/main.sh": "#!/bin/sh\necho main\n",
    "app/bin/tool": "tool\n",
    "app/conf.ini": "[app]\nx=1\n",
    "app/.hidden": "h\n",
    "notes.txt": "not copied\n",
}
KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes", "StopSignal")
# what Docker's init layer adds to every container
SKIP = {".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab", "dev", "proc", "sys"}


def _docker_busybox(host: str, busybox_tar: Path) -> None:
    if docker(host, "image", "inspect", "busybox:latest", check=False).returncode != 0:
        docker(host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")


def _listing_of_tar(data: bytes) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t:
            name = m.name.removeprefix("./").rstrip("/")
            if not name or name.split("/")[0] in SKIP or name in SKIP:
                continue
            digest = hashlib.sha256(t.extractfile(m).read()).hexdigest() if m.isfile() else ""  # type: ignore[union-attr]
            kind = "d" if m.isdir() else "l" if m.issym() else "f" if m.isfile() else str(m.type)
            out[name] = (kind, m.mode & 0o7777, m.uid, m.gid, m.linkname if m.issym() else "", digest)
    return out


def _listing_of_ours(dy: Dockyard, ref: str) -> dict[str, tuple[Any, ...]]:
    v = view(dy, ref)
    out: dict[str, tuple[Any, ...]] = {}
    for rel, found in v.walk([]):
        if rel.split("/")[0] in SKIP or rel in SKIP:
            continue
        st = found.st
        kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
        digest = ""
        if kind == "f":
            with open(found.host, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        link = os.readlink(found.host).decode() if kind == "l" else ""
        out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, link, digest)
    return out


def _normalize(history: list[str]) -> list[str]:
    return [re.sub(r"(file|dir|multi):[0-9a-f]{64}", r"\1:<hash>", h) for h in history]


def test_same_result_as_docker_build(
    dy: Dockyard, busybox: str, busybox_tar: Path, tmp_path: Path, docker_host: str
) -> None:
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, {**FILES, ".dockerignore": "notes.txt\n"})
    (ctx / "app/main.sh").chmod(0o755)
    _docker_busybox(docker_host, busybox_tar)
    tag = f"dockyard-cmp-{uuid.uuid4().hex[:8]}"
    docker(docker_host, "build", "-q", "-t", tag, str(ctx))
    try:
        theirs = docker(docker_host, "image", "inspect", "-f", "{{json .Config}}", tag).stdout
        their_cfg = json.loads(theirs)
        their_hist = docker(docker_host, "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout
        cid = docker(docker_host, "create", tag).stdout.strip()
        exported = subprocess.run(
            ["docker", "export", cid],
            env={**os.environ, "DOCKER_HOST": docker_host},
            capture_output=True,
            check=True,
        ).stdout
        docker(docker_host, "rm", cid)
    finally:
        docker(docker_host, "rmi", tag, check=False)

    out = build_ok(dy, ctx, "-t", "cmp")
    assert "Successfully tagged cmp:latest" in out
    ours = config(dy, "cmp")
    for key in KEYS:
        assert ours.get(key) == their_cfg.get(key), key
    assert ours["Healthcheck"] == their_cfg["Healthcheck"] and ours["OnBuild"] == their_cfg["OnBuild"]
    their_list = list(reversed(their_hist.split("\n")[:-1]))[1:]  # oldest first, without the import
    assert _normalize(created_by(dy, "cmp")[1:]) == _normalize(their_list)

    mine, theirs_fs = _listing_of_ours(dy, "cmp"), _listing_of_tar(exported)
    assert sorted(mine) == sorted(theirs_fs), set(mine) ^ set(theirs_fs)
    # file content, types, modes, owners and link targets agree, parent directories included
    assert mine == theirs_fs


def test_docker_runs_what_we_built(dy: Dockyard, busybox: str, tmp_path: Path, docker_host: str) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        'FROM busybox\nRUN echo built-by-dockyard > /msg && rm /etc/group\nCMD ["cat", "/msg"]\n',
    )
    name = f"dockyard-built/app:{uuid.uuid4().hex[:8]}"
    build_ok(dy, ctx, "-t", name)
    saved = tmp_path / "img.tar"
    dy.ok("save", "-o", str(saved), name)
    try:
        docker(docker_host, "load", "-i", str(saved))
        r = docker(docker_host, "run", "--rm", "--network", "none", name)
        assert r.stdout == "built-by-dockyard\n"
        r = docker(docker_host, "run", "--rm", "--network", "none", name, "ls", "/etc")
        assert "group" not in r.stdout.split() and "passwd" in r.stdout.split()
    finally:
        docker(docker_host, "rmi", name, check=False)


# ------------------------------------------------ failures, as docker reports them ---

FAILURES = {
    "copy-one-argument": (
        "FROM busybox\nCOPY f\n",
        "dockerfile parse error line 2: COPY requires at least two arguments, but only one was provided. "
        "Destination could not be determined",
    ),
    "bare-copy-at-eof": (
        "FROM busybox\n   COPY",
        "dockerfile parse error line 2: COPY requires at least two arguments, but only one was provided.",
    ),
    "add-json-one": ('FROM busybox\nADD ["f"]\n', "dockerfile parse error line 2: ADD requires at least two"),
    "user-none": (
        "FROM busybox\nUSER\n",
        "dockerfile parse error line 2: USER requires exactly one argument",
    ),
    "workdir-none": ("FROM busybox\nWORKDIR\n", "line 2: WORKDIR requires exactly one argument"),
    "maintainer-none": ("FROM busybox\nMAINTAINER\n", "line 2: MAINTAINER requires exactly one argument"),
    "stopsignal-none": ("FROM busybox\nSTOPSIGNAL\n", "line 2: STOPSIGNAL requires exactly one argument"),
    "env-none": ("FROM busybox\nENV\n", "dockerfile parse error line 2: ENV requires at least one argument"),
    "healthcheck-unknown-flag": ("FROM busybox\nHEALTHCHECK --foo=1 CMD true\n", "line 2: Unknown flag: foo"),
    "healthcheck-duration": (
        "FROM busybox\nHEALTHCHECK --interval=5x CMD true\n",
        'dockerfile parse error line 2: time: unknown unit "x" in duration "5x"',
    ),
    "healthcheck-retries": (
        "FROM busybox\nHEALTHCHECK --retries=x CMD true\n",
        'dockerfile parse error line 2: strconv.ParseInt: parsing "x": invalid syntax',
    ),
    "healthcheck-none-args": (
        "FROM busybox\nHEALTHCHECK NONE x\n",
        "line 2: HEALTHCHECK NONE takes no arguments",
    ),
    "unknown-flag": (
        "FROM busybox\nCOPY --user=x f /\n",
        "dockerfile parse error line 2: Unknown flag: user",
    ),
    "unknown-flag-case": ("FROM --Foo=x busybox\n", "dockerfile parse error line 1: Unknown flag: Foo"),
    "stage-name": (
        "FROM busybox AS 1\n",
        'dockerfile parse error line 1: invalid name for build stage: "1", name can\'t start with a number '
        "or contain symbols",
    ),
    "duplicate-stage-name": ("FROM busybox AS xy\nFROM busybox AS XY\n", "xy stage name already used"),
    "unknown-instruction": (
        "FROM busybox\nfoo bar\n",
        "dockerfile parse error line 2: unknown instruction: FOO",
    ),
    "onbuild-heredoc": (
        "FROM busybox\nONBUILD RUN <<EOF\necho hi\nEOF\n",
        "dockerfile parse error line 3: unknown instruction: ECHO",
    ),
    "arg-blank-name": (
        "FROM busybox\nARG =foo\n",
        "dockerfile parse error line 2: ARG names can not be blank",
    ),
    "arg-expansion": ("FROM busybox\nARG A=${B:?oops}\n", 'failed to process "${B:?oops}": B: oops'),
    "env-expansion": ("FROM busybox\nENV A=${B:?noB}\n", 'failed to process "${B:?noB}": B: noB'),
    "missing-source": (
        "FROM busybox\nCOPY nope /\n",
        "COPY failed: file not found in build context or excluded by .dockerignore: "
        "stat nope: file does not exist",
    ),
    "bad-signal": ("FROM busybox\nSTOPSIGNAL a b\n", "Invalid signal: a b"),
    "missing-base": ("FROM dockyard-no-such-base:1\n", ""),
}


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_build_failure_as_docker(
    name: str, dy: Dockyard, busybox: str, busybox_tar: Path, tmp_path: Path, docker_host: str
) -> None:
    """docker's classic builder exits 1 for every failure but a RUN's, with these messages."""
    dockerfile, message = FAILURES[name]
    ctx = make_context(tmp_path / "ctx", dockerfile, {"f": "x\n"})
    _docker_busybox(docker_host, busybox_tar)
    theirs = docker(docker_host, "build", str(ctx), check=False)
    ours = build(dy, ctx)
    assert theirs.returncode == 1, theirs.stderr
    assert ours.code == 1, ours.err
    assert message in theirs.stdout + theirs.stderr
    assert message in ours.err and ours.err.count("\n") == 1, ours.err


def test_run_failure_exit_code_as_docker(
    dy: Dockyard, busybox: str, busybox_tar: Path, tmp_path: Path, docker_host: str
) -> None:
    """A failing RUN exits with its command's code; a bare RUN is docker's '/bin/sh -c' (2)."""
    _docker_busybox(docker_host, busybox_tar)
    for text, code in (("RUN exit 3", 3), ("RUN", 2)):
        ctx = make_context(tmp_path / f"ctx{code}", f"FROM busybox\n{text}\n")
        # --force-rm: docker keeps a failed step's container otherwise (the shared engine fills up)
        theirs = docker(docker_host, "build", "--force-rm", str(ctx), check=False)
        ours = build(dy, ctx)
        assert theirs.returncode == ours.code == code, (theirs.stderr, ours.err)
        assert f"returned a non-zero code: {code}" in theirs.stderr and f"non-zero code: {code}" in ours.err


def _docker_config_and_history(host: str, ctx: Path, *args: str) -> tuple[dict[str, Any], list[str], str]:
    tag = f"dockyard-cmp-{uuid.uuid4().hex[:8]}"
    r = docker(host, "build", "-t", tag, *args, str(ctx))
    try:
        cfg = json.loads(docker(host, "image", "inspect", "-f", "{{json .Config}}", tag).stdout)
        hist = docker(host, "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout
    finally:
        docker(host, "rmi", tag, check=False)
    return cfg, list(reversed(hist.split("\n")[:-1])), r.stdout


def test_accepted_as_docker(
    dy: Dockyard,
    busybox: str,
    busybox_tar: Path,
    tmp_path: Path,
    docker_host: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What docker builds: a last line ending in a continuation (with or without a newline),
    empty lines and comments inside a continued instruction, a bare CMD and ENTRYPOINT,
    ``LABEL k v``, ``--label bar``, and an unused ``--build-arg FOO9`` without a value
    named in the warning."""
    _docker_busybox(docker_host, busybox_tar)
    cases = [
        ("FROM busybox\nLABEL a=b \\\n", ()),
        ("FROM busybox\nLABEL a=b c=d \\", ()),
        ("FROM busybox\nLABEL a=b \\\n\n\n", ()),
        ("FROM busybox\nRUN echo a \\\n\n# c\n\n  b > /x\nLABEL a=b \\\n\n  c=d\n", ()),
        ("FROM busybox\nCMD\n", ()),
        ('FROM busybox\nENTRYPOINT ["sh"]\nENTRYPOINT\n', ()),
        ("FROM busybox\nLABEL k v w\n", ("--label", "bar", "--label", "baz=1")),
    ]
    for n, (text, args) in enumerate(cases):
        ctx = make_context(tmp_path / f"ctx{n}", text)
        their_cfg, their_hist, _ = _docker_config_and_history(docker_host, ctx, *args)
        build_ok(dy, ctx, "-t", f"ok{n}", *args)
        ours = config(dy, f"ok{n}")
        for key in ("Labels", "Cmd", "Entrypoint"):
            assert ours.get(key) == their_cfg.get(key), (text, key)
        assert created_by(dy, f"ok{n}")[1:] == their_hist[1:], text
    ctx = make_context(tmp_path / "args", "FROM busybox\nARG USED\n")
    monkeypatch.delenv("FOO9", raising=False)
    monkeypatch.delenv("USED", raising=False)
    args = ("--build-arg", "FOO9", "--build-arg", "USED", "--build-arg", "BAR=1")
    theirs = docker(docker_host, "build", *args, str(ctx)).stdout
    # docker lists them in Go's map order (random from run to run): ours sorted, the same set
    assert unused_args(theirs) == unused_args(build_ok(dy, ctx, *args)) == {"BAR", "FOO9"}
    assert "[Warning] One or more build-args [BAR FOO9] were not consumed" in build_ok(dy, ctx, *args)


def unused_args(out: str) -> set[str]:
    found = re.search(r"\[Warning\] One or more build-args \[([^]]*)\] were not consumed", out)
    assert found is not None, out
    return set(found.group(1).split())


def test_run_environment_as_docker(
    dy: Dockyard, busybox: str, busybox_tar: Path, tmp_path: Path, docker_host: str
) -> None:
    """A RUN sees HOSTNAME, the step container's id (its host name), after PATH; and
    ``RUN []`` runs the image's own CMD, with an empty history line."""
    _docker_busybox(docker_host, busybox_tar)
    text = (
        "FROM busybox\nENV A=1\n"
        "RUN env | cut -d= -f1 > /names\n"
        'RUN [ "$HOSTNAME" = "$(hostname)" ] && echo -n $HOSTNAME | wc -c > /len\n'
        'CMD ["sh", "-c", "echo from-cmd > /made"]\nRUN []\n'
    )
    ctx = make_context(tmp_path / "ctx", text)
    tag = f"dockyard-cmp-{uuid.uuid4().hex[:8]}"
    docker(docker_host, "build", "-t", tag, str(ctx))
    try:
        theirs = {
            p: docker(docker_host, "run", "--rm", tag, "cat", p).stdout for p in ("/names", "/len", "/made")
        }
        their_hist = docker(docker_host, "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout
    finally:
        docker(docker_host, "rmi", tag, check=False)
    build_ok(dy, ctx, "-t", "env")
    ours = {p: read(dy, "env", p) for p in ("/names", "/len", "/made")}
    assert theirs["/len"].strip() == "12" and theirs["/made"] == "from-cmd\n"
    assert ours == theirs
    assert created_by(dy, "env")[-1] == their_hist.split("\n")[0] == ""


# ------------------------------------------------------------------ symlinks, cache ---


def _hits(output: str) -> list[tuple[str, bool]]:
    """Each step of a classic build's output and whether it came from the cache."""
    steps: list[tuple[str, bool]] = []
    for line in output.splitlines():
        m = re.match(r"Step \d+/\d+ : (.*)", line)
        if m:
            steps.append((m.group(1), False))
        elif line.strip() == "---> Using cache" and steps:
            steps[-1] = (steps[-1][0], True)
    return steps


def _both(
    dy: Dockyard, host: str, ctx: Path, *args: str, ours: tuple[str, ...] = ()
) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Build ``ctx`` with docker and with dockyard (``ours``: our extra flags); each's steps."""
    theirs = docker(host, "build", *args, str(ctx))
    return _hits(theirs.stdout), _hits(build_ok(dy, ctx, *args, *ours))


def _unique(text: str) -> str:
    """``text`` after its FROM lines with a label no earlier build has (docker's cache is shared)."""
    token = uuid.uuid4().hex
    return re.sub(r"^(FROM .*)$", rf"\1\nLABEL run={token}", text, flags=re.M)


SYMLINKS_DOCKERFILE = """\
FROM busybox
COPY link /c/link
COPY link /c2/
COPY dlink /d/
COPY dlink /d2
COPY abs /e
COPY chain /f/
COPY ld/rel /g
COPY l* /h/
COPY ld /i/
"""


def test_copy_symlink_source_as_docker(
    dy: Dockyard, busybox: str, busybox_tar: Path, tmp_path: Path, docker_host: str
) -> None:
    """A link named as a COPY source is followed (a file's content, a directory's contents),
    with the context as its root; a link below a copied directory stays a link; the
    cache keys on the target's content."""
    files: dict[str, str | bytes] = {"real.txt": "real\n", "dir/a": "inner\n", "dir/sub/b": "deep\n"}
    ctx = make_context(tmp_path / "ctx", _unique(SYMLINKS_DOCKERFILE), files)
    for name, target in (
        ("link", "real.txt"),
        ("dlink", "dir"),
        ("abs", "/real.txt"),
        ("chain", "dlink/sub"),
        ("out", "../../../../etc/hostname"),
        ("dangling", "nope"),
    ):
        os.symlink(target, ctx / name)
    (ctx / "ld").mkdir()
    os.symlink("../real.txt", ctx / "ld/rel")
    _docker_busybox(docker_host, busybox_tar)
    tag = f"dockyard-cmp-{uuid.uuid4().hex[:8]}"
    docker(docker_host, "build", "-q", "-t", tag, str(ctx))
    cid = docker(docker_host, "create", tag).stdout.strip()
    exported = subprocess.run(
        ["docker", "export", cid],
        env={**os.environ, "DOCKER_HOST": docker_host},
        capture_output=True,
        check=True,
    ).stdout
    docker(docker_host, "rm", cid)
    build_ok(dy, ctx, "-t", "links")
    mine, theirs = _listing_of_ours(dy, "links"), _listing_of_tar(exported)
    assert mine == theirs
    assert mine["c/link"][0] == "f" and mine["h/rel"][0] == "l" and mine["d/sub/b"][0] == "f"

    (ctx / "real.txt").write_text("changed\n")  # the target's content, not the link, is the key
    their_hits, our_hits = _both(dy, docker_host, ctx)
    docker(docker_host, "rmi", tag)
    assert our_hits == their_hits
    assert [hit for _, hit in our_hits][:3] == [False, True, False]  # FROM, LABEL, COPY link

    for name in ("out", "dangling"):  # out of the context: resolved inside it, so not found
        (ctx / "Dockerfile").write_text(f"FROM busybox\nCOPY {name} /x\n")
        theirs_r = docker(docker_host, "build", str(ctx), check=False)
        ours_r = build(dy, ctx)
        message = (
            f"file not found in build context or excluded by .dockerignore: stat {name}: file does not exist"
        )
        assert theirs_r.returncode == ours_r.code == 1
        assert message in theirs_r.stderr and message in ours_r.err


def test_cache_hits_as_docker(
    dy: Dockyard, busybox: str, busybox_tar: Path, tmp_path: Path, docker_host: str
) -> None:
    """Which steps a rebuild takes from the cache, step by step as docker's classic builder:
    COPY --from keyed by what it copies, ARG steps hitting with new --build-arg values
    (the RUN that reads them misses), ``LABEL k v`` hitting ``LABEL k=v``, and two stages
    with the same first steps built at once (-j 2) still hitting on the next build."""
    _docker_busybox(docker_host, busybox_tar)
    ctx = tmp_path / "ctx"
    one = _unique("FROM busybox AS one\nRUN echo data > /data\n")
    final = _unique("FROM busybox\nCOPY --from=one /data /data\nRUN cat /data > /copy\n")
    make_context(ctx, one + final)
    _both(dy, docker_host, ctx)
    make_context(ctx, one + "RUN echo unrelated > /other\n" + final)
    theirs, ours = _both(dy, docker_host, ctx)
    assert ours == theirs
    assert ("COPY --from=one /data /data", True) in ours

    args = _unique("FROM busybox\nARG A=1\nARG B\nRUN echo $A $B > /ab\nLABEL k=v\n")
    make_context(ctx, args)
    _both(dy, docker_host, ctx)
    theirs, ours = _both(dy, docker_host, ctx, "--build-arg", "A=2", "--build-arg", "B=3")
    assert ours == theirs
    assert [hit for _, hit in ours] == [False, True, True, True, False, False]

    make_context(ctx, args.replace("LABEL k=v", "LABEL k v"))
    theirs, ours = _both(dy, docker_host, ctx)
    assert ours == theirs and all(hit for _, hit in ours[1:])

    named = _unique("FROM busybox\nCOPY a.txt /d/\n")  # same content, another name: a miss
    make_context(ctx, named, {"a.txt": "same\n", "b.txt": "same\n"})
    _both(dy, docker_host, ctx, "-t", "named")
    make_context(ctx, named.replace("a.txt", "b.txt"))
    theirs, ours = _both(dy, docker_host, ctx, "-t", "named")
    assert ours == theirs and ours[-1] == ("COPY b.txt /d/", False)
    assert read(dy, "named", "/d/b.txt") == "same\n" and read(dy, "named", "/d/a.txt") is None
    docker(docker_host, "rmi", "named")

    same = "RUN echo same > /same\nRUN echo slow && sleep 1\n"
    race = _unique(f"FROM busybox AS a\n{same}FROM busybox AS b\n{same}RUN echo b\n")
    race += "FROM busybox\nCOPY --from=a /same /a\nCOPY --from=b /same /b\n"
    make_context(ctx, race)
    _both(dy, docker_host, ctx, ours=("-j", "2"))
    theirs, ours = _both(dy, docker_host, ctx, ours=("-j", "2"))
    assert ours == theirs and all(hit for text, hit in ours if not text.startswith("FROM"))


def test_copy_to_an_empty_destination_as_docker(
    dy: Dockyard, busybox: str, busybox_tar: Path, tmp_path: Path, docker_host: str
) -> None:
    """``COPY f $empty`` under a WORKDIR copies into the WORKDIR (docker's result), with
    ``--link`` too: the WORKDIR is never replaced by the file."""
    text = "FROM busybox\nARG E\nWORKDIR /w\nCOPY{link} f $E\nRUN touch /w/ran\n"
    ctx = make_context(tmp_path / "ctx", text.format(link=""), {"f": "x\n"})
    _docker_busybox(docker_host, busybox_tar)
    tag = f"dockyard-cmp-{uuid.uuid4().hex[:8]}"
    docker(docker_host, "build", "-q", "-t", tag, str(ctx))
    cid = docker(docker_host, "create", tag).stdout.strip()
    exported = subprocess.run(
        ["docker", "export", cid],
        env={**os.environ, "DOCKER_HOST": docker_host},
        capture_output=True,
        check=True,
    ).stdout
    docker(docker_host, "rm", cid)
    docker(docker_host, "rmi", tag)
    theirs = {k: v for k, v in _listing_of_tar(exported).items() if k.startswith("w")}
    assert theirs["w/f"][0] == "f"
    for link in ("", " --link"):
        (ctx / "Dockerfile").write_text(text.format(link=link))
        build_ok(dy, ctx, "-t", "empty")
        assert {k: v for k, v in _listing_of_ours(dy, "empty").items() if k.startswith("w")} == theirs
