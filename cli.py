"""The ``dockyard`` command: docker's verbs and flags over the dockyard packages.

This module owns argparse, output formatting, progress bars and exit codes;
every verb is a thin composition of library calls.  Nothing imports cli.

Exit codes: 0 ok, 1 other DockyardError, 2 usage, 3 NotFound, 4 Unauthorized/Denied,
5 Invalid, 130 interrupted; ``run`` returns the container's status (125/126/127
when dockyard, the command's execution or its lookup failed, as docker does).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imagefmt import errors

VERSION = "0.1.0"
API_VERSION = "1.41"

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad flags or arguments: exit 2 with a one-line message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse prints usage and exits; we raise
        raise UsageError(f"{self.prog}: {message}")


def default_root() -> Path:
    """/var/lib/dockyard for root, else ~/.local/share/dockyard; DOCKYARD_ROOT overrides."""
    env = os.environ.get("DOCKYARD_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/dockyard")
    return Path.home() / ".local/share/dockyard"


def err(message: str) -> None:
    print(f"Error: {message}", file=sys.stderr)


def exit_code_for(exc: errors.DockyardError) -> int:
    if isinstance(exc, errors.NotFound):
        return 3
    if isinstance(exc, errors.Unauthorized | errors.Denied):
        return 4
    if isinstance(exc, errors.Invalid):
        return 5
    return 1


# ---------------------------------------------------------------- parser ---

COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        return fn

    return deco


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dockyard", description="A daemonless, Docker-compatible image toolchain")
    p.add_argument("--root", type=Path, default=None, help="store directory (env DOCKYARD_ROOT)")
    p.add_argument("-D", "--debug", action="store_true", help="print tracebacks")
    p.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser)
    for add in PARSERS:
        add(sub)
    return p


PARSERS: list[Callable[[Any], None]] = []


def parsers(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    PARSERS.append(fn)
    return fn


# ---------------------------------------------------------------- system ---


@parsers
def _system_parsers(sub: Any) -> None:
    v = sub.add_parser("version", help="show the version")
    v.add_argument("-f", "--format", default="")


@command("version")
def cmd_version(args: argparse.Namespace) -> int:
    import platform

    if args.format:
        print(args.format.replace("{{.Client.Version}}", VERSION).replace("{{.Server.Version}}", VERSION))
        return 0
    print("Client:")
    print(f" Version:           {VERSION}")
    print(f" API version:       {API_VERSION}")
    print(f" Python version:    {platform.python_version()}")
    print(f" OS/Arch:           linux/{_arch()}")
    return 0


def _arch() -> str:
    import platform

    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


# -------------------------------------------------------------- registry ---


@parsers
def _registry_parsers(sub: Any) -> None:
    r = sub.add_parser("registry", help="run and maintain a registry server (the OCI distribution API)")
    rs = r.add_subparsers(dest="sub", parser_class=_Parser, required=True)
    s = rs.add_parser("serve", help="serve the registry (gunicorn), by default on 0.0.0.0:5000")
    _registry_common(s)
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
    g = rs.add_parser("garbage-collect", help="delete blobs no manifest references (safe while serving)")
    _registry_common(g)
    g.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    g.add_argument("--delete-untagged", action="store_true", help="also delete manifests without a tag")
    g.add_argument("--grace", type=float, default=None, help="spare blobs touched in the last N seconds")
    c = rs.add_parser("gen-certs", help="make a CA, a server and a client certificate")
    c.add_argument("dir", type=Path)
    c.add_argument("--host", action="append", default=[], help="server name or IP (repeatable)")
    c.add_argument("--days", type=int, default=825)
    h = rs.add_parser("htpasswd", help="add or replace a user in an htpasswd file (password on stdin)")
    h.add_argument("file", type=Path)
    h.add_argument("user")


def _registry_common(p: Any) -> None:
    p.add_argument("--root", dest="registry_root", type=Path, default=None, help="storage directory")
    p.add_argument("--config", type=Path, default=None, help="TOML or JSON config file")


def _registry_config(args: argparse.Namespace) -> Any:
    from registry import config

    cfg = config.load(args.config)
    if args.registry_root is not None:
        return cfg.with_overrides(root=args.registry_root)
    if cfg.root == config.Config().root:
        return cfg.with_overrides(root=args.root / "registry")
    return cfg


@command("registry serve")
def cmd_registry_serve(args: argparse.Namespace) -> int:
    from registry import config, serve

    cfg = _registry_config(args)
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
    notifications = cfg.notifications + tuple(config.Endpoint(url) for url in args.notify)
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
    serve.serve(cfg)
    return 0


@command("registry garbage-collect")
def cmd_registry_gc(args: argparse.Namespace) -> int:
    from registry import gc
    from registry.storage import FilesystemStorage

    cfg = _registry_config(args)
    grace = cfg.gc_grace_seconds if args.grace is None else args.grace
    result = gc.collect(FilesystemStorage(cfg.root), args.dry_run, args.delete_untagged, grace)
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


@command("registry gen-certs")
def cmd_registry_gen_certs(args: argparse.Namespace) -> int:
    from registry import tls

    paths = tls.gen_certs(args.dir, args.host, args.days)
    print(f"CA:     {paths.ca_cert}")
    print(f"server: --tls-cert {paths.server_cert} --tls-key {paths.server_key}")
    print(f"client: {paths.client_dir} (a docker certs.d/<host:port> folder, a skopeo --cert-dir)")
    return 0


@command("registry htpasswd")
def cmd_registry_htpasswd(args: argparse.Namespace) -> int:
    from registry import auth

    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise UsageError("registry htpasswd: give the password on standard input")
    auth.set_htpasswd_user(args.file, args.user, password)
    print(f"set user {args.user} in {args.file}")
    return 0


# ------------------------------------------------------------------ main ---


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "-D" in argv or "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if args.version:
            print(f"dockyard version {VERSION}")
            return 0
        if not args.cmd:
            build_parser().print_help()
            return 0
        if args.root is None:
            args.root = default_root()
        key = args.cmd if args.cmd in COMMANDS else f"{args.cmd} {getattr(args, 'sub', '')}".strip()
        return COMMANDS[key](args)
    except UsageError as exc:
        err(str(exc))
        return 2
    except errors.DockyardError as exc:
        if debug:
            raise
        err(str(exc))
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
