"""save/load benchmark: dockyard against docker, skopeo and the GNU tar + sha256sum floor.

Run as root:  .venv/bin/python -m bench.bench_archive [--size-mb 1024] [--files 20000]

Two images: 5 layers of incompressible data (--size-mb in all) and one layer of
--files small files (512 B).  Every tool works on the same tarball; the ratio
printed is tool time / dockyard time (> 1 means dockyard is faster).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from support.peers import BENCH_DOCKERD, start_dockerd

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], **kw: object) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t


def dockyard(root: Path, *args: str) -> tuple[float, int]:
    """Time one dockyard command in a fresh interpreter; return (seconds, peak RSS in MB)."""
    code = (
        "import resource, sys, cli\n"
        "rc = cli.main(sys.argv[1:])\n"
        "sys.stderr.write(f'MAXRSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n')\n"
        "sys.exit(rc)\n"
    )
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", code, "--root", str(root), *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"dockyard {' '.join(args)} failed: {r.stderr}")
    rss = next(int(line.split()[1]) for line in r.stderr.splitlines() if line.startswith("MAXRSS"))
    return elapsed, rss // 1024


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def make_tree_random(root: Path, layers: int, total_mb: int) -> list[Path]:
    dirs = []
    per = total_mb // layers
    for i in range(layers):
        d = root / f"tree{i}"
        (d / f"data{i}").mkdir(parents=True)
        for j in range(4):
            with open(d / f"data{i}" / f"blob{j}.bin", "wb") as f:
                left = per * (1 << 20) // 4
                while left:
                    n = min(left, 1 << 20)
                    f.write(os.urandom(n))
                    left -= n
        dirs.append(d)
    return dirs


def make_tree_small(root: Path, files: int) -> list[Path]:
    d = root / "small"
    for i in range(files):
        sub = d / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        (sub / f"f{i:05d}.txt").write_bytes(os.urandom(256).hex().encode())
    return [d]


def make_archive(work: Path, trees: list[Path], name: str) -> Path:
    """A Docker 25-style tarball (OCI layout + manifest.json) made with GNU tar."""
    blobs = work / f"{name}-layout" / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    diff_ids: list[str] = []
    layers: list[dict[str, Any]] = []
    for t in trees:
        tmp = work / f"{name}-layer.tar"
        subprocess.run(
            ["tar", "--sort=name", "--numeric-owner", "-cf", str(tmp), "-C", str(t), "."], check=True
        )
        hx = sha256_file(tmp)
        os.replace(tmp, blobs / hx)
        diff_ids.append(f"sha256:{hx}")
        layers.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": f"sha256:{hx}",
                "size": (blobs / hx).stat().st_size,
            }
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    chex = hashlib.sha256(config).hexdigest()
    (blobs / chex).write_bytes(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{chex}",
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    mhex = hashlib.sha256(manifest).hexdigest()
    (blobs / mhex).write_bytes(manifest)
    layout = blobs.parent.parent
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": f"sha256:{mhex}",
                        "size": len(manifest),
                        "annotations": {
                            "io.containerd.image.name": f"docker.io/library/{name}:latest",
                            "org.opencontainers.image.ref.name": "latest",
                        },
                    }
                ],
            }
        )
    )
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "manifest.json").write_text(
        json.dumps(
            [
                {
                    "Config": f"blobs/sha256/{chex}",
                    "RepoTags": [f"{name}:latest"],
                    "Layers": [f"blobs/sha256/{x['digest'][7:]}" for x in layers],
                }
            ]
        )
    )
    out = work / f"{name}.tar"
    subprocess.run(["tar", "-cf", str(out), "-C", str(layout), "."], check=True)
    shutil.rmtree(layout)
    return out


def start_docker() -> dict[str, str] | None:
    """The environment of a private engine for the comparison (support/peers.py), or None without dockerd."""
    if shutil.which("dockerd") is None:
        return None
    return start_dockerd(BENCH_DOCKERD).env


def bench_one(
    work: Path, archive: Path, name: str, trees: list[Path], docker_env: dict[str, str] | None
) -> None:
    size_mb = archive.stat().st_size / 1e6
    print(f"\n## {name}: {size_mb:.0f} MB tarball, {len(trees)} layer(s)")
    rows: list[tuple[str, float, str]] = []
    root = work / f"store-{name}"
    t_load, rss_load = dockyard(root, "load", "-i", str(archive))
    out = work / f"{name}-saved.tar"
    t_save, rss_save = dockyard(root, "save", "-o", str(out), f"{name}:latest")
    rows += [
        ("dockyard load", t_load, f"peak RSS {rss_load} MB"),
        ("dockyard save", t_save, f"peak RSS {rss_save} MB"),
    ]
    # the physical floor: unpack with GNU tar and hash; write with GNU tar and hash
    floor_dir = work / "floor"
    floor_dir.mkdir()
    t = time.perf_counter()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(floor_dir)], check=True)
    for blob in (floor_dir / "blobs" / "sha256").iterdir():
        if blob.stat().st_size > 4096:
            (floor_dir / "x").mkdir(exist_ok=True)
            subprocess.run(["tar", "-xf", str(blob), "-C", str(floor_dir / "x")], check=True)
    subprocess.run(
        ["sha256sum", *map(str, (floor_dir / "blobs" / "sha256").iterdir())],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    t_floor_load = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(["tar", "-cf", str(work / "floor.tar"), "-C", str(floor_dir / "blobs"), "."], check=True)
    subprocess.run(["sha256sum", str(work / "floor.tar")], check=True, stdout=subprocess.DEVNULL)
    t_floor_save = time.perf_counter() - t
    shutil.rmtree(floor_dir)
    (work / "floor.tar").unlink()
    rows += [
        ("tar -x + sha256sum (floor)", t_floor_load, ""),
        ("tar -c + sha256sum (floor)", t_floor_save, ""),
    ]
    if shutil.which("skopeo"):
        oci = work / "skopeo-oci"
        rows.append(
            (
                "skopeo copy docker-archive: -> oci:",
                timed(["skopeo", "copy", "-q", f"docker-archive:{archive}", f"oci:{oci}:x"]),
                "",
            )
        )
        back = work / "skopeo.tar"
        rows.append(
            (
                "skopeo copy oci: -> docker-archive:",
                timed(["skopeo", "copy", "-q", f"oci:{oci}:x", f"docker-archive:{back}:x:1"]),
                "",
            )
        )
        shutil.rmtree(oci)
        back.unlink()
    if docker_env:
        rows.append(("docker load", timed(["docker", "load", "-i", str(archive)], env=docker_env), ""))
        dsave = work / "docker-saved.tar"
        rows.append(
            ("docker save", timed(["docker", "save", "-o", str(dsave), f"{name}:latest"], env=docker_env), "")
        )
        subprocess.run(["docker", "rmi", f"{name}:latest"], env=docker_env, capture_output=True)
        dsave.unlink()
    print(f"{'operation':40} {'seconds':>8} {'MB/s':>8}  ratio vs dockyard")
    for label, secs, note in rows:
        ours = t_load if ("load" in label or "-x" in label or "-> oci" in label) else t_save
        ratio = f"{secs / ours:5.2f}x" if not label.startswith("dockyard") else ""
        print(f"{label:40} {secs:8.2f} {size_mb / secs:8.0f}  {ratio} {note}")
    shutil.rmtree(root)
    out.unlink()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--workdir", default="/var/tmp")
    ap.add_argument("--no-docker", action="store_true")
    args = ap.parse_args()
    docker_env = None if args.no_docker else start_docker()
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="dybench-") as tmp:
        work = Path(tmp)
        trees = make_tree_random(work, 5, args.size_mb)
        archive = make_archive(work, trees, "big")
        for t in trees:
            shutil.rmtree(t)
        bench_one(work, archive, "big", trees, docker_env)
        archive.unlink()
        trees = make_tree_small(work, args.files)
        archive = make_archive(work, trees, "small")
        bench_one(work, archive, "small", trees, docker_env)


if __name__ == "__main__":
    main()
