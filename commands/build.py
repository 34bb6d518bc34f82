"""``build`` (also ``image build``): the Dockerfile builder's flags and output.
(``builder prune`` is in commands.disk.)"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from builder.build import build, build_platforms
from builder.context import extract_context, looks_like_tar
from builder.errors import BuildFailed, DockerfileError
from builder.options import BuildOptions
from builder.output import OutputSpec, export
from commands import buildcache, remotecontext
from commands.errors import FlagError, UsageError
from commands.parsing import OnlyVerb, Verbs, insecure_registry_flag
from commands.paths import check_writable_dir, path_error
from imagefmt import errors
from imagefmt.manifest import Platform
from imagefmt.reference import Reference
from imagefmt.store import Store, StoredImage, image_platform
from registry.client.fetch import fetch

if TYPE_CHECKING:  # requests is imported only when a build reaches a registry
    from registry.client.registry_client import RegistryClient

VERBS = Verbs()
Out = Callable[[bytes], None]


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    image = sub.group("image")  # also as 'image build'
    for p in (sub.add_parser("build"), image.add_parser("build")):
        p.add_argument(
            "context", nargs="?", help="context directory, or - for a Dockerfile (or a tar context) on stdin"
        )
        p.add_argument("-t", "--tag", action="append", default=[], help="name:tag (repeatable)")
        p.add_argument(
            "-f", "--file", default=None, help="Dockerfile (default CONTEXT/Dockerfile; - for stdin)"
        )
        p.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="set a build-time ARG")
        p.add_argument("--target", default=None, help="stage to build")
        p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
        p.add_argument(
            "--cache-from",
            action="append",
            default=[],
            help="images to take cached steps from, or type=registry,ref=HOST/REPO:TAG",
        )
        p.add_argument(
            "--cache-to", action="append", default=[], help="type=registry,ref=HOST/REPO:TAG[,mode=max]"
        )
        p.add_argument(
            "-o",
            "--output",
            action="append",
            default=[],
            help="type=local|tar|oci|docker,dest=PATH (also: DIR, or - for a tar on stdout)",
        )
        p.add_argument("--push", action="store_true", help="push the tags after the build")
        p.add_argument("--pull", nargs="?", const="true", default="false", help="always pull base images")
        p.add_argument("--label", action="append", default=[], metavar="K=V", help="label the image")
        p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
        p.add_argument("--network", default="host", choices=["default", "host", "none"], help="RUN's network")
        p.add_argument(
            "--progress", default="auto", choices=["auto", "plain", "tty"], help="plain explains misses"
        )
        p.add_argument("--platform", default=None, help="target platform (os/arch)")
        p.add_argument("--secret", action="append", default=[], help="id=ID,src=PATH or id=ID,env=VAR")
        p.add_argument(
            "--ssh", action="append", default=[], help="default|ID[=SOCKET]: agent for RUN --mount=type=ssh"
        )
        p.add_argument("--iidfile", default=None, help="write the image ID to this file")
        p.add_argument(
            "--rm", nargs="?", const="true", default="true", help="(always) remove step containers"
        )
        p.add_argument("--force-rm", action="store_true", help="(always) remove step containers")
        p.add_argument("-j", "--jobs", type=int, default=2, help="stages built at once (default 2)")
        insecure_registry_flag(p)


def _labels(items: list[str]) -> dict[str, str]:
    """``--label K=V``; a bare ``--label K`` is an empty value, as docker sets it."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise FlagError(f"invalid --label {item!r}: use KEY=VALUE")
        out[key] = value
    return out


def _build_args(items: list[str]) -> dict[str, str | None]:
    """``--build-arg K=V``; a bare ``--build-arg K`` takes K from the environment, and
    is None (set nothing, yet named if unused) when the environment lacks it, as docker."""
    out: dict[str, str | None] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise FlagError(f"invalid --build-arg {item!r}: use KEY=VALUE")
        out[key] = value if eq else os.environ.get(key)
    return out


def _secrets(items: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for item in items:
        fields = dict(f.partition("=")[::2] for f in item.split(","))
        ident = fields.get("id", "")
        if not ident:
            raise FlagError(f"invalid --secret {item!r}: use id=ID,src=PATH or id=ID,env=VAR")
        if fields.get("env") or ("src" not in fields and "source" not in fields and ident in os.environ):
            value = os.environ.get(fields.get("env") or ident)
            if value is None:
                raise UsageError(f"--secret {item}: environment variable not set")
            out[ident] = value.encode()
            continue
        src = fields.get("src") or fields.get("source") or ""
        try:
            out[ident] = Path(src).read_bytes()
        except OSError as exc:
            raise path_error(f"--secret {item}: open", src, exc) from None
    return out


def _ssh(items: list[str]) -> dict[str, Path]:
    """``--ssh default`` ($SSH_AUTH_SOCK) or ``--ssh ID=SOCKET``: the agents RUN may use."""
    out: dict[str, Path] = {}
    for item in items:
        ident, eq, where = item.partition("=")
        if not ident:
            raise UsageError(f"invalid --ssh {item!r}: use default or ID=SOCKET")
        sock = where.split(",")[0] if eq else os.environ.get("SSH_AUTH_SOCK", "")
        if not sock:
            raise UsageError("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set")
        try:
            is_socket = stat.S_ISSOCK(os.stat(sock).st_mode)
        except OSError as exc:
            raise errors.NotFound(f"--ssh {item}: {exc.strerror}: {sock}") from exc
        if not is_socket:
            raise errors.Invalid(f"--ssh {item}: {sock} is not an agent socket (key files are not supported)")
        out[ident] = Path(sock)
    return out


def _build_inputs(
    args: argparse.Namespace, stack: contextlib.ExitStack
) -> tuple[Path | None, bytes, Path | None]:
    """(context dir or None, Dockerfile content, Dockerfile path) as docker resolves them."""
    if args.context == "-":
        data = sys.stdin.buffer.read()
        if not looks_like_tar(data):
            return None, data, None
        ctx = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-ctx-")))
        extract_context(data, ctx)
    else:
        ctx = Path(args.context)
        if not ctx.is_dir() and remotecontext.is_remote(args.context):
            remote, served = remotecontext.remote_context(args.context, stack)
            if remote is None:  # the URL served a Dockerfile: no context files
                return None, served or b"", None
            ctx = remote
            if args.file and args.file != "-":  # docker: -f is inside a remote context
                args.file = str(remotecontext.inside(ctx, args.file))
        if not ctx.is_dir():
            raise errors.NotFound(f'unable to prepare context: path "{args.context}" not found')
    if args.file == "-":
        return ctx, sys.stdin.buffer.read(), None
    path = Path(args.file) if args.file else ctx / "Dockerfile"
    try:
        return ctx, path.read_bytes(), path
    except OSError as exc:
        raise path_error("unable to prepare context: cannot read Dockerfile", str(path), exc) from None


_BOOL_WORDS = ("true", "false", "1", "0", "yes", "no", "always", "never", "missing")


@VERBS.command("build", "image build")
def cmd_build(args: argparse.Namespace) -> int:
    if args.pull.lower() not in _BOOL_WORDS:  # '--pull CONTEXT': argparse took the context as --pull's value
        if args.context is not None:
            raise FlagError(f"invalid value {args.pull!r} for --pull: use --pull or --pull=true|false")
        args.context, args.pull = args.pull, "true"
    if args.context is None:
        raise UsageError('"build" requires exactly 1 argument: the context directory, or -')
    if args.iidfile:
        check_writable_dir(args.iidfile)  # before the build, not after it
    try:
        tags = tuple(Reference.parse(t) for t in args.tag)
    except errors.Invalid as exc:
        raise FlagError(f"invalid argument for -t: {exc}") from exc
    build_args = _build_args(args.build_arg)
    sde_text = build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH") or ""
    if sde_text and not sde_text.isdigit():
        raise UsageError(f"invalid SOURCE_DATE_EPOCH {sde_text!r}: use seconds since the epoch")
    try:
        outputs = [OutputSpec.parse(o) for o in args.output]
    except errors.Invalid as exc:
        raise UsageError(str(exc)) from exc
    if args.push and not tags:
        raise UsageError("tag is needed when pushing to registry: give -t HOST/REPO:TAG")
    platforms = _platforms(args.platform)
    if len(platforms) > 1 and any(o.kind != "local" for o in outputs):
        raise UsageError(
            "--output type=tar|oci|docker takes one platform: build each --platform apart, "
            "or push the multi-platform image (--push) and copy it with skopeo"
        )
    held = bytearray()
    # a tar on stdout takes stdout: the build's own lines go to stderr, as buildx's do
    stdout = (
        sys.stderr.buffer if any(o.dest == "-" and o.kind != "local" for o in outputs) else sys.stdout.buffer
    )

    def out(data: bytes) -> None:
        if args.quiet:
            held.extend(data)
        else:
            stdout.write(data)
            stdout.flush()

    with contextlib.ExitStack() as stack:
        ctx, dockerfile, path = _build_inputs(args, stack)
        store = Store(args.root)
        registry = _LazyClient(args, stack)
        cache_fields = buildcache.setup(args, store, registry, out)
        opts = BuildOptions(
            dockerfile=dockerfile,
            context=ctx,
            dockerfile_path=path,
            tags=tags,
            build_args=build_args,
            target=args.target,
            no_cache=args.no_cache,
            labels=_labels(args.label),
            network="host" if args.network == "default" else args.network,
            secrets=_secrets(args.secret),
            ssh=_ssh(args.ssh),
            platform=platforms[0] if platforms else None,
            quiet=args.quiet,
            explain=args.progress == "plain",
            source_date_epoch=int(sde_text) if sde_text else None,
            jobs=args.jobs,
            pull=lambda name, platform: _pull_base(args, name, out, platform),
            fetch=fetch,
            always_pull=args.pull.lower() in ("true", "1", "yes", "always"),
            **cache_fields,  # type: ignore[arg-type]
        )
        try:
            image = (
                build_platforms(store, opts, platforms, out)
                if len(platforms) > 1
                else build(store, opts, out)
            )
        except BuildFailed as exc:
            if not args.quiet:
                stdout.flush()
            print(exc, file=sys.stderr)
            where = f"Dockerfile:{exc.line}" if exc.line else "Dockerfile"
            print(f"  failed at {where}: {exc.instruction}", file=sys.stderr)
            if args.quiet and exc.output:
                print("  output:", file=sys.stderr)
                for line in exc.output.rstrip("\n").splitlines()[-20:]:
                    print(f"    {line}", file=sys.stderr)
            return exc.exit_code
        except DockerfileError as exc:
            if exc.line and "line" not in str(exc):
                raise DockerfileError(f"Dockerfile:{exc.line}: {exc}", exc.line) from exc
            raise
        except errors.DockyardError as exc:
            exc.exit_code = 1  # docker: any build failure but a RUN's exits 1 (a missing base image)
            raise
        members = store.platform_images(image) if len(platforms) > 1 else []
        for spec in outputs:
            if members:  # buildx: one directory per platform, linux_arm64/ …
                for m in members:
                    sub = str(image_platform(m)).replace("/", "_")
                    export(store, m, OutputSpec(spec.kind, str(Path(spec.dest) / sub)), ())
            else:
                export(store, image, spec, tags)
        if args.push:
            _push(registry(), store, image, tags, out, members)
    if args.iidfile:
        try:
            Path(args.iidfile).write_text(str(image.id))
        except OSError as err:
            raise path_error("open", args.iidfile, err) from None
    if args.quiet:
        print(image.id)
    return 0


class _LazyClient:
    """One registry client for the build, made when first needed, closed at its end."""

    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.stack = stack
        self.client: RegistryClient | None = None

    def __call__(self) -> RegistryClient:
        if self.client is None:
            from commands.distribution import client

            self.client = self.stack.enter_context(client(self.args))
        return self.client


def _platforms(text: str | None) -> list[str]:
    """``--platform linux/amd64,linux/arm64``: each checked (os/arch[/variant])."""
    found: list[str] = []
    for item in (text or "").split(","):
        if item.strip():
            try:
                found.append(str(Platform.parse(item)))
            except errors.Invalid as exc:
                raise FlagError(f"--platform: {exc}") from None
    return found


def _push(
    client: RegistryClient,
    store: Store,
    image: StoredImage,
    tags: tuple[Reference, ...],
    out: Out,
    members: list[StoredImage],
) -> None:
    """``--push``: each tag, as ``dockyard push`` would push it (the index of a multi-platform build)."""
    for ref in tags:
        out(f"The push refers to repository [{ref.repository}]\n".encode())
        result = client.push_platforms(store, members, ref) if members else client.push(store, image, ref)
        out(f"{result.ref.tag}: digest: {result.digest} size: {result.size}\n".encode())


def _pull_base(
    args: argparse.Namespace, name: str, out: Callable[[bytes], None], platform: str | None
) -> StoredImage:
    """A base image for the build's (or a stage's FROM --platform) platform."""
    # the registry client (requests, ~100 ms of imports) only when a base must be pulled
    from commands.distribution import pull_image

    return pull_image(argparse.Namespace(**{**vars(args), "platform": platform or ""}), name, out)
