"""Container start-to-exit latency: dockyard against runc, docker and a bare unshare+chroot.

Run as root from the repository root:

    .venv/bin/python -m bench.bench_runtime [--runs 20] [--loop 100] [--docker-host unix:///PATH]

Every runtime runs ``true`` in the same busybox root filesystem
(fixtures/make-busybox-rootfs.sh), with no network (``--network none``; the
Docker engine of these machines has no bridge), and is timed as a whole
process from the shell's point of view: ``dockyard run --rm`` (the command
scripts/setup.sh installs, written by scripts/write-launcher.sh for this
checkout, bytecode compiled as an installed package has it), ``runc run``
on an OCI bundle, ``docker run --rm`` against the engine at --docker-host (or
$DOCKER_HOST; skipped without one), and ``unshare -mpfnui chroot`` as the floor,
with the Python interpreter importing the standard modules a start needs as a
second floor.  The runtimes take turns, one run each per round, so that the
machine's drift falls on all of them alike.
Then ``--loop`` containers are run and removed (on the default bridge network,
so veths and leases are exercised too) and the host is checked for leftover
mounts, cgroups, veths, state directories and leases.  The medians and ratios
are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], **kw: object) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t


def launcher(work: Path) -> Path:
    """The ``dockyard`` command as scripts/setup.sh installs it, for this checkout."""
    path = work / "dockyard"
    subprocess.run([str(REPO / "scripts/write-launcher.sh"), sys.executable, str(path)], check=True)
    return path


def dockyard_cmd(dockyard: Path, root: Path, *args: str) -> list[str]:
    return [str(dockyard), "--root", str(root), *args]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def busybox_tar() -> Path:
    out = subprocess.run(
        [str(REPO / "fixtures/make-busybox-rootfs.sh")], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


Command = Callable[[int], list[str]]  # round i -> the command to time in that round


def bench_dockyard(dockyard: Path, root: Path, network: str) -> Command:
    cmd = dockyard_cmd(dockyard, root, "run", "--rm", "--network", network, "busybox", "true")
    subprocess.run(cmd, check=True, cwd=REPO)  # warm the page cache and the snapshot
    return lambda i: cmd


def trace_once(dockyard: Path, root: Path) -> list[tuple[float, str]]:
    """One traced run: (ms since exec, label) for each mark of runtime.trace."""
    with tempfile.NamedTemporaryFile("r", suffix=".trace") as f:
        env = {**os.environ, "DOCKYARD_TRACE": f.name}
        t0 = time.time()
        subprocess.run(
            dockyard_cmd(dockyard, root, "run", "--rm", "--network", "none", "busybox", "true"),
            env=env,
            cwd=REPO,
            check=True,
        )
        end = time.time()
        marks = [
            ((float(t) - t0) * 1000, label.strip()) for _, t, label in (line.split(None, 2) for line in f)
        ]
    return [*marks, ((end - t0) * 1000, "CLI exited")]


def bench_runc(rootfs: Path, work: Path) -> Command:
    bundle = work / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"]["path"] = str(rootfs)
    spec["process"]["args"] = ["true"]
    spec["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(spec))
    state = work / "runc-state"
    cmd = ["runc", "--root", str(state), "run", "--bundle", str(bundle)]
    subprocess.run([*cmd, "warm"], check=True)
    return lambda i: [*cmd, f"bench{i}"]


@contextlib.contextmanager
def bench_docker(tar: Path, host: str) -> Iterator[Command]:
    os.environ["DOCKER_HOST"] = host  # for the timed runs too: timed() passes no env
    tag = f"dockyard-bench/busybox:{os.getpid()}"
    subprocess.run(
        ["docker", "import", "-c", 'CMD ["sh"]', str(tar), tag], check=True, stdout=subprocess.DEVNULL
    )
    try:
        cmd = ["docker", "run", "--rm", "--network", "none", tag, "true"]
        subprocess.run(cmd, check=True)
        yield lambda i: cmd
    finally:
        subprocess.run(["docker", "rmi", tag], stdout=subprocess.DEVNULL, check=False)


def bench_unshare(rootfs: Path) -> Command:
    cmd = ["unshare", "-m", "-p", "-f", "-n", "-u", "-i", "chroot", str(rootfs), "/bin/true"]
    return lambda i: cmd


def python_floor() -> Command:
    """The interpreter the launcher runs, with the standard modules a container start
    cannot do without (argparse for the command line, pathlib for paths, json for the
    records, socket for attaching, ctypes for mount(2)), and nothing of ours."""
    cmd = [sys.executable, "-S", "-c", "import argparse, json, pathlib, socket, ctypes"]
    return lambda i: cmd


def interleaved(commands: dict[str, Command], runs: int) -> dict[str, list[float]]:
    """Time each command once per round, round after round: the machine's drift
    (other tenants, CPU steal) then falls on all of them alike."""
    results: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(runs):
        for name, command in commands.items():
            results[name].append(timed(command(i), cwd=REPO))
    return results


def host_state(root: Path) -> dict[str, list[str]]:
    with open("/proc/self/mountinfo") as info:
        mounts = sorted(m for line in info if (m := line.split()[4]).startswith(str(root)))
    cgroups = sorted(
        str(p)
        for ctrl in Path("/sys/fs/cgroup").iterdir()
        if (ctrl / "dockyard").is_dir()
        for p in (ctrl / "dockyard").iterdir()
        if p.is_dir()
    )
    veths = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith("veth"))
    cdir = root / "containers"
    states = sorted(p.name for p in cdir.iterdir() if not p.name.startswith(".")) if cdir.exists() else []
    leases = []
    for f in (root / "networks").glob("*.json"):
        leases += list(json.loads(f.read_text())["Containers"])
    return {"mounts": mounts, "cgroups": cgroups, "veths": veths, "state dirs": states, "leases": leases}


def remove_bridges(root: Path) -> None:
    """The temporary store's default bridge (bridges outlive stores, like docker0)."""
    sys.path.insert(0, str(REPO))
    from runtime.network.bridge import NetworkStore, drop_bridge

    drop_bridge(NetworkStore(root).default_bridge())  # and its NAT rules


def loop(dockyard: Path, root: Path, n: int) -> tuple[float, dict[str, list[str]]]:
    before = host_state(root)
    t = time.perf_counter()
    for _ in range(n):
        subprocess.run(dockyard_cmd(dockyard, root, "run", "--rm", "busybox", "true"), check=True, cwd=REPO)
    elapsed = time.perf_counter() - t
    after = host_state(root)
    return elapsed, {k: sorted(set(after[k]) - set(before[k])) for k in after}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--loop", type=int, default=100)
    ap.add_argument("--docker-host", default=os.environ.get("DOCKER_HOST", ""))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_runtime needs root")
    compileall.compile_dir(REPO / "runtime", quiet=1)
    compileall.compile_dir(REPO / "imagefmt", quiet=1)
    compileall.compile_dir(REPO / "engine", quiet=1)
    compileall.compile_dir(REPO / "commands", quiet=1)
    compileall.compile_file(REPO / "cli.py", quiet=1)
    tar = busybox_tar()
    with tempfile.TemporaryDirectory(prefix="dybench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        root = work / "store"
        dockyard = launcher(work)
        imp = dockyard_cmd(dockyard, root, "import", "-c", 'CMD ["sh"]', str(tar), "busybox")
        subprocess.run(imp, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        rootfs = work / "rootfs"
        rootfs.mkdir()
        subprocess.run(["tar", "-xf", str(tar), "-C", str(rootfs)], check=True)
        commands = {
            "dockyard run --rm --network none": bench_dockyard(dockyard, root, "none"),
            "dockyard run --rm (bridge)": bench_dockyard(dockyard, root, "bridge"),
            "runc run": bench_runc(rootfs, work),
        }
        with contextlib.ExitStack() as stack:
            if args.docker_host:
                commands["docker run --rm --network none"] = stack.enter_context(
                    bench_docker(tar, args.docker_host)
                )
            commands["unshare -mpfnui + chroot"] = bench_unshare(rootfs)
            commands["python -S, importing argparse json pathlib socket ctypes"] = python_floor()
            results = interleaved(commands, args.runs)
        marks = trace_once(dockyard, root)
        elapsed, leaked = loop(dockyard, root, args.loop)
        remove_bridges(root)
    ours = median_ms(results["dockyard run --rm --network none"])
    print(f"start-to-exit of `true`, median of {args.runs} (load average {os.getloadavg()[0]:.2f}):\n")
    print("| runtime | median ms | min ms | vs dockyard |")
    print("|---|---|---|---|")
    for name, samples in results.items():
        med = median_ms(samples)
        print(f"| {name} | {med:.1f} | {min(samples) * 1000:.1f} | {med / ours:.2f}x |")
    print("\none traced `dockyard run --rm --network none busybox true` (ms since the shell started it):\n")
    for ms, label in marks:
        print(f"    {ms:7.1f}  {label}")
    each = elapsed / max(args.loop, 1) * 1000
    print(f"\n{args.loop} x `run --rm busybox true` (bridge): {elapsed:.1f} s, {each:.0f} ms each")
    print("left behind:", "nothing" if not any(leaked.values()) else json.dumps(leaked))
    return 1 if any(leaked.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
