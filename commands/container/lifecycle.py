"""``start``, ``stop``, ``restart``, ``kill``, ``rm``, ``pause``, ``unpause``,
``rename`` and ``wait`` (also as ``container …``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from commands.container import both
from commands.container.attach import attach, relay, window
from commands.errors import UsageError
from commands.output import err
from commands.parsing import OnlyVerb, Verbs
from engine.holds import release_image
from imagefmt import errors
from imagefmt.catalog import Catalog
from runtime.container import attach as A
from runtime.container import lifecycle
from runtime.container.store import Container, ContainerStore
from runtime.container.streams import Attach
from runtime.spec import parse_signal

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    for p in both(sub, "start"):
        p.add_argument("-a", "--attach", action="store_true")
        p.add_argument("-i", "--interactive", action="store_true")
        p.add_argument("containers", nargs="+")
    for name in ("stop", "restart"):
        for p in both(sub, name):
            p.add_argument("-t", "--time", type=int, default=None)
            p.add_argument("containers", nargs="+")
    for p in both(sub, "kill"):
        p.add_argument("-s", "--signal", default="KILL")
        p.add_argument("containers", nargs="+")
    for p in both(sub, "rm", aliases=("remove",)):
        p.add_argument("-f", "--force", action="store_true")
        p.add_argument("-v", "--volumes", action="store_true")
        p.add_argument("-l", "--link", action="store_true")
        p.add_argument("containers", nargs="+")
    for p in both(sub, "wait"):
        p.add_argument("containers", nargs="+")
    for p in both(sub, "rename"):
        p.add_argument("container")
        p.add_argument("new_name")
    for name in ("pause", "unpause"):
        for p in both(sub, name):
            p.add_argument("containers", nargs="+")


# docker's CLI acts on at most this many containers at once (parallelOperation's semaphore)
PARALLEL = 50


def each(
    root: Path,
    refs: list[str],
    action: Callable[[ContainerStore, Container], None],
    missing_ok: bool = False,
    parallel: bool = False,
) -> int:
    """Apply ``action(store, container)`` to each ref, printing it as given (docker's echo)
    in the order given, then the errors, as docker's CLI does; ``parallel``: on all of
    them at once (stop, kill, rm, pause and unpause in docker; restart and start go
    one by one); ``missing_ok``: an unknown container is said but is no failure (``rm -f``)."""
    return each_ref(root, refs, lambda s, ref: action(s, s.get(ref)), missing_ok, parallel)


def each_ref(
    root: Path,
    refs: list[str],
    action: Callable[[ContainerStore, str], None],
    missing_ok: bool = False,
    parallel: bool = False,
) -> int:
    """``each``, with ``action`` given each ref as it is (``rm --link``'s link names)."""
    cstore = ContainerStore(root)

    def one(ref: str) -> errors.DockyardError | None:
        try:
            action(cstore, ref)
        except errors.DockyardError as exc:
            return exc
        return None

    failures: list[errors.DockyardError] = []
    status = 0

    def report(ref: str, exc: errors.DockyardError | None) -> None:
        nonlocal status
        if exc is None:
            print(ref, flush=True)
            return
        failures.append(exc)
        if not (missing_ok and isinstance(exc, errors.NotFound)):
            status = 1

    if parallel and len(refs) > 1:
        from concurrent.futures import ThreadPoolExecutor  # only for several containers

        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(refs))) as pool:
            for ref, exc in zip(refs, pool.map(one, refs), strict=True):
                report(ref, exc)
    else:
        for ref in refs:
            report(ref, one(ref))
    for exc in failures:
        err(str(exc))
    return status


@VERBS.command("start", "container start")
def cmd_start(args: argparse.Namespace) -> int:
    if not args.attach and not args.interactive:

        def start(cstore: ContainerStore, c: Container) -> None:
            got = lifecycle.start(cstore, c)
            if got is not None:
                got[0].close()

        return each(args.root, args.containers, start)
    if len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    cstore = ContainerStore(args.root)
    c = cstore.get(args.containers[0])
    stdin = args.interactive and bool(c.config.get("OpenStdin"))
    want = Attach(stdin=stdin, stdout=True, stderr=True, window=window() if c.config.get("Tty") else None)
    try:
        started = lifecycle.start(cstore, c, want)
    except errors.DockyardError as exc:
        err(str(exc))
        return 1  # docker start's status for any failure, unlike run's 125/126/127
    if started is None:
        return attach(args, c, stdin)
    try:
        return relay(cstore, c, *started, stdin=stdin, proxy=True)
    except A.Detached:
        return 0


@VERBS.command("stop", "container stop")
def cmd_stop(args: argparse.Namespace) -> int:
    return each(args.root, args.containers, lambda s, c: lifecycle.stop(s, c, args.time), parallel=True)


@VERBS.command("restart", "container restart")
def cmd_restart(args: argparse.Namespace) -> int:
    return each_ref(
        args.root, args.containers, lambda s, ref: lifecycle.restart(s, s.get(ref), args.time, ref)
    )


@VERBS.command("kill", "container kill")
def cmd_kill(args: argparse.Namespace) -> int:
    sig = parse_signal(args.signal)
    return each(args.root, args.containers, lambda s, c: lifecycle.kill(s, c, sig), parallel=True)


@VERBS.command("rm", "container rm", "container remove")
def cmd_rm(args: argparse.Namespace) -> int:
    if args.link:  # docker rm --link /PARENT/ALIAS: the link goes, the containers stay
        from runtime.container import links

        return each_ref(args.root, args.containers, links.remove)

    def rm(cstore: ContainerStore, c: Container) -> None:
        lifecycle.remove(cstore, c, force=args.force, volumes=args.volumes)
        release_image(Catalog(args.root), c)

    return each(args.root, args.containers, rm, missing_ok=args.force, parallel=True)


@VERBS.command("pause", "container pause")
def cmd_pause(args: argparse.Namespace) -> int:
    return each(args.root, args.containers, lambda s, c: lifecycle.set_paused(s, c, True), parallel=True)


@VERBS.command("unpause", "container unpause")
def cmd_unpause(args: argparse.Namespace) -> int:
    return each(args.root, args.containers, lambda s, c: lifecycle.set_paused(s, c, False), parallel=True)


@VERBS.command("rename", "container rename")
def cmd_rename(args: argparse.Namespace) -> int:
    cstore = ContainerStore(args.root)
    lifecycle.rename(cstore, cstore.get(args.container), args.new_name)
    return 0


@VERBS.command("wait", "container wait")
def cmd_wait(args: argparse.Namespace) -> int:
    cstore = ContainerStore(args.root)
    status = 0
    for ref in args.containers:
        try:
            print(lifecycle.wait(cstore, cstore.get(ref)), flush=True)
        except errors.DockyardError as exc:
            err(str(exc))
            status = 1
    return status
