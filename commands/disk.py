"""``system df`` and the prunes of the store's own content: ``image prune``,
``builder prune``, and ``system prune`` across every noun."""

from __future__ import annotations

import argparse

from commands.formatting import print_rows, print_table
from commands.output import confirm, human_size, print_pruned, print_reclaimed
from commands.parsing import OnlyVerb, Verbs
from engine.disk import SystemPruneOptions, disk_usage, prune_build_cache, prune_system
from engine.images import store_in_use
from imagefmt.catalog import tree_size

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    system = sub.group("system")
    df = system.add_parser("df")
    df.add_argument("-v", "--verbose", action="store_true")
    df.add_argument("--format", default="")
    pr = system.add_parser("prune")
    pr.add_argument("-a", "--all", action="store_true")
    pr.add_argument("-f", "--force", action="store_true")
    pr.add_argument("--volumes", action="store_true")
    p = sub.group("image").add_parser("prune")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p = sub.group("builder").add_parser("prune")
    p.add_argument("-a", "--all", action="store_true", help="also remove cache mounts")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt")


@VERBS.command("system df")
def cmd_system_df(args: argparse.Namespace) -> int:
    if args.verbose and not args.format:
        return _df_verbose(args)
    table = []
    for row in disk_usage(args.root):
        pct = f" ({row.reclaimable * 100 // row.size}%)" if row.size and row.type != "Containers" else ""
        table.append(
            {
                "Type": row.type,
                "TotalCount": str(row.total),
                "Active": str(row.active),
                "Size": human_size(row.size, 4),
                "Reclaimable": human_size(row.reclaimable, 4) + pct,
            }
        )
    if print_rows(table, args.format):
        return 0
    cols = ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
    print_table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], [[r[c] for c in cols] for r in table])
    return 0


def _df_verbose(args: argparse.Namespace) -> int:
    """docker's ``system df -v``: each image, container and volume, then the build cache."""
    from commands.image import since
    from engine.disk import build_cache, image_space
    from engine.volumes import users
    from runtime.container.store import ContainerStore
    from runtime.volumes import VolumeStore

    print("Images space usage:\n")
    heads = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]
    rows = [
        [i.repository, i.tag, i.id[7:19], since(i.created), human_size(i.size, 4), human_size(i.shared, 4),
         human_size(i.unique, 4), str(i.containers)]
        for i in image_space(args.root)
    ]  # fmt: skip
    print_table(heads, rows)
    print("\nContainers space usage:\n")
    cstore = ContainerStore(args.root)
    vstore = VolumeStore(args.root)
    linked = users(cstore)
    heads = ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]
    rows = []
    for c in cstore.all():
        volumes = sum(1 for name, ids in linked.items() if c.id in ids)
        command = c.command()
        shown = f'"{command[:19]}…"' if len(command) > 20 else f'"{command}"'
        rows.append(
            [c.short_id, c.config.get("Image") or c.record.get("Image", ""), shown, str(volumes),
             human_size(tree_size(c.dir / "upper"), 4), c.created_ago(), c.status_text(), c.name]
        )  # fmt: skip
    print_table(heads, rows)
    print("\nLocal Volumes space usage:\n")
    rows = [[n, str(len(linked.get(n, ()))), human_size(vstore.size(n), 4)] for n in vstore.names()]
    print_table(["VOLUME NAME", "LINKS", "SIZE"], rows)
    print(f"\nBuild cache usage: {human_size(build_cache(args.root).size, 4)}\n")
    print_table(["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"], [])
    return 0


@VERBS.command("system prune")
def cmd_system_prune(args: argparse.Namespace) -> int:
    if not args.force and not confirm(
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        + (
            "  - all images without at least one container associated to them\n"
            if args.all
            else "  - all dangling images\n"
        )
        + "  - all build cache\n"
    ):
        return 0
    freed = 0
    for part in prune_system(args.root, SystemPruneOptions(all=args.all, volumes=args.volumes)):
        print_pruned(part.title, part.items)
        freed += part.freed
    print_reclaimed(freed)
    return 0


@VERBS.command("image prune")
def cmd_image_prune(args: argparse.Namespace) -> int:
    if not args.force and not confirm(
        "WARNING! This will remove all "
        + ("images without at least one container associated to them." if args.all else "dangling images.")
    ):
        return 0
    lines, freed = store_in_use(args.root).prune(all_images=args.all)
    print_pruned("Deleted Images", lines)
    print_reclaimed(freed)
    return 0


@VERBS.command("builder prune")
def cmd_builder_prune(args: argparse.Namespace) -> int:
    if not args.force and not confirm(
        "WARNING! This will remove all build cache."
        if args.all
        else "WARNING! This will remove all dangling build cache."
    ):
        return 0
    lines, freed = prune_build_cache(args.root, all_cache=args.all)
    print_pruned("Deleted build cache objects", lines)
    print_reclaimed(freed)
    return 0
