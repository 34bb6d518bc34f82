"""Fixtures of the registry client tests (bound into each test module by assignment,
so that the shared conftest.py stays small)."""

from __future__ import annotations

import io
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from imagefmt.store import Store
from registry.client.registry_client import ClientOptions, RegistryClient
from support.peers import Distribution, Server, start_ours
from tests.conftest import Dockyard, need
from tests.fakes import skopeo
from tests.oci_images import Layout, random_files, tar_bytes, write_layout


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private DOCKER_CONFIG: tests never read or write ~/.docker."""
    d = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    monkeypatch.delenv("DOCKYARD_INSECURE_REGISTRIES", raising=False)
    return d / "config.json"


KINDS = ["distribution", "dockyard"]


@dataclass
class Ours:
    """Our registry server (gunicorn, support/peers.py) with the shape of
    :class:`~support.peers.Distribution`: host, blob_file, kill, start, stop."""

    root: Path
    extra: tuple[str, ...] = ()
    tls: tuple[Path, Path] | None = None
    ca: Path | None = None  # to wait for a TLS server to answer
    port: int = 0
    server: Server | None = field(default=None, repr=False)
    kind: str = "dockyard"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def blob_file(self, digest: str) -> Path:
        hx = digest.removeprefix("sha256:")
        return self.root / "blobs" / "sha256" / hx[:2] / hx

    def start(self) -> Ours:
        tls: tuple[str, ...] = ()
        if self.tls:
            tls = ("--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1]))
        scheme = "https" if self.tls else "http"
        verify: object = str(self.ca) if self.ca else True
        self.server = start_ours(
            self.root, *self.extra, *tls, port=self.port or None, scheme=scheme, verify=verify
        )
        self.port = int(self.server.host.rsplit(":", 1)[1])
        return self

    def kill(self) -> None:
        if self.server is not None:
            self.server.stop(signal.SIGKILL)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


Live = Distribution | Ours


def start_registry(
    kind: str,
    path: Path,
    auth: dict[str, Any] | None = None,
    extra: tuple[str, ...] = (),
    tls: tuple[Path, Path] | None = None,
    ca: Path | None = None,
) -> Live:
    """Start one registry of ``kind``: distribution takes ``auth`` (its config
    section), ours takes command-line ``extra`` arguments."""
    if kind == "distribution":
        return Distribution(path, auth=auth, tls=tls).start()
    return Ours(path / "root", extra=extra, tls=tls, ca=ca).start()


@pytest.fixture(scope="module", params=KINDS)
def reg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Each registry in turn, shared by a module's tests (each uses its own repositories)."""
    r = start_registry(request.param, tmp_path_factory.mktemp(request.param))
    yield r
    r.stop()


@pytest.fixture(params=KINDS)
def fresh_reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    """Each registry in turn, of the test's own (to kill or corrupt)."""
    r = start_registry(request.param, tmp_path / request.param)
    yield r
    r.stop()


def quick_client(**kw: object) -> RegistryClient:
    """A client that gives up fast (tests kill registries on purpose)."""
    return RegistryClient(ClientOptions(**{"retries": 1, "backoff": 0.05, **kw}))  # type: ignore[arg-type]


def skopeo_push(layout: Layout, dest: str, all_images: bool = False, tag: str = "latest") -> None:
    need("skopeo")
    args = ["copy", "-q", "--dest-tls-verify=false"] + (["--all"] if all_images else [])
    skopeo(*args, f"oci:{layout.path}:{tag}", f"docker://{dest}")


def sample_layout(
    path: Path, seed: int, sizes: tuple[int, ...] = (200_000, 50_000), shared: bool = True
) -> Layout:
    """An image of random-file layers; with ``shared`` the last layer is the same in every sample."""
    layers = [tar_bytes(random_files(seed * 10 + i, 3, size)) for i, size in enumerate(sizes)]
    if shared:
        layers.append(
            tar_bytes({"etc/os-release": b'ID="dockyard-test"\n', "bin/hello": b"#!/bin/sh\necho hi\n"})
        )
    return write_layout(path, layers)


def local_image(store: Store, tmp: Path, tag: str, seed: int, size: int = 300_000) -> str:
    """An image dockyard made itself (uncompressed layer, OCI manifest); returns its ID."""
    from imagefmt.reference import Reference

    tar = tmp / f"layer-{seed}.tar"
    tar.write_bytes(tar_bytes(random_files(seed, 4, size // 4)))
    config = {"Cmd": ["sh"], "Env": ["PATH=/usr/bin:/bin"]}
    history = {"created": "2024-01-01T00:00:00Z", "created_by": f"test layer {seed}"}
    img = store.commit_image(None, tar, {"config": config}, history, Reference.parse(tag))
    return str(img.id)


def login(
    dy: Dockyard, monkeypatch: pytest.MonkeyPatch, host: str, user: str, password: str
) -> tuple[int, str]:
    """``dockyard login -u USER --password-stdin HOST``: (exit code, stdout + stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    r = dy("login", "-u", user, "--password-stdin", host)
    return r.code, r.out + r.err
