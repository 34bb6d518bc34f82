"""Which scheme and TLS settings a registry host gets, as dockerd decides them.

Loopback hosts and the ones listed as insecure may be reached over plain HTTP
or HTTPS without verification (the transport picks the order); every other
host over verified HTTPS, with the CAs of ``certs.d/<host>/`` added to the
system's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

DEFAULT_CERTS_DIRS = (Path("/etc/docker/certs.d"), Path("/etc/dockyard/certs.d"))


def default_certs_dirs() -> tuple[Path, ...]:
    """``$DOCKYARD_CERTS_D`` (colon-separated) else /etc/docker/certs.d, /etc/dockyard/certs.d
    and ``~/.config/dockyard/certs.d``."""
    env = os.environ.get("DOCKYARD_CERTS_D")
    if env:
        return tuple(Path(p) for p in env.split(":") if p)
    return (*DEFAULT_CERTS_DIRS, Path.home() / ".config/dockyard/certs.d")


def insecure_from_env() -> tuple[str, ...]:
    """Hosts (or CIDRs) in ``DOCKYARD_INSECURE_REGISTRIES``, comma or space separated."""
    raw = os.environ.get("DOCKYARD_INSECURE_REGISTRIES", "")
    return tuple(h for h in raw.replace(",", " ").split() if h)


def _hostname(host: str) -> str:
    """``[::1]:5000`` → ``::1``; ``localhost:5000`` → ``localhost``."""
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """``localhost``, ``*.localhost`` or a loopback address (with or without a port)."""
    name = _hostname(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    addr = _address(name)
    return addr is not None and addr.is_loopback


def is_insecure(
    host: str, insecure_registries: Iterable[str] = (), secure_registries: Iterable[str] = ()
) -> bool:
    """True for a host Docker would reach over plain HTTP: a loopback name or
    address, or one listed (by host[:port], host, or a CIDR holding its address),
    unless it is listed in ``secure_registries``.  Names are not resolved (Docker
    resolves them to check the CIDRs): a name is insecure only when listed."""
    name = _hostname(host)
    if host in secure_registries:
        return False
    if is_loopback(host):
        return True
    addr = _address(name)
    for item in insecure_registries:
        item = item.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
        if item in (host, name):
            return True
        if addr is not None and "/" in item:
            with contextlib.suppress(ValueError):
                if addr in ipaddress.ip_network(item, strict=False):
                    return True
    return False


def certs_d(host: str, dirs: tuple[Path, ...]) -> tuple[list[Path], tuple[str, str] | None]:
    """CA files (``*.crt``) and a client cert/key pair (``*.cert`` + ``*.key``) from
    ``<dir>/<host>/`` of each certs directory, as Docker reads ``certs.d``."""
    cas: list[Path] = []
    client: tuple[str, str] | None = None
    for base in dirs:
        d = base / host
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix == ".crt":
                cas.append(f)
            elif f.suffix == ".cert" and f.with_suffix(".key").exists():
                client = (str(f), str(f.with_suffix(".key")))
    return cas, client


def ca_bundle(cas: list[Path]) -> str:
    """A PEM file holding the default CAs and ``cas`` (requests replaces, Docker adds).

    The default CAs are the system's (``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``) else requests'."""
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    env = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    default = env or DEFAULT_CA_BUNDLE_PATH
    fd, path = tempfile.mkstemp(prefix="dockyard-ca-", suffix=".pem")
    with os.fdopen(fd, "wb") as out:
        with contextlib.suppress(OSError):
            out.write(Path(default).read_bytes())
        for ca in cas:
            out.write(b"\n" + ca.read_bytes())
    return path


def quiet_insecure_warning() -> None:
    # The user asked for an unverified registry; urllib3 would warn on every request.
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
