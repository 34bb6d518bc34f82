"""Layer tar benchmark: imagefmt's write_layer/extract_layer against GNU tar and Python's tarfile.

Run as root:  PYTHONPATH=. .venv/bin/python -m bench.bench_layer [--files 20000] [--size-mb 1024] [--runs 3]

Two trees, each on tmpfs (/dev/shm) and on disk (/var/tmp): --files files of 512 B
(in directories of 200) and --size-mb of incompressible data (in 128 MiB files).
Each tool writes the tree to a tar file next to it, then extracts that tar.
Our operations and tarfile run in a fresh interpreter each, timed inside (the
import and start-up are left out) with their peak RSS; GNU tar is timed as a
process. Figures are medians of --runs (and the best run, since the machine
may be shared); "x GNU" is GNU tar's median time over the tool's.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SMALL = 512
BIG_FILE = 128 << 20
RSS_LIMIT_MB = 100
KINDS = {
    "write_layer": "write",
    "GNU tar -cf": "write",
    "tarfile write": "write",
    "extract_layer": "extract",
    "GNU tar -xf": "extract",
}


def make_small_tree(root: Path, files: int) -> None:
    for i in range(files):
        d = root / f"d{i // 200:04d}"
        if i % 200 == 0:
            d.mkdir(parents=True)
        (d / f"f{i % 200:03d}").write_bytes(os.urandom(SMALL))


def make_big_tree(root: Path, size_mb: int) -> None:
    root.mkdir(parents=True)
    left = size_mb << 20
    n = 0
    while left:
        size = min(left, BIG_FILE)
        with open(root / f"blob{n}.bin", "wb") as f:
            for _ in range(size >> 20):
                f.write(os.urandom(1 << 20))
        left -= size
        n += 1


def child(op: str, src: Path, dst: Path) -> None:
    """Run one operation in this (fresh) process; print seconds and peak RSS as JSON."""
    from imagefmt.layer import extract_layer, write_layer

    t = time.perf_counter()
    if op == "ours-write":
        with open(dst, "wb") as f:
            write_layer(src, f)
    elif op == "ours-extract":
        with open(src, "rb") as f:
            extract_layer(f, dst)
    elif op == "tarfile-write":
        with tarfile.open(dst, "w") as tf:
            for name in sorted(os.listdir(src)):
                tf.add(src / name, arcname=name)
    else:
        raise SystemExit(f"unknown op {op}")
    seconds = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb}))


def run_child(op: str, src: Path, dst: Path) -> tuple[float, float]:
    os.sync()  # start each tool without the previous one's dirty pages
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_layer", "--child", op, str(src), str(dst)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{op} failed: {out.stderr}")
    result = json.loads(out.stdout)
    return result["seconds"], result["rss_mb"]


def run_gnu(cmd: list[str]) -> float:
    os.sync()
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def fresh(path: Path) -> Path:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    return path


def measure(work: Path, src: Path, runs: int) -> dict[str, tuple[float, float, float]]:
    """Median seconds, best seconds and max RSS of each tool's write and extract of ``src``."""
    tar, dst = work / "layer.tar", work / "out"
    times: dict[str, list[float]] = {}
    rss: dict[str, float] = {}

    def record(name: str, seconds: float, mb: float = 0.0) -> None:
        times.setdefault(name, []).append(seconds)
        rss[name] = max(rss.get(name, 0.0), mb)

    for _ in range(runs):
        record("tarfile write", *run_child("tarfile-write", src, fresh(tar)))
        record("GNU tar -cf", run_gnu(["tar", "-cf", str(fresh(tar)), "-C", str(src), "."]))
        fresh(dst).mkdir()
        record("GNU tar -xf", run_gnu(["tar", "-xf", str(tar), "-C", str(dst)]))
        record("write_layer", *run_child("ours-write", src, fresh(tar)))
        record("extract_layer", *run_child("ours-extract", tar, fresh(dst)))
    fresh(dst)
    fresh(tar)
    return {name: (statistics.median(ts), min(ts), rss[name]) for name, ts in times.items()}


def report(title: str, results: dict[str, tuple[float, float, float]], entries: int, size: int) -> list[str]:
    lines = [
        f"| {title} | median s | files/s | MB/s | best files/s | x GNU | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    gnu = {"write": results["GNU tar -cf"][0], "extract": results["GNU tar -xf"][0]}
    for name, kind in KINDS.items():
        seconds, best, mb = results[name]
        rss = f"{mb:.0f} MB" if mb else "-"
        lines.append(
            f"| {name} | {seconds:.3f} | {entries / seconds:,.0f} | {size / seconds / 1e6:,.0f} | "
            f"{entries / best:,.0f} | {gnu[kind] / seconds:.2f} | {rss} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("OP", "SRC", "DST"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        op, src, dst = args.child
        child(op, Path(src), Path(dst))
        return 0
    out: list[str] = []
    worst_rss = 0.0
    for place in (Path("/dev/shm"), Path("/var/tmp")):
        work = place / f"dockyard-bench-layer-{os.getpid()}"
        try:
            datasets = (
                (f"{args.files:,} x 512 B", functools.partial(make_small_tree, files=args.files)),
                (f"{args.size_mb:,} MiB", functools.partial(make_big_tree, size_mb=args.size_mb)),
            )
            for label, make in datasets:
                src = work / "src"
                make(src)
                entries = sum(len(ds) + len(fs) for _, ds, fs in os.walk(src))
                size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
                results = measure(work, src, args.runs)
                worst_rss = max(worst_rss, results["write_layer"][2], results["extract_layer"][2])
                fs = "tmpfs" if place.name == "shm" else "disk"
                out += report(f"{label}, {fs}", results, entries, size) + [""]
                print("\n".join(out[-9:]), flush=True)
                fresh(src)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    verdict = "OK" if worst_rss < RSS_LIMIT_MB else "OVER"
    print(f"peak RSS of write_layer/extract_layer: {worst_rss:.0f} MB ({verdict}, limit {RSS_LIMIT_MB} MB)")
    return 0 if worst_rss < RSS_LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
