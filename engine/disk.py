"""What images, containers, volumes and the build cache take on disk: ``docker system
df`` (with how much a prune would give back), ``ps -s``, and ``system prune``, which
gives it back across every noun."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from builder.cache import BuildCache
from engine import prune
from engine.images import store_in_use
from engine.volumes import users as volume_users
from imagefmt import errors
from imagefmt.catalog import tree_size
from imagefmt.records import NamedTuple
from imagefmt.store import Store
from runtime.container.store import Container, ContainerStore
from runtime.volumes import VolumeStore


class DiskUsage(NamedTuple):
    """A line of ``docker system df``."""

    type: str  # Images, Containers, Local Volumes, Build Cache
    total: int  # how many
    active: int  # how many are in use (running containers, images they use, …)
    size: int  # bytes
    reclaimable: int  # bytes a prune would free


def disk_usage(root: Path) -> list[DiskUsage]:
    return [images(root), containers(root), volumes(root), build_cache(root)]


def images(root: Path) -> DiskUsage:
    store = store_in_use(root)
    all_images = store.images()
    sizes = {str(i.id): store.image_size(i) for i in all_images}
    active = [i for i in all_images if store.holders(i.id)]
    total = sum(sizes.values())  # docker's SIZE: the images' content, not the store's files
    used = sum(sizes[str(i.id)] for i in active)
    return DiskUsage("Images", len(all_images), len(active), total, max(0, total - used))


def containers(root: Path) -> DiskUsage:
    cs = ContainerStore(root).all()
    sizes = {c.id: tree_size(c.dir / "upper") for c in cs}
    active = [c for c in cs if c.running]
    stopped = sum(sizes[c.id] for c in cs if not c.running)
    return DiskUsage("Containers", len(cs), len(active), sum(sizes.values()), stopped)


def volumes(root: Path) -> DiskUsage:
    vstore = VolumeStore(root)
    users = volume_users(ContainerStore(root))
    names = vstore.names()
    sizes = {n: vstore.size(n) for n in names}
    unused = sum(sizes[n] for n in names if n not in users)
    return DiskUsage(
        "Local Volumes", len(names), sum(1 for n in names if n in users), sum(sizes.values()), unused
    )


def build_cache(root: Path) -> DiskUsage:
    """The build cache, and the store's temp state with it: the files and trees that
    builds, pulls, loads and imports write before they are done.  What a killed
    process left is reclaimable (``builder prune`` and ``system prune`` remove it);
    what a running one writes is active."""
    store = Store(root)
    count, active, size, reclaimable = BuildCache(store).usage()
    temp = store.temp_usage()
    return DiskUsage(
        "Build Cache", count + temp.entries, active + temp.live, size + temp.size, reclaimable + temp.stale
    )


def prune_build_cache(root: Path, all_cache: bool = False) -> tuple[list[str], int]:
    """``builder prune``: the build cache, then the stale temp state (see build_cache);
    docker's "Deleted build cache objects" lines and the bytes freed."""
    store = Store(root)
    lines, freed = BuildCache(store).prune(all_cache=all_cache)
    removed, freed_temp = store.reclaim_temp()
    return lines + [str(p.relative_to(store.root)) for p in removed], freed + freed_temp


def container_sizes(store: Store, cs: list[Container]) -> list[tuple[int, int]]:
    """``ps -s``: what each container wrote, and that with its image (docker's "virtual")."""
    images: dict[str, int] = {}  # each image's size once, however many containers share it

    def image_size(ref: str) -> int:
        if ref not in images:
            try:
                images[ref] = store.image_size(store.image(ref))
            except errors.DockyardError:
                images[ref] = 0
        return images[ref]

    out = []
    for c in cs:
        rw = tree_size(c.dir / "upper")
        out.append((rw, rw + image_size(c.record["Image"])))
    return out


class SystemPruneOptions(NamedTuple):
    all: bool = False  # every unused image (not only dangling ones) and the cache mounts
    volumes: bool = False  # unused volumes too


class Pruned(NamedTuple):
    """One noun's part of a prune report: "Deleted Containers", the IDs or names."""

    title: str
    items: list[str]
    freed: int  # bytes


def prune_system(root: Path, opts: SystemPruneOptions) -> Iterator[Pruned]:
    """``docker system prune``: stopped containers, (volumes,) unused networks, the
    build cache, then dangling (or all unused) images; each part as it is done."""
    removed, freed = prune.prune_containers(root)
    yield Pruned("Deleted Containers", removed, freed)
    if opts.volumes:
        yield Pruned("Deleted Volumes", *prune.prune_volumes(root))
    yield Pruned("Deleted Networks", prune.prune_networks(root), 0)
    yield Pruned("Deleted build cache objects", *prune_build_cache(root, all_cache=opts.all))
    yield Pruned("Deleted Images", *store_in_use(root).prune(all_images=opts.all))


class ImageSpace(NamedTuple):
    """A line of ``system df -v``'s images: what layers it shares with other images."""

    repository: str
    tag: str
    id: str
    created: float
    size: int
    shared: int  # bytes of layers another image uses too
    unique: int
    containers: int


def image_space(root: Path) -> list[ImageSpace]:
    """``docker system df -v``'s images, newest first (each name a line, as ``images``)."""
    from engine.images import ImageListOptions, list_images

    store = store_in_use(root)
    all_images = store.images()
    uses: dict[str, int] = {}
    for img in all_images:
        for chain in {c.hex for c in img.chain_ids}:
            uses[chain] = uses.get(chain, 0) + 1
    shared: dict[str, int] = {}
    for img in all_images:
        shared[str(img.id)] = sum(store.snapshot_size(c.hex) for c in img.chain_ids if uses[c.hex] > 1)
    holders = {str(img.id): len(store.holders(img.id)) for img in all_images}
    return [
        ImageSpace(
            r.repository, r.tag, r.id, r.created, r.size, shared[r.id], r.size - shared[r.id], holders[r.id]
        )
        for r in list_images(store, ImageListOptions())
    ]
