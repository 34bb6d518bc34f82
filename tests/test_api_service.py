"""The Engine API service (``dockyard system service``) driven by the real docker CLI
and docker-py, over a unix socket and over TCP with mutual TLS."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.peers import Server, free_port
from tests.conftest import REPO, add_busybox_image, need

pytestmark = [pytest.mark.privileged, pytest.mark.interop, pytest.mark.slow]


@dataclass
class Service:
    root: Path
    host: str  # DOCKER_HOST
    proc: subprocess.Popen[bytes]
    log: Path

    def docker(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0", **(env or {})}
        full.pop("DOCKER_TLS_VERIFY", None)
        kw.setdefault("timeout", 120)
        r = subprocess.run(["docker", *args], env=full, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {r.returncode}: {r.stderr}\n{self.tail()}")
        return r  # type: ignore[no-any-return]

    def docker_compose(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": self.host, "COMPOSE_INTERACTIVE_NO_CLI": "1"}
        r = subprocess.run(
            ["docker-compose", "--no-ansi", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if r.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} exited {r.returncode}: {r.stderr}\n{self.tail()}"
            )
        return r

    def dockyard(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, str(REPO / "cli.py"), "--root", str(self.root), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_service(root: Path, *hosts: str, extra: tuple[str, ...] = ()) -> Service:
    """``dockyard daemon -H …`` in its own session; waits until /_ping answers on the first host."""
    log = root.parent / f"{root.name}-service.log"
    argv = [sys.executable, str(REPO / "cli.py"), "--root", str(root), "daemon", "-D", *extra]
    for h in hosts:
        argv += ["-H", h]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True, cwd=REPO)
    svc = Service(root, hosts[0], proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited {proc.returncode}: {svc.tail()}")
        if hosts[0].startswith("unix://") and Path(hosts[0][7:]).is_socket():
            return svc
        if hosts[0].startswith("tcp://"):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", int(hosts[0].rsplit(":", 1)[1]))) == 0:
                    return svc
        time.sleep(0.05)
    svc.stop()
    raise RuntimeError(f"the service did not come up: {svc.tail()}")


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, privileged: None, busybox_tar: Path) -> Iterator[Service]:
    need("docker")
    base = tmp_path_factory.mktemp("api")
    root = base / "root"
    root.mkdir()
    add_busybox_image(root, busybox_tar)
    s = start_service(root, f"unix://{base}/docker.sock")
    try:
        yield s
    finally:
        ids = s.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            s.docker("rm", "-f", *ids, check=False)
        s.stop()
        from runtime.network.bridge import NetworkStore
        from tests.conftest import _drop_default_bridge

        if NetworkStore(root).default_bridge():
            _drop_default_bridge(root)


def test_version_info_and_ping_negotiate_api_1_41(svc: Service) -> None:
    v = json.loads(svc.docker("version", "--format", "{{json .}}").stdout)
    assert v["Server"]["ApiVersion"] == "1.41"
    assert v["Server"]["Platform"]["Name"] == "dockyard"
    assert v["Client"]["ApiVersion"] == "1.41"  # the CLI downgraded to what we speak
    info = json.loads(svc.docker("info", "--format", "{{json .}}").stdout)
    assert info["DockerRootDir"] == str(svc.root)
    assert info["Images"] >= 1
    # a client newer than us is told so, in docker's words
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(svc.host[7:])
        s.sendall(b"GET /v1.99/version HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        reply = b"".join(iter(lambda: s.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 400")
    assert b"client version 1.99 is too new. Maximum supported API version is 1.41" in reply


def test_load_images_and_run_rm_with_the_exit_code(svc: Service, tmp_path: Path, busybox_tar: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    add_busybox_image(other, busybox_tar, "loaded/busybox:v1")
    tar = tmp_path / "img.tar"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "cli.py"),
            "--root",
            str(other),
            "save",
            "loaded/busybox:v1",
            "-o",
            str(tar),
        ],
        check=True,
        capture_output=True,
    )
    assert "Loaded image: loaded/busybox:v1" in svc.docker("load", "-i", str(tar)).stdout
    assert "loaded/busybox:v1" in svc.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    r = svc.docker(
        "run", "--rm", "loaded/busybox:v1", "sh", "-c", "echo out; echo err >&2; exit 3", check=False
    )
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert svc.docker("ps", "-aq").stdout == ""  # --rm: gone
    assert svc.docker("run", "--rm", "busybox", "echo", "hello").stdout == "hello\n"
    svc.docker("rmi", "loaded/busybox:v1")
    r = svc.docker("image", "inspect", "loaded/busybox:v1", check=False)
    assert r.returncode == 1 and "No such image" in r.stderr


def test_run_detached_logs_follow_exec_cp_stop_rm(svc: Service, tmp_path: Path) -> None:
    script = "i=0; while [ $i -lt 4 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done; echo warn >&2; sleep 60"
    cid = svc.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c", script).stdout.strip()
    assert len(cid) == 64
    # follow until the fourth line, then let go
    proc = subprocess.Popen(
        ["docker", "logs", "-f", "ticker"],
        env={**os.environ, "DOCKER_HOST": svc.host},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
    finally:
        proc.kill()
        proc.communicate()
    assert lines == [f"tick {i}\n".encode() for i in range(4)]
    deadline = time.monotonic() + 20
    while "warn" not in (r := svc.docker("logs", "ticker")).stderr and time.monotonic() < deadline:
        time.sleep(0.1)
    assert r.stdout == "".join(f"tick {i}\n" for i in range(4)) and r.stderr == "warn\n"  # streams kept apart
    assert "ticker" in svc.docker("ps", "--format", "{{.Names}}").stdout
    # the CLI reads the same store: it sees the container the service started
    assert "ticker" in svc.dockyard("ps", "--format", "{{.Names}}").stdout
    r = svc.docker("exec", "ticker", "sh", "-c", "echo in-exec; echo e >&2; exit 5", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (5, "in-exec\n", "e\n")
    r = svc.docker("exec", "-i", "ticker", "cat", input="piped stdin\n")
    assert r.stdout == "piped stdin\n"
    (tmp_path / "f.txt").write_text("copied in\n")
    svc.docker("cp", str(tmp_path / "f.txt"), "ticker:/tmp/")
    assert svc.docker("exec", "ticker", "cat", "/tmp/f.txt").stdout == "copied in\n"
    svc.docker("cp", "ticker:/etc/hostname", str(tmp_path / "hn"))
    assert (tmp_path / "hn").read_text() == cid[:12] + "\n"
    top = svc.docker("top", "ticker").stdout
    assert "sleep 60" in top
    svc.docker("stop", "-t", "1", "ticker")
    state = json.loads(svc.docker("inspect", "ticker").stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137  # sh as pid 1 ignores TERM
    svc.docker("rm", "ticker")
    assert svc.dockyard("ps", "-aq").stdout == ""


def test_build_classic_with_buildargs_labels_and_run_status(svc: Service, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nARG X=1\nLABEL a=b\nCOPY f /f\n"
        'RUN echo built $X > /b.txt\nCMD ["cat", "/b.txt", "/f"]\n'
    )
    (ctx / "f").write_text("from the context\n")
    r = svc.docker("build", "--build-arg", "X=7", "--label", "extra=yes", "-t", "app:1", str(ctx))
    assert "Step 5/7 : RUN echo built $X > /b.txt" in r.stdout and "Successfully tagged app:1" in r.stdout
    assert svc.docker("run", "--rm", "app:1").stdout == "built 7\nfrom the context\n"
    labels = json.loads(svc.docker("image", "inspect", "app:1", "--format", "{{json .Config.Labels}}").stdout)
    assert labels == {"a": "b", "extra": "yes"}
    assert "app:1" in svc.dockyard("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    quiet = svc.docker("build", "-q", "--build-arg", "X=7", "--label", "extra=yes", str(ctx)).stdout.strip()
    assert (
        quiet.startswith("sha256:")
        and quiet == svc.docker("image", "inspect", "-f", "{{.Id}}", "app:1").stdout.strip()
    )
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 4\n")
    r = svc.docker("build", str(ctx), check=False)
    assert r.returncode == 4  # the RUN's status, as docker build exits
    assert "returned a non-zero code: 4" in r.stderr


def test_push_and_pull_through_our_registry(svc: Service, ours: Server) -> None:
    name = f"{ours.host}/api/busybox:p1"
    svc.docker("tag", "busybox", name)
    r = svc.docker("push", name)
    assert "p1: digest: sha256:" in r.stdout
    svc.docker("rmi", name)
    r = svc.docker("pull", name)
    assert f"Status: Downloaded newer image for {name}" in r.stdout or "Image is up to date" in r.stdout
    assert svc.docker("run", "--rm", name, "echo", "pulled").stdout == "pulled\n"
    svc.docker("rmi", name)


def test_docker_py_build_run_logs_stream_exec(svc: Service, tmp_path: Path) -> None:
    docker = pytest.importorskip("docker")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo py > /p\n")
    client = docker.DockerClient(base_url=svc.host)
    try:
        image, logs = client.images.build(path=str(ctx), tag="py:1")
        assert any("Successfully tagged py:1" in (line.get("stream") or "") for line in logs)
        script = "for i in 1 2 3; do echo line $i; sleep 0.2; done; sleep 60"
        ct = client.containers.run("py:1", ["sh", "-c", script], detach=True)
        got = []
        stream = ct.logs(stream=True, follow=True)
        for chunk in stream:
            got.append(chunk)
            if b"".join(got).count(b"\n") == 3:
                break
        stream.close()
        assert b"".join(got) == b"line 1\nline 2\nline 3\n"
        r = ct.exec_run(["sh", "-c", "cat /p; echo oops >&2; exit 2"], demux=True)
        assert (r.exit_code, r.output) == (2, (b"py\n", b"oops\n"))
        ct.stop(timeout=1)
        assert ct.wait()["StatusCode"] == 137
        ct.remove()
        assert client.containers.run("py:1", ["echo", "hi"], remove=True) == b"hi\n"
        # an entrypoint of several words runs as docker runs it, and inspect shows it as given
        ct = client.containers.create("py:1", ["echo $0-$1", "a", "b"], entrypoint=["sh", "-c"])
        assert (ct.attrs["Config"]["Entrypoint"], ct.attrs["Config"]["Cmd"]) == (
            ["sh", "-c"],
            ["echo $0-$1", "a", "b"],
        )
        ct.start()
        assert ct.wait()["StatusCode"] == 0 and ct.logs() == b"a-b\n"
        ct.remove()
        client.images.remove("py:1")
    finally:
        client.close()


def _tls_service(tmp_path: Path, root: Path) -> tuple[Service, Path]:
    certs = tmp_path / "certs"
    subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "system", "gen-certs", str(certs)],
        check=True,
        capture_output=True,
    )
    port = free_port()
    tls = ("--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "server-cert.pem"),
           "--tlskey", str(certs / "server-key.pem"))  # fmt: skip
    return start_service(root, f"tcp://127.0.0.1:{port}", extra=tls), certs


def test_tcp_with_mutual_tls_refuses_a_client_without_a_certificate(svc: Service, tmp_path: Path) -> None:
    tcp, certs = _tls_service(tmp_path, svc.root)
    try:
        env = {"DOCKER_CERT_PATH": str(certs / "client")}
        v = tcp.docker("--tlsverify", "version", "--format", "{{.Server.APIVersion}}", env=env)
        assert v.stdout.strip() == "1.41"
        # the same store as the unix socket's service
        assert "busybox" in tcp.docker("--tlsverify", "images", env=env).stdout
        assert tcp.docker("--tlsverify", "run", "--rm", "busybox", "echo", "tls", env=env).stdout == "tls\n"
        # a client that trusts the CA but has no certificate of its own is refused
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        port = int(tcp.host.rsplit(":", 1)[1])
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
            ):
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
                assert s.recv(100) == b""  # TLS 1.3: the refusal comes with the first read
                raise ConnectionResetError
        r = tcp.docker("--tls", "version", env={"DOCKER_CERT_PATH": str(tmp_path / "none")}, check=False)
        assert r.returncode != 0 and "1.41" not in r.stdout
        # a certificate from another CA is refused too
        other = tmp_path / "other"
        subprocess.run(
            [sys.executable, str(REPO / "cli.py"), "system", "gen-certs", str(other)],
            check=True,
            capture_output=True,
        )
        mixed = tmp_path / "mixed"
        mixed.mkdir()
        (mixed / "ca.pem").write_bytes((certs / "ca.pem").read_bytes())
        (mixed / "cert.pem").write_bytes((other / "client/cert.pem").read_bytes())
        (mixed / "key.pem").write_bytes((other / "client/key.pem").read_bytes())
        r = tcp.docker("--tlsverify", "version", env={"DOCKER_CERT_PATH": str(mixed)}, check=False)
        assert r.returncode != 0 and "Server:" not in r.stdout
    finally:
        tcp.stop()


def test_run_it_exec_it_detach_and_attach_on_a_terminal(svc: Service) -> None:
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "DOCKER_HOST": svc.host}

    def spawn(*args: str, dimensions: tuple[int, int] = (24, 80)) -> Any:
        return pexpect.spawn(
            "docker", list(args), env=env, encoding="utf-8", timeout=20, dimensions=dimensions
        )

    child = spawn("run", "-it", "--rm", "busybox", "sh", dimensions=(33, 101))
    child.expect("# ")
    child.sendline("tty; stty size; echo $TERM")
    child.expect("xterm")
    assert "/dev/pts/0" in child.before and "33 101" in child.before  # the CLI's resize reached the pty
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5
    child = spawn("run", "-it", "--name", "tty2", "busybox", "sh")
    child.expect("# ")
    child.send("\x10\x11")  # Ctrl-P Ctrl-Q: detached, the container runs on
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert svc.docker("inspect", "-f", "{{.State.Running}}", "tty2").stdout == "true\n"
    child = spawn("attach", "tty2")
    time.sleep(0.3)  # the attach is made before the line is typed (not a timing assertion)
    child.sendline("echo back-$((40+2))")
    child.expect("back-42")
    child.sendline("exit 4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4
    svc.docker("run", "-d", "--name", "bg", "busybox", "sleep", "60")
    child = spawn("exec", "-it", "bg", "sh", dimensions=(40, 120))
    child.expect("# ")
    child.sendline("tty; stty size; exit 6")
    child.expect(pexpect.EOF)
    child.close()
    assert "/dev/pts/0" in child.before and "40 120" in child.before and child.exitstatus == 6
    svc.docker("rm", "-f", "tty2", "bg")


COMPOSE = """\
version: "3"
services:
  web:
    image: busybox
    command:
      - sh
      - -c
      - "echo web up; while :; do printf 'HTTP/1.0 200 OK\\\\r\\\\n\\\\r\\\\nhello\\\\n' | nc -lp 8080; done"
  client:
    image: busybox
    command: ["sh", "-c", "until wget -qO- http://web:8080/; do sleep 0.2; done; echo client done; sleep 60"]
    depends_on: [web]
"""


def test_docker_compose_up_ps_logs_down(svc: Service, tmp_path: Path) -> None:
    need("docker-compose")
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return svc.docker_compose(tmp_path, *args)

    compose("-p", "demo", "up", "-d")
    ps = compose("-p", "demo", "ps").stdout
    assert "demo_web_1" in ps and "demo_client_1" in ps and ps.count(" Up ") == 2
    # the client reaches the web service by its name on the project's network
    deadline = time.monotonic() + 30
    while "client done" not in (logs := compose("-p", "demo", "logs").stdout) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "web_1     | web up" in logs and "client_1  | hello" in logs and "client done" in logs
    compose("-p", "demo", "down")
    assert svc.docker("ps", "-aq").stdout == ""
    assert "demo_default" not in svc.docker("network", "ls").stdout


def test_events_through_the_api_with_since_until_filters_and_follow(svc: Service) -> None:
    since = f"{time.time():.9f}"
    svc.docker("run", "--name", "evone", "busybox", "true")
    svc.docker("run", "-d", "--name", "evtwo", "busybox", "sleep", "60")
    svc.docker("exec", "evtwo", "true")
    svc.docker("rm", "-f", "evone", "evtwo")
    until = f"{time.time():.9f}"
    r = svc.docker(
        "events", "--since", since, "--until", until, "--filter", "container=evone", "--format", "{{.Action}}"
    )
    assert r.stdout.split() == ["create", "attach", "start", "die", "destroy"]
    r = svc.docker(
        "events", "--since", since, "--until", until, "--filter", "container=evtwo", "--format", "{{json .}}"
    )
    actions = [json.loads(line)["Action"] for line in r.stdout.splitlines()]
    assert actions[:2] == ["create", "start"]
    assert "exec_create: true " in actions and "exec_start: true " in actions and "exec_die" in actions
    assert actions[-2:] == ["die", "destroy"]
    # following: the events to come, as they come
    env = {**os.environ, "DOCKER_HOST": svc.host}
    proc = subprocess.Popen(
        ["docker", "events", "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        time.sleep(0.5)  # the stream is open before the volume is made (not a timing assertion)
        svc.docker("volume", "create", "evvol")
        assert proc.stdout.readline() == "create evvol\n"
        svc.docker("volume", "rm", "evvol")
        assert proc.stdout.readline() == "destroy evvol\n"
    finally:
        proc.kill()
        proc.communicate()


def test_import_and_commit_through_the_api(svc: Service, busybox_tar: Path) -> None:
    """``docker import`` (POST /images/create?fromSrc=-) and ``docker commit`` (POST /commit)."""
    r = svc.docker("import", "-c", 'CMD ["sh"]', "-m", "imported", str(busybox_tar), "imp:1")
    assert r.stdout.strip().startswith("sha256:")
    assert svc.docker("run", "--rm", "imp:1", "echo", "hi").stdout == "hi\n"
    svc.docker("run", "--name", "committed", "imp:1", "sh", "-c", "echo x > /f")
    svc.docker("commit", "-m", "msg", "-c", "ENV A=1", "committed", "imp:2")
    assert svc.docker("run", "--rm", "imp:2", "sh", "-c", "cat /f; echo $A").stdout == "x\n1\n"
    assert svc.docker("image", "inspect", "-f", "{{.Comment}}", "imp:2").stdout == "msg\n"
    svc.docker("rm", "committed")
    svc.docker("rmi", "imp:2", "imp:1")


def test_restart_through_the_api_as_docker(svc: Service, docker_host: str, busybox_tar: Path) -> None:
    """POST /containers/{id}/restart records docker's events (its "restart" last)."""
    from tests.conftest import docker

    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    got = []
    for run in (lambda *a: docker(docker_host, *a), svc.docker):
        since = f"{time.time():.9f}"
        run("run", "-d", "--name", "rsa", "--network", "none", "busybox", "sleep", "100")
        run("restart", "-t", "0", "rsa")
        run("rm", "-f", "rsa")
        until = f"{time.time():.9f}"
        out = run(
            "events",
            "--since",
            since,
            "--until",
            until,
            "--filter",
            "container=rsa",
            "--format",
            "{{.Action}}",
        )
        got.append(out.stdout.split())
    theirs, ours = got
    assert ours == theirs
    assert ours[ours.index("stop") :][:3] == ["stop", "start", "restart"]


def test_links_through_the_api(svc: Service) -> None:
    """HostConfig.Links as the docker CLI sends ``--link``: the /etc/hosts entry and the env."""
    svc.docker("run", "-d", "--name", "linked-db", "-e", "SECRET=s", "busybox", "sleep", "60")
    try:
        out = svc.docker(
            "run",
            "--rm",
            "--link",
            "linked-db:dbalias",
            "busybox",
            "sh",
            "-c",
            "grep dbalias /etc/hosts; env",
        ).stdout
        assert "dbalias" in out.splitlines()[0]
        assert "DBALIAS_ENV_SECRET=s" in out
        # docker rm --link: DELETE /containers/PARENT/ALIAS?link=1 (a name with a "/")
        svc.docker("run", "-d", "--name", "linking", "--link", "linked-db:db", "busybox", "sleep", "60")
        names = svc.docker("ps", "--no-trunc", "--filter", "name=linked-db", "--format", "{{.Names}}").stdout
        assert names == "linked-db,linking/db\n"  # the Names of GET /containers/json
        assert svc.docker("rm", "--link", "/linking/db").stdout == "/linking/db\n"
        r = svc.docker("rm", "--link", "/linking/db", check=False)
        assert (r.returncode, r.stderr) == (1, "Error response from daemon: No such container: linking/db\n")
        assert svc.docker("inspect", "-f", "{{json .HostConfig.Links}}", "linking").stdout == "null\n"
    finally:
        svc.docker("rm", "-f", "linked-db", "linking", check=False)


def test_build_pulls_its_base_with_the_clients_registry_credentials(svc: Service, tmp_path: Path) -> None:
    """X-Registry-Config: the base image sits in a registry that wants a password;
    docker-py logs in (POST /auth, checked against it) and sends the credentials
    with the build, which pulls the base with them."""
    docker = pytest.importorskip("docker")
    from registry.server.htpasswd import set_htpasswd_user
    from support.peers import start_ours

    htpasswd = tmp_path / "htpasswd"
    set_htpasswd_user(htpasswd, "alice", "alice-secret")
    server = start_ours(tmp_path / "reg", "--htpasswd", str(htpasswd))
    base = f"{server.host}/private/busybox:1"
    try:
        login = ["--username", "alice", "--password-stdin", server.host]
        other = tmp_path / "pusher"
        env = {**os.environ, "DOCKER_CONFIG": str(other)}
        subprocess.run([sys.executable, str(REPO / "cli.py"), "--root", str(svc.root), "login", *login],
                       input="alice-secret", text=True, env=env, check=True, capture_output=True)  # fmt: skip
        for args in (["tag", "busybox", base], ["push", base], ["rmi", base]):
            subprocess.run([sys.executable, str(REPO / "cli.py"), "--root", str(svc.root), *args],
                           env=env, check=True, capture_output=True)  # fmt: skip
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN echo private > /p\n")
        client = docker.DockerClient(base_url=svc.host)
        try:
            client.login(username="alice", password="alice-secret", registry=server.host)
            image, logs = client.images.build(path=str(ctx), tag="frompriv:1")
            assert any("Pulling from private/busybox" in (line.get("stream") or "") for line in logs)
            client.images.remove("frompriv:1")
            client.images.remove(base)
        finally:
            client.close()
    finally:
        server.stop()
