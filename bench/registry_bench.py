"""Registry server benchmark: dockyard against the distribution registry, skopeo as the client.

    PYTHONPATH=. .venv/bin/python bench/registry_bench.py [--runs 3] [--json out.json]

Both servers run on 127.0.0.1 with fresh storage under one work directory; images
and pull outputs live on tmpfs (/dev/shm) so that the client's disk is not what
is measured.  Every figure is the median of ``--runs`` rounds, and each round
measures both servers one after the other (the machine is shared, so its load
drifts): per server,

- push and pull (skopeo copy) of a fresh 200 MB image of 5 random (incompressible)
  layers, and of a fresh image of one layer holding 20,000 files of 512 B;
- a streamed (chunked) PATCH of 200 MB and its PUT by curl, the server's own
  upload rate when the client is not the bottleneck;
- manifest HEAD and GET latency, p50 and p99 over 2,000 requests each on one
  keep-alive connection (python requests);
- 50 concurrent GETs of one 10 MB blob (50 curl processes), aggregate MB/s and errors;
- the largest RSS of any dockyard worker process, sampled every 50 ms.
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
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support.images import Image, make_image, sha256, write_oci_layout  # noqa: E402
from support.peers import Peer, start_distribution, start_ours  # noqa: E402

MB = 1e6
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def big_image() -> Image:
    return make_image([{f"layer{i}.bin": os.urandom(40 << 20)} for i in range(5)], compress=False)


def many_files_image() -> Image:
    files = {f"d{i // 1000:02d}/f{i:05d}": os.urandom(512) for i in range(20000)}
    return make_image([files], compress=False)


def image_bytes(image: Image) -> int:
    return sum(len(b) for b in [image.config, *image.layers, image.manifest])


def skopeo_copy(src: str, dest: str) -> float:
    started = time.perf_counter()
    cmd = ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", src, dest]
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - started


def push_pull(server: Peer, layout: Path, name: str, scratch: Path) -> tuple[float, float]:
    """(push seconds, pull seconds) of one image into a repository of its own."""
    ref = f"docker://{server.host}/bench/{name}:v1"
    push = skopeo_copy(f"oci:{layout}:v1", ref)
    out = scratch / f"pull-{server.kind}-{name}"
    shutil.rmtree(out, ignore_errors=True)
    pull = skopeo_copy(ref, f"dir:{out}")
    shutil.rmtree(out, ignore_errors=True)
    return push, pull


def absolute(server: Peer, location: str) -> str:
    return location if location.startswith("http") else server.url + location


def curl_upload(server: Peer, name: str, path: Path, digest: str) -> float:
    """Seconds for a streamed (chunked) PATCH of ``path`` and the closing PUT, by curl."""
    location = absolute(server, requests.post(f"{server.url}/v2/{name}/blobs/uploads/").headers["Location"])
    started = time.perf_counter()
    patch = ["curl", "-sf", "-X", "PATCH", "-H", "Transfer-Encoding: chunked", "-D", "-", "-o", "/dev/null"]
    head = subprocess.run([*patch, "-T", str(path), location], check=True, capture_output=True, text=True)
    lines = head.stdout.splitlines()
    location = absolute(server, next(ln[9:].strip() for ln in lines if ln.lower().startswith("location:")))
    sep = "&" if "?" in location else "?"
    subprocess.run(["curl", "-sf", "-X", "PUT", f"{location}{sep}digest={digest}"], check=True)
    return time.perf_counter() - started


def latency(server: Peer, method: str, url: str, n: int = 2000) -> tuple[float, float]:
    s = requests.Session()
    headers = {"Accept": OCI_MANIFEST}
    for _ in range(50):
        s.request(method, url, headers=headers)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = s.request(method, url, headers=headers)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, r.status_code
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000


def concurrent_pulls(server: Peer, name: str, digest: str, size: int, n: int = 50) -> tuple[float, int]:
    url = f"{server.url}/v2/{name}/blobs/{digest}"
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["curl", "-sf", "-o", "/dev/null", "-w", "%{size_download}", url], stdout=subprocess.PIPE
        )
        for _ in range(n)
    ]
    errors = 0
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0 or int(out or 0) != size:
            errors += 1
    return n * size / MB / (time.perf_counter() - started), errors


class RssSampler:
    """The largest VmRSS (MB) of the server's worker processes."""

    def __init__(self, server: Peer) -> None:
        assert server.proc is not None
        self.pid = server.proc.pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _children(self) -> list[int]:
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.pid:
                    out.append(int(d.name))
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self._children():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak = max(self.peak, int(line.split()[1]) / 1024)
                except OSError:
                    pass
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def run(servers: list[Peer], runs: int, scratch: Path) -> dict[str, dict[str, float]]:
    """Every measurement, alternating between the servers on each round so that a
    change in the machine's load (it is shared) falls on both alike."""
    samplers = {s.kind: RssSampler(s) for s in servers if s.kind == "dockyard"}
    raw: dict[str, dict[str, list[float]]] = {s.kind: {} for s in servers}

    def add(kind: str, key: str, value: float) -> None:
        raw[kind].setdefault(key, []).append(value)

    for i in range(runs):
        for label, make in (("big", big_image), ("files", many_files_image)):
            image = make()  # fresh random content each round: nothing is already there
            layout = write_oci_layout(scratch / f"{label}-{i}", image, "v1")
            size = image_bytes(image)
            for server in servers:
                push, pull = push_pull(server, layout, f"{label}{i}", scratch)
                add(server.kind, f"{label}_push_MBps", size / MB / push)
                add(server.kind, f"{label}_pull_MBps", size / MB / pull)
            shutil.rmtree(layout)
        blob_file = scratch / "raw.bin"
        data = os.urandom(200 << 20)
        blob_file.write_bytes(data)
        for server in servers:
            seconds = curl_upload(server, f"bench/raw{i}", blob_file, sha256(data))
            add(server.kind, "raw_upload_MBps", len(data) / MB / seconds)
        blob_file.unlink()
    blob = os.urandom(10 << 20)
    for server in servers:
        r = requests.post(f"{server.url}/v2/bench/blob/blobs/uploads/")
        location = r.headers["Location"]
        location = location if location.startswith("http") else server.url + location
        assert requests.put(location, params={"digest": sha256(blob)}, data=blob).status_code == 201
    for _ in range(runs):
        for server in servers:
            url = f"{server.url}/v2/bench/big0/manifests/v1"
            for method in ("HEAD", "GET"):
                p50, p99 = latency(server, method, url)
                add(server.kind, f"{method.lower()}_p50_ms", p50)
                add(server.kind, f"{method.lower()}_p99_ms", p99)
            rate, errors = concurrent_pulls(server, "bench/blob", sha256(blob), len(blob))
            add(server.kind, "concurrent_MBps", rate)
            add(server.kind, "concurrent_errors", errors)
    results = {kind: {k: statistics.median(v) for k, v in d.items()} for kind, d in raw.items()}
    for kind, d in raw.items():
        results[kind]["concurrent_errors"] = sum(d["concurrent_errors"])
    for kind, sampler in samplers.items():
        results[kind]["worker_rss_MB"] = sampler.stop()
    return results


ROWS = [
    ("push 200 MB, 5 layers (MB/s)", "big_push_MBps", "{:.0f}"),
    ("pull 200 MB, 5 layers (MB/s)", "big_pull_MBps", "{:.0f}"),
    ("push 20,000-file layer (MB/s)", "files_push_MBps", "{:.0f}"),
    ("pull 20,000-file layer (MB/s)", "files_pull_MBps", "{:.0f}"),
    ("streamed upload of 200 MB by curl (MB/s)", "raw_upload_MBps", "{:.0f}"),
    ("manifest HEAD p50 / p99 (ms)", "head", "{:.2f} / {:.2f}"),
    ("manifest GET p50 / p99 (ms)", "get", "{:.2f} / {:.2f}"),
    ("50 concurrent 10 MB GETs (MB/s)", "concurrent_MBps", "{:.0f}"),
    ("errors under concurrent load", "concurrent_errors", "{:.0f}"),
    ("largest worker RSS (MB)", "worker_rss_MB", "{:.0f}"),
]


def table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| | dockyard | distribution 2.8.2 |", "|---|---|---|"]
    for label, key, fmt in ROWS:
        cells = []
        for kind in ("dockyard", "distribution"):
            r = results[kind]
            if key in ("head", "get"):
                cells.append(fmt.format(r[f"{key}_p50_ms"], r[f"{key}_p99_ms"]))
            else:
                cells.append(fmt.format(r[key]) if key in r else "n/a")
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    scratch = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=shm))
    servers: list[Peer] = []
    try:
        servers.append(start_ours(work / "ours"))
        servers.append(start_distribution(work / "distribution"))
        results = run(servers, args.runs, scratch)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
