"""The registry client: ``pull``, ``push``, ``login``, ``logout``, tags and catalog.

A :class:`RegistryClient` holds one :class:`~registry.client.transport.Transport` per
registry host (so connections and tokens are reused across calls) and the
stored credentials for it.  The CLI verbs are compositions of these calls,
e.g. ``RegistryClient().pull(store, Reference.parse("busybox"))``.  No Flask here: the
only module shared with the server is ``registry/protocol.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from imagefmt import errors
from imagefmt.manifest import Platform
from imagefmt.reference import DOCKER_HUB, DOCKER_HUB_ENDPOINT, Reference
from imagefmt.store import Store, StoredImage
from registry.client import credentials, remote
from registry.client import progress as pg
from registry.client.credentials import Credentials
from registry.client.credhelper import HelperError
from registry.client.hosts import default_certs_dirs, insecure_from_env
from registry.client.metadata import Metadata
from registry.client.remote import Repository
from registry.client.transport import Transport, TransportOptions

if TYPE_CHECKING:  # pull and push load their own modules (thread pools, tar): a pull needs no push
    from registry.client.pull import PullResult
    from registry.client.push import PushResult

__all__ = ["ClientOptions", "RegistryClient", "endpoint_of"]


@dataclass(frozen=True)
class ClientOptions:
    """Everything a pull or push can be tuned with (docker's daemon flags among them)."""

    insecure_registries: tuple[str, ...] = ()
    secure_registries: tuple[str, ...] = ()
    certs_dirs: tuple[Path, ...] = field(default_factory=default_certs_dirs)
    platform: Platform = Platform()
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    chunk_size: int = 64 << 20
    retries: int = 4
    backoff: float = 0.5
    unpack: bool = True
    strict_platform: bool = False  # the platform was asked for: a single-platform image must match

    @classmethod
    def from_env(cls, **overrides: object) -> ClientOptions:
        """Options with ``DOCKYARD_INSECURE_REGISTRIES`` added to any given insecure registries."""
        opts = cls(**overrides)  # type: ignore[arg-type]
        return replace(opts, insecure_registries=(*opts.insecure_registries, *insecure_from_env()))

    def transport_options(self) -> TransportOptions:
        return TransportOptions(
            insecure_registries=self.insecure_registries,
            secure_registries=self.secure_registries,
            certs_dirs=self.certs_dirs,
            retries=self.retries,
            backoff=self.backoff,
            pool_size=max(self.max_concurrent_downloads, self.max_concurrent_uploads) + 4,
        )


def endpoint_of(host: str) -> str:
    """The host to connect to for a registry name (``docker.io`` → ``registry-1.docker.io``)."""
    host = host.strip().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return DOCKER_HUB_ENDPOINT if host in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_ENDPOINT) else host


class RegistryClient:
    """Talks to any number of registries; close it (or use ``with``) when done."""

    def __init__(self, options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        self._transports: dict[str, Transport] = {}

    def close(self) -> None:
        for t in self._transports.values():
            t.close()
        self._transports.clear()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transport(self, host: str, creds: Credentials | None = None) -> Transport:
        """The transport for a registry host, with its stored credentials unless ``creds`` is given."""
        endpoint = endpoint_of(host)
        if creds is not None:
            return Transport(endpoint, self.options.transport_options(), creds)
        if endpoint not in self._transports:
            # As docker does, a helper that is missing or fails means no credentials (a
            # public pull still works); a 401 then names the helper's error and the fix.
            stored, helper_error = None, ""
            try:
                stored = credentials.load(host)
            except HelperError as exc:
                helper_error = exc.message
            opts = self.options.transport_options()
            self._transports[endpoint] = Transport(endpoint, opts, stored, credentials_error=helper_error)
        return self._transports[endpoint]

    def repository(self, ref: Reference) -> Repository:
        return Repository(self.transport(ref.domain), ref.path)

    # ------------------------------------------------------------- pull ---

    def pull(self, store: Store, ref: Reference, progress: pg.ProgressFn = pg.ignore) -> PullResult:
        """Pull ``ref`` into ``store`` (see :func:`registry.pull.pull`); remember its blobs' source."""
        from registry.client.pull import PullOptions, pull

        o = self.options
        opts = PullOptions(
            o.platform, o.max_concurrent_downloads, 2, o.retries, o.backoff, o.unpack, o.strict_platform
        )
        repo = self.repository(ref)
        result = pull(store, repo, ref, opts, progress)
        meta = Metadata(store)
        for d in result.image.manifest.blobs():
            meta.add_source(d.digest, str(repo))
        meta.save()
        return result

    def tags(self, ref: Reference) -> list[str]:
        """The repository's tags; raise NotFound naming the repository."""
        try:
            return self.repository(ref).tags()
        except errors.NotFound as exc:
            raise errors.NameUnknown(
                f"repository {ref.repository} not found: check the name ({exc.message})"
            ) from exc

    # ------------------------------------------------------------- push ---

    def push(
        self, store: Store, image: StoredImage, ref: Reference, progress: pg.ProgressFn = pg.ignore
    ) -> PushResult:
        """Push ``image`` as ``ref`` (see :func:`registry.push.push`)."""
        from registry.client.push import PushOptions, push

        o = self.options
        opts = PushOptions(o.max_concurrent_uploads, o.chunk_size, o.retries, o.backoff)
        return push(store, self.repository(ref), image, ref, Metadata(store), opts, progress)

    def push_platforms(
        self, store: Store, images: list[StoredImage], ref: Reference, progress: pg.ProgressFn = pg.ignore
    ) -> PushResult:
        """Push a multi-platform build as ``ref`` (see :func:`registry.push.push_platforms`)."""
        from registry.client.push import PushOptions, push_platforms

        o = self.options
        opts = PushOptions(o.max_concurrent_uploads, o.chunk_size, o.retries, o.backoff)
        return push_platforms(store, self.repository(ref), images, ref, Metadata(store), opts, progress)

    # ------------------------------------------------------- login etc. ---

    def login(self, host: str, creds: Credentials) -> Path | None:
        """Check ``creds`` against the registry, then store them (see :func:`credentials.save`).

        Return the file that holds the password unencrypted, None when a credential
        helper keeps it.  Raise Unauthorized when the registry refuses them,
        HelperError when the helper is missing or fails."""
        with self.transport(host, creds) as t:
            t.login()
        self._transports.pop(endpoint_of(host), None)
        return credentials.save(registry_key(host), creds)

    def catalog(self, host: str, limit: int = 0) -> list[str]:
        """Repository names in a registry's catalog."""
        return remote.catalog(self.transport(host), limit=limit)

    def search(self, host: str, term: str, limit: int = 25) -> Iterator[str]:
        """Repositories of ``host`` whose name contains ``term`` (the catalog, filtered)."""
        found = 0
        for name in self.catalog(host):
            if term.lower() in name.lower():
                yield name
                found += 1
                if limit and found >= limit:
                    return


def registry_key(host: str) -> str:
    """The name credentials are stored under: ``docker.io`` for Docker Hub, else ``host[:port]``."""
    host = host.strip().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return DOCKER_HUB if host in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_ENDPOINT) else host


def logout(host: str) -> bool:
    """Forget the stored credentials for ``host``; False when there were none."""
    return credentials.erase(registry_key(host))
