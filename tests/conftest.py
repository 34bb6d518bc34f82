"""Shared fixtures: a fresh store per test, the busybox rootfs, the CLI in-process, a private
Docker engine, and live registries (ours and distribution; see tests/registry_support.py)."""

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
from tests.registry_support import Server, start_distribution, start_ours

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


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    return root


@pytest.fixture
def dy(store_root: Path, capsys: pytest.CaptureFixture[str]) -> Dockyard:
    return Dockyard(store_root, capsys)


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


DOCKER_DIR = Path("/tmp/dockyard-test-docker")


@pytest.fixture(scope="session")
def docker_host() -> str:
    """A private Docker engine (Debian's docker.io 20.10): no iptables, no bridge, overlay2,
    its own data root and socket (the flags of shared/peers/start-dockerd.sh). Reused if running."""
    need("dockerd", "docker")
    need_root()
    sock = DOCKER_DIR / "docker.sock"
    host = f"unix://{sock}"
    env = {**os.environ, "DOCKER_HOST": host}
    if subprocess.run(["docker", "version"], env=env, capture_output=True).returncode != 0:
        DOCKER_DIR.mkdir(parents=True, exist_ok=True)
        args = [
            "dockerd",
            "--iptables=false",
            "--ip-masq=false",
            "--bridge=none",
            "--storage-driver=overlay2",
            "--data-root",
            str(DOCKER_DIR / "data"),
            "--exec-root",
            str(DOCKER_DIR / "exec"),
            "--pidfile",
            str(DOCKER_DIR / "dockerd.pid"),
            "-H",
            host,
            "--containerd-namespace",
            "dockyard-test",
            "--containerd-plugins-namespace",
            "dockyard-test-p",
        ]
        import shlex

        # a detached daemon (sh exits at once), shared by later test runs
        subprocess.run(["sh", "-c", f"{shlex.join(args)} >>{DOCKER_DIR}/dockerd.log 2>&1 &"], check=True)
        import time

        for _ in range(150):
            if subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"dockerd did not start: see {DOCKER_DIR / 'dockerd.log'}")
    return host


def docker(host: str, *args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0"}
    r = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {r.stderr}")
    return r  # type: ignore[no-any-return]


# ------------------------------------------------- registries (tests/registry_support.py) ---


@pytest.fixture(scope="session")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Our registry under gunicorn, no auth, shared by the session's tests."""
    server = start_ours(tmp_path_factory.mktemp("ours") / "root")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The distribution registry 2.8.2 with deletes enabled."""
    server = start_distribution(tmp_path_factory.mktemp("distribution"))
    yield server
    server.stop()


@pytest.fixture(params=["dockyard", "distribution"])
def registry(request: pytest.FixtureRequest) -> Server:
    """Each live registry in turn: the conformance checks must pass on both."""
    return request.getfixturevalue("ours" if request.param == "dockyard" else "distribution")  # type: ignore[no-any-return]


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    """The app in-process (werkzeug test client) over a fresh root."""
    from registry.app import create_app

    return create_app(tmp_path / "registry").test_client()
