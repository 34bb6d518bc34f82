"""Build benchmark: dockyard build against docker build (classic builder, DOCKER_BUILDKIT=0).

Run as root:  .venv/bin/python -m bench.bench_build [--runs 3] [--files 20000] [--no-docker] [--write]
(DOCKER_HOST pointing at a running engine is used; otherwise bench_archive's private one is started.)
With --registry-cache: the registry cache instead (see ``registry_cache``).

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


# ------------------------------------------------------------ registry cache ---

CPU_STEPS = "FROM busybox\nCOPY files/ /files/\n" + "".join(
    f"RUN i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; ls /files | wc -l > /count{n}\n"
    for n in range(3)
)
BIG_LAYER = "FROM busybox\nRUN head -c 67108864 /dev/urandom > /blob\nRUN md5sum /blob > /blob.md5\n"


def registry_cache(args: argparse.Namespace) -> list[tuple[str, float, float, float]]:
    """The second machine of a CI: a clean store (a new --root) builds with
    ``--cache-from type=registry`` against a cold build on a clean store.

    One store builds each case once with ``--cache-to …,mode=max`` (timed: the
    export's cost, build included) to our registry on 127.0.0.1; then each run
    makes two new stores, pulls the base into both (not timed) and times a cold
    build in one and the cache-importing build in the other.  Rows: (case,
    cold, from the registry cache, export)."""
    from support.peers import start_ours

    tar = subprocess.run(
        [str(REPO / "fixtures/make-busybox-rootfs.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="dycache-") as tmp:
        work = Path(tmp)
        server = start_ours(work / "registry")
        try:
            host = server.host
            base = f"{host}/bench/busybox:latest"

            def dy(store: Path, *a: str) -> list[str]:
                return [*DOCKYARD, "--root", str(store), *a]

            src = work / "src"
            subprocess.run(
                dy(src, "import", "-c", 'CMD ["sh"]', tar, base), check=True, cwd=REPO, capture_output=True
            )
            subprocess.run(dy(src, "tag", base, "busybox:latest"), check=True, cwd=REPO)
            subprocess.run(dy(src, "push", base), check=True, cwd=REPO, capture_output=True)
            cases = [
                (
                    f"COPY {args.files:,} x 512 B + 3 CPU-bound RUN",
                    make_context(work / "cpu", CPU_STEPS, args.files),
                ),
                ("RUN writing 64 MiB + RUN reading it", make_context(work / "big", BIG_LAYER)),
            ]
            for i, (name, ctx) in enumerate(cases):
                ref = f"type=registry,ref={host}/bench/cache{i}:latest"
                export = timed(dy(src, "build", "-q", "--cache-to", f"{ref},mode=max", str(ctx)))
                cold: list[float] = []
                cached: list[float] = []
                for r in range(args.runs):
                    for kind, out in (("cold", cold), ("cached", cached)):
                        store = work / f"{kind}-{i}-{r}"
                        subprocess.run(
                            dy(store, "pull", "-q", base), check=True, cwd=REPO, capture_output=True
                        )
                        subprocess.run(dy(store, "tag", base, "busybox:latest"), check=True, cwd=REPO)
                        flags = ["--no-cache"] if kind == "cold" else ["--cache-from", ref]
                        out.append(timed(dy(store, "build", "-q", *flags, str(ctx))))
                        subprocess.run(["rm", "-rf", str(store)], check=True)
                rows.append((name, median(cold), median(cached), export))
                print(f"{name}: done", file=sys.stderr)
        finally:
            server.stop()
    return rows


def cache_table(rows: list[tuple[str, float, float, float]]) -> str:
    lines = [
        "| build on a clean store | cold (`--no-cache`) | `--cache-from type=registry` | cold / cached "
        "| first build with `--cache-to …,mode=max` |",
        "|---|---|---|---|---|",
    ]
    for name, cold, cached, export in rows:
        lines.append(f"| {name} | {cold:.3f} s | {cached:.3f} s | {cold / cached:.2f}x | {export:.3f} s |")
    return "\n".join(lines)


def write_cache_doc(text: str, args: argparse.Namespace) -> None:
    doc = REPO / "docs/benchmarks.md"
    current = doc.read_text()
    cmd = f"python -m bench.bench_build --registry-cache --runs {args.runs} --files {args.files}"
    section = (
        "## Builder: registry cache on a clean store\n\n"
        f"`{cmd}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}; our registry on 127.0.0.1, gunicorn, 2 workers). A second "
        "CI machine is simulated by a new `--root` whose only image is the base, pulled first (not timed). "
        "Wall time of the build command, median of the runs. No peer beside it: docker 20.10's classic "
        "builder has no registry cache and BuildKit is not installed here.\n\n"
        f"{text}\n\n"
        "A hit costs the step's record (in the one cache document fetched at the start) and, for a "
        "step with a layer, that layer's download; it is unpacked only when a later step or a container "
        "needs its files. The COPY still reads the 20,000 files once to checksum them (the key is their "
        "content), which is most of the cached build's time. Where a step only writes bytes (the 64 MiB "
        "RUN), the gain is the difference between making them and fetching them over loopback.\n"
    )
    start = current.find("## Builder: registry cache")
    if start >= 0:
        end = current.find("\n## ", start + 1)
        current = current[:start] + section + (current[end + 1 :] if end >= 0 else "")
    else:
        at = current.find("\n## ", current.find("## Builder") + 1)
        current = (
            current[: at + 1] + section + "\n" + current[at + 1 :] if at >= 0 else current + "\n" + section
        )
    doc.write_text(current)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry-cache", action="store_true", help="bench the registry cache (a clean store)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--workdir", default="/var/tmp")
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = ap.parse_args()
    if args.registry_cache:
        text = cache_table(registry_cache(args))
        print(text)
        if args.write:
            write_cache_doc(text, args)
        return
    text = table(run(args), args.runs)
    print(text)
    if args.write:
        write_doc(text, args)


if __name__ == "__main__":
    main()
