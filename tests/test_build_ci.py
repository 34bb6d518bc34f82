"""The builder's CI features (issue 13): the registry cache, --output, --push,
remote contexts, COPY --parents and --ssh, against our registry, distribution
2.8.2, skopeo and the docker engine.  Bad values exit 1, as buildx checks
--cache-to/--output/--ssh values in its RunE (not as pflag errors, 125)."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefmt.store import Store
from support.peers import Distribution, Server, free_port
from tests.buildhelp import build, build_ok, make_context, read
from tests.conftest import Dockyard, docker, need

pytestmark = pytest.mark.privileged

MULTI = """\
FROM busybox AS tools
RUN echo tool > /tool
FROM busybox
COPY a.txt /a.txt
RUN echo built-$(cat /a.txt) > /b.txt
ENV STAGE=final
COPY --from=tools /tool /tool
RUN cat /a.txt /b.txt /tool > /all.txt
"""


@pytest.fixture
def second(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Dockyard]:
    """A second machine: another store root, empty."""
    root = tmp_path / "machine2"
    root.mkdir()
    yield Dockyard(root, capsys)


def _share_base(dy: Dockyard, other: Dockyard, host: str) -> None:
    """The base image reaches the second machine through the registry (same image ID)."""
    dy.ok("tag", "busybox:latest", f"{host}/base/busybox:latest")
    dy.ok("push", f"{host}/base/busybox:latest")
    other.ok("pull", f"{host}/base/busybox:latest")
    other.ok("tag", f"{host}/base/busybox:latest", "busybox:latest")


def _steps_cached(out: str) -> int:
    return out.count(" ---> Using cache")


def _cache_round_trip(dy: Dockyard, other: Dockyard, tmp_path: Path, peer: Server | Distribution) -> None:
    ctx = make_context(tmp_path / "ctx", MULTI, {"a.txt": "alpha\n"})
    ref = f"{peer.host}/cache/multi:buildcache"
    out = build_ok(dy, ctx, "-t", "app:1", "--cache-to", f"type=registry,ref={ref},mode=max")
    assert f"exporting cache to {ref}: 6 steps" in out, out
    first = Store(dy.root).image("app:1")

    _share_base(dy, other, peer.host)
    out = build_ok(other, ctx, "-t", "app:1", "--cache-from", f"type=registry,ref={ref}")
    assert _steps_cached(out) == 6, out  # every step of both stages hit, no RUN ran
    assert "built-alpha" not in out
    again = Store(other.root).image("app:1")
    assert again.id == first.id
    assert again.config.diff_ids == first.config.diff_ids
    assert read(other, "app:1", "/all.txt") == "alpha\nbuilt-alpha\ntool\n"
    # a new step after the imported ones runs on their layers (unpacked from the fetched blobs)
    (ctx / "Dockerfile").write_text(MULTI + "RUN wc -l < /all.txt > /lines\n")
    out = build_ok(other, ctx, "-t", "app:2", "--cache-from", f"type=registry,ref={ref}")
    assert _steps_cached(out) == 6, out
    assert read(other, "app:2", "/lines") == "3\n"


def test_registry_cache_on_an_empty_store_hits_every_step(
    dy: Dockyard, busybox: str, second: Dockyard, ours: Server, tmp_path: Path
) -> None:
    _cache_round_trip(dy, second, tmp_path, ours)


def test_registry_cache_is_accepted_by_distribution(
    dy: Dockyard, busybox: str, second: Dockyard, distribution: Distribution, tmp_path: Path
) -> None:
    _cache_round_trip(dy, second, tmp_path, distribution)
    # the artifact as distribution serves it: an OCI manifest with our config type
    import urllib.request

    req = urllib.request.Request(
        f"{distribution.url}/v2/cache/multi/manifests/buildcache",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(req) as resp:
        doc = json.loads(resp.read())
    assert doc["config"]["mediaType"] == "application/vnd.dockyard.buildcache.config.v0+json"
    assert doc["artifactType"] == "application/vnd.dockyard.buildcache.v0"
    assert all("containerd.io/uncompressed" in la["annotations"] for la in doc["layers"])


def test_registry_cache_min_mode_and_a_changed_step(
    dy: Dockyard, busybox: str, second: Dockyard, ours: Server, tmp_path: Path
) -> None:
    ctx = make_context(tmp_path / "ctx", MULTI, {"a.txt": "alpha\n"})
    ref = f"{ours.host}/cache/min:latest"
    out = build_ok(dy, ctx, "--cache-to", f"type=registry,ref={ref}")
    assert f"exporting cache to {ref}: 5 steps" in out, out  # the final stage's steps only
    _share_base(dy, second, ours.host)
    (ctx / "a.txt").write_text("beta\n")
    out = build_ok(second, ctx, "--cache-from", f"type=registry,ref={ref}")
    # the tools stage was not exported: it runs; COPY a.txt changed: it and all after it run
    assert _steps_cached(out) == 0, out
    assert "built-beta" not in out  # RUN output is not printed by the classic builder, the files are
    missing = build(second, ctx, "--cache-from", f"type=registry,ref={ours.host}/cache/none:latest")
    assert missing.code == 0
    assert f"WARNING: failed to import cache {ours.host}/cache/none:latest: not found" in missing.out
    image = build(second, ctx, "--cache-from", f"type=registry,ref={ours.host}/base/busybox:latest")
    assert image.code == 0 and "not a dockyard build cache" in image.out  # an image, not a cache


def test_cache_flags_are_checked(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\n")
    r = build(dy, ctx, "--cache-to", "type=local,dest=/tmp/x")
    assert r.code == 1 and "type=local is not supported" in r.err
    r = build(dy, ctx, "--cache-to", "type=registry")
    assert r.code == 1 and "ref=HOST/REPO:TAG is required" in r.err
    r = build(dy, ctx, "--cache-to", "type=registry,ref=127.0.0.1:1/x,mode=all")
    assert r.code == 1 and "mode=all" in r.err


# ------------------------------------------------------------------ --output ---

SMALL = """\
FROM busybox
COPY a.txt /a.txt
RUN echo made > /b.txt && rm /bin/true
"""


def test_output_local_dir_and_tar(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", SMALL, {"a.txt": "alpha\n"})
    out_dir = tmp_path / "out"
    build_ok(dy, ctx, "-o", str(out_dir))
    assert (out_dir / "a.txt").read_text() == "alpha\n"
    assert (out_dir / "b.txt").read_text() == "made\n"
    assert (out_dir / "bin/sh").exists() and not (out_dir / "bin/true").exists()  # the RUN's whiteout applied
    tar = tmp_path / "fs.tar"
    build_ok(dy, ctx, "--output", f"type=tar,dest={tar}")
    with tarfile.open(tar) as t:
        names = set(t.getnames())
        assert t.extractfile("b.txt").read() == b"made\n"  # type: ignore[union-attr]
    assert {"a.txt", "bin/sh"} <= names and "bin/true" not in names
    assert not any(n.startswith(".wh.") or "/.wh." in n for n in names)
    piped = dy.run("build", "-o", "-", str(ctx), text=False)  # buildx: a tar on stdout, the log on stderr
    assert piped.returncode == 0, piped.stderr
    assert b"Successfully built" in piped.stderr
    with tarfile.open(fileobj=io.BytesIO(piped.stdout)) as t:
        assert t.extractfile("a.txt").read() == b"alpha\n"  # type: ignore[union-attr]
    r = build(dy, ctx, "--output", "type=registry,dest=x")
    assert r.code == 1 and "type=registry is not supported" in r.err


def test_output_oci_and_docker_tarballs_load_in_skopeo_and_docker(
    dy: Dockyard, busybox: str, tmp_path: Path, docker_host: str
) -> None:
    need("skopeo")
    ctx = make_context(tmp_path / "ctx", SMALL, {"a.txt": "alpha\n"})
    oci, dock = tmp_path / "img.oci.tar", tmp_path / "img.docker.tar"
    tag = f"ci-output-{uuid.uuid4().hex[:8]}:1"
    build_ok(dy, ctx, "-t", tag, "-o", f"type=oci,dest={oci}", "--output", f"type=docker,dest={dock}")
    ours = Store(dy.root).image(tag)
    for transport, path in (("oci-archive", oci), ("docker-archive", dock)):
        got = subprocess.run(["skopeo", "inspect", f"{transport}:{path}"], capture_output=True, text=True)
        assert got.returncode == 0, got.stderr
        doc = json.loads(got.stdout)
        assert len(doc["Layers"]) == len(ours.manifest.layers) == 3
    loaded = docker(docker_host, "load", "-i", str(dock)).stdout
    assert f"Loaded image: {tag}" in loaded
    try:
        their_id = docker(docker_host, "image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
        assert their_id == str(ours.id)
        made = docker(docker_host, "run", "--rm", "--network", "none", tag, "cat", "/b.txt", check=False)
        assert made.stdout == "made\n", made.stderr
    finally:
        docker(docker_host, "rmi", "-f", tag, check=False)


def test_push_after_the_build(dy: Dockyard, busybox: str, ours: Server, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", SMALL, {"a.txt": "alpha\n"})
    ref = f"{ours.host}/ci/pushed:v1"
    out = build_ok(dy, ctx, "-t", ref, "--push")
    assert f"The push refers to repository [{ours.host}/ci/pushed]" in out
    assert re.search(r"v1: digest: sha256:[0-9a-f]{64} size: \d+", out), out
    image_id = Store(dy.root).image(ref).id
    dy.ok("rmi", ref)
    dy.ok("pull", ref)
    assert Store(dy.root).image(ref).id == image_id
    r = build(dy, ctx, "--push")
    assert r.code == 1 and "tag is needed when pushing to registry" in r.err


# ----------------------------------------------------------- remote contexts ---


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@x", *args], cwd=cwd, check=True, capture_output=True
    )


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[str]:
    """A repository served by ``git daemon`` on 127.0.0.1: main has a Dockerfile at the
    root, branch v2 and tag t1 have app/ with its own Dockerfile."""
    need("git")
    work, base = tmp_path / "work", tmp_path / "repos"
    work.mkdir()
    base.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "Dockerfile").write_text("FROM busybox\nCOPY root.txt /where\n")
    (work / "root.txt").write_text("main root\n")
    _git(work, "add", ".")
    _git(work, "commit", "-qm", "main")
    _git(work, "checkout", "-qb", "v2")
    (work / "app").mkdir()
    (work / "app/Dockerfile").write_text("FROM busybox\nCOPY msg.txt /where\n")
    (work / "app/msg.txt").write_text("v2 app\n")
    (work / "alt.Dockerfile").write_text("FROM busybox\nCOPY app/msg.txt /where\n")
    _git(work, "add", ".")
    _git(work, "commit", "-qm", "v2")
    _git(work, "tag", "t1")
    _git(work, "checkout", "-q", "main")
    _git(base, "clone", "-q", "--bare", str(work), "proj.git")
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            f"--base-path={base}",
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/proj.git"
    finally:
        proc.terminate()
        proc.wait(10)


def test_git_context_with_ref_and_subdir(dy: Dockyard, busybox: str, git_server: str) -> None:
    dy.ok("build", "-t", "g:main", git_server)
    assert read(dy, "g:main", "/where") == "main root\n"
    dy.ok("build", "-t", "g:v2", f"{git_server}#v2:app")
    assert read(dy, "g:v2", "/where") == "v2 app\n"
    dy.ok("build", "-t", "g:t1", "-f", "alt.Dockerfile", f"{git_server}#t1")  # -f is inside the repository
    assert read(dy, "g:t1", "/where") == "v2 app\n"
    r = dy("build", f"{git_server}#v2:nothere")
    assert r.code == 1 and "subdirectory 'nothere' not found" in r.err
    r = dy("build", f"{git_server}#v2:../..")
    assert r.code == 1 and "outside the repository" in r.err
    r = dy("build", f"{git_server}#nosuchref")
    assert r.code == 1 and "unable to 'git clone'" in r.err


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server in a thread on 127.0.0.1, serving ``tmp_path/www``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_tarball_and_dockerfile_urls(
    dy: Dockyard, busybox: str, web: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = web
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nCOPY f.txt /where\n", {"f.txt": "from a tarball\n"})
    with tarfile.open(root / "ctx.tar.gz", "w:gz") as t:
        t.add(ctx / "Dockerfile", "Dockerfile")
        t.add(ctx / "f.txt", "f.txt")
    (root / "Dockerfile.txt").write_text("FROM busybox\nENV FROM_URL=yes\n")
    dy.ok("build", "-t", "u:tar", f"{url}/ctx.tar.gz")
    assert read(dy, "u:tar", "/where") == "from a tarball\n"
    dy.ok("build", "-t", "u:df", f"{url}/Dockerfile.txt")
    assert "FROM_URL=yes" in Store(dy.root).image("u:df").config.config["Env"]
    r = dy("build", f"{url}/missing.tar")
    assert r.code == 1 and "unable to download remote context" in r.err


# ------------------------------------------------------------ COPY --parents ---

PARENTS = """\
FROM busybox AS first
COPY --parents x/a.txt y/*/b.txt /p/
COPY --parents x/dir /d/
COPY --parents ./x/./y/z.txt /pv/
COPY --parents=false x/a.txt /flat/
FROM busybox
COPY --from=first --parents /p/y/*/b.txt /from/
"""


def test_copy_parents_keeps_the_source_paths(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "x/a.txt": "a",
        "y/s1/b.txt": "b1",
        "y/s2/b.txt": "b2",
        "x/dir/c.txt": "c",
        "x/y/z.txt": "z",
    }
    ctx = make_context(tmp_path / "ctx", PARENTS, files)
    build_ok(dy, ctx, "--target", "first", "-t", "parents:first")
    got = {p: read(dy, "parents:first", p) for p in ("/p/x/a.txt", "/p/y/s1/b.txt", "/p/y/s2/b.txt")}
    assert got == {"/p/x/a.txt": "a", "/p/y/s1/b.txt": "b1", "/p/y/s2/b.txt": "b2"}
    assert read(dy, "parents:first", "/d/x/dir/c.txt") == "c"  # a directory keeps its own path
    assert read(dy, "parents:first", "/pv/y/z.txt") == "z"  # only what follows the /./ pivot
    assert read(dy, "parents:first", "/flat/a.txt") == "a"
    build_ok(dy, ctx, "-t", "parents:last")
    assert read(dy, "parents:last", "/from/p/y/s2/b.txt") == "b2"  # --from keeps the image's paths
    # the kept paths are in the key: moving a file to another parent is a miss
    (ctx / "y/s3").mkdir()
    (ctx / "y/s2/b.txt").rename(ctx / "y/s3/b.txt")
    out = build_ok(dy, ctx, "--target", "first", "-t", "parents:moved")
    assert out.count("Using cache") == 0 and read(dy, "parents:moved", "/p/y/s3/b.txt") == "b2"


# ------------------------------------------------------------------- --ssh ---


@pytest.fixture
def ssh_agent(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real ssh-agent holding one new key: (its socket, the key's fingerprint line)."""
    need("ssh-agent", "ssh-add", "ssh-keygen")
    sock, key = tmp_path / "agent.sock", tmp_path / "id_ed25519"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.02)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci-key", "-f", str(key)], check=True
        )
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, capture_output=True)
        listed = subprocess.run(["ssh-add", "-l"], env=env, check=True, capture_output=True, text=True)
        yield sock, listed.stdout.strip()
    finally:
        agent.terminate()
        agent.wait(10)


def _ssh_add_kit(ctx: Path) -> None:
    """The host's ssh-add with its loader and libraries under ctx/kit (busybox has no ssh)."""
    kit = ctx / "kit"
    kit.mkdir(parents=True)
    libs = subprocess.run(["ldd", "/usr/bin/ssh-add"], check=True, capture_output=True, text=True).stdout
    for path in re.findall(r"(/\S+\.so[.\d]*)", libs):
        shutil.copy(path, kit / Path(path).name)
    shutil.copy("/usr/bin/ssh-add", kit / "ssh-add")


SSH = """\
FROM busybox
RUN --mount=type=bind,source=kit,target=/kit \\
    --mount=type=ssh \\
    /kit/ld-linux-x86-64.so.2 --library-path /kit /kit/ssh-add -l > /keys.txt; \\
    echo "$SSH_AUTH_SOCK" > /sock.txt
RUN --mount=type=ssh,id=other,target=/agent,required=false test ! -e /agent && echo absent > /other.txt
"""


def test_ssh_agent_forwarded_into_run(
    dy: Dockyard, busybox: str, ssh_agent: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path("/lib64/ld-linux-x86-64.so.2").exists():
        pytest.skip("the ssh-add kit is made for x86_64 glibc")
    sock, fingerprint = ssh_agent
    ctx = make_context(tmp_path / "ctx", SSH)
    _ssh_add_kit(ctx)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    build_ok(dy, ctx, "--ssh", "default", "-t", "ssh:1")
    assert read(dy, "ssh:1", "/keys.txt") == fingerprint + "\n"  # the key the host agent holds
    assert read(dy, "ssh:1", "/sock.txt") == "/run/buildkit/ssh_agent.0\n"
    assert read(dy, "ssh:1", "/other.txt") == "absent\n"  # an id not forwarded: no mount (not required)
    # the socket is neither in the layer nor left on the host
    assert read(dy, "ssh:1", "/run/buildkit/ssh_agent.0") is None
    assert not list(Path("/tmp").glob("dockyard-ssh-*"))
    required = make_context(tmp_path / "req", "FROM busybox\nRUN --mount=type=ssh,required=true true\n")
    r = build(dy, required)
    assert r.code == 1 and "no SSH key 'default' forwarded" in r.err
    monkeypatch.delenv("SSH_AUTH_SOCK")
    r = build(dy, ctx, "--ssh", "default")
    assert r.code == 1 and "make sure SSH_AUTH_SOCK is set" in r.err


def test_registry_cache_of_a_multi_platform_build(
    dy: Dockyard, second: Dockyard, ours: Server, tmp_path: Path
) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY a.txt /a.txt\n", {"a.txt": "alpha\n"})
    ref = f"{ours.host}/cache/platforms:latest"
    platforms = "linux/amd64,linux/arm64"
    out = build_ok(dy, ctx, "--platform", platforms, "--cache-to", f"type=registry,ref={ref}")
    assert out.count("exporting cache to") == 1 and f"{ref}: 2 steps" in out, out  # both platforms, once
    out = build_ok(second, ctx, "--platform", platforms, "--cache-from", f"type=registry,ref={ref}")
    assert _steps_cached(out) == 2, out
