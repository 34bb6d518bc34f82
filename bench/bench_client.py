"""Registry client benchmark: dockyard pull/push against skopeo copy and docker pull/push.

Run as root:  .venv/bin/python -m bench.bench_client [--size-mb 219] [--layers 7] [--files 20000]
              [--repeat 1] [--no-docker] [--write-doc docs/benchmarks.md]

One run, one registry program (distribution 2.8.2 on 127.0.0.1), the same images:

- big: --layers layers of incompressible data, --size-mb in all (gzip: about the same size);
- small: one layer of --files small files.

Each image starts as a Docker 25-style tarball with uncompressed layers, is
loaded into a dockyard store and pushed with dockyard (that push gzips every
layer: "push, compressing").  Pulls are then timed from that repository:
dockyard into an empty store (download, verify and unpack every layer),
skopeo into an empty OCI directory (download and verify, no unpack) and
docker into an engine without the image (download, verify and unpack).
GNU tar unpacking the same layer blobs one after the other (as root, so
restoring owners, modes and times as our unpack does) is a reference for
the unpacking part alone.  Pushes are timed from what
each tool pulled into an empty registry: dockyard and skopeo push the gzip
blobs as they are; docker recompresses.
Times are wall clock of the whole command (process start included); the
ratio is the other tool's time over dockyard's (> 1: dockyard is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.bench_archive import dockyard, make_archive, make_tree_random, make_tree_small, start_docker
from support.peers import Distribution

REPO = Path(__file__).resolve().parent.parent
DOC_SECTION = "## Registry client"


@dataclass
class Row:
    label: str
    seconds: float
    ours: str  # the dockyard row this one compares with ("" for dockyard rows)
    note: str = ""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    os.sync()  # no writeback of an earlier step bills this one
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr}")
    return time.perf_counter() - t


def best(n: int, run: Callable[[], tuple[float, str]]) -> tuple[float, str]:
    """The fastest of ``n`` runs of ``run() -> (seconds, note)``."""
    results = [run() for _ in range(n)]
    return min(results, key=lambda r: r[0])


def untar_floor(work: Path, store_root: Path) -> tuple[float, str]:
    """GNU tar unpacking every layer blob of the pulled image, one after another
    (no download, no digests): a reference for the unpacking part."""
    doc = json.loads((store_root / "images.json").read_text())
    manifest_digest = next(iter(doc["images"].values()))["manifest"]
    manifest = json.loads((store_root / "blobs/sha256" / manifest_digest[7:]).read_text())
    out = work / "untar"
    shutil.rmtree(out, ignore_errors=True)
    script = "set -e\n" + "".join(
        f"mkdir -p {out}/{i} && tar -xzf {store_root}/blobs/sha256/{d['digest'][7:]} -C {out}/{i}\n"
        for i, d in enumerate(manifest["layers"])
    )
    secs = timed(["sh", "-c", script])
    shutil.rmtree(out)
    return secs, "sequential, one tar per layer"


def fresh_registry(work: Path, name: str) -> Distribution:
    return Distribution(work / f"registry-{name}").start()


def bench_image(
    work: Path, name: str, archive: Path, docker_env: dict[str, str] | None, repeat: int
) -> tuple[list[Row], float]:
    """Time everything for one image; return the rows and the image's pushed size in MB."""
    rows: list[Row] = []
    origin = fresh_registry(work, f"{name}-origin")
    local = work / f"store-{name}-local"
    dockyard(local, "load", "-i", str(archive))
    ref = f"{origin.host}/bench/{name}:1"
    dockyard(local, "tag", f"{name}:latest", ref)
    os.sync()
    secs, rss = dockyard(local, "push", ref)
    rows.append(Row("dockyard push, compressing (from load)", secs, "", f"peak RSS {rss} MB"))
    shutil.rmtree(local)
    mb = blob_megabytes(origin)

    # ---- pulls from the origin registry
    stores: list[Path] = []

    def ours_pull() -> tuple[float, str]:
        root = work / f"store-{name}-{len(stores)}"
        stores.append(root)
        os.sync()
        secs, rss = dockyard(root, "pull", "-q", ref)
        return secs, f"peak RSS {rss} MB"

    def ours_fetch() -> tuple[float, str]:
        root = work / f"store-{name}-fetch"
        shutil.rmtree(root, ignore_errors=True)
        code = (
            "import sys; from pathlib import Path; from imagefmt.store import Store\n"
            "from imagefmt.reference import Reference\n"
            "from registry.client.registry_client import ClientOptions, RegistryClient\n"
            "with RegistryClient(ClientOptions(unpack=False)) as c:\n"
            "    c.pull(Store(Path(sys.argv[1])), Reference.parse(sys.argv[2]))\n"
        )
        secs = timed(
            [sys.executable, "-c", code, str(root), ref], env={**os.environ, "PYTHONPATH": str(REPO)}
        )
        shutil.rmtree(root)
        return secs, "library call with unpack=False"

    secs, note = best(repeat, ours_pull)
    rows.append(Row("dockyard pull (incl. unpack)", secs, "", note))
    secs, note = best(repeat, ours_fetch)
    rows.append(Row("dockyard pull without unpack", secs, "", note))
    pulled = stores[-1]
    for root in stores[:-1]:
        shutil.rmtree(root)
    secs, note = best(repeat, lambda: untar_floor(work, pulled))
    rows.append(Row("GNU tar -xzf of the same layers (reference)", secs, "dockyard pull", note))
    if shutil.which("skopeo"):
        oci = work / f"oci-{name}"

        def skopeo_pull() -> tuple[float, str]:
            shutil.rmtree(oci, ignore_errors=True)
            return timed(
                ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci}:x"]
            ), ""

        secs = best(repeat, skopeo_pull)[0]
        rows.append(Row("skopeo copy docker:// -> oci: (no unpack)", secs, "dockyard pull without unpack"))
    if docker_env:

        def docker_pull() -> tuple[float, str]:
            subprocess.run(["docker", "rmi", "-f", ref], env=docker_env, capture_output=True)
            return timed(["docker", "pull", "-q", ref], env=docker_env), ""

        rows.append(Row("docker pull (incl. unpack)", best(repeat, docker_pull)[0], "dockyard pull"))

    # ---- pushes into empty registries
    def ours_push() -> tuple[float, str]:
        target = fresh_registry(work, f"{name}-ours-{time.monotonic_ns()}")
        try:
            dst = f"{target.host}/bench/{name}:1"
            dockyard(pulled, "tag", ref, dst)
            os.sync()
            secs, rss = dockyard(pulled, "push", dst)
            return secs, f"peak RSS {rss} MB"
        finally:
            target.stop()
            shutil.rmtree(target.root)

    secs, note = best(repeat, ours_push)
    rows.append(Row("dockyard push (gzip blobs as pulled)", secs, "", note))
    if shutil.which("skopeo"):

        def skopeo_push() -> tuple[float, str]:
            target = fresh_registry(work, f"{name}-skopeo-{time.monotonic_ns()}")
            try:
                dst = f"docker://{target.host}/bench/{name}:1"
                return timed(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{oci}:x", dst]), ""
            finally:
                target.stop()
                shutil.rmtree(target.root)

        rows.append(Row("skopeo copy oci: -> docker://", best(repeat, skopeo_push)[0], "dockyard push"))
        shutil.rmtree(oci)
    if docker_env:

        def docker_push() -> tuple[float, str]:
            target = fresh_registry(work, f"{name}-docker-{time.monotonic_ns()}")
            try:
                dst = f"{target.host}/bench/{name}:1"
                subprocess.run(["docker", "tag", ref, dst], env=docker_env, check=True)
                secs = timed(["docker", "push", "-q", dst], env=docker_env)
                subprocess.run(["docker", "rmi", dst], env=docker_env, capture_output=True)
                return secs, ""
            finally:
                target.stop()
                shutil.rmtree(target.root)

        rows.append(Row("docker push (recompresses)", best(repeat, docker_push)[0], "dockyard push"))
        subprocess.run(["docker", "rmi", "-f", ref], env=docker_env, capture_output=True)
    shutil.rmtree(pulled)
    origin.stop()
    shutil.rmtree(origin.root)
    return rows, mb


def blob_megabytes(reg: Distribution) -> float:
    total = 0
    for dirpath, _dirs, files in os.walk(reg.data / "docker/registry/v2/blobs"):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total / 1e6


def table(title: str, rows: list[Row], mb: float) -> list[str]:
    by_label = {r.label.split(" (")[0].split(",")[0]: r for r in rows if not r.ours}
    out = [
        f"### {title}",
        "",
        "| operation | seconds | MB/s | ratio vs dockyard | note |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = ""
        if r.ours:
            ours = by_label[r.ours].seconds
            ratio = f"{r.seconds / ours:.2f}x"
        out.append(f"| {r.label} | {r.seconds:.2f} | {mb / r.seconds:.0f} | {ratio} | {r.note} |")
    return out


def write_doc(path: Path, body: list[str]) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = "\n".join([DOC_SECTION, "", *body]).rstrip() + "\n"
    pattern = re.compile(rf"^{re.escape(DOC_SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def machine() -> str:
    cpus = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = []
    for cmd in (["skopeo", "--version"], ["docker-registry", "--version"], ["dockerd", "--version"]):
        if shutil.which(cmd[0]):
            versions.append(subprocess.run(cmd, capture_output=True, text=True).stdout.strip())
    return f"{cpus} CPUs, {mem:.0f} GiB RAM, Python {sys.version.split()[0]}; " + "; ".join(versions)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=219)
    ap.add_argument("--layers", type=int, default=7)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=1, help="report the best of N runs of each command")
    ap.add_argument("--workdir", default="/var/tmp")
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--write-doc", default="", help="put the tables into this markdown file")
    args = ap.parse_args()
    docker_env = None if args.no_docker else start_docker()
    body = [
        f"`{' '.join(['python -m bench.bench_client', *sys.argv[1:]])}` on {machine()}.",
        "",
        (__doc__ or "")
        .split("\n\n", 2)[2]
        .replace("--layers layers", f"{args.layers} layers")
        .replace("--size-mb in all", f"{args.size_mb} MB in all")
        .replace("of --files small", f"of {args.files} small")
        .strip(),
        "",
    ]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="dybench-client-") as tmp:
        work = Path(tmp)
        trees = make_tree_random(work, args.layers, args.size_mb)
        archive = make_archive(work, trees, "big")
        for t in trees:
            shutil.rmtree(t)
        rows, mb = bench_image(work, "big", archive, docker_env, args.repeat)
        archive.unlink()
        body += table(f"big: {args.layers} layers, {mb:.0f} MB of gzip blobs", rows, mb) + [""]
        print("\n".join(body[-len(rows) - 5 :]), flush=True)
        trees = make_tree_small(work, args.files)
        archive = make_archive(work, trees, "small")
        shutil.rmtree(trees[0])
        rows, mb = bench_image(work, "small", archive, docker_env, args.repeat)
        body += table(f"small: one layer of {args.files} files, {mb:.1f} MB of gzip blobs", rows, mb) + [""]
        print("\n".join(body[-len(rows) - 5 :]), flush=True)
    load_after = os.getloadavg()[0]
    body.append(
        f"Load average (1 min) {load_before:.1f} before the run and {load_after:.1f} after it: the machine "
        "is shared, so treat single figures with care; `--repeat N` reports the best of N runs."
    )
    if args.write_doc:
        write_doc(REPO / args.write_doc, body)
        print(f"wrote {args.write_doc}")
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
