"""``save``, ``load`` and ``import`` (also as ``image …``): images to and from tarballs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from commands.errors import UsageError
from commands.parsing import OnlyVerb, Verbs
from commands.paths import check_output, open_input, path_error
from commands.progress import progress_bar
from engine import images
from engine.system import arch
from imagefmt import errors
from imagefmt.archive import load, save
from imagefmt.records import TYPE_CHECKING
from imagefmt.reference import Reference
from imagefmt.rootfs import import_rootfs
from imagefmt.store import Store, StoredImage
from registry.client.fetch import fetch

if TYPE_CHECKING:
    from typing import Any

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    isub = sub.group("image")
    for p in (sub.add_parser("save"), isub.add_parser("save")):
        p.add_argument("-o", "--output", default="")
        p.add_argument("images", nargs="+")
    for p in (sub.add_parser("load"), isub.add_parser("load")):
        p.add_argument("-i", "--input", default="")
        p.add_argument("-q", "--quiet", action="store_true")
    for p in (
        sub.add_parser("import"),
        isub.add_parser("import"),
    ):
        p.add_argument("file")
        p.add_argument("reference", nargs="?")
        p.add_argument("-c", "--change", action="append", default=[])
        p.add_argument("-m", "--message", default="")
        p.add_argument("--platform", default="")


@VERBS.command("save", "image save")
def cmd_save(args: argparse.Namespace) -> int:
    store = Store(args.root)
    if args.output:
        check_output(args.output, "failed to save image")
    items = [images.save_names(store, n) for n in args.images]
    if not args.output and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    total = sum(d.size for img, _ in items for d in [img.manifest.config, *img.manifest.layers])
    bar = progress_bar(total, "Saving")
    tick = bar.update if bar else None
    if args.output:
        out = Path(args.output)
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        try:
            try:
                f = open(tmp, "wb")
            except OSError as err:
                raise path_error("open", args.output, err) from None
            with f:
                save(store, items, f, tick)
            try:
                os.replace(tmp, out)
            except OSError as err:
                raise path_error("rename", args.output, err) from None
        finally:
            tmp.unlink(missing_ok=True)
    else:
        save(store, items, sys.stdout.buffer, tick)
    if bar:
        bar.close()
    return 0


@VERBS.command("load", "image load")
def cmd_load(args: argparse.Namespace) -> int:
    store = Store(args.root)
    if not args.input and sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty: use -i FILE or redirect")
    src = open_input(args.input) if args.input else None
    total = os.fstat(src.fileno()).st_size if src else None
    bar = None if args.quiet else progress_bar(total, "Loading")
    tick = bar.update if bar else None
    try:
        if src:
            with src:
                loaded = load(store, src, tick)
        else:
            loaded = load(store, sys.stdin.buffer, tick)
    finally:
        if bar:
            bar.close()
    for item in loaded:
        if item.names:
            for n in item.names:
                print(f"Loaded image: {n.familiar()}")
        else:
            print(f"Loaded image ID: {item.image.id}")
    return 0


@VERBS.command("import", "image import")
def cmd_import(args: argparse.Namespace) -> int:
    store = Store(args.root)
    ref = Reference.parse(args.reference) if args.reference else None
    architecture = args.platform.split("/")[1] if args.platform.count("/") >= 1 else arch()
    if args.file == "-":
        img = import_rootfs(
            store, sys.stdin.buffer, ref, args.change, args.message, "-", architecture=architecture
        )
    elif args.file.startswith(("http://", "https://")):
        img = _import_url(store, args, ref, architecture)
    else:
        with open_input(args.file) as src:
            img = import_rootfs(store, src, ref, args.change, args.message, "-", architecture=architecture)
    print(img.id)
    return 0


def _import_url(
    store: Store, args: argparse.Namespace, ref: Reference | None, architecture: str
) -> StoredImage:
    try:
        download = fetch(args.file)
    except errors.DockyardError as exc:
        raise errors.NotFound(f"import {args.file}: {exc}") from exc
    with download:
        raw: Any = download  # a stream with read(), what import_rootfs reads
        return import_rootfs(store, raw, ref, args.change, args.message, args.file, architecture=architecture)
