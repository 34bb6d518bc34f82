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

from tests.buildhelp import build_ok, config, created_by, make_context, view
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
