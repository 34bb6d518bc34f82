"""Live registries for the tests: ours (gunicorn, a real subprocess) and the
distribution registry (Debian ``docker-registry``), on 127.0.0.1 free ports; a
private dockerd; and helpers that make small random images as OCI layouts."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
IN_CI = os.environ.get("CI") == "true"


def need(tool: str) -> str:
    """The path of ``tool``; skip the test without it (fail under CI=true)."""
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None)
    if path is None:
        if IN_CI:
            pytest.fail(f"{tool} is not installed (CI=true: a missing tool is a failure)")
        pytest.skip(f"{tool} is not installed")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0, verify: object = True) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            requests.get(url, timeout=1, verify=verify)  # type: ignore[arg-type]
            return
        except requests.exceptions.SSLError:
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"no answer from {url} after {timeout}s")


@dataclass
class Server:
    """A registry process; ``url`` like ``http://127.0.0.1:PORT``."""

    kind: str
    url: str
    proc: subprocess.Popen[bytes]
    root: Path
    args: list[str] = field(default_factory=list)
    log: Path | None = None

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the server's process group (it leads one: workers go with it)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):  # a worker that outlived its master
            os.killpg(self.proc.pid, signal.SIGKILL)


def start_ours(
    root: Path, *extra: str, port: int | None = None, scheme: str = "http", verify: object = True
) -> Server:
    """``python -m cli registry serve`` on a free port (its own process group)."""
    port = port or free_port()
    args = [PYTHON, "-m", "cli", "registry", "serve", "--addr", f"127.0.0.1:{port}", "--root", str(root)]
    args += ["--access-log", "", "--workers", "2", *extra]
    root.parent.mkdir(parents=True, exist_ok=True)
    log = root.parent / f"{root.name}-server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
    server = Server("dockyard", f"{scheme}://127.0.0.1:{port}", proc, root, args, log)
    try:
        wait_http(server.url + "/v2/", proc, verify=verify)
    except BaseException as err:
        server.stop(signal.SIGKILL)
        raise RuntimeError(f"{err}\n{log.read_text()[-3000:]}") from err
    return server


DISTRIBUTION_CONFIG = """version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
"""


def start_distribution(base: Path) -> Server:
    """The distribution registry 2.8 (config of shared/peers/start-registry.sh)."""
    binary = need("docker-registry")
    port = free_port()
    (base / "data").mkdir(parents=True, exist_ok=True)
    cfg = base / "config.yml"
    cfg.write_text(DISTRIBUTION_CONFIG.format(data=base / "data", port=port))
    log = base / "log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=out, stderr=out, start_new_session=True)
    server = Server("distribution", f"http://127.0.0.1:{port}", proc, base / "data", log=log)
    try:
        wait_http(server.url + "/v2/", proc)
    except BaseException:
        server.stop(signal.SIGKILL)
        raise
    return server


# --------------------------------------------------------------- images ---


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files: dict[str, bytes], mode: int = 0o644) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1700000000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Image:
    """An image's blobs and manifest, in memory."""

    config: bytes
    layers: list[bytes]
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def blobs(self) -> dict[str, bytes]:
        return {sha256(b): b for b in [self.config, *self.layers]}


def make_image(
    layer_files: list[dict[str, bytes]], cmd: list[str] | None = None, compress: bool = True
) -> Image:
    """An OCI image whose layers hold ``layer_files`` (gzip-compressed tars)."""
    tars = [tar_of(f, 0o755) for f in layer_files]
    layers = [gzip.compress(t, 1, mtime=0) if compress else t for t in tars]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd or ["/bin/sh"], "Env": ["PATH=/bin:/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]},
        "history": [{"created_by": "dockyard test"} for _ in tars],
    }
    config_raw = json.dumps(config).encode()
    layer_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config_raw),
            "size": len(config_raw),
        },
        "layers": [{"mediaType": layer_type, "digest": sha256(b), "size": len(b)} for b in layers],
    }
    return Image(config_raw, layers, json.dumps(manifest).encode())


def random_image(n_layers: int = 2, size: int = 64 << 10) -> Image:
    return make_image([{f"file{i}": os.urandom(size)} for i in range(n_layers)])


def write_oci_layout(path: Path, image: Image, tag: str = "latest") -> Path:
    """An OCI image layout skopeo can read as ``oci:<path>:<tag>``."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for data in [image.config, *image.layers, image.manifest]:
        (blobs / sha256(data).split(":")[1]).write_bytes(data)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": image.digest,
                "size": len(image.manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    return path


def busybox_image() -> Image:
    """A runnable image: a static /bin/busybox and a few applet links."""
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.skip("no /bin/busybox to build a runnable image")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(str(busybox), "bin/busybox")
        for applet in ("sh", "echo", "cat", "ls"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tf.addfile(info)
    layer = gzip.compress(buf.getvalue(), 1, mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(buf.getvalue())]},
    }
    config_raw = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config_raw),
            "size": len(config_raw),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha256(layer),
                "size": len(layer),
            }
        ],
    }
    return Image(config_raw, [layer], json.dumps(manifest).encode())


def push_image(
    url: str, name: str, image: Image, tag: str = "latest", session: requests.Session | None = None
) -> None:
    """Push with monolithic POST+PUT uploads, then the manifest."""
    s = session or requests.Session()
    for digest, data in image.blobs().items():
        r = s.post(f"{url}/v2/{name}/blobs/uploads/")
        assert r.status_code == 202, r.text
        loc = r.headers["Location"]
        loc = loc if loc.startswith("http") else url + loc
        r = s.put(
            loc, params={"digest": digest}, data=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert r.status_code == 201, r.text
    r = s.put(
        f"{url}/v2/{name}/manifests/{tag}",
        data=image.manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert r.status_code == 201, r.text


# -------------------------------------------------------------- dockerd ---

DOCKERD_DIR = Path("/tmp/dockyard-registry-tests-dockerd")


def ensure_dockerd() -> tuple[str, subprocess.Popen[bytes] | None]:
    """A private dockerd (shared/peers/start-dockerd.sh flags), reused if running;
    return its DOCKER_HOST and the process if this call started it."""
    need("docker")
    dockerd = need("dockerd")
    d = DOCKERD_DIR
    sock = f"unix://{d}/docker.sock"
    env = {**os.environ, "DOCKER_HOST": sock}
    if subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0:
        return sock, None
    d.mkdir(parents=True, exist_ok=True)
    args = [
        dockerd, "--iptables=false", "--ip-masq=false", "--bridge=none", "--storage-driver=overlay2",
        f"--data-root={d}/data", f"--exec-root={d}/exec", f"--pidfile={d}/dockerd.pid", "-H", sock,
        "--containerd-namespace=dockyard-reg", "--containerd-plugins-namespace=dockyard-reg-plugins",
    ]  # fmt: skip
    with open(d / "dockerd.log", "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0:
            return sock, proc
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited: {(d / 'dockerd.log').read_text()[-2000:]}")
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("dockerd did not start in 60 s")


def stop_dockerd(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a dockerd that ensure_dockerd started (it stops its own containerd)."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
