"""The installed ``dockyard`` command (scripts/write-launcher.sh): ``python -S`` with the
directories site would add, so every verb still finds dockyard and its third-party packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_launcher_runs_verbs_that_need_site_packages(tmp_path: Path) -> None:
    dockyard = tmp_path / "dockyard"
    subprocess.run([str(REPO / "scripts/write-launcher.sh"), sys.executable, str(dockyard)], check=True)
    assert dockyard.read_text().startswith(f"#!{sys.executable} -S\n")
    out = subprocess.run([str(dockyard), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout == "dockyard version 0.1.0\n"
    # cryptography comes from the venv's site-packages, which only the launcher puts on sys.path
    subprocess.run(
        [str(dockyard), "registry", "gen-certs", str(tmp_path / "certs")], capture_output=True, check=True
    )
    assert (tmp_path / "certs/ca/ca.crt").is_file()
    before = dockyard.stat().st_mtime_ns
    subprocess.run([str(REPO / "scripts/write-launcher.sh"), sys.executable, str(dockyard)], check=True)
    assert dockyard.stat().st_mtime_ns == before  # idempotent: unchanged, not rewritten
