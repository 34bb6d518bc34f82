"""``POST /build``: the classic builder's JSON stream over a tar context body."""

from __future__ import annotations

import json
import posixpath
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.images import client
from api.server import Request, Routes, Stream
from api.system import registry_configs
from api.wire import message, produce
from builder.build import build
from builder.errors import BuildFailed, DockerfileError
from builder.options import BuildOptions
from imagefmt import errors
from imagefmt.compress import open_reader
from imagefmt.layer import extract_layer
from imagefmt.reference import Reference
from imagefmt.store import Store, StoredImage
from registry.client.fetch import fetch
from registry.client.registry_client import registry_key

ROUTES = Routes()


def _json_arg(req: Request, name: str) -> Any:
    text = req.arg(name)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise errors.Invalid(f"invalid {name}: {text}") from None


@ROUTES("POST", "/build")
def build_image(req: Request) -> Stream:
    if req.arg("remote"):
        raise errors.Unsupported("a remote build context is not supported: send the context as a tar body")
    tags = tuple(Reference.parse(t) for t in req.query.get("t", []) if t)
    build_args = {k: v for k, v in (_json_arg(req, "buildargs") or {}).items() if v is not None}
    labels = _json_arg(req, "labels") or {}
    cache_from = tuple(_json_arg(req, "cachefrom") or ())
    quiet = req.flag("q")
    root = req.service.root
    ctx = Path(tempfile.mkdtemp(prefix="dockyard-ctx-"))
    try:
        with open_reader(req.body) as r:
            extract_layer(r, ctx, mode="apply")
        name = req.arg("dockerfile") or "Dockerfile"
        rel = posixpath.normpath(name).lstrip("/")
        path = ctx / rel
        if rel.startswith("..") or not path.resolve().is_relative_to(ctx.resolve()) or not path.is_file():
            raise errors.NotFound(f"Cannot locate specified Dockerfile: {name}")
        dockerfile = path.read_bytes()
    except BaseException:
        shutil.rmtree(ctx, ignore_errors=True)
        raise
    configs = registry_configs(req.headers.get("X-Registry-Config"))  # for the base images' registries

    def run(write: Callable[[bytes], None]) -> None:
        store = Store(root)

        def out(data: bytes) -> None:
            if not quiet:
                write(message(stream=data.decode(errors="replace")))

        def pull(base: str, platform: str | None) -> StoredImage:
            ref = Reference.parse(base, default_tag=False)
            ref = ref if (ref.tag or ref.digest) else ref.with_tag("latest")
            out(f"{ref.tag or ref.digest}: Pulling from {ref.path}\n".encode())
            with client(platform or "", configs.get(registry_key(ref.domain)), ref) as c:
                result = c.pull(store, ref)
            out(f"Digest: {result.digest}\nStatus: Downloaded newer image for {ref.familiar()}\n".encode())
            return store.image(str(ref))

        opts = BuildOptions(
            dockerfile=dockerfile,
            context=ctx,
            dockerfile_path=path,
            tags=tags,
            build_args=build_args,
            target=req.arg("target") or None,
            no_cache=req.flag("nocache"),
            cache_from=cache_from,
            labels=labels,
            network="host" if req.arg("networkmode") in ("", "default") else req.arg("networkmode"),
            platform=req.arg("platform") or None,
            quiet=quiet,
            pull=pull,
            fetch=fetch,
            always_pull=req.flag("pull"),
        )
        try:
            image = build(store, opts, out)
        except BuildFailed as exc:
            write(message(errorDetail={"code": exc.exit_code, "message": str(exc)}, error=str(exc)))
            return
        except DockerfileError as exc:
            text = f"Dockerfile:{exc.line}: {exc}" if exc.line and "line" not in str(exc) else str(exc)
            write(message(errorDetail={"message": text}, error=text))
            return
        finally:
            shutil.rmtree(ctx, ignore_errors=True)
        write(message(aux={"ID": str(image.id)}))
        if quiet:
            write(message(stream=f"{image.id}\n"))

    return Stream(produce(run))
