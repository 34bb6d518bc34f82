"""``build --cache-to/--cache-from type=registry,ref=…``: the builder's step cache
pushed to and imported from a registry (format in builder.remotecache)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from builder.remotecache import CACHE_CONFIG, CONFIG_MAX, CacheConfig, ExportedStep, RemoteCache
from commands.errors import UsageError
from imagefmt import errors
from imagefmt import mediatypes as mt
from imagefmt.reference import Reference
from imagefmt.store import Store

if TYPE_CHECKING:
    from registry.client.registry_client import RegistryClient

Out = Callable[[bytes], None]


def parse_spec(text: str, flag: str) -> dict[str, str]:
    """``type=registry,ref=R[,mode=max]`` as a dict (buildx's CSV form)."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"invalid {flag} {text!r}: use type=registry,ref=HOST/REPO:TAG")
        fields[key.strip().lower()] = value.strip()
    return fields


def registry_ref(fields: dict[str, str], text: str, flag: str) -> Reference:
    kind = fields.get("type", "registry")
    if kind != "registry":
        raise UsageError(f"{flag} type={kind} is not supported: use type=registry,ref=HOST/REPO:TAG")
    if not fields.get("ref"):
        raise UsageError(f"invalid {flag} {text!r}: ref=HOST/REPO:TAG is required")
    try:
        ref = Reference.parse(fields["ref"], default_tag=False)
    except errors.Invalid as exc:
        raise UsageError(f"invalid {flag} ref: {exc}") from exc
    return ref if (ref.tag or ref.digest) else ref.with_tag("latest")


def cache_mode(spec: str) -> str:
    mode = parse_spec(spec, "--cache-to").get("mode", "min")
    if mode not in ("min", "max"):
        raise UsageError(f"invalid --cache-to mode={mode}: use min or max")
    return mode


def importer(client: RegistryClient, store: Store, spec: str, out: Out) -> RemoteCache | None:
    """The cache named by ``--cache-from type=registry,ref=R``; None (with BuildKit's
    warning) when the registry does not have it: the build goes on without it."""
    from registry.client.artifact import fetch_into, fetch_manifest, fetch_small_blob

    ref = registry_ref(parse_spec(spec, "--cache-from"), spec, "--cache-from")
    repo = client.repository(ref)
    try:
        manifest = fetch_manifest(repo, ref.digest and str(ref.digest) or ref.tag or "latest")
        if manifest.config.media_type != CACHE_CONFIG:
            raise errors.Invalid(f"not a dockyard build cache (config {manifest.config.media_type})")
        config = CacheConfig.parse(fetch_small_blob(repo, manifest.config, CONFIG_MAX))
    except errors.NotFound:
        out(f"WARNING: failed to import cache {ref}: not found\n".encode())
        return None
    except errors.DockyardError as exc:  # unreachable, refused, not a cache: BuildKit goes on without it
        out(f"WARNING: failed to import cache {ref}: {exc}\n".encode())
        return None
    out(f"importing cache manifest from {ref} ({len(config.records)} steps)\n".encode())
    return RemoteCache(str(ref), config, lambda desc: fetch_into(store, repo, desc))


def exporter(
    client: RegistryClient, store: Store, spec: str, out: Out
) -> Callable[[list[ExportedStep]], None]:
    """Push the steps ``build`` hands over as the cache artifact ``ref``."""
    ref = registry_ref(parse_spec(spec, "--cache-to"), spec, "--cache-to")
    if ref.digest is not None:
        raise UsageError("--cache-to takes a tag, not a digest")

    def export(steps: list[ExportedStep]) -> None:
        from registry.client.artifact import push_bytes, push_layers

        repo = client.repository(ref)
        layers = [s.layer for s in steps if s.layer is not None]
        pushed = push_layers(store, repo, layers)
        doc = CacheConfig.of_steps(steps, pushed)
        manifest = doc.manifest(push_bytes(repo, doc.to_json(), CACHE_CONFIG))
        digest = repo.put_manifest(ref.tag or "latest", manifest.raw, mt.OCI_MANIFEST)
        what = f"{len(doc.records)} steps, {len(doc.layers)} layers"
        out(f"exporting cache to {ref}: {what}, {digest}\n".encode())

    return export


def setup(
    args: argparse.Namespace, store: Store, client: Callable[[], RegistryClient], out: Out
) -> dict[str, object]:
    """The BuildOptions fields for the registry cache flags (``--cache-from`` values
    without ``type=`` stay local image names, as docker's classic builder takes them)."""
    local = [c for c in args.cache_from if "type=" not in c and "ref=" not in c]
    remote = [c for c in args.cache_from if c not in local]
    fields: dict[str, object] = {"cache_from": tuple(local)}
    if remote:
        fields["cache_imports"] = tuple(
            r for c in remote if (r := importer(client(), store, c, out)) is not None
        )
    if args.cache_to:
        if len(args.cache_to) > 1:
            raise UsageError("--cache-to: give one cache destination")
        fields["export_cache"] = exporter(client(), store, args.cache_to[0], out)
        fields["cache_mode"] = cache_mode(args.cache_to[0])
    return fields
