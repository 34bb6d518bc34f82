"""Live peers on 127.0.0.1 free ports, for the tests and the benchmarks.

- :func:`start_ours`: our registry, ``python -m cli registry serve`` under gunicorn
  (a real subprocess in its own process group); :func:`start_in_process`: an app
  in this process (werkzeug's threaded server), for a storage driver that lives
  in memory.
- :class:`Distribution`: the reference registry (Debian's ``docker-registry`` =
  distribution 2.8.2), optionally with htpasswd or token auth and TLS, killable
  and restartable on its port; :func:`start_distribution` starts a plain one.
- :func:`start_ceph`: a single-node Ceph with radosgw (scripts/start-s3.sh), its S3
  endpoint, keys and bucket as a :class:`Ceph`; stopped at the end only if we started it.
- :func:`start_dockerd`: a private Docker engine (the flags of
  shared/peers/start-dockerd.sh), reused while it runs: each user keeps its own
  directory under /tmp and its own containerd namespaces.

A missing tool skips the test that needs it (fails it under ``CI=true``): see :func:`need`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
IN_CI = os.environ.get("CI") == "true"


def need(tool: str) -> str:
    """The path of ``tool``; skip the calling test without it (fail it under CI=true)."""
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None)
    if path is None:
        import pytest  # only the suite gets here without its tools; bench stops with the message

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
        except (requests.ConnectionError, requests.Timeout):  # not listening, or no worker up yet
            time.sleep(0.05)
    raise RuntimeError(f"no answer from {url} after {timeout}s")


# ------------------------------------------------------------------ ours ---


@dataclass
class Server:
    """A registry of ours; ``url`` like ``http://127.0.0.1:PORT``.  ``proc`` is the
    gunicorn master, or None for an app served in this process."""

    kind: str
    url: str
    proc: subprocess.Popen[bytes] | None
    root: Path
    args: list[str] = field(default_factory=list)
    log: Path | None = None
    shutdown: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the server's process group (it leads one: workers go with it)."""
        if self.shutdown is not None:
            self.shutdown()
            return
        assert self.proc is not None
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


def start_in_process(app: Any, kind: str, root: Path) -> Server:
    """Serve the WSGI ``app`` from threads of this process (werkzeug's server,
    request lines not logged): for a store that lives in this process's memory."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def shutdown() -> None:
        server.shutdown()
        server.server_close()
        thread.join(10)

    return Server(kind, f"http://127.0.0.1:{server.server_port}", None, root, shutdown=shutdown)


# ---------------------------------------------------------- distribution ---


@dataclass
class Distribution:
    """``docker-registry serve`` on 127.0.0.1; ``auth`` is the config's auth section.
    Its storage is ``root/data``; a restart on the same ``port`` finds it again."""

    root: Path
    auth: dict[str, Any] | None = None
    tls: tuple[Path, Path] | None = None
    s3: dict[str, Any] | None = None  # distribution's storage.s3 section instead of the filesystem
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    kind: str = "distribution"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def blob_file(self, digest: str) -> Path:
        hx = digest.removeprefix("sha256:")
        return self.data / "docker/registry/v2/blobs/sha256" / hx[:2] / hx / "data"

    def _config(self) -> str:
        http: dict[str, Any] = {"addr": self.host, "headers": {"X-Content-Type-Options": ["nosniff"]}}
        if self.tls:
            http["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        doc: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                **({"s3": self.s3} if self.s3 else {"filesystem": {"rootdirectory": str(self.data)}}),
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
                **({"redirect": {"disable": False}} if self.s3 else {}),
            },
            "http": http,
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.auth:
            doc["auth"] = self.auth
        return json.dumps(doc)  # YAML is a superset of JSON

    def start(self) -> Distribution:
        binary = need("docker-registry")
        self.root.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(exist_ok=True)
        self.port = self.port or free_port()
        cfg = self.root / "config.yml"
        cfg.write_text(self._config())
        log = open(self.root / "registry.log", "ab")
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # breaks its plain-http S3
        self.proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=log, stderr=log, env=env)
        log.close()
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"docker-registry exited: {(self.root / 'registry.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def kill(self) -> None:
        """SIGKILL, as a crash would; the storage stays for a restart on the same port."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


Peer = Server | Distribution  # a live registry, ours or distribution: kind, url, host, stop()


def start_distribution(base: Path) -> Distribution:
    """The distribution registry 2.8.2 with deletes enabled, no auth, storage in ``base/data``."""
    return Distribution(base).start()


# ------------------------------------------------------------------ ceph ---


@dataclass(frozen=True)
class Ceph:
    """A running radosgw (scripts/start-s3.sh): what an S3 client needs to reach it."""

    endpoint: str
    region: str
    bucket: str
    access_key: str
    secret_key: str
    started: bool  # by us (then :meth:`stop` stops it), not found running

    def stop(self) -> None:
        if self.started:
            subprocess.run([str(ROOT / "scripts/stop-s3.sh")], check=False)

    def client(self) -> Any:
        """A boto3 S3 client of the endpoint (for tests and benchmarks that look at the bucket)."""
        import boto3
        import botocore.config

        cfg = botocore.config.Config(s3={"addressing_style": "path"}, signature_version="s3v4")
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=cfg,
            verify=False,
        )

    def serve_flags(self, prefix: str, secret: str = "shared-upload-secret") -> list[str]:
        """``registry serve`` (and ``garbage-collect``) flags for the bucket under ``prefix``."""
        return [
            "--storage=s3",
            f"--s3-endpoint={self.endpoint}",
            f"--s3-region={self.region}",
            f"--s3-bucket={self.bucket}",
            f"--s3-prefix={prefix}",
            f"--s3-access-key={self.access_key}",
            f"--s3-secret-key={self.secret_key}",
            f"--upload-secret={secret}",
        ]

    def empty(self, prefix: str) -> None:
        """Delete every object and multipart upload under ``prefix`` (a benchmark's own):
        the OSD of scripts/start-s3.sh holds 20 GiB, and refuses every write once full."""
        client = self.client()
        for page in client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for up in page.get("Uploads") or ():
                client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents") or ()]
            if keys:
                client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def distribution_s3(self, bucket: str, prefix: str) -> dict[str, Any]:
        """distribution's ``storage.s3`` section for ``bucket`` (which must exist) under ``prefix``."""
        return {
            "region": self.region,
            "regionendpoint": self.endpoint,
            "bucket": bucket,
            "rootdirectory": "/" + prefix,
            "accesskey": self.access_key,
            "secretkey": self.secret_key,
            "secure": False,
            "v4auth": True,
            "forcepathstyle": True,
            "chunksize": 10 << 20,
        }


def ceph_unavailable() -> str | None:
    """Why Ceph cannot run here (no packages and no way to install them), or None."""
    if shutil.which("radosgw") and shutil.which("ceph-mon"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "Ceph (ceph-mon, ceph-osd, radosgw) is not installed and apt-get cannot install it here"
    return None


def start_ceph(timeout: float = 300.0) -> Ceph:
    """Start (installing if needed) or find the single-node Ceph of scripts/start-s3.sh."""
    script = ROOT / "scripts/start-s3.sh"
    rgw_pid = Path(os.environ.get("DOCKYARD_S3_DIR", "/tmp/dockyard-s3")) / "run/rgw.pid"
    was_running = rgw_pid.exists()
    out = subprocess.run([str(script), "--env"], capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"scripts/start-s3.sh failed:\n{out.stderr[-3000:]}")
    env: dict[str, str] = {}
    for line in out.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            k, v = line.removeprefix("export ").split("=", 1)
            env[k] = v
    return Ceph(
        env["S3_ENDPOINT"],
        env["S3_REGION"],
        env["S3_BUCKET"],
        env["AWS_ACCESS_KEY_ID"],
        env["AWS_SECRET_ACCESS_KEY"],
        started=not was_running,
    )


# --------------------------------------------------------------- dockerd ---


@dataclass(frozen=True)
class DockerdSite:
    """Where one user of a private engine keeps it, and its containerd namespaces.
    With ``netns``, the engine runs in that network namespace (made if missing) with
    docker's default bridge, which then exists only there."""

    directory: Path
    namespace: str
    plugins_namespace: str
    netns: str = ""


# tests/conftest.py's docker_host (left running, shared by later runs), test_registry_interop.py's, bench/'s
TESTS_DOCKERD = DockerdSite(Path("/tmp/dockyard-test-docker"), "dockyard-test", "dockyard-test-p")
REGISTRY_TESTS_DOCKERD = DockerdSite(
    Path("/tmp/dockyard-registry-tests-dockerd"), "dockyard-reg", "dockyard-reg-plugins"
)
BENCH_DOCKERD = DockerdSite(Path("/tmp/dockyard-bench-docker"), "dybench", "dybench-p")
# tests/conftest.py's bridged_docker_host: an engine with its default bridge (for --link), in its own netns
BRIDGED_TESTS_DOCKERD = DockerdSite(
    Path("/tmp/dockyard-test-docker-bridged"), "dockyard-test-br", "dockyard-test-br-p", "dockyard-test-br"
)


@dataclass
class Dockerd:
    """A private Docker engine: ``host`` for DOCKER_HOST; ``pid`` if this process started it."""

    host: str
    pid: int | None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def stop(self) -> None:
        """Stop the engine if this process started it (it stops its own containerd)."""
        if self.pid is None:
            return
        for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.time() + wait
            while time.time() < deadline and _alive(self.pid):
                time.sleep(0.1)
            if not _alive(self.pid):
                return


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def start_dockerd(site: DockerdSite, timeout: float = 180.0) -> Dockerd:
    """A Docker engine with its data, exec root, socket and log in ``site.directory``:
    no iptables, no bridge, overlay2, the site's containerd namespaces.  One already
    answering on the socket is reused (left running by an earlier run); a new one
    runs in its own session and outlives this process unless :meth:`Dockerd.stop`
    is called.  RuntimeError if it does not answer within ``timeout`` seconds."""
    dockerd = need("dockerd")
    need("docker")
    directory = site.directory
    host = f"unix://{directory}/docker.sock"
    env = {**os.environ, "DOCKER_HOST": host}
    if _docker_answers(env):
        return Dockerd(host, None)
    directory.mkdir(parents=True, exist_ok=True)
    bridge = [] if site.netns else ["--bridge=none"]
    args = [
        dockerd, "--iptables=false", "--ip-masq=false", *bridge, "--storage-driver=overlay2",
        f"--data-root={directory}/data", f"--exec-root={directory}/exec",
        f"--pidfile={directory}/dockerd.pid",
        "-H", host, f"--containerd-namespace={site.namespace}",
        f"--containerd-plugins-namespace={site.plugins_namespace}",
    ]  # fmt: skip
    if site.netns:
        _netns(site.netns)
        # nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroups from dockerd
        args = ["nsenter", f"--net=/run/netns/{site.netns}", *args]
    log = directory / "dockerd.log"
    pidfile = directory / "dockerd.pid"
    pidfile.unlink(missing_ok=True)
    # setsid --fork: the engine is a daemon, not our child, so it outlives this process
    # without a Popen left to warn that it still runs.
    with open(log, "ab") as out:
        subprocess.run(
            ["setsid", "--fork", *args], stdout=out, stderr=out, stdin=subprocess.DEVNULL, check=True
        )
    deadline = time.time() + timeout
    pid = None
    while time.time() < deadline:
        pid = int(pidfile.read_text() or 0) if pidfile.exists() else None
        if _docker_answers(env):
            return Dockerd(host, pid)
        if pid is not None and not _alive(pid):
            raise RuntimeError(f"dockerd exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    if pid is not None:
        Dockerd(host, pid).stop()
    raise RuntimeError(f"dockerd did not answer in {timeout:.0f} s: see {log}")


def _netns(name: str) -> None:
    """The network namespace ``name``, with its loopback up (made if missing)."""
    if not Path(f"/run/netns/{name}").exists():
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)


def _docker_answers(env: dict[str, str]) -> bool:
    return subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0
