"""What ``pull`` prints when the store has the image already, and its layer lines on
a terminal that reports no size: as docker's CLI prints them."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from imagefmt.store import Store
from tests import client_fixtures as cf
from tests.conftest import REPO, Dockyard

docker_config = cf.docker_config
reg = cf.reg

pytestmark = pytest.mark.interop


def test_pull_of_an_image_the_store_has_downloads_nothing(reg: cf.Live, dy: Dockyard, tmp_path: Path) -> None:
    """Built here and pushed, then pulled: docker's pull sees the image's config in its
    store and prints no layer line (it printed Pulling fs layer / Download complete)."""
    ref = f"{reg.host}/held/app:1"
    image_id = cf.local_image(Store(dy.root), tmp_path, ref, seed=12)
    digest = dy.ok("push", ref).splitlines()[-1].split()[2]
    blobs = sorted(p.name for p in (dy.root / "blobs/sha256").iterdir())
    assert dy.ok("pull", ref).splitlines() == [
        "1: Pulling from held/app",
        f"Digest: {digest}",
        f"Status: Image is up to date for {ref}",
        ref,
    ]
    assert sorted(p.name for p in (dy.root / "blobs/sha256").iterdir()) == blobs  # nothing downloaded
    # known by another name only: named again, still nothing to download
    dy.ok("tag", ref, "kept:1")
    dy.ok("rmi", ref)
    out = dy.ok("pull", ref).splitlines()
    assert out == [
        "1: Pulling from held/app",
        f"Digest: {digest}",
        f"Status: Downloaded newer image for {ref}",
        ref,
    ]
    image = Store(dy.root).image(f"{reg.host}/held/app@{digest}")
    assert str(image.id) == image_id and {t.familiar() for t in image.tags} == {ref, "kept:1"}


def _on_a_pty(argv: list[str], env: dict[str, str]) -> tuple[str, bytes]:
    """Run ``argv`` with stderr on a new pty, never sized (0x0): (stdout, the pty's bytes)."""
    ours, theirs = pty.openpty()
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=theirs, stdin=subprocess.DEVNULL, env=env
    ) as p:
        os.close(theirs)
        seen = b""
        while True:
            ready, _, _ = select.select([ours], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(ours, 65536)
                except OSError:  # EIO: the child closed its side
                    chunk = b""
                if not chunk:
                    break
                seen += chunk
            elif p.poll() is not None:
                break
        assert p.stdout is not None
        out = p.stdout.read().decode()
    os.close(ours)
    return out, seen


def test_layer_lines_on_a_terminal_of_no_size(reg: cf.Live, dy: Dockyard, tmp_path: Path) -> None:
    """A pty nobody sized reports 0x0: tqdm drew its bars 0 wide, so no layer line at
    all; now 80 columns."""
    ref = f"{reg.host}/tty/app:1"
    cf.local_image(Store(dy.root), tmp_path, ref, seed=13)
    dy.ok("push", ref)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    out, seen = _on_a_pty(
        [sys.executable, str(REPO / "cli.py"), "--root", str(tmp_path / "fresh"), "pull", ref], env
    )
    assert out.splitlines()[-1] == ref
    assert b": Pull complete" in seen and b": Pulling fs layer" in seen
