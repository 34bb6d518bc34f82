"""Images as dockerd shows them: the list's rows and filters, the inspect document,
the history rows, and the names ``docker save`` records."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from engine.errors import FilterInvalid, FilterSyntax
from imagefmt import errors
from imagefmt.config import parse_time
from imagefmt.records import TYPE_CHECKING, NamedTuple
from imagefmt.reference import Reference
from imagefmt.store import Store, StoredImage
from runtime.container.store import ContainerStore

if TYPE_CHECKING:
    from typing import Any


def store_in_use(root: Path) -> Store:
    """The store, with the holds of containers that are gone released first, so
    that rmi, prune and df see only images that existing containers use."""
    store = Store(root)
    containers = ContainerStore(root).dir
    store.release_holds(lambda cid: (containers / cid).is_dir())
    return store


class ImageListOptions(NamedTuple):
    reference: str = ""  # only this REPOSITORY[:TAG]
    all: bool = False  # intermediate images too (untagged parents of other images)
    filters: tuple[str, ...] = ()  # dangling=true|false, reference=PATTERN


class ImageRow(NamedTuple):
    """A line of ``docker images``: an image under one of its names."""

    id: str  # sha256:…
    short_id: str
    repository: str  # familiar; <none> when untagged
    tag: str  # <none> when untagged
    digest: str  # the repository's digest, <none> when it has none
    created: float  # seconds since the epoch
    size: int  # bytes of its unpacked layers (docker's SIZE)


def list_images(store: Store, opts: ImageListOptions) -> list[ImageRow]:
    """The rows of ``docker images``. Raises Invalid (a bad reference), FilterInvalid."""
    want = Reference.parse(opts.reference, default_tag=False) if opts.reference else None
    rows: list[ImageRow] = []
    images = store.images()
    # docker hides intermediate images (untagged parents of other images) unless -a
    parents = {img.record.get("parent") for img in images} - {None, ""}
    # and the other platforms' images of a multi-platform build (under its tagged image)
    parents |= {m for img in images for m in (img.record.get("platforms") or {}).values()}
    for img in images:
        if not img.tags and str(img.id) in parents and not opts.all:
            continue
        created = parse_time(img.config.created)
        vsize = store.image_size(img)
        digests = {rd.split("@")[0]: rd.split("@")[1] for rd in img.repo_digests}
        names: list[tuple[str, str, str]] = [
            (t.familiar_repository, t.tag or "<none>", digests.get(t.repository, "<none>")) for t in img.tags
        ] or [("<none>", "<none>", next(iter(digests.values()), "<none>"))]
        for repo, tag, digest in names:
            if want is not None and (
                repo != want.familiar_repository or (want.tag is not None and tag != want.tag)
            ):
                continue
            rows.append(ImageRow(str(img.id), img.id.short, repo, tag, digest, created, vsize))
    return filter_images(rows, opts.filters)


def filter_images(rows: list[ImageRow], filters: tuple[str, ...]) -> list[ImageRow]:
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise FilterSyntax(f"bad format of filter (expected name=value): {f}")
        if key == "dangling":
            want = value.lower() in ("true", "1")
            rows = [r for r in rows if (r.tag == "<none>") == want]
        elif key == "reference":
            rows = [
                r
                for r in rows
                if fnmatch.fnmatch(r.repository, value) or fnmatch.fnmatch(f"{r.repository}:{r.tag}", value)
            ]
        else:
            raise FilterInvalid(f"invalid filter '{key}': use dangling=true|false or reference=PATTERN")
    return rows


def inspect(store: Store, name: str) -> dict[str, Any] | None:
    """``docker image inspect NAME``'s document; None when there is no such image."""
    try:
        return inspect_doc(store, store.image(name))
    except errors.NotFound:
        return None


def inspect_doc(store: Store, img: StoredImage) -> dict[str, Any]:
    """``docker image inspect`` JSON for a stored image."""
    cfg = img.config.doc
    size = store.image_size(img)
    return {
        "Id": str(img.id),
        "RepoTags": img.familiar_tags,
        "RepoDigests": [Reference.parse(rd).familiar() for rd in img.repo_digests],
        "Parent": img.record.get("parent") or "",
        "Comment": cfg.get("comment", ""),
        "Created": cfg.get("created", ""),
        "Container": cfg.get("container", ""),
        "ContainerConfig": _docker_config(cfg.get("container_config") or {}),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": _docker_config(img.config.config),
        "Architecture": img.config.architecture,
        "Variant": cfg.get("variant") or None,
        "Os": img.config.os,
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Data": None, "Name": "overlay2"},
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in img.config.diff_ids]},
        "Metadata": {"LastTagTime": img.record.get("last_tag_time", "0001-01-01T00:00:00Z")},
    }


def _docker_config(c: dict[str, Any]) -> dict[str, Any]:
    """A container config with every key docker prints, in docker's order."""
    out: dict[str, Any] = {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": None,
        "Cmd": None,
        "Image": "",
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
    }
    out.update(c)
    return out


class HistoryRow(NamedTuple):
    """A line of ``docker history``: one instruction of the image's config history."""

    id: str  # the image's ID on the newest line, <missing> on the others
    created: float  # seconds since the epoch; 0.0 when unknown
    created_by: str
    size: int  # bytes the instruction's layer adds (0 for an empty layer)
    comment: str


def history(store: Store, img: StoredImage) -> list[HistoryRow]:
    """The image's history, newest first."""
    layers = iter(img.manifest.layers)
    chains = iter(img.chain_ids)
    rows: list[HistoryRow] = []
    for h in img.config.history:
        size = 0
        if not h.get("empty_layer"):
            desc, chain = next(layers, None), next(chains, None)
            unpacked = chain is not None and (store.snapshots / chain.hex / "size").exists()
            # an unpacked layer's content size (0 for a layer of directories), else its blob's
            size = store.snapshot_size(chain.hex) if unpacked and chain else (desc.size if desc else 0)
        created = parse_time(h.get("created", ""))
        rows.append(
            HistoryRow("<missing>", created, str(h.get("created_by", "")), size, str(h.get("comment", "")))
        )
    rows.reverse()
    if rows:
        rows[0] = rows[0]._replace(id=str(img.id))
    return rows


def save_names(store: Store, name: str) -> tuple[StoredImage, list[Reference]]:
    """The image and the names ``docker save NAME`` records: the tag given,
    every tag of a bare repository name, none for an ID. Raises NotFound."""
    try:
        img = store.image(name)
    except errors.NotFound:
        raise errors.NotFound(f"No such image: {name}") from None  # docker save's words: the name as given
    if name.removeprefix("sha256:") and img.id.hex.startswith(name.removeprefix("sha256:")):
        return img, []
    try:
        ref = Reference.parse(name, default_tag=False)
    except errors.Invalid:
        return img, []
    if ref.digest is not None:
        return img, []
    if ref.tag is not None:
        return img, [ref]
    tags = [t for t in img.tags if t.repository == ref.repository]
    return img, tags or [ref.with_tag("latest")]


def image_to_push(store: Store, ref: Reference) -> StoredImage:
    """The image ``push REF`` sends; docker's message when the tag is not in the store."""
    try:
        return store.image(str(ref))
    except errors.NotFound:
        raise errors.NotFound(
            f"An image does not exist locally with the tag: {ref.familiar_repository}"
        ) from None
