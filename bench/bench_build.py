"""Build benchmark: dockyard build against docker build (classic builder, DOCKER_BUILDKIT=0).

Run as root:  .venv/bin/python -m bench.bench_build [--runs 3] [--files 20000] [--no-docker] [--write]
(DOCKER_HOST pointing at a running engine is used; otherwise bench_archive's private one is started.)

The same Dockerfiles and contexts for both tools, each built cold (--no-cache)
and then again from cache; medians of --runs.  The ratio is docker / dockyard
(> 1: dockyard is faster).  --write puts the table under "## Builder" in
docs/benchmarks.md.  Reference figures from shared/peers/README.md (buildah
1.28 and docker 20.10 on this kind of machine) are printed beside ours.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_archive import start_docker

REPO = Path(__file__).resolve().parent.parent
PEERS = {  # shared/peers/README.md: buildah bud --layers and docker classic, medians
    "10 RUN, cold": ("2.84", "3.09"),
    "10 RUN, cached": ("0.199", "0.070"),
    "COPY 20,000 x 512 B, cold": ("6.5", "27.7"),
    "COPY 20,000 x 512 B, cached": ("3.8", "14.4"),
    "multi-stage, cold": ("0.77", "-"),
    "multi-stage, cached": ("0.20", "-"),
}

TEN_RUN = "FROM busybox\n" + "".join(f"RUN echo {i} > /f{i}\n" for i in range(1, 11))
COPY_MANY = "FROM busybox\nCOPY files/ /files/\n"
COPY_THEN_RUN = "FROM busybox\nCOPY files/ /files/\nRUN ls /files | wc -l\n"
MULTI = (
    "FROM busybox AS a\nRUN echo a > /a\n"
    "FROM busybox AS b\nRUN echo b > /b\n"
    "FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nRUN cat /a /b > /ab\n"
)


# the CLI as the installed entry point runs it: imported (bytecode cached), not compiled as __main__
DOCKYARD = [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())"]


def make_context(root: Path, dockerfile: str, files: int = 0) -> Path:
    root.mkdir(parents=True)
    (root / "Dockerfile").write_text(dockerfile)
    if files:
        d = root / "files"
        d.mkdir()
        block = os.urandom(512)
        for i in range(files):
            with open(d / f"f{i:05d}", "wb") as f:
                f.write(block[i % 512 :] + block[: i % 512])
    return root


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr}")
    return elapsed


def median(f: list[float]) -> float:
    return statistics.median(f)


def bench_case(
    name: str, ctx: Path, store: Path, docker_env: dict[str, str] | None, runs: int
) -> list[tuple[str, float, float | None]]:
    ours_cmd = [*DOCKYARD, "--root", str(store), "build", "-q", "-t", "bench", str(ctx)]
    docker_cmd = ["docker", "build", "-q", "-t", "bench", str(ctx)]
    rows = []
    for label, extra in (("cold", ["--no-cache"]), ("cached", [])):
        ours = [timed([*ours_cmd[:-1], *extra, str(ctx)]) for _ in range(runs)]
        theirs = None
        if docker_env is not None:
            theirs = median([timed([*docker_cmd[:-1], *extra, str(ctx)], docker_env) for _ in range(runs)])
        rows.append((f"{name}, {label}", median(ours), theirs))
    return rows


def run(args: argparse.Namespace) -> list[tuple[str, float, float | None]]:
    docker_env = None
    if not args.no_docker:
        host = os.environ.get("DOCKER_HOST")
        env = {**os.environ}
        if host and subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0:
            docker_env = env  # an engine that is already running (the tests' or the peers' one)
        else:
            docker_env = start_docker()
    if docker_env is not None:
        docker_env = {**docker_env, "DOCKER_BUILDKIT": "0"}
    tar = subprocess.run(
        [str(REPO / "fixtures/make-busybox-rootfs.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    rows: list[tuple[str, float, float | None]] = []
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="dybuild-") as tmp:
        work = Path(tmp)
        store = work / "store"
        # bytecode as an installed package has it (PYTHONDONTWRITEBYTECODE may be set here)
        packages = [
            "builder",
            "imagefmt",
            "runtime",
            "registry",
            "engine",
            "commands",
            "cli.py",
        ]  # registry: build's fetch
        subprocess.run([sys.executable, "-m", "compileall", "-q", *packages],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        subprocess.run(
            [*DOCKYARD, "--root", str(store), "import", "-c", 'CMD ["sh"]', tar, "busybox"],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if docker_env is not None:
            subprocess.run(
                ["docker", "import", "-c", 'CMD ["sh"]', tar, "busybox:latest"],
                env=docker_env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        cases = [
            ("10 RUN", make_context(work / "ten", TEN_RUN)),
            (f"COPY {args.files:,} x 512 B", make_context(work / "copy", COPY_MANY, args.files)),
            (f"COPY {args.files:,} x 512 B + RUN", make_context(work / "copyrun", COPY_THEN_RUN, args.files)),
            ("multi-stage", make_context(work / "multi", MULTI)),
        ]
        for name, ctx in cases:
            rows += bench_case(name, ctx, store, docker_env, args.runs)
            print(f"{name}: done", file=sys.stderr)
        if docker_env is not None:
            subprocess.run(["docker", "rmi", "-f", "bench"], env=docker_env, capture_output=True)
    return rows


def table(rows: list[tuple[str, float, float | None]], runs: int) -> str:
    lines = [
        "| build | dockyard | docker build (classic) | docker / dockyard | peers README: buildah / docker |",
        "|---|---|---|---|---|",
    ]
    for name, ours, theirs in rows:
        ratio = f"{theirs / ours:.2f}x" if theirs else "-"
        peer = PEERS.get(name, ("-", "-"))
        lines.append(
            f"| {name} | {ours:.3f} s | {f'{theirs:.3f} s' if theirs else '-'} | {ratio} | "
            f"{peer[0]} s / {peer[1]} s |".replace("- s", "-")
        )
    return "\n".join(lines)


def write_doc(text: str, args: argparse.Namespace) -> None:
    doc = REPO / "docs/benchmarks.md"
    current = doc.read_text() if doc.exists() else "# Benchmarks\n"
    cmd = "python -m bench.bench_build " + " ".join(
        a
        for a in (f"--runs {args.runs}", f"--files {args.files}", "--no-docker" if args.no_docker else "")
        if a
    )
    section = (
        "## Builder\n\n"
        f"`{cmd}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}; store and contexts on the same ext4 disk). Wall time of "
        "the whole command (CLI start included), median of the runs; cold = `--no-cache`, cached = the "
        "same build again. Docker is 20.10 with `DOCKER_BUILDKIT=0`.\n\n"
        f"{text}\n\n"
        "How: a RUN's overlay upperdir is the layer (no tree walk) and becomes the snapshot by rename; "
        "COPY writes its layer tar straight from the context and the snapshot is unpacked only when a "
        "later step or container needs the files (the `+ RUN` row pays for that unpacking); cache keys "
        "are content checksums, so a cached COPY reads the sources once and writes nothing.\n"
    )
    start = current.find("## Builder")
    if start >= 0:
        end = current.find("\n## ", start + 1)
        current = current[:start] + section + (current[end + 1 :] if end >= 0 else "")
    else:
        current = current.rstrip("\n") + "\n\n" + section
    doc.write_text(current)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--workdir", default="/var/tmp")
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = ap.parse_args()
    text = table(run(args), args.runs)
    print(text)
    if args.write:
        write_doc(text, args)


if __name__ == "__main__":
    main()
