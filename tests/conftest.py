"""Shared fixtures; the registry's live servers are in tests/registry_support.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.registry_support import Server, start_distribution, start_ours


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
