"""``docker run --rm busybox true`` through dockyard's Engine API service, the real
dockerd, and podman's API service: the same docker CLI, three daemons; then a
``docker build`` of the example app (fixtures/example) through each.

Run as root from the repository root:

    .venv/bin/python -m bench.bench_api [--runs 20] [--no-podman]

Each daemon gets the same busybox root filesystem (fixtures/make-busybox-rootfs.sh)
imported as an image, and runs ``true`` with ``--network none`` (the bench dockerd of
support/peers.py has no bridge): ``dockyard system service`` on a unix socket over a
fresh store, dockerd (support/peers.py BENCH_DOCKERD), and ``podman system service``
(Debian's podman, its own --root/--runroot) when installed.  The daemons take turns,
one run each per round, so the machine's drift falls on all of them alike; the
medians and the ratios to dockyard's are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.bench_runtime import busybox_tar, launcher
from support.peers import BENCH_DOCKERD, start_dockerd

REPO = Path(__file__).resolve().parent.parent


def wait_socket(path: Path, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while not path.is_socket():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up")
        time.sleep(0.05)


@contextlib.contextmanager
def service(
    cmd: list[str], sock: Path, what: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=out, start_new_session=True, cwd=REPO, env={**os.environ, **(env or {})}
        )
    try:
        wait_socket(sock, proc, what)
        yield f"unix://{sock}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def docker(host: str, *args: str) -> list[str]:
    return ["docker", "-H", host, *args]


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--builds", type=int, default=5)
    ap.add_argument("--no-podman", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_api needs root")
    tar = busybox_tar()
    hosts: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="dyapi-", dir="/var/tmp") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        dockyard = launcher(work)
        root = work / "store"
        subprocess.run(
            [str(dockyard), "--root", str(root), "import", "-c", 'CMD ["sh"]', str(tar), "busybox"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        sock = work / "dockyard.sock"
        cmd = [str(dockyard), "--root", str(root), "daemon", "-H", f"unix://{sock}"]
        hosts["dockyard system service"] = stack.enter_context(
            service(cmd, sock, "dockyard's service", work / "dockyard.log")
        )
        hosts["dockerd"] = start_dockerd(BENCH_DOCKERD).host
        if not args.no_podman and shutil.which("podman"):
            psock = work / "podman.sock"
            base = ["podman", "--root", str(work / "podman-root"), "--runroot", str(work / "podman-run")]
            subprocess.run([*base, "import", str(tar), "busybox"], check=True, stdout=subprocess.DEVNULL)
            stack.callback(unmount_under, work)  # podman leaves its storage's overlay mounted
            cmd = [*base, "system", "service", "--time", "0", f"unix://{psock}"]
            # podman raises nofile and nproc to 1048576 in each container by default, which
            # this machine's sandbox refuses (runc: "error setting rlimit"); docker sets none
            conf = work / "containers.conf"
            conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n')
            hosts["podman system service"] = stack.enter_context(
                service(cmd, psock, "podman's service", work / "podman.log", {"CONTAINERS_CONF": str(conf)})
            )
        tag = "busybox"
        if "dockerd" in hosts:  # the shared bench engine: an image of our own name there
            tag = f"dyapi-bench/busybox:{os.getpid()}"
            subprocess.run(
                docker(hosts["dockerd"], "import", "-c", 'CMD ["sh"]', str(tar), tag),
                check=True,
                stdout=subprocess.DEVNULL,
            )
            stack.callback(
                subprocess.run, docker(hosts["dockerd"], "rmi", tag), stdout=subprocess.DEVNULL, check=False
            )
        images = {name: tag if name == "dockerd" else "busybox" for name in hosts}
        commands = {
            name: docker(host, "run", "--rm", "--network", "none", images[name], "true")
            for name, host in hosts.items()
        }
        for cmd in commands.values():  # warm each daemon's caches
            subprocess.run(cmd, check=True)
        results: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                results[name].append(timed(cmd))
        ctx = example_context(work)
        builds = {
            name: docker(host, "build", "--no-cache", "-q", "--build-arg", f"BASE={images[name]}",
                         "-t", f"dyapi-bench/example:{os.getpid()}", str(ctx))
            for name, host in hosts.items()
        }  # fmt: skip
        built: dict[str, list[float]] = {name: [] for name in builds}
        for _ in range(args.builds):
            for name, cmd in builds.items():
                built[name].append(timed(cmd))
        for host in hosts.values():
            subprocess.run(docker(host, "rmi", f"dyapi-bench/example:{os.getpid()}"), capture_output=True)
    ours = statistics.median(results["dockyard system service"])
    print(f"`docker run --rm --network none busybox true` (docker CLI {client_version()}), ", end="")
    print(f"median of {args.runs}, load average {os.getloadavg()[0]:.2f}:\n")
    print("| daemon | median ms | min ms | vs dockyard |")
    print("|---|---|---|---|")
    for name, samples in results.items():
        med = statistics.median(samples)
        print(f"| {name} | {med * 1000:.1f} | {min(samples) * 1000:.1f} | {med / ours:.2f}x |")
    ours = statistics.median(built["dockyard system service"])
    print(f"\n`docker build --no-cache -q` of fixtures/example (classic builder), median of {args.builds}:\n")
    print("| daemon | median ms | min ms | vs dockyard |")
    print("|---|---|---|---|")
    for name, samples in built.items():
        med = statistics.median(samples)
        print(f"| {name} | {med * 1000:.1f} | {min(samples) * 1000:.1f} | {med / ours:.2f}x |")
    return 0


def unmount_under(path: Path) -> None:
    """Unmount whatever is mounted below ``path``, deepest first."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(f"{path}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def example_context(work: Path) -> Path:
    """fixtures/example for the classic builder of every daemon: its one heredoc
    (COPY <<EOF, BuildKit's syntax, which dockerd's and podman's classic builders lack)
    written as a file of the context instead."""
    ctx = work / "example"
    shutil.copytree(REPO / "fixtures/example", ctx)
    text = (ctx / "Dockerfile").read_text()
    start = text.index("COPY <<EOF /etc/httpd.conf\n")
    end = text.index("EOF\n", start + 30) + 4
    (ctx / "httpd.conf").write_text(text[start:end].split("\n", 1)[1].rsplit("EOF\n", 1)[0])
    (ctx / "Dockerfile").write_text(text[:start] + "COPY httpd.conf /etc/httpd.conf\n" + text[end:])
    return ctx


def client_version() -> str:
    out = subprocess.run(
        ["docker", "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True
    )
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
