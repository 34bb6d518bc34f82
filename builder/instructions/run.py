"""RUN: a command in a throwaway container on the stage's image, its upperdir the new layer.

The plan decides the argv, the environment, the network and the mounts (the
cache key); on a miss the command runs through ``runtime.sandbox.run_step``
on an overlay of the parent's snapshots with a fresh upperdir under the
store, so the layer's snapshot is adopted by rename.  ``--mount`` inputs are
prepared by ``run_mounts``, and their mount points removed from the upperdir
afterwards.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from builder import history
from builder.commit import NewLayer
from builder.errors import BuildFailed, DockerfileError
from builder.flags import RUN_NETWORKS, MountSpec, RunFlags, network_problem, parse_run_mount
from builder.instructions import run_mounts
from builder.instructions.step import LayerJob, Plan, StepState
from builder.options import PROXY_ARGS
from builder.parser import Instruction, heredoc_name
from imagefmt.tempstate import owned_name
from runtime.spec import DEFAULT_PATH


def run(state: StepState, ins: Instruction) -> Plan:
    flags = ins.flags_as(RunFlags)
    argv = _argv(state, ins)
    args = state.build_args_in_effect()
    shown_args = [a for a in args if a.split("=", 1)[0] in state.args]
    heredoc_script = bool(ins.heredocs) and ins.json_args() is None
    created_by = history.run(argv if not heredoc_script else [*state.shell, ins.args], shown_args)
    if ins.json_args() == []:  # docker writes nothing for ``RUN []``
        created_by = ""
    env = _env(state, args)
    ins.check_flag("network")
    network = flags.network if flags.network != "default" else state.options.network
    if network not in RUN_NETWORKS:  # the build's --network
        raise DockerfileError(network_problem(network), ins.line)
    ins.check_flag("security")
    specs = [parse_run_mount(state.expand(m, ins), ins.line) for m in flags.mounts]
    user = state.config.get("User") or ""
    workdir = state.config.get("WorkingDir") or "/"
    key = {
        "argv": argv,
        # proxy args stay out of the key unless declared (BuildKit's rule)
        "env": [e for e in env if e.split("=", 1)[0] not in PROXY_ARGS or e.split("=", 1)[0] in state.args],
        "user": user,
        "workdir": workdir,
        "network": network,
        "mounts": [run_mounts.mount_key(state, s, ins) for s in specs],
    }

    def make_layer(job: LayerJob) -> NewLayer | None:
        return _execute(job, ins, argv, env, user, workdir, network, specs)

    return Plan(created_by, key, make_layer=make_layer)


def _argv(state: StepState, ins: Instruction) -> list[str]:
    form = ins.json_args()
    if form is not None:
        if not form:  # docker: the container runs the image's own ENTRYPOINT, else its CMD
            argv = list(state.config.get("Entrypoint") or state.config.get("Cmd") or [])
            if not argv:
                raise DockerfileError("RUN []: the image has no ENTRYPOINT or CMD to run", ins.line)
            return argv
        return form
    if not ins.heredocs:
        # a bare RUN is docker's '/bin/sh -c' with nothing to run (the shell exits 2)
        return [*state.shell, ins.args] if ins.args else state.shell
    words = ins.args.split()
    only = len(ins.heredocs) == 1 and len(words) == 1 and heredoc_name(words[0]) == ins.heredocs[0].name
    if only:
        body = ins.heredocs[0].content
        if body.startswith("#!"):  # a script with its own interpreter: BuildKit runs it as a file
            return [*state.shell, f"f=$(mktemp) && cat >\"$f\" <<'DOCKYARD_EOF'\n{body}DOCKYARD_EOF\n"
                    'chmod +x "$f" && "$f"; rc=$?; rm -f "$f"; exit $rc']  # fmt: skip
        return [*state.shell, body]
    script = ins.args + "\n" + "".join(f"{h.content}{h.name}\n" for h in ins.heredocs)
    return [*state.shell, script]


def _env(state: StepState, args: list[str]) -> list[str]:
    """The command's environment: ENV, the ARGs ENV does not set, proxy args, a PATH."""
    env = list(state.config.get("Env") or [])
    names = {e.split("=", 1)[0] for e in env}
    env += [a for a in args if a.split("=", 1)[0] not in names]
    have = {e.split("=", 1)[0] for e in env}
    for k, v in state.proxy_args().items():
        if k not in have:
            env.append(f"{k}={v}")
    if "PATH" not in have:
        env.append(f"PATH={DEFAULT_PATH}")
    return env


def with_hostname(env: list[str], container: str) -> list[str]:
    """docker's step environment: PATH, then HOSTNAME (the step container's id, unless
    ENV sets it), then the rest."""
    if any(e.startswith("HOSTNAME=") for e in env):
        return env
    paths = [e for e in env if e.startswith("PATH=")]
    return [*paths, f"HOSTNAME={container}", *(e for e in env if not e.startswith("PATH="))]


class _Output:
    """The command's output: streamed to the build's, its last 8 KiB kept for BuildFailed."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.tail = bytearray()

    def __call__(self, chunk: bytes) -> None:
        self.tail.extend(chunk)
        del self.tail[:-8192]
        self.write(chunk)


def _execute(
    job: LayerJob,
    ins: Instruction,
    argv: list[str],
    env: list[str],
    user: str,
    workdir: str,
    network: str,
    specs: list[MountSpec],
) -> NewLayer | None:
    """Run the command; its upperdir (if it changed anything) is the layer.  BuildFailed
    carries the command's exit status and the end of its output."""
    from runtime.errors import StartFailed  # imported here: a fully cached build never runs anything
    from runtime.sandbox import can_run, run_step

    state = job.state
    store = state.store
    if state.doc.get("architecture"):
        can_run(str(state.doc["architecture"]))  # another CPU's image: through qemu (binfmt_misc)
    work = store.tmp / owned_name("build")  # reclaimed by the next store open if this build is killed
    upper = work / "upper"
    upper.mkdir(parents=True)
    job.stack.callback(shutil.rmtree, work, ignore_errors=True)
    container = job.start_container()
    prepared = run_mounts.Prepared()
    sink = _Output(job.write)
    view = state.view(state.image)
    run_mounts.prepare(state, specs, prepared, work, workdir, ins)
    points = run_mounts.mount_points(view, [run_mounts.absolute(t, workdir) for t in prepared.targets])
    lowers = store.short_lowerdirs(state.image) if state.image is not None else []
    try:
        code = run_step(
            lowers,
            upper,
            argv,
            mount_cwd=store.root,
            env=[*with_hostname(env, container), *prepared.env],
            workdir=workdir,
            user=user,
            hostname=container,
            network=network,
            stdout=sink,
            stderr=sink,
            mounts=prepared.mounts,
            init_layer=state.cache.init_layer,
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
            sink.tail.decode(errors="replace"),
            ins.original,
        )
    run_mounts.remove_mount_points(upper, view, points)
    return _layer(state, upper)


def _layer(state: StepState, upper: Path) -> NewLayer | None:
    """The upperdir as a layer tar (overlay whiteouts as .wh. entries), or None if empty."""
    from imagefmt.layer import write_layer  # here: a cached build writes no layer

    if not any(upper.iterdir()):
        return None
    path, out = state.temp_file()
    with out:
        write_layer(upper, out, overlay_whiteouts=True, mtime_clamp=state.source_date_epoch)
    return NewLayer(tar=path, upperdir=upper)
