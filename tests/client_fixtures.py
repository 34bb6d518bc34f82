"""Fixtures of the registry client tests (bound into each test module by assignment,
so that the shared conftest.py stays small)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefmt.store import Store
from registry.client import Client, ClientOptions
from tests.conftest import need
from tests.oci_images import Layout, random_files, tar_bytes, write_layout
from tests.registries import Distribution, skopeo


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private DOCKER_CONFIG: tests never read or write ~/.docker."""
    d = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    monkeypatch.delenv("DOCKYARD_INSECURE_REGISTRIES", raising=False)
    return d / "config.json"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    """The distribution registry, shared by a module's tests (each uses its own repositories)."""
    need("docker-registry")
    d = Distribution(tmp_path_factory.mktemp("distribution")).start()
    yield d
    d.stop()


@pytest.fixture
def fresh_dist(tmp_path: Path) -> Iterator[Distribution]:
    """A distribution registry of the test's own (to kill or corrupt)."""
    need("docker-registry")
    d = Distribution(tmp_path / "distribution").start()
    yield d
    d.stop()


def quick_client(**kw: object) -> Client:
    """A client that gives up fast (tests kill registries on purpose)."""
    return Client(ClientOptions(**{"retries": 1, "backoff": 0.05, **kw}))  # type: ignore[arg-type]


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
