"""``run_step``: the builder's one cheap call to run a command in a throwaway container.

Everything but the caller's upperdir is torn down when the command ends: the
mounts die with the container's mount namespace, and the scratch directory
(overlay workdir, /etc files, mount target, init layer) is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from runtime.errors import RuntimeFailure, StartFailed
from runtime.kernel import binfmt
from runtime.network import etcfiles
from runtime.process import launch
from runtime.process.rootfs import ensure_init_layer
from runtime.spec import Mount, Process, Rootfs, Spec

Sink = Callable[[bytes], None] | int | None


def can_run(arch: str) -> None:
    """Make binaries of ``arch`` (OCI words) runnable in steps: qemu's binfmt entry
    for another CPU's (runtime.kernel.binfmt); RuntimeFailure naming the fix."""
    binfmt.ensure(arch)


def run_step(
    lowerdirs: Sequence[str],
    upperdir: Path,
    argv: Sequence[str],
    *,
    mount_cwd: Path,
    env: Sequence[str] = (),
    workdir: str = "/",
    user: str = "",
    hostname: str = "",
    network: str = "none",
    stdout: Sink = None,
    stderr: Sink = None,
    mounts: Sequence[Mount] = (),
    init_layer: Path | None = None,
) -> int:
    """Run ``argv`` on an overlay of ``lowerdirs`` (uppermost first, relative to
    ``mount_cwd`` or absolute) with ``upperdir`` collecting the changes, and
    return its exit status (128+N when killed by signal N).

    stdin is closed (/dev/null): a command that waits for input fails.
    ``stdout``/``stderr`` are callbacks receiving chunks as they come, fds, or
    None to discard.  ``network`` is "none" or "host".  The upperdir holds only
    the command's changes: the placeholders for /etc/hosts, /proc… live in a
    read-only init layer: the shared one at ``init_layer`` (made there on first
    use), or a scratch one.

    Raises StartFailed (``exit_code`` 126/127, docker's message) when the
    command cannot be run and RuntimeFailure when the container cannot be set
    up.  Not thread-safe with other forks only in the usual os.fork sense."""
    if network not in ("none", "host"):
        raise RuntimeFailure(f"run step: network must be none or host, not {network!r}")
    upperdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".step-", dir=upperdir.parent))
    try:
        hostname = hostname or os.urandom(6).hex()
        spec = _spec(
            scratch,
            lowerdirs,
            upperdir,
            argv,
            mount_cwd,
            env,
            workdir,
            user,
            hostname,
            network,
            mounts,
            init_layer,
        )
        return _run(spec, stdout, stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _spec(
    scratch: Path,
    lowerdirs: Sequence[str],
    upperdir: Path,
    argv: Sequence[str],
    mount_cwd: Path,
    env: Sequence[str],
    workdir: str,
    user: str,
    hostname: str,
    network: str,
    mounts: Sequence[Mount],
    init_layer: Path | None,
) -> Spec:
    (scratch / "work").mkdir()
    (scratch / "mnt").mkdir()
    init = ensure_init_layer(init_layer or scratch / "init")
    etc = {
        "/etc/hostname": etcfiles.hostname_file(hostname),
        "/etc/hosts": etcfiles.hosts_file(hostname),
        "/etc/resolv.conf": etcfiles.resolv_conf(network),
    }
    for path, text in etc.items():
        (scratch / path.rsplit("/", 1)[1]).write_text(text)
    rootfs = Rootfs(
        lowerdirs=(str(init), *lowerdirs),
        upperdir=str(upperdir.absolute()),
        workdir=str(scratch / "work"),
        mount_cwd=str(mount_cwd),
        target=str(scratch / "mnt"),
        volatile=True,  # the caller turns the upperdir into a layer right away
    )
    proc = Process(args=tuple(argv), env=tuple(env), cwd=workdir or "/", user=user)
    files = tuple((p, str(scratch / p.rsplit("/", 1)[1])) for p in etc)
    return Spec(rootfs, proc, hostname, etc_files=files, mounts=tuple(mounts), network=network)


def _sink_fd(sink: Sink) -> tuple[int, int | None, bool]:
    """(fd for the child, read end to pump or None, whether we opened the fd)."""
    if callable(sink):
        r, w = os.pipe2(os.O_CLOEXEC)
        return w, r, True
    if isinstance(sink, int):
        return sink, None, False
    return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC), None, True


def _run(spec: Spec, stdout: Sink, stderr: Sink) -> int:
    if not spec.process.args:
        raise StartFailed("no command specified", 125)
    out_w, out_r, own_out = _sink_fd(stdout)
    err_w, err_r, own_err = _sink_fd(stderr)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        spawned = launch.spawn(spec, launch.Stdio(null, out_w, err_w))
    except StartFailed as exc:
        for fd in (out_r, err_r):
            if fd is not None:
                os.close(fd)
        if exc.exit_code in (126, 127):
            raise
        raise RuntimeFailure(exc.message) from None
    finally:
        os.close(null)
        for fd, own in ((out_w, own_out), (err_w, own_err)):
            if own:
                os.close(fd)
    sinks = {out_r: stdout, err_r: stderr}
    _pump({fd: cb for fd, cb in sinks.items() if fd is not None and callable(cb)})
    _, status = os.waitpid(spawned.waiter, 0)
    return launch.exit_status(status)


def _pump(readers: dict[int, Callable[[bytes], None]]) -> None:
    import selectors

    sel = selectors.DefaultSelector()
    for fd, cb in readers.items():
        sel.register(fd, selectors.EVENT_READ, cb)
    try:
        while sel.get_map():
            for key, _ in sel.select():
                data = os.read(key.fd, 65536)
                if data:
                    key.data(data)
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
    finally:
        sel.close()
