"""``system service`` (also ``daemon``): the Docker Engine API service over the
store, and ``system gen-certs``, its TLS certificates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commands.errors import UsageError
from commands.parsing import OnlyVerb, Verbs

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    for p in (sub.group("system").add_parser("service"), sub.add_parser("daemon")):
        p.add_argument(
            "-H", "--host", action="append", default=[], metavar="ADDR",
            help="unix:///PATH or tcp://HOST:PORT to listen on (repeatable; default unix:///run/dockyard.sock)",
        )  # fmt: skip
        p.add_argument("--tls", action="store_true", help="serve TCP over TLS (implied by --tlsverify)")
        p.add_argument("--tlsverify", action="store_true", help="require client certificates the CA signed")
        p.add_argument("--tlscacert", type=Path, default=None, help="the CA that signs client certificates")
        p.add_argument("--tlscert", type=Path, default=None, help="the service's certificate")
        p.add_argument("--tlskey", type=Path, default=None, help="the service's key")
        p.add_argument(
            "-D", "--debug", action="store_true", default=argparse.SUPPRESS, help="log every request"
        )
    g = sub.group("system").add_parser("gen-certs")
    g.add_argument("dir", type=Path)
    g.add_argument("--host", action="append", default=[], help="server name or IP (repeatable)")
    g.add_argument("--days", type=int, default=825)


@VERBS.command("system service", "daemon")
def cmd_service(args: argparse.Namespace) -> int:
    from api.routes import service
    from api.server import TLSOptions, serve

    tls = None
    if args.tls or args.tlsverify:
        if args.tlscert is None or args.tlskey is None:
            raise UsageError("--tls/--tlsverify need --tlscert and --tlskey")
        if args.tlsverify and args.tlscacert is None:
            raise UsageError("--tlsverify needs --tlscacert, the CA of the clients' certificates")
        tls = TLSOptions(args.tlscert, args.tlskey, args.tlscacert if args.tlsverify else None)
    hosts = args.host or ["unix:///run/dockyard.sock"]
    args.root.mkdir(parents=True, exist_ok=True)

    def ready() -> None:
        print(f"API listening on {', '.join(hosts)} (store {args.root})", file=sys.stderr, flush=True)

    serve(service(args.root, bool(getattr(args, "debug", False))), hosts, tls, ready)
    return 0


@VERBS.command("system gen-certs")
def cmd_gen_certs(args: argparse.Namespace) -> int:
    from api.certs import gen_daemon_certs

    client = gen_daemon_certs(args.dir, args.host, args.days)
    d = args.dir
    print(f"CA:     {d / 'ca.pem'} (key {d / 'ca-key.pem'})")
    print(f"server: --tlsverify --tlscacert {d / 'ca.pem'} --tlscert {d / 'server-cert.pem'} "
          f"--tlskey {d / 'server-key.pem'}")  # fmt: skip
    print(f"client: DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={client}")
    return 0
