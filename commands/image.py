"""``images``, ``tag``, ``rmi``, ``history`` and ``image inspect`` (``save``, ``load``
and ``import`` are in commands.archive, ``image prune`` in commands.disk, ``pull``
and ``push`` in commands.distribution, ``build`` in commands.build)."""

from __future__ import annotations

import argparse
import time

from commands.formatting import found, inspect_each, print_rows, print_table
from commands.output import err, go_time, human_size
from commands.parsing import OnlyVerb, Verbs
from engine import images
from imagefmt import errors
from imagefmt.records import TYPE_CHECKING
from imagefmt.reference import Reference
from imagefmt.store import Store
from runtime.container.store import human_duration

if TYPE_CHECKING:
    pass

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    def images_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("reference", nargs="?")
        p.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
        p.add_argument("-a", "--all", action="store_true", help="show all images")
        p.add_argument("--digests", action="store_true", help="show digests")
        p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
        p.add_argument("--format", default="", help="Go template, e.g. '{{json .}}'")
        p.add_argument(
            "-f", "--filter", action="append", default=[], help="filter output (dangling=true, reference=…)"
        )

    images_flags(sub.add_parser("images"))
    isub = sub.group("image")
    images_flags(isub.add_parser("ls", aliases=["list"]))
    for p in (sub.add_parser("rmi"), isub.add_parser("rm", aliases=["remove"])):
        p.add_argument("-f", "--force", action="store_true")
        p.add_argument("--no-prune", action="store_true")
        p.add_argument("images", nargs="+")
    for p in (sub.add_parser("tag"), isub.add_parser("tag")):
        p.add_argument("source")
        p.add_argument("target")
    for p in (sub.add_parser("history"), isub.add_parser("history")):
        p.add_argument("image")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("-H", "--human", default="true")
        p.add_argument("--format", default="")
    p = isub.add_parser("inspect")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", default="")


def since(ts: float) -> str:
    """docker's CREATED column: go-units' HumanDuration, "ago"."""
    return human_duration(time.time() - ts) + " ago"


@VERBS.command("images", "image ls", "image list")
def cmd_images(args: argparse.Namespace) -> int:
    opts = images.ImageListOptions(args.reference or "", args.all, tuple(args.filter))
    rows = [
        {
            "Containers": "N/A",
            "CreatedAt": go_time(r.created),
            "CreatedSince": since(r.created),
            "Digest": r.digest,
            "ID": r.id if args.no_trunc else r.short_id,
            "Repository": r.repository,
            "SharedSize": "N/A",
            "Size": human_size(r.size),
            "Tag": r.tag,
            "UniqueSize": "N/A",
            "VirtualSize": human_size(r.size, 4),
        }
        for r in images.list_images(Store(args.root), opts)
    ]
    if args.quiet and not args.format:  # docker: --format wins over -q here
        seen: list[str] = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        for i in seen:
            print(i)
        return 0
    if print_rows(rows, args.format):
        return 0
    cols = ["Repository", "Tag", *(["Digest"] if args.digests else []), "ID", "CreatedSince", "Size"]
    header = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "CREATED", "SIZE"]
    print_table(header, [[r[c] for c in cols] for r in rows])
    return 0


@VERBS.command("tag", "image tag")
def cmd_tag(args: argparse.Namespace) -> int:
    store = Store(args.root)
    store.tag(store.image(args.source), Reference.parse(args.target))
    return 0


@VERBS.command("rmi", "image rm", "image remove")
def cmd_rmi(args: argparse.Namespace) -> int:
    store = images.store_in_use(args.root)
    status = 0
    for name in args.images:
        try:
            for line in store.remove(name, force=args.force):
                print(line)
        except errors.DockyardError as exc:
            err(str(exc))
            if not (args.force and isinstance(exc, errors.NotFound)):  # rmi -f: missing is fine
                status = args.exit_code_for(exc)
    return status


@VERBS.command("image inspect")
def cmd_image_inspect(args: argparse.Namespace) -> int:
    store = Store(args.root)
    return inspect_each(args.names, lambda n: found(images.inspect(store, n), "image", n), args.format)


@VERBS.command("history", "image history")
def cmd_history(args: argparse.Namespace) -> int:
    human = args.human.lstrip("=").lower() not in ("false", "0", "f")  # -H=false, --human=false
    store = Store(args.root)
    img = store.image(args.image)
    rows: list[dict[str, str]] = []
    for h in images.history(store, img):
        created_by = h.created_by
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        ts = h.created
        rows.append(
            {
                "ID": h.id if h.id == "<missing>" or args.no_trunc else img.id.short,
                "CreatedSince": (since(ts) if ts else "N/A") if human else _rfc3339_seconds(ts),
                "CreatedAt": go_time(ts) if human else _rfc3339_seconds(ts),
                "CreatedBy": created_by,
                "Size": human_size(h.size) if human else str(h.size),
                "Comment": h.comment,
            }
        )
    if args.quiet and not args.format:  # docker: --format wins over -q here
        for r in rows:
            print(r["ID"])
        return 0
    if print_rows(rows, args.format):
        return 0
    cols = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
    created = "CREATED" if human else "CREATED AT"
    print_table(["IMAGE", created, "CREATED BY", "SIZE", "COMMENT"], [[r[c] for c in cols] for r in rows])
    return 0


def _rfc3339_seconds(ts: float | None) -> str:
    """docker history -H=false's times: UTC to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else ""
