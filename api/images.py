"""Image routes: list, inspect, history, tag, remove, pull and import (create), push, load,
save (get), prune, search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.server import Reply, Request, Routes, Stream
from api.system import registry_auth
from api.wire import message, produce, progress_message
from engine import images as eimages
from engine.system import arch
from imagefmt import errors
from imagefmt.archive import load, save
from imagefmt.digest import Digest
from imagefmt.manifest import Platform
from imagefmt.reference import DOCKER_HUB, Reference
from imagefmt.rootfs import import_rootfs
from imagefmt.store import Store, StoredImage
from registry.client.credentials import Credentials
from registry.client.registry_client import ClientOptions, RegistryClient, endpoint_of
from registry.client.transport import Transport

ROUTES = Routes()


def client(
    platform: str = "", creds: Credentials | None = None, ref: Reference | None = None
) -> RegistryClient:
    """A registry client as the CLI's; with ``creds`` (X-Registry-Auth) for ``ref``'s registry."""
    plat = Platform.parse(platform) if platform else Platform(architecture=arch())
    c = RegistryClient(ClientOptions.from_env(platform=plat, strict_platform=bool(platform)))
    if creds is not None and ref is not None:
        endpoint = endpoint_of(ref.domain)
        c._transports[endpoint] = Transport(endpoint, c.options.transport_options(), creds)
    return c


@ROUTES("GET", "/images/json")
def list_images(req: Request) -> Reply:
    filters = [f for f in req.filter_list() if not f.startswith("label=")]
    labels = [f[6:] for f in req.filter_list() if f.startswith("label=")]
    store = Store(req.service.root)
    rows = eimages.list_images(store, eimages.ImageListOptions(all=req.flag("all"), filters=tuple(filters)))
    by_id: dict[str, dict[str, Any]] = {}
    for r in rows:
        doc = by_id.setdefault(
            r.id,
            {
                "Id": r.id,
                "ParentId": "",
                "RepoTags": [],
                "RepoDigests": [],
                "Created": int(r.created),
                "Size": r.size,
                "SharedSize": -1,
                "VirtualSize": r.size,
                "Labels": {},
                "Containers": -1,
            },
        )
        if r.tag != "<none>":
            doc["RepoTags"].append(f"{r.repository}:{r.tag}")
        if r.digest != "<none>":
            name = f"{r.repository}@{r.digest}" if r.repository != "<none>" else f"<none>@{r.digest}"
            if name not in doc["RepoDigests"]:
                doc["RepoDigests"].append(name)
    out = []
    for doc in by_id.values():
        img = store.image(doc["Id"])
        doc["Labels"] = img.config.config.get("Labels") or {}
        if all(_label_match(doc["Labels"], spec) for spec in labels):
            out.append(doc)
    return Reply(out)


def _label_match(labels: dict[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _image(req: Request, store: Store) -> StoredImage:
    try:
        return store.image(req.params["name"])
    except errors.NotFound:
        raise errors.NotFound(f"No such image: {req.params['name']}") from None


@ROUTES("GET", "/images/{name*}/json")
def inspect(req: Request) -> Reply:
    store = Store(req.service.root)
    return Reply(eimages.inspect_doc(store, _image(req, store)))


@ROUTES("GET", "/images/{name*}/history")
def history(req: Request) -> Reply:
    store = Store(req.service.root)
    img = _image(req, store)
    tags = img.familiar_tags
    out = []
    for i, row in enumerate(eimages.history(store, img)):
        out.append(
            {
                "Id": row.id,
                "Created": int(row.created),
                "CreatedBy": row.created_by,
                "Tags": tags if i == 0 else None,
                "Size": row.size,
                "Comment": row.comment,
            }
        )
    return Reply(out)


@ROUTES("POST", "/images/{name*}/tag")
def tag(req: Request) -> Reply:
    store = Store(req.service.root)
    img = _image(req, store)
    repo, tag_ = req.arg("repo"), req.arg("tag")
    if not repo:
        raise errors.Invalid("repository name must have at least one component")
    store.tag(img, Reference.parse(f"{repo}:{tag_}" if tag_ else repo))
    return Reply(None, 201)


@ROUTES("DELETE", "/images/{name*}")
def remove(req: Request) -> Reply:
    store = eimages.store_in_use(req.service.root)
    out = []
    for line in store.remove(req.params["name"], force=req.flag("force")):
        kind, _, what = line.partition(": ")
        out.append({kind: what})
    return Reply(out)


@ROUTES("POST", "/images/prune")
def prune(req: Request) -> Reply:
    dangling = req.filters().get("dangling", ["true"])
    everything = dangling[-1].lower() in ("false", "0")
    lines, freed = eimages.store_in_use(req.service.root).prune(all_images=everything)
    deleted = []
    for line in lines:
        kind, _, what = line.partition(": ")
        deleted.append({kind.capitalize(): what})
    return Reply({"ImagesDeleted": deleted or None, "SpaceReclaimed": freed})


@ROUTES("POST", "/images/create")
def create(req: Request) -> Stream:
    """``docker pull``: the JSON progress stream as docker's daemon sends it; with
    ``fromSrc``, ``docker import``."""
    if req.arg("fromSrc"):
        return _import(req)
    name, tag_ = req.arg("fromImage"), req.arg("tag")
    if not name:
        raise errors.Invalid("fromImage is required")
    given = Reference.parse(name, default_tag=False)
    if tag_:
        given = given.with_digest(Digest.parse(tag_)) if tag_.startswith("sha256:") else given.with_tag(tag_)
    ref = given if (given.tag or given.digest) else given.with_tag("latest")
    creds = registry_auth(req.headers.get("X-Registry-Auth"))
    platform = req.arg("platform")
    root = req.service.root

    def run(write: Callable[[bytes], None]) -> None:
        store = Store(root)
        write(message(status=f"Pulling from {ref.path}", id=ref.tag or str(ref.digest)))
        with client(platform, creds, ref) as c:
            result = c.pull(store, ref, lambda p: write(progress_message(p)))
        write(message(status=f"Digest: {result.digest}"))
        status = "Downloaded newer image for" if result.updated else "Image is up to date for"
        write(message(status=f"Status: {status} {ref.familiar()}"))

    return Stream(produce(run))


def _import(req: Request) -> Stream:
    """``docker import``: the rootfs tar as the body (``fromSrc=-``), ``repo``/``tag``,
    ``message``, ``changes`` (repeated), ``platform``; docker's stream ends with the ID."""
    if req.arg("fromSrc") != "-":
        raise errors.Unsupported("import from a URL through the API: send the tar as the body (fromSrc=-)")
    repo, tag_ = req.arg("repo"), req.arg("tag")
    ref = Reference.parse(f"{repo}:{tag_}" if repo and tag_ else repo) if repo else None
    platform = req.arg("platform")
    architecture = Platform.parse(platform).architecture if platform else arch()
    changes = req.query.get("changes") or []
    store = Store(req.service.root)
    img = import_rootfs(store, req.body, ref, changes, req.arg("message"), "-", architecture=architecture)  # type: ignore[arg-type]
    return Stream(iter([message(status=str(img.id))]))


@ROUTES("POST", "/images/{name*}/push")
def push(req: Request) -> Stream:
    given = Reference.parse(req.params["name"], default_tag=False)
    tag_ = req.arg("tag")
    ref = given.with_tag(tag_) if tag_ else given if given.tag else given.with_tag("latest")
    creds = registry_auth(req.headers.get("X-Registry-Auth"))
    root = req.service.root
    store = Store(root)
    image = eimages.image_to_push(store, ref)
    members = store.platform_images(image)  # a multi-platform build: its index, as the CLI's push

    def run(write: Callable[[bytes], None]) -> None:
        write(message(status=f"The push refers to repository [{ref.repository}]"))
        with client("", creds, ref) as c:
            progress = lambda p: write(progress_message(p))  # noqa: E731
            result = (
                c.push_platforms(store, members, ref, progress)
                if members
                else c.push(store, image, ref, progress)
            )
        write(message(status=f"{result.ref.tag}: digest: {result.digest} size: {result.size}"))
        aux = {"Tag": result.ref.tag, "Digest": str(result.digest), "Size": result.size}
        write(message(progressDetail={}, aux=aux))

    return Stream(produce(run))


@ROUTES("POST", "/images/load")
def load_images(req: Request) -> Reply:
    store = Store(req.service.root)
    loaded = load(store, req.body)  # type: ignore[arg-type]
    lines = []
    for item in loaded:
        for n in item.names:
            lines.append(message(stream=f"Loaded image: {n.familiar()}\n"))
        if not item.names:
            lines.append(message(stream=f"Loaded image ID: {item.image.id}\n"))
    return Reply(b"".join(lines))


class _Writer:
    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write

    def flush(self) -> None:
        pass


def _save(req: Request, names: list[str]) -> Stream:
    root = req.service.root
    store = Store(root)
    items = [eimages.save_names(store, n) for n in names]  # NotFound before the first byte

    def run(write: Callable[[bytes], None]) -> None:
        save(store, items, _Writer(write))  # type: ignore[arg-type]

    return Stream(produce(run, on_error=None), content_type="application/x-tar")


@ROUTES("GET", "/images/{name*}/get")
def get_one(req: Request) -> Stream:
    return _save(req, [req.params["name"]])


@ROUTES("GET", "/images/get")
def get_many(req: Request) -> Stream:
    return _save(req, req.query.get("names") or [])


@ROUTES("GET", "/images/search")
def search(req: Request) -> Reply:
    term = req.arg("term")
    host, sep, rest = term.partition("/")
    if not sep or not ("." in host or ":" in host or host == "localhost") or host == DOCKER_HUB:
        raise errors.Unsupported(
            "search: Docker Hub has no catalog we can search: name a registry (HOST/TERM)"
        )
    with client() as c:
        names = list(c.search(host, rest, req.int_arg("limit", 25) or 25))
    row = {"description": "", "star_count": 0, "is_official": False, "is_automated": False}
    return Reply([{"name": f"{host}/{n}", **row} for n in names])
