"""What a build is asked to do, the callbacks it reaches the network through, and the
platform and ARG values it starts from."""

from __future__ import annotations

import platform as _platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from imagefmt.reference import Reference
from imagefmt.store import StoredImage

if TYPE_CHECKING:
    from builder.remotecache import ExportedStep, RemoteCache

Output = Callable[[bytes], None]

PROXY_ARGS = frozenset(
    f(name)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for f in (str.upper, str.lower)
)
_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le"}


class Fetched(Protocol):
    """An HTTP(S) response being read (``ADD <url>``); ``close`` ends it.

    ``read`` returns the body, decoded as served (Content-Encoding undone), at
    most ``size`` bytes at a time and ``b""`` at its end; it and ``fetch``
    raise DockyardError (whose text names the failure: ``HTTP 404``, a
    connection error).  A status of 400 or more is raised, never returned."""

    @property
    def url(self) -> str:
        """The final URL, after redirects."""

    @property
    def status(self) -> int:
        """200, or 304 for a request that sent If-Modified-Since and got Not Modified."""

    @property
    def length(self) -> int | None:
        """Content-Length, when the server sent it."""

    @property
    def last_modified(self) -> str | None:
        """The Last-Modified header as sent (an HTTP date)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


Fetch = Callable[[str, Mapping[str, str]], Fetched]  # (url, request headers) -> response


@dataclass(frozen=True)
class BuildOptions:
    """``dockyard build``'s flags, as the builder takes them.

    ``dockerfile`` is the Dockerfile's content; ``context`` None means no
    context (``build -``).  A ``build_args`` value of None is docker's nil
    (``--build-arg NAME`` with NAME not in the environment): it sets nothing,
    but an unused one is still named in the "not consumed" warning.  ``pull`` fetches a
    base image missing from the store (None: a missing base is an error);
    with ``always_pull`` (``--pull``) every base image is pulled again.
    ``fetch`` downloads ``ADD <url>`` sources (None: such an ADD fails): the
    builder itself does no HTTP.
    ``cache_imports`` are registry caches (``--cache-from type=registry``)
    looked up on a local miss; ``export_cache`` receives the build's steps
    (the target stage's, or every stage's with ``cache_mode`` "max") to
    push them (``--cache-to``); ``ssh`` maps ``--ssh`` ids to agent sockets.
    ``source_date_epoch`` clamps file times in layers and sets every
    ``created`` time, so that two builds give the same image ID.  ``jobs``
    independent stages run at once."""

    dockerfile: bytes
    context: Path | None = None
    dockerfile_path: Path | None = None
    tags: tuple[Reference, ...] = ()
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    cache_from: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    network: str = "host"
    secrets: Mapping[str, bytes] = field(default_factory=dict)
    platform: str | None = None
    quiet: bool = False
    explain: bool = False
    pull: Callable[[str, str | None], StoredImage] | None = None  # (name, os/arch or None: the host's)
    always_pull: bool = False
    fetch: Fetch | None = None
    source_date_epoch: int | None = None
    jobs: int = 2
    cache_imports: tuple[RemoteCache, ...] = ()
    export_cache: Callable[[list[ExportedStep]], None] | None = None
    cache_mode: str = "min"
    ssh: Mapping[str, Path] = field(default_factory=dict)


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this machine, in OCI words."""
    machine = _platform.machine()
    arch = _ARCHES.get(machine, machine)
    return "linux", arch, "v7" if machine == "armv7l" else ""


def parse_platform(text: str | None) -> tuple[str, str, str]:
    if not text:
        return host_platform()
    parts = text.lower().split("/")
    os_name = parts[0] or "linux"
    arch = parts[1] if len(parts) > 1 else host_platform()[1]
    variant = parts[2] if len(parts) > 2 else ""
    return os_name, arch, variant


def platform_args(target: tuple[str, str, str]) -> dict[str, str]:
    """BuildKit's automatic platform ARGs (TARGETPLATFORM, BUILDARCH …)."""
    out: dict[str, str] = {}
    for prefix, (os_name, arch, variant) in (("TARGET", target), ("BUILD", host_platform())):
        out[f"{prefix}PLATFORM"] = "/".join(p for p in (os_name, arch, variant) if p)
        out[f"{prefix}OS"] = os_name
        out[f"{prefix}ARCH"] = arch
        out[f"{prefix}VARIANT"] = variant
    return out
