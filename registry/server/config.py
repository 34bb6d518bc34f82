"""The server's configuration: one frozen :class:`Config`, read from a TOML or JSON
file (``.toml``/``.json``) and overridden by command-line flags.

Keys (every one optional; docs/registry.md has an example)::

    root = "/var/lib/dockyard-registry"    # storage directory
    addr = "0.0.0.0:5000"
    read_only = false                      # refuse every write with 405 UNSUPPORTED
    delete_enabled = true                  # DELETE of manifests, tags and blobs
    max_manifest_bytes = 8388608           # bigger manifest PUTs get 413
    fsync = true                           # fsync blobs before they become visible
    workers = 2                            # gunicorn processes (gthread workers)
    threads = 16                           # threads per worker
    header_timeout = 20.0                  # seconds a request head may take to arrive, then dropped
    body_timeout = 60.0                    # seconds a body read or reply write may stall, then 400
    access_log = "-"                       # JSON lines to a file, "-" = stderr, "" = off
    gc_grace_seconds = 3600                # GC spares blobs touched this recently
    storage = "filesystem"                 # or "s3" (the [s3] table; docs/s3.md)
    upload_secret = ""                     # signs upload URLs' state; the same on every process of a store
    [s3]                                   # the s3 driver (registry/server/storage/s3.py)
    endpoint = "http://127.0.0.1:7480"     # "" = AWS's own for the region
    region = "us-east-1"
    bucket = "registry"
    prefix = ""                            # keys under <prefix>/ in the bucket
    access_key = ""                        # "" = AWS_ACCESS_KEY_ID, ~/.aws/credentials, … (botocore's chain)
    secret_key = ""
    path_style = true                      # http://host/bucket/key, not http://bucket.host/key
    secure = true                          # https for an endpoint given without a scheme; verify its TLS
    chunk_size = 10485760                  # multipart part size (>= 5 MiB)
    redirect = true                        # blob GETs: 307 to a presigned URL (false: proxy the bytes)
    [auth]
    htpasswd = "/etc/dockyard/htpasswd"    # bcrypt entries; Basic auth (or users of the token endpoint)
    realm = "dockyard"                     # the Basic realm
    acl = "/etc/dockyard/acl.json"         # per-repository rights, see registry/server/auth.py
    [auth.token]                           # present: bearer tokens from the built-in /auth/token
    realm = ""                             # "" = <scheme>://<Host of the request>/auth/token
    service = "dockyard-registry"
    issuer = "dockyard-token-issuer"
    key = ""                               # EC P-256 PEM; "" = <root>/token.key, made if missing
    expiration = 300
    [tls]
    cert = "server.crt"
    key = "server.key"
    client_ca = ""                         # set: client certificates are required and verified
    [quotas]                               # repository glob = bytes (first match wins)
    "team/*" = 10737418240
    [[notifications]]
    url = "http://hooks.example/registry"
    timeout = 5.0
    attempts = 5                           # deliveries tried, with exponential backoff
    backoff = 1.0                          # seconds before the first retry
    headers = {Authorization = "Bearer …"}
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from imagefmt.errors import Invalid


class ConfigInvalid(Invalid):
    """An unreadable config file or a bad key in it."""


@dataclass(frozen=True)
class TokenConfig:
    realm: str = ""
    service: str = "dockyard-registry"
    issuer: str = "dockyard-token-issuer"
    key: Path | None = None
    expiration: int = 300


@dataclass(frozen=True)
class WebhookEndpoint:
    url: str
    timeout: float = 5.0
    attempts: int = 5
    backoff: float = 1.0
    headers: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class S3Config:
    endpoint: str = ""
    region: str = "us-east-1"
    bucket: str = "registry"
    prefix: str = ""
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    path_style: bool = True
    secure: bool = True
    chunk_size: int = 10 << 20
    redirect: bool = True

    def __post_init__(self) -> None:
        if self.chunk_size < 5 << 20:
            raise ValueError(f"s3 chunk_size {self.chunk_size} is below S3's 5 MiB part minimum")
        if not self.bucket:
            raise ValueError("s3 bucket is empty")


@dataclass(frozen=True)
class Config:
    root: Path = Path("/var/lib/dockyard-registry")
    addr: str = "0.0.0.0:5000"
    read_only: bool = False
    delete_enabled: bool = True
    max_manifest_bytes: int = 8 << 20
    fsync: bool = True
    workers: int = 2
    threads: int = 16
    header_timeout: float = 20.0
    body_timeout: float = 60.0
    access_log: str = "-"
    gc_grace_seconds: int = 3600
    storage: str = "filesystem"
    upload_secret: str = field(default="", repr=False)
    s3: S3Config = field(default_factory=S3Config)
    htpasswd: Path | None = None
    realm: str = "dockyard"
    acl: Path | None = None
    token: TokenConfig | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    quotas: tuple[tuple[str, int], ...] = ()
    notifications: tuple[WebhookEndpoint, ...] = ()

    def quota_for(self, name: str) -> int | None:
        """The byte quota of a repository, or None."""
        return next((limit for pattern, limit in self.quotas if fnmatch.fnmatchcase(name, pattern)), None)

    def with_overrides(self, **kw: Any) -> Config:
        """A copy with the keyword values that are not None."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def load(path: Path | None) -> Config:
    """Read a config file (TOML or JSON by extension); ``None`` gives the defaults.

    Raise ConfigInvalid naming the file and the bad key."""
    if path is None:
        return Config()
    try:
        text = path.read_bytes()
        doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text.decode())
    except (OSError, ValueError) as err:
        raise ConfigInvalid(f"read config {path}: {err}") from err
    try:
        return from_mapping(doc)
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigInvalid(f"config {path}: {err}") from err


def from_mapping(doc: dict[str, Any]) -> Config:
    simple = {f.name for f in fields(Config)} - {
        "htpasswd",
        "acl",
        "token",
        "quotas",
        "notifications",
        "root",
        "s3",
    }
    kw: dict[str, Any] = {k: doc[k] for k in simple & doc.keys() if not k.startswith("tls_")}
    unknown = doc.keys() - simple - {"root", "auth", "tls", "quotas", "notifications", "s3"}
    if unknown:
        raise KeyError(f"unknown keys {sorted(unknown)}")
    if "root" in doc:
        kw["root"] = Path(doc["root"])
    auth = doc.get("auth") or {}
    if auth.get("htpasswd"):
        kw["htpasswd"] = Path(auth["htpasswd"])
    if auth.get("acl"):
        kw["acl"] = Path(auth["acl"])
    if auth.get("realm"):
        kw["realm"] = str(auth["realm"])
    if "token" in auth:
        t = dict(auth["token"] or {})
        t["key"] = Path(t["key"]) if t.get("key") else None
        kw["token"] = TokenConfig(**t)
    tls = doc.get("tls") or {}
    for key in ("cert", "key", "client_ca"):
        if tls.get(key):
            kw[f"tls_{key}"] = Path(tls[key])
    kw["quotas"] = tuple((str(k), int(v)) for k, v in (doc.get("quotas") or {}).items())
    kw["notifications"] = tuple(WebhookEndpoint(**e) for e in doc.get("notifications") or ())
    if "s3" in doc:
        kw["s3"] = S3Config(**doc["s3"])
    return Config(**kw)
