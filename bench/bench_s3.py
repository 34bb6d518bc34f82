"""The registry on S3 (Ceph radosgw): dockyard against distribution 2.8.2, each on the same
radosgw bucket (its own prefix, 10 MiB parts, blob GETs redirected) and each on the filesystem.

    PYTHONPATH=. .venv/bin/python bench/bench_s3.py [--runs 2] [--json out.json]

scripts/start-s3.sh starts (or finds) the single-node Ceph.  Per server, the median of
``--runs`` rounds (each round measures every server in turn: the machine is shared):

- push and pull (skopeo copy) of a fresh 200 MB image of 5 random layers, and the CPU
  seconds the push cost skopeo, the registry, radosgw and the OSD (2 cores here: the sum
  over the push's seconds is how busy the machine was);
- manifest GET p50 / p99 over 1,000 requests on one keep-alive connection, beside the
  floor of the S3 store itself: a GET of a small object by boto3, p50 / p99;
- garbage collection of 1,000 unreferenced blobs (pushed as blobs, never in a
  manifest): ``dockyard registry garbage-collect --grace 0`` (online-safe, the
  server keeps running) and ``docker-registry garbage-collect`` (offline: stop the
  registry first, as its docs require), each as a subprocess, timed whole.

Ratios dockyard / distribution are printed for each store.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.registry_bench import MB, big_image, image_bytes, latency, skopeo_copy  # noqa: E402
from support.images import sha256, write_oci_layout  # noqa: E402
from support.peers import PYTHON, Ceph, Distribution, Peer, start_ceph, start_ours  # noqa: E402

GC_BLOBS = 1000
PREFIXES: dict[str, str] = {}  # server kind: its prefix in the bucket


def start(kind: str, ceph: Ceph, work: Path) -> Peer:
    prefix = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
    server: Peer
    if kind == "dockyard-s3":
        server = start_ours(work / kind, *ceph.serve_flags(prefix, "bench"))
    elif kind == "dockyard-fs":
        server = start_ours(work / kind)
    elif kind == "distribution-s3":
        server = Distribution(work / kind, s3=ceph.distribution_s3(ceph.bucket, prefix)).start()
    else:
        server = Distribution(work / kind).start()
    server.kind = kind
    PREFIXES[kind] = prefix
    return server


def s3_floor(ceph: Ceph, n: int = 1000) -> tuple[float, float]:
    """p50 / p99 (ms) of a GET of a 500-byte object from the store, by boto3."""
    client = ceph.client()
    key = f"bench-floor-{uuid.uuid4().hex[:8]}"
    client.put_object(Bucket=ceph.bucket, Key=key, Body=os.urandom(500))
    for _ in range(50):
        client.get_object(Bucket=ceph.bucket, Key=key)["Body"].read()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.get_object(Bucket=ceph.bucket, Key=key)["Body"].read()
        times.append(time.perf_counter() - t)
    client.delete_object(Bucket=ceph.bucket, Key=key)
    times.sort()
    return times[n // 2] * 1000, times[int(n * 0.99)] * 1000


def push_garbage(server: Peer, name: str, n: int) -> None:
    """``n`` small blobs into ``name``, referenced by no manifest (16 at a time)."""
    session = requests.Session()

    def one(i: int) -> None:
        blob = f"garbage {i} {uuid.uuid4()}".encode()
        url = f"{server.url}/v2/{name}/blobs/uploads/"
        r = session.post(url, params={"digest": sha256(blob)}, data=blob)
        if r.status_code == 202:  # distribution 2.8 has no single-POST upload: PUT to the session
            location = r.headers["Location"]
            location = location if location.startswith("http") else server.url + location
            r = session.put(location, params={"digest": sha256(blob)}, data=blob)
        assert r.status_code == 201, (r.status_code, r.text)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(n)))


def collect(server: Peer, ceph: Ceph) -> float:
    """Seconds of one garbage collection of the server's store, run as its tool runs it."""
    started = time.perf_counter()
    if isinstance(server, Distribution):
        server.stop()  # distribution's collection is offline
        started = time.perf_counter()
        cfg = server.root / "config.yml"
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        subprocess.run(
            ["docker-registry", "garbage-collect", str(cfg)], check=True, capture_output=True, env=env
        )
        seconds = time.perf_counter() - started
        server.start()
        return seconds
    args = ["registry", "garbage-collect", "--grace", "0", "--root", str(server.root)]
    if server.kind == "dockyard-s3":
        args += ceph.serve_flags(PREFIXES[server.kind], "bench")
    out = subprocess.run([PYTHON, "-m", "cli", *args], cwd=ROOT, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert f"{GC_BLOBS} blobs" in out.stdout.splitlines()[-1], out.stdout[-500:]
    return seconds


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return [pid, *(p for k in kids for p in _tree(int(k)))]


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids``."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _daemons(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def push_cpu(server: Peer, layout: Path, name: str) -> tuple[float, dict[str, float]]:
    """Seconds of one skopeo push, and the CPU seconds it cost each party: skopeo, the
    registry's processes, radosgw and the OSD (the machine's cores are shared by all)."""
    assert server.proc is not None
    parties = {
        "registry": _tree(server.proc.pid),
        "radosgw": _daemons("radosgw"),
        "osd": _daemons("ceph-osd"),
    }
    before = {k: _cpu(v) for k, v in parties.items()}
    children = os.times()
    started = time.perf_counter()
    skopeo_copy(f"oci:{layout}:v1", f"docker://{server.host}/bench/{name}:v1")
    seconds = time.perf_counter() - started
    after = os.times()
    used = {k: _cpu(v) - before[k] for k, v in parties.items()}
    used["skopeo"] = (
        after.children_user + after.children_system - children.children_user - children.children_system
    )
    return seconds, used


def run(servers: list[Peer], ceph: Ceph, runs: int, scratch: Path) -> dict[str, dict[str, float]]:
    raw: dict[str, dict[str, list[float]]] = {kind: {} for kind in [s.kind for s in servers] + ["s3"]}

    def add(kind: str, key: str, value: float) -> None:
        raw[kind].setdefault(key, []).append(value)
        print(f"{kind} {key} {value:.2f}", file=sys.stderr, flush=True)

    for i in range(runs):
        image = big_image()
        layout = write_oci_layout(scratch / f"big-{i}", image, "v1")
        size = image_bytes(image)
        for server in servers:
            push, used = push_cpu(server, layout, f"big{i}")
            add(server.kind, "push_MBps", size / MB / push)
            for party, seconds in used.items():
                if server.kind.endswith("-s3") or party not in ("radosgw", "osd"):
                    add(server.kind, f"push_cpu_{party}", seconds)
            out = scratch / f"pull-{server.kind}-big{i}"
            pull = skopeo_copy(f"docker://{server.host}/bench/big{i}:v1", f"dir:{out}")
            shutil.rmtree(out, ignore_errors=True)
            add(server.kind, "pull_MBps", size / MB / pull)
        shutil.rmtree(layout)
        for server in servers:
            p50, p99 = latency(server, "GET", f"{server.url}/v2/bench/big0/manifests/v1", n=1000)
            add(server.kind, "get_p50_ms", p50)
            add(server.kind, "get_p99_ms", p99)
        p50, p99 = s3_floor(ceph)
        add("s3", "floor_p50_ms", p50)
        add("s3", "floor_p99_ms", p99)
        for server in servers:
            push_garbage(server, f"bench/garbage{i}", GC_BLOBS)
            add(server.kind, "gc_s", collect(server, ceph))
    return {kind: {k: statistics.median(v) for k, v in d.items()} for kind, d in raw.items()}


def report(results: dict[str, dict[str, float]]) -> str:
    kinds = ["dockyard-s3", "distribution-s3", "dockyard-fs", "distribution-fs"]
    lines = ["| | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    rows = [
        ("push 200 MB, 5 layers (MB/s)", "push_MBps", "{:.0f}"),
        *(
            (f"push: CPU s of {p}", f"push_cpu_{p}", "{:.2f}")
            for p in ("skopeo", "registry", "radosgw", "osd")
        ),
        ("pull 200 MB, 5 layers (MB/s)", "pull_MBps", "{:.0f}"),
        ("manifest GET p50 (ms)", "get_p50_ms", "{:.2f}"),
        ("manifest GET p99 (ms)", "get_p99_ms", "{:.2f}"),
        (f"GC of {GC_BLOBS} unreferenced blobs (s)", "gc_s", "{:.1f}"),
    ]
    for label, key, fmt in rows:
        cells = [fmt.format(results[k][key]) if key in results.get(k, {}) else "n/a" for k in kinds]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    floor = results["s3"]
    lines.append(
        f"\nradosgw GET floor (boto3, 500 B object): p50 {floor['floor_p50_ms']:.2f} ms, "
        f"p99 {floor['floor_p99_ms']:.2f} ms"
    )
    ours, theirs = results["dockyard-s3"], results["distribution-s3"]
    lines.append(
        "ratios dockyard-s3 / distribution-s3: "
        f"push {ours['push_MBps'] / theirs['push_MBps']:.2f}x, "
        f"pull {ours['pull_MBps'] / theirs['pull_MBps']:.2f}x, "
        f"manifest GET p50 {ours['get_p50_ms'] / theirs['get_p50_ms']:.2f}x the time, "
        f"GC {theirs['gc_s'] / ours['gc_s']:.2f}x faster"
    )
    lines.append(
        f"dockyard-s3 manifest GET p50 = {ours['get_p50_ms'] / floor['floor_p50_ms']:.2f}x the S3 GET floor"
    )
    if "dockyard-fs" in results:
        fs = results["dockyard-fs"]
        lines.append(
            f"dockyard-s3 / dockyard-fs: push {ours['push_MBps'] / fs['push_MBps']:.2f}x, "
            f"pull {ours['pull_MBps'] / fs['pull_MBps']:.2f}x"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-fs", action="store_true", help="only the two registries on S3")
    args = ap.parse_args()
    ceph = start_ceph()
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-s3-"))
    scratch = Path(tempfile.mkdtemp(prefix="dockyard-bench-s3-", dir=shm))
    kinds = ["dockyard-s3", "distribution-s3"] + ([] if args.no_fs else ["dockyard-fs", "distribution-fs"])
    servers: list[Peer] = []
    try:
        for kind in kinds:
            servers.append(start(kind, ceph, work))
        results = run(servers, ceph, args.runs, scratch)
    finally:
        for s in servers:
            s.stop()
        for kind, prefix in PREFIXES.items():
            if kind.endswith("-s3"):
                ceph.empty(prefix + "/")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
