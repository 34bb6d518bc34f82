"""``pull``, ``push``, ``login``, ``logout`` and ``search``: dockyard's side of a
registry, through registry.client; and the pull that ``run`` and ``build`` make of
an image they lack."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from commands.errors import UsageError
from commands.formatting import print_table
from commands.parsing import OnlyVerb, Verbs, insecure_registry_flag
from commands.progress import LayerProgress
from engine.images import image_to_push
from engine.system import arch
from imagefmt import errors
from imagefmt.manifest import Platform
from imagefmt.records import TYPE_CHECKING
from imagefmt.reference import DOCKER_HUB, Reference
from imagefmt.store import Store, StoredImage
from registry.client import credentials
from registry.client.credentials import Credentials, config_key
from registry.client.registry_client import ClientOptions, RegistryClient, logout, registry_key

if TYPE_CHECKING:
    from typing import Any

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    image = sub.group("image")  # also as 'image pull' / 'image push'
    for p in (sub.add_parser("pull"), image.add_parser("pull")):
        p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
        p.add_argument("-a", "--all-tags", action="store_true", help="download all tags of the repository")
        p.add_argument("--platform", default="", help="os/arch[/variant] of a multi-platform image")
        p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")
        p.add_argument("--max-concurrent-downloads", type=int, default=3, metavar="N")
        insecure_registry_flag(p)
    for p in (sub.add_parser("push"), image.add_parser("push")):
        p.add_argument("name", metavar="NAME[:TAG]")
        p.add_argument("-a", "--all-tags", action="store_true", help="push all tags of the repository")
        p.add_argument("-q", "--quiet", action="store_true", help="print only the name pushed")
        p.add_argument("--max-concurrent-uploads", type=int, default=5, metavar="N")
        insecure_registry_flag(p)
    p = sub.add_parser("login")
    p.add_argument("server", nargs="?", default="docker.io")
    p.add_argument("-u", "--username", default="")
    p.add_argument("-p", "--password", default="")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    insecure_registry_flag(p)
    p = sub.add_parser("logout")
    p.add_argument("server", nargs="?", default="docker.io")
    p = sub.add_parser("search")
    p.add_argument("term", metavar="[HOST/]TERM")
    p.add_argument("--limit", type=int, default=25, help="at most this many results (default 25)")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format", default="")
    insecure_registry_flag(p)


def client(args: argparse.Namespace, **options: Any) -> RegistryClient:
    insecure = tuple(getattr(args, "insecure_registry", []) or [])
    return RegistryClient(ClientOptions.from_env(insecure_registries=insecure, **options))


def platform(args: argparse.Namespace) -> Platform:
    """--platform, else this machine's (linux/ARCH)."""
    return Platform.parse(args.platform) if args.platform else Platform(architecture=arch())


@VERBS.command("pull", "image pull")
def cmd_pull(args: argparse.Namespace) -> int:
    given = Reference.parse(args.name, default_tag=False)
    if args.all_tags and (given.tag or given.digest):
        raise UsageError("tag can't be used with --all-tags/-a")
    store = Store(args.root)
    quiet = args.quiet
    if given.tag is None and given.digest is None and not args.all_tags and not quiet:
        print("Using default tag: latest")
    ref = given if (given.tag or given.digest or args.all_tags) else given.with_tag("latest")
    with client(
        args,
        platform=platform(args),
        strict_platform=bool(args.platform),
        max_concurrent_downloads=max(1, args.max_concurrent_downloads),
    ) as c:
        refs = [ref.with_tag(t) for t in c.tags(ref)] if args.all_tags else [ref]
        updated = False
        for r in refs:
            if not quiet:
                print(f"{r.tag or r.digest}: Pulling from {r.path}", flush=True)
            bars = LayerProgress(enabled=not quiet)
            try:
                result = c.pull(store, r, bars)
            finally:
                bars.close()
            updated = updated or result.updated
            if not quiet:
                print(f"Digest: {result.digest}")
    if not quiet:
        what = ref.familiar() if not args.all_tags else ref.familiar_repository
        status = "Downloaded newer image for" if updated else "Image is up to date for"
        print(f"Status: {status} {what}")
    print(str(ref) if not args.all_tags else ref.repository)
    return 0


def pull_image(
    args: argparse.Namespace, name: str, out: Callable[[bytes], None], lines: Any = None
) -> StoredImage:
    """An image that is not in the store (a build's base, run's image): pulled as
    'pull NAME' would, with docker's lines through ``out`` and the layers' on
    ``lines`` (stdout when None; progress bars on a terminal)."""
    ref = Reference.parse(name, default_tag=False)
    ref = ref if (ref.tag or ref.digest) else ref.with_tag("latest")
    store = Store(args.root)
    out(f"{ref.tag or ref.digest}: Pulling from {ref.path}\n".encode())
    with client(args, platform=platform(args), strict_platform=bool(args.platform)) as c:
        bars = LayerProgress(enabled=not args.quiet, lines=lines)
        try:
            result = c.pull(store, ref, bars)
        finally:
            bars.close()
    status = "Downloaded newer image for" if result.updated else "Image is up to date for"
    out(f"Digest: {result.digest}\nStatus: {status} {ref.familiar()}\n".encode())
    return store.image(str(ref))


@VERBS.command("push", "image push")
def cmd_push(args: argparse.Namespace) -> int:
    given = Reference.parse(args.name, default_tag=False)
    if given.digest is not None:
        raise UsageError("push takes a tag, not a digest: dockyard push NAME[:TAG]")
    if args.all_tags and given.tag:
        raise UsageError("tag can't be used with --all-tags/-a")
    store = Store(args.root)
    if args.all_tags:
        refs = sorted(
            {t for img in store.images() for t in img.tags if t.repository == given.repository},
            key=lambda t: t.tag or "",
        )
        if not refs:
            missing = given.familiar_repository
            raise errors.NotFound(f"An image does not exist locally with the tag: {missing}")
    else:
        if given.tag is None and not args.quiet:
            print("Using default tag: latest")
        refs = [given if given.tag else given.with_tag("latest")]
    if not args.quiet:
        print(f"The push refers to repository [{given.repository}]", flush=True)
    with client(args, max_concurrent_uploads=max(1, args.max_concurrent_uploads)) as c:
        for ref in refs:
            image = image_to_push(store, ref)
            bars = LayerProgress(enabled=not args.quiet)
            members = store.platform_images(image)  # a multi-platform build: its index
            try:
                result = (
                    c.push_platforms(store, members, ref, bars)
                    if members
                    else c.push(store, image, ref, bars)
                )
            finally:
                bars.close()
            if args.quiet:  # docker push -q prints the reference it pushed
                print(str(result.ref))
            else:
                print(f"{result.ref.tag}: digest: {result.digest} size: {result.size}")
    return 0


@VERBS.command("login")
def cmd_login(args: argparse.Namespace) -> int:
    host = registry_key(args.server)
    username, password = args.username, args.password
    if args.password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    if args.password_stdin:
        if args.password:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise UsageError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    stored = credentials.load(host) if not username and not password else None
    if stored is not None:
        print(f"Authenticating with existing credentials... [Username: {stored.username}]")
        creds = stored
    else:
        if not username or not password:
            if not sys.stdin.isatty():
                raise errors.Invalid("Cannot perform an interactive login from a non TTY device")
            username = username or input("Username: ").strip()
            password = password or getpass.getpass("Password: ")
        if not username or not password:
            raise errors.Invalid("Error: username and password are required")
        creds = Credentials(username, password)
    with client(args) as c:
        path = c.login(host, creds)
    if path is not None:  # not when a credential helper keeps it, as docker
        print(f"WARNING! Your password will be stored unencrypted in {path}.", file=sys.stderr)
    print("Login Succeeded")
    return 0


@VERBS.command("logout")
def cmd_logout(args: argparse.Namespace) -> int:
    shown = config_key(registry_key(args.server))
    if logout(args.server):
        print(f"Removing login credentials for {shown}")
    else:
        print(f"Not logged in to {shown}")
    return 0


@VERBS.command("search")
def cmd_search(args: argparse.Namespace) -> int:
    host, sep, term = args.term.partition("/")
    if not sep or not ("." in host or ":" in host or host == "localhost"):
        host, term = DOCKER_HUB, args.term
    if host == DOCKER_HUB:
        raise errors.Unsupported(
            "search: Docker Hub has no catalog we can search: name a registry, e.g. "
            "'dockyard search localhost:5000/TERM'"
        )
    if args.limit < 1 or args.limit > 100:
        raise errors.Invalid("limit 0 is outside the range of [1, 100]".replace("0", str(args.limit), 1))
    with client(args) as c:
        names = list(c.search(host, term, args.limit))
    rows = [[f"{host}/{n}", "", "0", "", ""] for n in names]
    header = ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    if args.format:
        print_table(["Name", "Description", "StarCount", "IsOfficial", "IsAutomated"], rows, args.format)
    else:
        print_table(header, rows)
    return 0
