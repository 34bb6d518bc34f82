"""``commit``, ``diff``, ``export`` and ``cp`` (also as ``container …``): a container's
files into an image, a list of changes, a tarball, or the host."""

from __future__ import annotations

import argparse
import os
import sys

from commands.container import both
from commands.errors import UsageError
from commands.parsing import OnlyVerb, Verbs
from commands.paths import check_output, path_error
from imagefmt import errors
from imagefmt.reference import Reference
from imagefmt.store import Store
from runtime.container.store import ContainerStore
from runtime.container.transfer import changes, commit, copy_from, copy_to, export, split_container_path

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    for p in both(sub, "commit"):
        p.add_argument("-a", "--author", default="")
        p.add_argument("-m", "--message", default="")
        p.add_argument("-c", "--change", action="append", default=[])
        p.add_argument("-p", "--pause", default="true")
        p.add_argument("container")
        p.add_argument("repository", nargs="?")
    for p in both(sub, "export"):
        p.add_argument("-o", "--output", default="")
        p.add_argument("container")
    for p in both(sub, "diff"):
        p.add_argument("container")
    for p in both(sub, "cp"):
        p.add_argument("-a", "--archive", action="store_true")
        p.add_argument("-L", "--follow-link", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("src")
        p.add_argument("dest")


@VERBS.command("commit", "container commit")
def cmd_commit(args: argparse.Namespace) -> int:
    ref = Reference.parse(args.repository) if args.repository else None
    cstore = ContainerStore(args.root)
    c = cstore.get(args.container)
    img = commit(
        cstore,
        c,
        Store(args.root),
        ref=ref,
        author=args.author,
        message=args.message,
        changes=list(args.change),
        pause=args.pause != "false",
    )
    print(img.id)
    return 0


@VERBS.command("diff", "container diff")
def cmd_diff(args: argparse.Namespace) -> int:
    cstore = ContainerStore(args.root)
    for kind, path in changes(cstore, cstore.get(args.container)):
        print(kind, path)
    return 0


@VERBS.command("export", "container export")
def cmd_export(args: argparse.Namespace) -> int:
    if args.output:
        check_output(args.output, "failed to export container")
    cstore = ContainerStore(args.root)
    c = cstore.get(args.container)
    if not args.output and sys.stdout.isatty():
        raise errors.Invalid("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    sys.stdout.flush()
    if args.output:
        tmp = f"{args.output}.tmp-{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise path_error("open", args.output, err) from None
        try:
            export(cstore, c, fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        try:
            os.replace(tmp, args.output)
        except OSError as err:
            os.unlink(tmp)
            raise path_error("rename", args.output, err) from None
    else:
        export(cstore, c, 1)
    return 0


@VERBS.command("cp", "container cp")
def cmd_cp(args: argparse.Namespace) -> int:
    src_ctr, src = split_container_path(args.src)
    dst_ctr, dst = split_container_path(args.dest)
    if (src_ctr is None) == (dst_ctr is None):
        raise UsageError(
            "copying between containers is not supported"
            if src_ctr
            else "must specify at least one container source"
        )
    cstore = ContainerStore(args.root)
    if src_ctr is not None:
        copy_from(cstore, cstore.get(src_ctr), src, dst, follow=args.follow_link, out=sys.stdout.buffer)
    else:
        assert dst_ctr is not None
        copy_to(
            cstore,
            cstore.get(dst_ctr),
            src,
            dst,
            archive=args.archive,
            follow=args.follow_link,
            stdin=sys.stdin.buffer,
        )
    return 0
