"""Shared fixtures: a fresh store per test, the busybox rootfs, the CLI in-process, a private
Docker engine, live registries (ours and distribution; see support/peers.py), and
the runtime's privilege check, container CLI and leak checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

import cli
from support.peers import (
    BRIDGED_TESTS_DOCKERD,
    TESTS_DOCKERD,
    Ceph,
    Distribution,
    Server,
    ceph_unavailable,
    start_ceph,
    start_distribution,
    start_dockerd,
    start_in_process,
    start_ours,
)

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"


def need(*tools: str) -> None:
    """Skip when a tool is missing (fail under CI=true, where setup must have installed it)."""
    for tool in tools:
        if shutil.which(tool) is None:
            if IN_CI:
                pytest.fail(f"{tool} is not installed: scripts/setup.sh should have installed it")
            pytest.skip(f"{tool} is not installed (apt-get install it, or run scripts/setup.sh)")


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, overlay mounts, chown)")


@dataclass
class Result:
    code: int
    out: str
    err: str


class Dockyard:
    """Runs ``cli.main`` in-process against one store root, capturing output."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self._capsys = capsys

    def __call__(self, *args: str) -> Result:
        self._capsys.readouterr()
        code = cli.main(["--root", str(self.root), *args])
        out, err = self._capsys.readouterr()
        return Result(code, out, err)

    def ok(self, *args: str) -> str:
        r = self(*args)
        assert r.code == 0, f"dockyard {' '.join(args)} exited {r.code}: {r.err}"
        return r.out

    def run(self, *args: str, **kw: object) -> subprocess.CompletedProcess[Any]:
        """The real entry point in a subprocess (for stdin/stdout piping)."""
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [sys.executable, str(REPO / "cli.py"), "--root", str(self.root), *args],
            text=kw.pop("text", True),
            capture_output=True,
            **kw,
        )


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with the kernel's RESOLVE_IN_ROOT and with imagefmt.securepath's walk."""
    from imagefmt import securepath

    saved = securepath.openat2_usable
    securepath.openat2_usable = None if request.param == "openat2" else False
    if request.param == "openat2":
        fd = os.open("/", os.O_PATH)
        try:
            if not securepath.probe_openat2(fd):
                pytest.skip("openat2 is not available on this kernel")
        finally:
            os.close(fd)
    yield request.param
    securepath.openat2_usable = saved


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    return root


@pytest.fixture
def dy(store_root: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Dockyard]:
    yield Dockyard(store_root, capsys)
    _drop_default_bridge(store_root)


def _drop_default_bridge(root: Path) -> None:
    """The store's default bridge (made by a build's RUN step or a container), which
    outlives containers as docker0 does: each test's store has its own, and left
    behind they would fill 10.89.0.0/16 over many runs on one machine."""
    from runtime.network.bridge import NetworkStore, drop_bridge

    drop_bridge(NetworkStore(root).default_bridge())  # and its NAT rules


@pytest.fixture(scope="session")
def busybox_tar() -> Path:
    """fixtures/.cache/busybox-rootfs.tar, made once from Debian's busybox-static."""
    out = subprocess.run([str(REPO / "fixtures/make-busybox-rootfs.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"make-busybox-rootfs.sh failed: {out.stderr}")
    return Path(out.stdout.strip())


@pytest.fixture
def busybox(dy: Dockyard, busybox_tar: Path) -> Iterator[str]:
    """The store of ``dy`` with busybox:latest imported; yields its image ID."""
    image_id = dy.ok("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest").strip()
    yield image_id


@pytest.fixture(scope="session")
def docker_host() -> str:
    """A private Docker engine (Debian's docker.io 20.10): no iptables, no bridge, overlay2,
    its own data root and socket (support/peers.py). Reused if running, left running for later runs."""
    need("dockerd", "docker")
    need_root()
    try:
        return start_dockerd(TESTS_DOCKERD).host
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def bridged_docker_host() -> str:
    """A private Docker engine with docker's default bridge (for ``--link``), in a
    network namespace of its own so that its bridge and addresses stay there
    (support/peers.py BRIDGED_TESTS_DOCKERD). Left running for later runs."""
    need("dockerd", "docker", "nsenter")
    need_root()
    try:
        return start_dockerd(BRIDGED_TESTS_DOCKERD).host
    except RuntimeError as err:
        pytest.fail(str(err))


def docker(host: str, *args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0"}
    r = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {r.stderr}")
    return r  # type: ignore[no-any-return]


# ---------------------------------------------------------------- runtime ---

BUSYBOX = Path("/bin/busybox")
# The containers of this test session get their own cgroup parent, so the leak
# check is not fooled by other dockyard users of this host.
os.environ.setdefault("DOCKYARD_CGROUP_PARENT", f"dockyard-test-{os.getpid()}")


def _privileged_reason() -> str | None:
    if os.geteuid() != 0:
        return "runtime tests need root (namespaces, overlay and cgroups)"
    if not BUSYBOX.exists():
        return "runtime tests need busybox-static at /bin/busybox"
    r = subprocess.run(["unshare", "-m", "-p", "-f", "-n", "true"], capture_output=True, text=True)
    if r.returncode:
        return f"unshare failed: {r.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def privileged() -> Iterator[None]:
    reason = _privileged_reason()
    if reason:
        pytest.skip(reason)
    yield
    for ctrl in Path("/sys/fs/cgroup").iterdir():  # the session's (empty) cgroup parent
        try:
            (ctrl / os.environ["DOCKYARD_CGROUP_PARENT"]).rmdir()
        except OSError:
            pass


def make_busybox_rootfs(root: Path) -> Path:
    """A minimal busybox image root: /bin with every applet, passwd/group, /tmp 1777."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    for d in ("etc", "root", "home", "var/www", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "nobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (root / "etc/group").write_text("root:x:0:\ndaemon:x:1:\nwheel:x:10:root\nnogroup:x:65534:\n")
    return root


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory, privileged: None) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


def host_snapshot(scope: str = "/") -> dict[str, set[str]]:
    """What a container may leave behind on the host: mounts (under ``scope``:
    other programs, like a Docker engine, mount elsewhere meanwhile) and the
    cgroups of this session.  Veths are checked per store, on its own bridges
    (see ``ctl``): other sessions plug theirs meanwhile."""
    with open("/proc/self/mountinfo") as f:
        mounts = {m for line in f if (m := line.split()[4]).startswith(scope)}
    cgroups = set()
    for ctrl in Path("/sys/fs/cgroup").iterdir():
        d = ctrl / os.environ["DOCKYARD_CGROUP_PARENT"]
        if d.is_dir():
            cgroups |= {str(p) for p in d.iterdir() if p.is_dir()}
    return {"mounts": mounts, "cgroups": cgroups}


@pytest.fixture
def no_leaks(privileged: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the test if it left mounts (under the test's temp dirs) or cgroups on the host."""
    scope = str(tmp_path_factory.getbasetemp())
    before = host_snapshot(scope)
    yield
    after = host_snapshot(scope)
    leaked = {k: sorted(after[k] - before[k]) for k in after if after[k] - before[k]}
    assert not leaked, f"left behind on the host: {leaked}"


def add_busybox_image(root: Path, tar: Path, tag: str = "busybox:latest") -> str:
    """Store ``tar`` as a one-layer image ``tag`` whose snapshot is the tar
    extracted by GNU tar (adopted, not re-extracted); return its ID."""
    import tempfile

    from imagefmt.reference import Reference
    from imagefmt.store import Store

    store = Store(root)
    tree = Path(tempfile.mkdtemp(dir=root))
    subprocess.run(["tar", "-xf", str(tar), "-C", str(tree)], check=True)
    path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    config = {"config": {"Cmd": ["sh"], "Env": [path]}}
    history = {"created_by": "busybox fixture"}
    image = store.commit_image(None, tar, config, history, Reference.parse(tag), upperdir=tree)
    return str(image.id)


class Ctl:
    """``cli.main`` in-process against one store root with fd-level capture (the
    container's output goes straight to fd 1/2), or the CLI in a subprocess."""

    def __init__(self, root: Path, capfd: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self._capfd = capfd

    def __call__(self, *args: str) -> Result:
        self._capfd.readouterr()
        code = cli.main(["--root", str(self.root), *args])
        out, err = self._capfd.readouterr()
        return Result(code, out, err)

    def ok(self, *args: str) -> str:
        r = self(*args)
        assert r.code == 0, f"dockyard {' '.join(args)} exited {r.code}: {r.err}"
        return r.out

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, str(REPO / "cli.py"), "--root", str(self.root), *args]

    def sub(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[Any]:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(self.argv(*args), **kw)


@pytest.fixture
def ctl(
    store_root: Path, capfd: pytest.CaptureFixture[str], busybox_tar: Path, no_leaks: None
) -> Iterator[Ctl]:
    """A store with busybox:latest and the CLI; every container is removed after
    the test, and then nothing may be left on the host (no_leaks)."""
    add_busybox_image(store_root, busybox_tar)
    c = Ctl(store_root, capfd)
    yield c
    ids = c("ps", "-aq", "--no-trunc").out.split()
    if ids:
        c("rm", "-f", *ids)
    nets = [
        n
        for n in c("network", "ls", "--format", "{{.Name}}").out.split()
        if n not in ("bridge", "host", "none")
    ]
    if nets:
        c("network", "rm", *nets)
    _check_bridges(store_root)


def _check_bridges(root: Path) -> None:
    """No veth left on the store's default bridge and no user bridge left; then
    the default bridge goes too (each test's store has its own)."""
    from runtime.kernel.netlink import link_exists
    from runtime.network.bridge import NetworkStore

    bridge = NetworkStore(root).default_bridge()
    ports = sorted(p.name for p in (Path("/sys/class/net") / bridge / "brif").glob("*"))
    user = [
        d["Options"]["com.docker.network.bridge.name"]
        for d in NetworkStore(root)._docs()
        if d["Name"] != "bridge"
    ]
    _drop_default_bridge(root)
    assert not ports, f"left behind on {bridge}: {ports}"
    assert not [b for b in user if link_exists(b)], f"user bridges left: {user}"


# ------------------------------------------------------- registries (support/peers.py) ---


@pytest.fixture(scope="session")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Our registry under gunicorn, no auth, shared by the session's tests."""
    server = start_ours(tmp_path_factory.mktemp("ours") / "root")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    """The distribution registry 2.8.2 with deletes enabled."""
    server = start_distribution(tmp_path_factory.mktemp("distribution"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ours_inmemory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Our registry on the inmemory storage driver, served by threads of this process."""
    from registry.server.app import create_app
    from registry.server.config import Config
    from registry.server.storage.inmemory import InMemoryDriver

    root = tmp_path_factory.mktemp("ours-inmemory")
    server = start_in_process(create_app(Config(root=root), InMemoryDriver()), "dockyard-inmemory", root)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ceph() -> Iterator[Ceph]:
    """A single-node Ceph with radosgw (scripts/start-s3.sh, once a session), stopped at
    the end if this session started it.  Skipped only where it cannot be installed."""
    reason = ceph_unavailable()
    if reason is not None:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = start_ceph()
    yield cluster
    cluster.stop()


def s3_settings(ceph: Ceph, prefix: str | None = None, **kw: Any) -> Any:
    """An S3Config for ``ceph``'s bucket under a fresh (or the given) prefix."""
    import uuid

    from registry.server.config import S3Config

    return S3Config(
        endpoint=ceph.endpoint,
        region=ceph.region,
        bucket=ceph.bucket,
        prefix=prefix or f"test-{uuid.uuid4().hex[:12]}",
        access_key=ceph.access_key,
        secret_key=ceph.secret_key,
        **kw,
    )


@pytest.fixture(scope="session")
def ours_s3(tmp_path_factory: pytest.TempPathFactory, ceph: Ceph) -> Iterator[Server]:
    """Our registry under gunicorn on the s3 driver (radosgw), blob GETs redirected."""
    import uuid

    root = tmp_path_factory.mktemp("ours-s3") / "root"
    server = start_ours(root, *ceph.serve_flags(f"ours-{uuid.uuid4().hex[:8]}"))
    yield server
    server.stop()


REGISTRY_FIXTURES = {
    "dockyard": "ours",
    "dockyard-inmemory": "ours_inmemory",
    "dockyard-s3": "ours_s3",
    "distribution": "distribution",
}


@pytest.fixture(params=list(REGISTRY_FIXTURES))
def registry(request: pytest.FixtureRequest) -> Server:
    """Each live registry in turn (ours on each storage driver, and distribution 2.8.2):
    the conformance checks must pass on every one."""
    return request.getfixturevalue(REGISTRY_FIXTURES[request.param])  # type: ignore[no-any-return]


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    """The app in-process (werkzeug test client) over a fresh root."""
    from registry.server.app import create_app

    return create_app(tmp_path / "registry").test_client()
