"""RUN: a command in a throwaway container on the stage's image, its upperdir the new layer.

The command runs through ``runtime.sandbox.run_step`` on an overlay of the
parent's snapshots with a fresh upperdir under the store (so the layer's
snapshot is adopted by rename); ``--mount`` inputs are prepared here and
their mount points removed from the upperdir afterwards.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder import history, mounts
from builder.commit import NewLayer
from builder.context import checksum
from builder.errors import BuildFailed, DockerfileError
from builder.flags import RUN_NETWORKS, MountSpec, RunFlags, network_problem, parse_run_mount
from builder.options import PROXY_ARGS
from builder.parser import Instruction, heredoc_name
from imagefmt.layer import write_layer
from runtime.spec import DEFAULT_PATH, Mount

if TYPE_CHECKING:
    from builder.stage import StageRun


def run(st: StageRun, ins: Instruction) -> None:
    argv = run_argv(st, ins)
    args = st.build_args_in_effect()
    shown_args = [a for a in args if a.split("=", 1)[0] in st.args]
    created_by = history.run(argv if not heredoc_script(st, ins) else [*st.shell, ins.args], shown_args)
    env = run_env(st, args)
    flags = ins.flags_as(RunFlags)
    flags.check("network", ins.line)
    network = flags.network if flags.network != "default" else st.b.opts.network
    if network not in RUN_NETWORKS:  # the build's --network
        raise DockerfileError(network_problem(network), ins.line)
    flags.check("security", ins.line)
    specs = [parse_run_mount(st.expand(m, ins), ins.line) for m in flags.mounts]
    user = st.cfg.get("User") or ""
    workdir = st.cfg.get("WorkingDir") or "/"
    mount_inputs = [mount_key(st, s, ins) for s in specs]
    descriptor = {
        "created_by": created_by,
        "argv": argv,
        # proxy args stay out of the key unless declared (BuildKit's rule)
        "env": [e for e in env if e.split("=", 1)[0] not in PROXY_ARGS or e.split("=", 1)[0] in st.args],
        "user": user,
        "workdir": workdir,
        "network": network,
        "mounts": mount_inputs,
        "config": st.cfg,
    }
    key, hit = st.cached(ins, descriptor)
    if hit is not None:
        st.use(hit)
        return
    execute(st, ins, key, descriptor, created_by, argv, env, user, workdir, network, specs)


def heredoc_script(st: StageRun, ins: Instruction) -> bool:
    return bool(ins.heredocs) and ins.json_args() is None


def run_argv(st: StageRun, ins: Instruction) -> list[str]:
    form = ins.json_args()
    if form is not None:
        if not form:
            raise DockerfileError("RUN requires at least one argument", ins.line)
        return form
    if not ins.heredocs:
        if not ins.args:
            raise DockerfileError("RUN requires at least one argument", ins.line)
        return [*st.shell, ins.args]
    words = ins.args.split()
    only = len(ins.heredocs) == 1 and len(words) == 1 and heredoc_name(words[0]) == ins.heredocs[0].name
    if only:
        body = ins.heredocs[0].content
        if body.startswith("#!"):  # a script with its own interpreter: BuildKit runs it as a file
            return [*st.shell, f"f=$(mktemp) && cat >\"$f\" <<'DOCKYARD_EOF'\n{body}DOCKYARD_EOF\n"
                    'chmod +x "$f" && "$f"; rc=$?; rm -f "$f"; exit $rc']  # fmt: skip
        return [*st.shell, body]
    script = ins.args + "\n" + "".join(f"{h.content}{h.name}\n" for h in ins.heredocs)
    return [*st.shell, script]


def run_env(st: StageRun, args: list[str]) -> list[str]:
    env = list(st.cfg.get("Env") or [])
    names = {e.split("=", 1)[0] for e in env}
    env += [a for a in args if a.split("=", 1)[0] not in names]
    have = {e.split("=", 1)[0] for e in env}
    for k, v in st.b.proxy_args().items():
        if k not in have:
            env.append(f"{k}={v}")
    if "PATH" not in have:
        env.append(f"PATH={DEFAULT_PATH}")
    return env


def mount_key(st: StageRun, spec: MountSpec, ins: Instruction) -> dict[str, Any]:
    key: dict[str, Any] = {
        "type": spec.type,
        "target": spec.target,
        "readonly": spec.readonly,
        "id": spec.id,
        "env": spec.env,
        "mode": spec.mode,
        "uid": spec.uid,
        "gid": spec.gid,
    }
    if spec.type == "bind":
        if spec.from_:
            key["from"] = str(st.b.from_image(spec.from_, st.stage, ins.line).id)
            key["source"] = spec.source
        else:
            items = st.b.ctx.items(st.b.ctx.select(spec.source or ".", ins.line)[0])
            key["source"] = spec.source
            key["content"] = checksum(items, "", st.b.cache.sums)
    elif spec.type == "secret" and spec.required and spec.id not in st.b.opts.secrets:
        raise DockerfileError(
            f"secret {spec.id} is required but was not given (--secret id={spec.id},src=…)", ins.line
        )
    return key


def execute(
    st: StageRun,
    ins: Instruction,
    key: str,
    descriptor: dict[str, Any],
    created_by: str,
    argv: list[str],
    env: list[str],
    user: str,
    workdir: str,
    network: str,
    specs: list[MountSpec],
) -> None:
    from runtime.errors import StartFailed  # imported here: a fully cached build never runs anything
    from runtime.fs import ensure_init_layer
    from runtime.sandbox import run_step

    store = st.b.store
    work = store.tmp / f"build-{uuid.uuid4().hex}"
    upper = work / "upper"
    upper.mkdir(parents=True)
    container = os.urandom(6).hex()
    st.say(f" ---> Running in {container}\n")
    prepared = mounts.Prepared()
    tail = bytearray()

    def sink(chunk: bytes) -> None:
        tail.extend(chunk)
        del tail[:-8192]
        st.say_raw(chunk)

    try:
        view = st.view(st.image)
        prepare_mounts(st, specs, prepared, work, workdir, ins)
        points = mounts.mount_points(view, [mounts.absolute(t, workdir) for t in prepared.targets])
        lowers = store.short_lowerdirs(st.image) if st.image is not None else []
        init = ensure_init_layer(st.b.cache.init_layer)
        try:
            code = run_step(
                lowers,
                upper,
                argv,
                mount_cwd=store.root,
                env=[*env, *prepared.env],
                workdir=workdir,
                user=user,
                hostname=container,
                network=network,
                stdout=sink,
                stderr=sink,
                mounts=prepared.mounts,
                init_layer=init,
            )
        except StartFailed as err:
            sink(f"{err}\n".encode())
            code = err.exit_code
        finally:
            prepared.close()
        if code != 0:
            raise BuildFailed(
                f"The command '{' '.join(argv)}' returned a non-zero code: {code}",
                code,
                ins.line,
                tail.decode(errors="replace"),
                ins.original,
            )
        mounts.remove_mount_points(upper, view, points)
        layer: NewLayer | None = None
        if any(upper.iterdir()):
            path, out = store.temp_file()
            st.b.temp_files.append(path)
            with out:
                write_layer(upper, out, overlay_whiteouts=True, mtime_clamp=st.b.sde)
            layer = NewLayer(tar=path, upperdir=upper)
        st.save(key, descriptor, created_by, layer)
        st.finish(container)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prepare_mounts(
    st: StageRun,
    specs: list[MountSpec],
    prepared: mounts.Prepared,
    work: Path,
    workdir: str,
    ins: Instruction,
) -> None:
    for n, spec in enumerate(specs):
        target = mounts.absolute(spec.target, workdir) if spec.target else ""
        if spec.type == "tmpfs":
            opts = f"size={spec.size}" if spec.size else ""
            prepared.mounts.append(Mount(target, "", "tmpfs", False, opts))
        elif spec.type == "cache":
            prepared.mounts.append(cache_mount(st, spec, target, prepared, work, n))
        elif spec.type == "secret":
            secret = st.b.opts.secrets.get(spec.id)
            if secret is None:
                continue
            if spec.env:
                prepared.env.append(f"{spec.env}={secret.decode(errors='replace')}")
            if not target:
                continue
            path = work / f"secret-{n}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as f:
                f.write(secret)
            os.chown(path, spec.uid or 0, spec.gid or 0)
            os.chmod(path, spec.mode if spec.mode is not None else 0o400)
            prepared.mounts.append(Mount(target, str(path), "bind", True))
        else:
            prepared.mounts.append(bind_mount(st, spec, target, work, n, ins))
        if target:
            prepared.targets.append(target)


def cache_mount(
    st: StageRun, spec: MountSpec, target: str, prepared: mounts.Prepared, work: Path, n: int
) -> Mount:
    ident = spec.id or target
    base = mounts.cache_dir(st.b.cache.mounts, ident)
    data = base / "data"
    if not data.exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".new-{uuid.uuid4().hex}"
        tmp.mkdir(mode=0o755)
        os.chown(tmp, spec.uid or 0, spec.gid or 0)
        os.chmod(tmp, spec.mode if spec.mode is not None else 0o755)
        try:
            os.rename(tmp, data)
        except OSError:
            tmp.rmdir()
    source = data
    if spec.sharing == "locked":
        prepared.stack.enter_context(mounts._locked(base / ".lock"))
    elif spec.sharing == "private":
        if not prepared.stack.enter_context(mounts._locked(base / ".lock", blocking=False)):
            source = work / f"cache-{n}"
            source.mkdir()
    return Mount(target, str(source), "bind", spec.readonly)


def bind_mount(st: StageRun, spec: MountSpec, target: str, work: Path, n: int, ins: Instruction) -> Mount:
    if spec.from_:
        image = st.b.from_image(spec.from_, st.stage, ins.line)
        view = st.view(image)
        parts = view.resolve(spec.source or "/")
        found = view.lookup(parts)[0]
        if found is None:
            raise DockerfileError(f"mount source {spec.source!r} not found in {spec.from_}", ins.line)
        if spec.readonly and not found.is_dir:  # a layer's file never changes: bind it as it is
            return Mount(target, os.fsdecode(found.host), "bind", True)
        # a directory is merged from layers (and may hold whiteouts): give the command a copy
        copy_to = work / f"bind-{n}"
        mounts.materialize(view, parts, copy_to)
        return Mount(target, str(copy_to), "bind", spec.readonly)
    if st.b.ctx.root is None:
        raise DockerfileError("RUN --mount=type=bind needs a build context", ins.line)
    rel = st.b.ctx.select(spec.source or ".", ins.line)[0]
    host = os.fsdecode(st.b.ctx.host(rel))
    if spec.readonly:
        return Mount(target, host, "bind", True)
    copy_to = work / f"bind-{n}"
    if os.path.isdir(host):
        shutil.copytree(host, copy_to, symlinks=True)
    else:
        shutil.copy2(host, copy_to, follow_symlinks=False)
    return Mount(target, str(copy_to), "bind", False)
