"""What ``create`` and ``run`` do once parsed: the container made from their flags
(its image pulled first if missing), and run's start, attach and relay.

commands.container.run imports this module only from its handlers: for run, after
its warm-migrations thread has started."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TextIO

from commands.container.attach import relay, window
from commands.container.limits import limits
from commands.output import err
from commands.paths import go_strerror
from imagefmt import errors
from imagefmt.catalog import Catalog, Launchable
from imagefmt.digest import Digest
from imagefmt.reference import Reference
from runtime import trace
from runtime.container import attach as A
from runtime.container import lifecycle
from runtime.container.create import CreateOptions, ImageInfo
from runtime.container.create import create as create_container
from runtime.container.store import Container, ContainerStore
from runtime.container.streams import Attach
from runtime.errors import BadSpec, SpecRefused, StartFailed


def create_options(args: argparse.Namespace, run: bool) -> CreateOptions:
    attach = tuple(args.attach)
    if run and not args.detach and not attach:
        attach = ("stdin", "stdout", "stderr") if args.interactive else ("stdout", "stderr")
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    return CreateOptions(
        command=tuple(command),
        entrypoint=args.entrypoint,
        name=args.name,
        env=tuple(args.env),
        env_files=tuple(args.env_file),
        workdir=args.workdir,
        user=args.user,
        hostname=args.hostname,
        tty=args.tty,
        interactive=args.interactive,
        attach=attach,
        auto_remove=args.rm,
        read_only=args.read_only,
        init=args.init,
        labels=(*(ln for f in args.label_file for ln in label_file(f)), *args.label),
        volumes=tuple(args.volume),
        mounts=tuple(args.mount),
        tmpfs=tuple(args.tmpfs),
        volumes_from=tuple(args.volumes_from),
        publish=tuple(args.publish),
        publish_all=args.publish_all,
        expose=tuple(args.expose),
        network=args.network,
        network_aliases=tuple(args.network_alias),
        ip=args.ip,
        limits=limits(args),
        log_driver=args.log_driver,
        log_opts=tuple(args.log_opt),
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        cgroup_parent=args.cgroup_parent,
        cap_add=tuple(args.cap_add),
        cap_drop=tuple(args.cap_drop),
        group_add=tuple(args.group_add),
        add_hosts=tuple(args.add_host),
        dns=tuple(args.dns),
        dns_search=tuple(args.dns_search),
        dns_options=tuple(args.dns_option),
        ulimits=tuple(args.ulimit),
        shm_size=args.shm_size,
        pid=args.pid,
        ipc=args.ipc,
        uts=args.uts,
        privileged=args.privileged,
        restart=args.restart,
        health_cmd=args.health_cmd,
        health_interval=args.health_interval,
        health_timeout=args.health_timeout,
        health_start_period=args.health_start_period,
        health_retries=args.health_retries,
        no_healthcheck=args.no_healthcheck,
        sysctls=tuple(args.sysctl),
        security_opts=tuple(args.security_opt),
    )


def label_file(path: str) -> list[str]:
    """``--label-file``: a label a line, blank lines and # comments skipped (docker's
    ReadKVStrings; a bare key is a label with an empty value)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.lstrip() for ln in f.read().splitlines()]
    except OSError as err:
        raise BadSpec(f"open {path}: {(err.strerror or str(err)).lower()}") from None
    return [ln for ln in lines if ln and not ln.startswith("#")]


def image_info(args: argparse.Namespace, catalog: Catalog, name: str) -> ImageInfo:
    """The runtime's ImageInfo for ``name``; docker's "Unable to find image" first.

    Through the catalog when every layer is unpacked (a container start imports
    no manifest parsing), else through the full store, which unpacks."""
    pull = getattr(args, "pull", "missing")
    asked = getattr(args, "platform", "")
    found = None if pull == "always" or asked else catalog.launchable(name)
    if found is None:
        found = unpacked(args, name, pull)
    arch = str(found.config.get("architecture") or "")
    if arch and arch != _HOST_ARCH:
        _emulate(arch, asked)
    return ImageInfo(
        id=str(found.id),
        name=name,
        config=found.config.get("config") or {},
        lowerdirs=found.lowerdirs,
        mount_cwd=str(catalog.root),
    )


def unpacked(args: argparse.Namespace, name: str, pull: str = "missing") -> Launchable:
    """The image, unpacked; pulled first as docker run does when it is missing
    (``--pull missing``, the default) or whatever the store has (``always``),
    its lines on stderr, where they stay apart from the container's output."""
    # The full store (manifests, dataclasses) and the registry client (requests): only
    # for an image the catalog cannot launch as it is, off a container start's path.
    from commands.distribution import pull_image
    from imagefmt.manifest import Platform
    from imagefmt.store import Store

    store = Store(args.root)

    def say(line: bytes) -> None:
        if not args.quiet:
            sys.stderr.buffer.write(line)
            sys.stderr.flush()

    want = Platform.parse(args.platform) if getattr(args, "platform", "") else None
    try:
        if pull == "always":
            img = pull_image(args, name, say, sys.stderr)
        else:  # a multi-platform build's image for --platform, or the image if of that platform
            img = store.image_for_platform(name, want) if want else store.image(name)
    except errors.NotFound:
        try:
            shown = Reference.parse(name).familiar()
        except errors.Invalid:
            raise errors.NotFound(f"No such image: {name}") from None
        print(f"Unable to find image '{shown}' locally", file=sys.stderr)
        if pull == "never":
            raise errors.NotFound(f"No such image: {shown}") from None
        img = pull_image(args, name, say, sys.stderr)
    return Launchable(img.id, img.config.doc, tuple(store.short_lowerdirs(img)))


_HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def _emulate(arch: str, asked: str) -> None:
    """An image of another CPU: docker's warning (when no --platform asked for it),
    and qemu's binfmt entry registered if it is missing."""
    from runtime.kernel import binfmt

    if binfmt.native(arch):
        return
    if not asked:
        print(
            f"WARNING: The requested image's platform (linux/{arch}) does not match the detected "
            f"host platform (linux/{_HOST_ARCH}) and no specific platform was requested",
            file=sys.stderr,
        )
    binfmt.ensure(arch)


def create(args: argparse.Namespace, run: bool) -> Container:
    opts = create_options(args, run)
    if opts.network == "host" and (opts.publish or opts.publish_all):
        print("WARNING: Published ports are discarded when using host network mode", file=sys.stderr)
    cidfile = open_cidfile(args.cidfile) if args.cidfile else None
    try:
        catalog = Catalog(args.root)
        info = image_info(args, catalog, args.image)
        c = create_container(ContainerStore(args.root), info, opts)
        catalog.add_hold(Digest.parse(info.id), c.id)
        if cidfile is not None:
            cidfile.write(c.id)
            cidfile.close()
    except BaseException:
        if cidfile is not None:
            cidfile.close()
            os.unlink(args.cidfile)
        raise
    return c


def open_cidfile(path: str) -> TextIO:
    """``--cidfile``, made before the container as docker's CLI makes it (so a path
    that cannot be written creates nothing), removed again if the create fails."""
    try:
        return open(path, "x")
    except FileExistsError:
        raise errors.Invalid(
            f"Container ID file found, make sure the other container isn't running or delete {path}"
        ) from None
    except OSError as err:
        raise errors.DockyardError(
            f"failed to create the container ID file: open {path}: {go_strerror(err)}"
        ) from None


def run_error(exc: errors.DockyardError) -> int:
    """docker run's status for a failure of its own: the runtime's 126/127 for the
    command; 125 for a bad option (docker's CLI refuses it while parsing); else what
    docker's toStatusError (cli/command/container/run.go) reads in the error's text,
    127 for a missing file, 126 for a permission, else 125."""
    err(str(exc))
    if isinstance(exc, StartFailed):
        return exc.exit_code
    text = str(exc)
    if isinstance(exc, BadSpec):
        return 125
    if "executable file not found" in text or "no such file or directory" in text:
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 125


def create_error(exc: errors.DockyardError) -> int:
    """docker create's status for a failure: 125 for a malformed option (its CLI
    refuses it while parsing), else 1 (what its daemon refuses, SpecRefused too)."""
    err(str(exc))
    return 125 if isinstance(exc, BadSpec) and not isinstance(exc, SpecRefused) else exc.exit_code


def run(args: argparse.Namespace, started_hook: Callable[[], None]) -> int:
    """``docker run``: create, start, then (unless detached) relay until it exits; its status."""
    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        print("the input device is not a TTY", file=sys.stderr)  # docker's words, before anything is made
        return 1
    try:
        c = create(args, run=True)
    except errors.DockyardError as exc:
        return run_error(exc)
    trace.mark("created")
    attached = bool(c.config["AttachStdout"] or c.config["AttachStderr"] or c.config["AttachStdin"])
    want = Attach(
        stdin=bool(c.config["AttachStdin"]),
        stdout=bool(c.config["AttachStdout"]),
        stderr=bool(c.config["AttachStderr"]),
        window=window() if args.tty else None,
    )
    cstore = ContainerStore(args.root)
    try:
        started = lifecycle.start(cstore, c, want if attached else Attach())
    except errors.DockyardError as exc:
        return run_error(exc)
    assert started is not None
    started_hook()
    trace.mark("started")
    sock, reader, pid = started
    if not attached:
        sock.close()
        print(c.id)
        return 0
    try:
        return relay(cstore, c, sock, reader, pid, stdin=want.stdin, proxy=args.sig_proxy != "false")
    except A.Detached:
        return 0
