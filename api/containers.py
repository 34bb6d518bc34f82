"""Container routes: create, start, attach, wait, stop, kill, restart, remove, list,
inspect, logs, top, changes, export, archive (cp), rename, pause, unpause, update,
stats and prune."""

from __future__ import annotations

import base64
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from api.createspec import create_options
from api.runs import Runs, close_client, pump_in, relay_out
from api.server import HIJACKED, Reply, Request, Result, Routes, Service, Stream
from api.wire import STDERR, STDOUT, mux, produce
from engine import containers as econtainers
from engine import prune as eprune
from engine.holds import release_image
from imagefmt import errors
from imagefmt.catalog import Catalog
from imagefmt.digest import Digest
from imagefmt.reference import Reference
from imagefmt.store import Store
from runtime.container import attach as A
from runtime.container import events, lifecycle, links, stats, transfer
from runtime.container.create import ImageInfo
from runtime.container.create import create as create_container
from runtime.container.launchspec import log_reader
from runtime.container.store import Container, ContainerStore, parse_time
from runtime.container.streams import Attach
from runtime.spec import parse_signal

ROUTES = Routes()


def runs(service: Service) -> Runs:
    with service.lock:
        got = service.state.get("runs")
        if got is None:
            got = service.state["runs"] = Runs()
        return got


def _get(req: Request) -> tuple[ContainerStore, Container]:
    cstore = ContainerStore(req.service.root)
    return cstore, cstore.get(req.params["id"])


def summary(c: Container, now: float, cstore: ContainerStore) -> dict[str, Any]:
    """A container as ``GET /containers/json`` lists it."""
    r = econtainers.row(c, now, cstore)
    nets = (c.network_settings().get("Networks")) or {}
    return {
        "Id": c.id,
        "Names": [f"/{c.name}", *(f"/{n}" for n in r.link_names)],
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": r.command,
        "Created": int(r.created),
        "Ports": [
            {"PrivatePort": int(p.private.split("/")[0]), "Type": p.private.split("/")[1]}
            | (
                {"IP": p.host_ip or "0.0.0.0", "PublicPort": int(p.host_port)}
                if p.published and p.host_port
                else {}
            )
            for p in r.ports
        ],
        "Labels": r.labels,
        "State": r.state,
        "Status": r.status,
        "HostConfig": {"NetworkMode": r.network_mode},
        "NetworkSettings": {"Networks": nets},
        "Mounts": c.record.get("Mounts") or [],
    }


@ROUTES("GET", "/containers/json")
def list_containers(req: Request) -> Reply:
    opts = econtainers.PsOptions(
        all=req.flag("all"), last=req.int_arg("limit", -1) or -1, filters=req.filter_list()
    )
    cstore = ContainerStore(req.service.root)
    cs = econtainers.list_containers(cstore, opts)
    now = time.time()
    return Reply([summary(c, now, cstore) for c in cs])


@ROUTES("POST", "/containers/create")
def create(req: Request) -> Reply:
    name = req.arg("name")
    body = req.json()
    image, opts = create_options(name, body)
    root = req.service.root
    catalog = Catalog(root)
    found = catalog.launchable(image)
    if found is None:
        store = Store(root)
        try:
            img = store.image(image)
        except errors.NotFound:
            raise errors.NotFound(f"No such image: {image}") from None
        from imagefmt.catalog import Launchable

        found = Launchable(img.id, img.config.doc, tuple(store.short_lowerdirs(img)))
    info = ImageInfo(
        id=str(found.id),
        name=image,
        config=found.config.get("config") or {},
        lowerdirs=found.lowerdirs,
        mount_cwd=str(catalog.root),
    )
    cstore = ContainerStore(root)
    c = create_container(cstore, info, opts)
    catalog.add_hold(Digest.parse(info.id), c.id)  # the runtime records the "create" event
    entrypoint = body.get("Entrypoint")
    if isinstance(entrypoint, list) and len(entrypoint) > 1:  # the runtime took one word (createspec)
        with cstore.locked(c) as cur:
            cur.config["Entrypoint"] = entrypoint
            cur.config["Cmd"] = opts.command[len(entrypoint) - 1 :] or None
            cstore.save_record(cur)
    return Reply({"Id": c.id, "Warnings": []}, 201)


@ROUTES("POST", "/containers/{id}/start")
def start(req: Request) -> Reply:
    cstore, c = _get(req)
    r = runs(req.service)
    waiting = r.take_pending(c.id)
    want = Attach(
        stdin=any(p.want.stdin for p in waiting),
        stdout=any(p.want.stdout for p in waiting),
        stderr=any(p.want.stderr for p in waiting),
    )
    try:
        started = lifecycle.start(cstore, c, want)
    except errors.DockyardError:
        for p in waiting:
            p.ready.set()  # they find no socket and end
        raise
    if started is None:
        for p in waiting:
            p.ready.set()
        return Reply(None, 304)
    sock, reader, _pid = started
    if waiting:
        first = waiting[0]
        first.sock, first.reader = sock, reader
        for p in waiting:
            p.ready.set()
    else:
        r.watch(c.id, sock, reader)
    return Reply(None, 204)


@ROUTES("POST", "/containers/{id}/attach")
def attach(req: Request) -> Result:
    cstore, c = _get(req)
    want = Attach(
        stdin=req.flag("stdin"), stdout=req.flag("stdout"), stderr=req.flag("stderr")
    )  # fmt: skip
    tty = bool(c.config.get("Tty"))
    r = runs(req.service)
    pending = None
    if not c.running:
        if not req.flag("stream", True):
            raise errors.Conflict("You cannot attach to a stopped container, start it first")
        pending = r.add_pending(c.id, want)
    client, rfile = req.hijack()
    try:
        if pending is not None:
            # until start or removal: not until the client's EOF, which the docker CLI sends
            # (CloseWrite) as soon as its stdin ends, or at once without stdin
            while not pending.ready.wait(1.0):
                if not cstore.dir.joinpath(c.id).is_dir():
                    r.drop_pending(c.id, pending)
                    return HIJACKED
            if pending.sock is None:  # a second attach, or the start failed: join as any client
                c = cstore.load(c.id)
                if not c.running:
                    return HIJACKED
                sock, reader = _connect(c, want), A.FrameReader()
            else:
                sock, reader = pending.sock, pending.reader or A.FrameReader()
        else:
            sock, reader = _connect(c, want), A.FrameReader()
        with sock:
            if want.stdin:
                pump_in(rfile, sock)
            relay_out(c.id, r, sock, reader, client, tty)
    finally:
        close_client(client)
    return HIJACKED


def _connect(c: Container, want: Attach) -> Any:
    try:
        sock = A.connect(c.socket_path)
    except OSError as exc:
        raise errors.Conflict(f"cannot attach to container {c.name}: {exc.strerror}") from None
    sock.sendall(A.frame_json(A.HELLO, {"stdin": want.stdin, "stdout": want.stdout, "stderr": want.stderr}))
    return sock


@ROUTES("POST", "/containers/{id}/resize")
def resize(req: Request) -> Reply:
    _, c = _get(req)
    h, w = req.int_arg("h", 0), req.int_arg("w", 0)
    if c.running and c.config.get("Tty") and h and w:
        try:
            sock = A.connect(c.socket_path)
        except OSError:
            return Reply(None, 200)
        with sock:
            sock.sendall(A.frame_json(A.HELLO, {}) + A.frame(A.RESIZE, f"{h} {w}".encode()))
    return Reply(None, 200)


@ROUTES("POST", "/containers/{id}/wait")
def wait(req: Request) -> Stream:
    cstore, c = _get(req)
    condition = req.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise errors.Invalid(f"invalid condition: {condition!r}")
    r = runs(req.service)
    after = r.generation(c.id)  # before the headers go: a start right after is seen

    def body() -> Iterator[bytes]:
        code = _wait(cstore, c, r, after, condition)
        yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

    return Stream(body())


def _wait(cstore: ContainerStore, c: Container, r: Runs, after: int, condition: str) -> int:
    seen_running = c.running
    while True:
        code = r.wait_exit(c.id, after, 0.0)
        if code is not None and condition != "not-running":
            break
        try:
            cur = cstore.load(c.id)
        except errors.NotFound:
            code = r.wait_exit(c.id, after, 2.0)  # removed by --rm: its monitor said the code
            return code if code is not None else 0
        if not cur.running and not cur.restarting:
            if condition == "not-running" or (seen_running and condition != "not-running"):
                code = int(cur.state.get("ExitCode") or 0)
                break
            r.wait_exit(c.id, after, 0.25)  # not started yet: a start through us says so
        else:
            seen_running = True
            lifecycle.wait_stopped(cur, 0.5)
    if condition == "removed" and c.host_config.get("AutoRemove"):
        deadline = time.monotonic() + 10
        while cstore.dir.joinpath(c.id).is_dir() and time.monotonic() < deadline:
            time.sleep(0.05)
    return code


def _each(req: Request, action: Callable[[ContainerStore, Container], None]) -> Reply:
    cstore, c = _get(req)
    action(cstore, c)
    return Reply(None, 204)


@ROUTES("POST", "/containers/{id}/stop")
def stop(req: Request) -> Reply:
    cstore, c = _get(req)
    if not c.running:
        return Reply(None, 304)
    lifecycle.stop(cstore, c, req.int_arg("t"))
    return Reply(None, 204)


@ROUTES("POST", "/containers/{id}/restart")
def restart(req: Request) -> Reply:
    t = req.int_arg("t")

    def do(cstore: ContainerStore, c: Container) -> None:
        try:
            if c.running:
                lifecycle.stop(cstore, c, t)
            got = lifecycle.start(cstore, cstore.load(c.id))
        except errors.DockyardError as exc:  # docker's words, the name as given
            exc.message = f"Cannot restart container {req.params['id']}: {exc.message}"
            exc.args = (exc.message,)
            raise
        if got is not None:
            runs(req.service).watch(c.id, got[0], got[1])
        events.container(cstore.root, c, "restart")

    return _each(req, do)


@ROUTES("POST", "/containers/{id}/kill")
def kill(req: Request) -> Reply:
    sig = parse_signal(req.arg("signal") or "KILL")
    return _each(req, lambda s, c: lifecycle.kill(s, c, sig))


@ROUTES("DELETE", "/containers/{id*}")
def remove(req: Request) -> Reply:
    if req.flag("link"):  # docker rm --link: the id is a link's name, /PARENT/ALIAS
        links.remove(ContainerStore(req.service.root), req.params["id"])
        return Reply(None, 204)

    def do(cstore: ContainerStore, c: Container) -> None:
        lifecycle.remove(cstore, c, force=req.flag("force"), volumes=req.flag("v"))
        release_image(Catalog(req.service.root), c)

    return _each(req, do)


@ROUTES("POST", "/containers/{id}/rename")
def rename(req: Request) -> Reply:
    return _each(req, lambda s, c: lifecycle.rename(s, c, req.arg("name")))


@ROUTES("POST", "/containers/{id}/pause")
def pause(req: Request) -> Reply:
    return _each(req, lambda s, c: lifecycle.set_paused(s, c, True))


@ROUTES("POST", "/containers/{id}/unpause")
def unpause(req: Request) -> Reply:
    return _each(req, lambda s, c: lifecycle.set_paused(s, c, False))


@ROUTES("GET", "/containers/{id}/json")
def inspect(req: Request) -> Reply:
    _, c = _get(req)
    return Reply(c.inspect())


@ROUTES("GET", "/containers/{id}/top")
def top(req: Request) -> Reply:
    _, c = _get(req)
    titles, procs = stats.top(c, req.arg("ps_args").split())
    return Reply({"Titles": titles, "Processes": procs})


@ROUTES("GET", "/containers/{id}/changes")
def changes(req: Request) -> Reply:
    cstore, c = _get(req)
    kinds = {"C": 0, "A": 1, "D": 2}
    return Reply([{"Path": p, "Kind": kinds[k]} for k, p in transfer.changes(cstore, c)])


@ROUTES("GET", "/containers/{id}/export")
def export(req: Request) -> Stream:
    cstore, c = _get(req)

    def run(write: Callable[[bytes], None]) -> None:
        r, w = os.pipe2(os.O_CLOEXEC)
        t = threading.Thread(target=_export_into, args=(cstore, c, w), daemon=True)
        t.start()
        with os.fdopen(r, "rb") as src:
            while chunk := src.read(1 << 16):
                write(chunk)
        t.join()

    return Stream(produce(run, on_error=None), content_type="application/x-tar")


def _export_into(cstore: ContainerStore, c: Container, w: int) -> None:
    try:
        transfer.export(cstore, c, w)
    except errors.DockyardError:
        pass
    finally:
        os.close(w)


@ROUTES("POST", "/containers/{id}/update")
def update(req: Request) -> Reply:
    cstore, c = _get(req)
    body = req.json()
    names = {
        "Memory": "memory",
        "MemorySwap": "memory_swap",
        "NanoCpus": "nano_cpus",
        "CpuShares": "cpu_shares",
        "CpusetCpus": "cpuset_cpus",
        "CpuPeriod": "cpu_period",
        "CpuQuota": "cpu_quota",
        "PidsLimit": "pids_limit",
    }
    change = {names[k]: v for k, v in body.items() if k in names and v}
    policy = body.get("RestartPolicy") or {}
    stats.update(cstore, c, change, policy.get("Name") or "")
    return Reply({"Warnings": []})


@ROUTES("GET", "/containers/{id}/stats")
def container_stats(req: Request) -> Stream:
    _, c = _get(req)

    def doc(s: stats.Sample, pre: stats.Sample | None) -> bytes:
        d = {
            "read": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
            "id": c.id,
            "name": f"/{c.name}",
            "pids_stats": {"current": s.pids},
            "cpu_stats": {"cpu_usage": {"total_usage": s.cpu_ns}, "system_cpu_usage": s.system_ns,
                          "online_cpus": os.cpu_count() or 1},
            "precpu_stats": {"cpu_usage": {"total_usage": pre.cpu_ns if pre else 0},
                             "system_cpu_usage": pre.system_ns if pre else 0},
            "memory_stats": {"usage": s.mem_usage, "limit": s.mem_limit},
            "networks": {"eth0": {"rx_bytes": s.net_rx, "tx_bytes": s.net_tx}},
        }  # fmt: skip
        return json.dumps(d).encode() + b"\n"

    def body() -> Iterator[bytes]:
        pre = None
        while True:
            cur = ContainerStore(req.service.root).load(c.id)
            s = stats.sample(cur)
            yield doc(s, pre)
            if not req.flag("stream", True) or not cur.running:
                return
            pre = s
            time.sleep(1)

    return Stream(body())


@ROUTES("POST", "/containers/prune")
def prune(req: Request) -> Reply:
    ids, freed = eprune.prune_containers(req.service.root, req.filter_list())
    return Reply({"ContainersDeleted": ids or None, "SpaceReclaimed": freed})


# ------------------------------------------------------------------- logs ---


@ROUTES("GET", "/containers/{id}/logs")
def logs(req: Request) -> Stream:
    cstore, c = _get(req)
    reader = log_reader(c)
    tty = bool(c.config.get("Tty"))
    want = {s for s in ("stdout", "stderr") if req.flag(s)}
    if not want:
        raise errors.Invalid("Bad parameters: you must choose at least one stream")
    since = float(req.arg("since") or 0)
    until = float(req.arg("until") or 0)
    tail = req.arg("tail") or "all"
    stamps = req.flag("timestamps")
    follow = req.flag("follow")

    def frame(e: Any) -> bytes:
        data = (e.time.encode() + b" " if stamps else b"") + e.line
        return data if tty else mux(STDERR if e.stream == "stderr" else STDOUT, data)

    def keep(e: Any) -> bool:
        t = parse_time(e.time)
        return e.stream in want and (not since or t >= since) and (not until or t <= until)

    def body() -> Iterator[bytes]:
        entries = [e for e in reader.read() if keep(e)]
        if tail != "all" and tail.lstrip("-").isdigit() and int(tail) >= 0:
            entries = entries[len(entries) - int(tail) :] if int(tail) else []
        for e in entries:
            yield frame(e)
        if follow and not until:

            def running() -> bool:
                try:
                    return cstore.load(c.id).running
                except errors.NotFound:
                    return False

            for e in reader.follow(running):
                if keep(e):
                    yield frame(e)

    return Stream(body(), content_type="application/vnd.docker.raw-stream")


# ----------------------------------------------------------------- archive ---


def _path_stat(info: tarfile.TarInfo) -> str:
    mode = info.mode & 0o7777
    if info.isdir():
        mode |= 1 << 31
    elif info.issym():
        mode |= 1 << 27
    doc = {
        "name": info.name.rstrip("/").rsplit("/", 1)[-1],
        "size": info.size,
        "mode": mode,
        "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.mtime)),
        "linkTarget": info.linkname,
    }
    return base64.b64encode(json.dumps(doc).encode()).decode()


class _Tee:
    """A reader that keeps what it has read, for the bytes of the first header."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buf = b""
        self.kept: list[bytes] = []

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = next(self.chunks, b"")
            if not chunk:
                break
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        self.kept.append(data)
        return data


@ROUTES("GET", "/containers/{id}/archive")
def archive_get(req: Request) -> Reply | Stream:
    cstore, c = _get(req)
    path = req.arg("path")
    if not path:
        raise errors.Invalid("path is required")

    def run(write: Callable[[bytes], None]) -> None:
        class Out:
            def write(self, data: bytes) -> None:
                write(data)

            def flush(self) -> None:
                pass

        transfer.copy_from(cstore, c, path, "-", follow=False, out=Out())  # type: ignore[arg-type]

    chunks = produce(run, on_error=None)
    tee = _Tee(chunks)
    try:
        with tarfile.open(fileobj=tee, mode="r|") as tar:  # type: ignore[call-overload]
            first = tar.next()
    except tarfile.TarError:
        list(chunks)  # the producer's error (NotFound …), raised here
        raise errors.NotFound(f"Could not find the file {path} in container {c.name}") from None
    if first is None:
        raise errors.NotFound(f"Could not find the file {path} in container {c.name}")
    header = (("X-Docker-Container-Path-Stat", _path_stat(first)),)
    if req.method == "HEAD":
        chunks.close()
        return Reply(None, 200, content_type="application/x-tar", headers=header)
    head = b"".join(tee.kept) + tee.buf

    def body() -> Iterator[bytes]:
        yield head
        yield from chunks

    return Stream(body(), content_type="application/x-tar", headers=header)


@ROUTES("PUT", "/containers/{id}/archive")
def archive_put(req: Request) -> Reply:
    cstore, c = _get(req)
    path = req.arg("path")
    transfer.copy_to(cstore, c, "-", path, archive=True, follow=False, stdin=req.body)  # type: ignore[arg-type]
    return Reply(None, 200)


@ROUTES("POST", "/commit")
def commit(req: Request) -> Reply:
    """``docker commit``: ``container``, ``repo``/``tag``, ``comment``, ``author``,
    ``pause``, ``changes`` (repeated); 201 {"Id": …} as docker's daemon."""
    repo, tag_ = req.arg("repo"), req.arg("tag")
    ref = Reference.parse(f"{repo}:{tag_}" if repo and tag_ else repo) if repo else None
    cstore = ContainerStore(req.service.root)
    c = cstore.get(req.arg("container"))
    img = transfer.commit(
        cstore,
        c,
        Store(req.service.root),
        ref=ref,
        author=req.arg("author"),
        message=req.arg("comment"),
        changes=list(req.query.get("changes") or []),
        pause=req.flag("pause", True),
    )
    return Reply({"Id": str(img.id)}, status=201)
