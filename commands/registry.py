"""``registry serve``, ``garbage-collect``, ``gen-certs`` and ``htpasswd``: running
and maintaining dockyard's registry server."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from commands.errors import FlagError, UsageError
from commands.parsing import OnlyVerb, Verbs
from commands.paths import check_input, check_writable_dir
from imagefmt import errors
from registry.server import certs, config, gc, htpasswd, serve
from registry.server.storage.drivers import open_driver
from registry.server.storage.store import Storage

VERBS = Verbs()
S3_FLAGS = (
    "endpoint",
    "region",
    "bucket",
    "prefix",
    "access_key",
    "secret_key",
    "path_style",
    "secure",
    "chunk_size",
    "redirect",
)


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    rs = sub.group("registry")
    s = rs.add_parser("serve")
    _common(s)
    s.add_argument("--addr", default=None, help="host:port to listen on (default 0.0.0.0:5000)")
    s.add_argument("--htpasswd", type=Path, default=None, help="bcrypt htpasswd file: Basic auth")
    s.add_argument("--acl", type=Path, default=None, help="JSON ACL file (see docs/registry.md)")
    s.add_argument("--token", action="store_true", help="bearer-token auth with the built-in /auth/token")
    s.add_argument("--token-realm", default=None, help="token realm URL (default: this server's /auth/token)")
    s.add_argument("--token-service", default=None, help="token service name")
    s.add_argument("--token-key", type=Path, default=None, help="EC P-256 PEM signing key (made if missing)")
    s.add_argument("--tls-cert", type=Path, default=None)
    s.add_argument("--tls-key", type=Path, default=None)
    s.add_argument("--tls-client-ca", type=Path, default=None, help="require client certificates of this CA")
    s.add_argument("--read-only", action="store_true", default=None, help="refuse every write")
    s.add_argument("--workers", type=int, default=None, help="worker processes (default 2)")
    s.add_argument("--threads", type=int, default=None, help="threads per worker (default 16)")
    s.add_argument("--access-log", default=None, help="JSON access log file, '-' stderr, '' off")
    s.add_argument("--notify", action="append", default=[], metavar="URL", help="webhook URL (repeatable)")
    g = rs.add_parser("garbage-collect")
    _common(g)
    g.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    g.add_argument("--delete-untagged", action="store_true", help="also delete manifests without a tag")
    g.add_argument("--grace", type=float, default=None, help="spare blobs touched in the last N seconds")
    c = rs.add_parser("gen-certs")
    c.add_argument("dir", type=Path)
    c.add_argument("--host", action="append", default=[], help="server name or IP (repeatable)")
    c.add_argument("--days", type=int, default=825)
    h = rs.add_parser("htpasswd")
    h.add_argument("file", type=Path)
    h.add_argument("user")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", dest="registry_root", type=Path, default=None, help="storage directory")
    p.add_argument("--config", type=Path, default=None, help="TOML or JSON config file")
    p.add_argument("--storage", default=None, help="storage driver: filesystem (default) or s3")
    p.add_argument("--upload-secret", default=None, help="signs upload URLs (the same on every process)")
    s3 = p.add_argument_group("s3 storage (the config's [s3] table; docs/s3.md)")
    s3.add_argument("--s3-endpoint", default=None, help="S3 endpoint URL (default: AWS's for the region)")
    s3.add_argument("--s3-region", default=None, help="the bucket's region (default us-east-1)")
    s3.add_argument("--s3-bucket", default=None, help="the bucket that holds the registry")
    s3.add_argument("--s3-prefix", default=None, help="keys under this prefix in the bucket")
    s3.add_argument("--s3-access-key", default=None, help="default: AWS_ACCESS_KEY_ID, ~/.aws/credentials…")
    s3.add_argument(
        "--s3-secret-key", default=None, help="default: AWS_SECRET_ACCESS_KEY, ~/.aws/credentials…"
    )
    s3.add_argument(
        "--s3-path-style",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bucket in the path, not the host",
    )
    s3.add_argument(
        "--s3-secure", action=argparse.BooleanOptionalAction, default=None, help="HTTPS to the endpoint"
    )
    s3.add_argument("--s3-chunk-size", type=int, default=None, help="multipart part size (>= 5 MiB)")
    s3.add_argument(
        "--s3-redirect", action=argparse.BooleanOptionalAction, default=None, help="307 blob GETs to S3"
    )


def _config(args: argparse.Namespace) -> config.Config:
    if args.config is not None:
        check_input(str(args.config))
    cfg = config.load(args.config)
    s3 = {k: getattr(args, f"s3_{k}") for k in S3_FLAGS if getattr(args, f"s3_{k}") is not None}
    try:
        cfg = cfg.with_overrides(
            storage=args.storage,
            upload_secret=args.upload_secret,
            s3=replace(cfg.s3, **s3) if s3 else None,
        )
    except ValueError as err:
        raise FlagError(f"registry: {err}") from err
    if args.registry_root is not None:
        return cfg.with_overrides(root=args.registry_root)
    if cfg.root == config.Config().root:
        return cfg.with_overrides(root=args.root / "registry")
    return cfg


@VERBS.command("registry serve")
def cmd_registry_serve(args: argparse.Namespace) -> int:
    cfg = _config(args)
    token = cfg.token
    if args.token or args.token_realm or args.token_service or args.token_key:
        base = token or config.TokenConfig()
        token = base.__class__(
            realm=args.token_realm or base.realm,
            service=args.token_service or base.service,
            issuer=base.issuer,
            key=args.token_key or base.key,
            expiration=base.expiration,
        )
    notifications = cfg.notifications + tuple(config.WebhookEndpoint(url) for url in args.notify)
    cfg = cfg.with_overrides(
        addr=args.addr,
        htpasswd=args.htpasswd,
        acl=args.acl,
        token=token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        read_only=args.read_only,
        workers=args.workers,
        threads=args.threads,
        access_log=args.access_log,
        notifications=notifications,
    )
    if cfg.token is not None and cfg.htpasswd is None and cfg.acl is None:
        raise UsageError("--token needs --htpasswd (the accounts) or --acl (anonymous rights)")
    _check_files(cfg)
    serve.serve(cfg)
    return 0


def _check_files(cfg: config.Config) -> None:
    """The files serve reads must be there, and those it makes when missing (the
    htpasswd file, the token key, the access log) need their directory: one line
    before anything is made or bound, not a traceback from gunicorn's start."""
    for path in (cfg.acl, cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca):
        if path is not None:
            check_input(str(path))
    made = [cfg.htpasswd, cfg.token.key if cfg.token else None]
    if cfg.access_log not in ("", "-"):
        made.append(Path(cfg.access_log))
    for path in made:
        if path is not None:
            check_writable_dir(str(path))


@VERBS.command("registry garbage-collect")
def cmd_registry_gc(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if cfg.storage == "filesystem" and not cfg.root.is_dir():  # a typo must not make an empty registry
        raise errors.NotFound(f"registry root {cfg.root}: no such directory")
    grace = cfg.gc_grace_seconds if args.grace is None else args.grace
    result = gc.collect(Storage(open_driver(cfg)), args.dry_run, args.delete_untagged, grace)
    verb = "would delete" if args.dry_run else "deleted"
    for repo, digest in result.manifests:
        print(f"{verb} manifest {repo}@{digest}")
    for digest in result.blobs:
        print(f"{verb} blob {digest}")
    for repo, uuid in result.uploads:
        print(f"{verb} upload {repo} {uuid}")
    print(
        f"{result.marked} marked, {len(result.blobs)} blobs ({result.bytes} bytes), "
        f"{len(result.manifests)} manifests and {len(result.uploads)} uploads {verb}"
    )
    return 0


@VERBS.command("registry gen-certs")
def cmd_registry_gen_certs(args: argparse.Namespace) -> int:
    check_writable_dir(str(args.dir), "mkdir")
    paths = certs.gen_certs(args.dir, args.host, args.days)
    print(f"CA:     {paths.ca_cert}")
    print(f"server: --tls-cert {paths.server_cert} --tls-key {paths.server_key}")
    print(f"client: {paths.client_dir} (a docker certs.d/<host:port> folder, a skopeo --cert-dir)")
    return 0


@VERBS.command("registry htpasswd")
def cmd_registry_htpasswd(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise UsageError("registry htpasswd: give the password on standard input")
    check_writable_dir(str(args.file))
    htpasswd.set_htpasswd_user(args.file, args.user, password)
    print(f"set user {args.user} in {args.file}")
    return 0
