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


# ---------------------------------------------------------------- output ---


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration ("2 minutes", "About an hour", "3 years")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def since(ts: float) -> str:
    import time

    return human_duration(time.time() - ts) + " ago"


def human_size(size: float, precision: int = 3) -> str:
    """Docker's units.HumanSizeWithPrecision: decimal units, ``precision`` significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def render_template(fmt: str, obj: Any) -> str:
    """A subset of Go templates as docker uses them: {{.Field}}, {{.A.B}}, {{json .}},
    {{json .Field}}, {{upper .X}}, {{lower .X}}, {{join .X ","}}, and \t / \n escapes."""
    import json
    import re

    def lookup(path: str) -> Any:
        cur = obj
        for part in [p for p in path.split(".") if p]:
            cur = cur.get(part) if isinstance(cur, dict) else getattr(cur, part, None)
        return cur

    def show(v: Any) -> str:
        if v is None:
            return "<no value>"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "map[" + " ".join(f"{k}:{show(x)}" for k, x in sorted(v.items())) + "]"
        if isinstance(v, list):
            return "[" + " ".join(show(x) for x in v) + "]"
        return str(v)

    def sub(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        words = expr.split()
        if words[0] == "json" and len(words) == 2:
            return json.dumps(lookup(words[1]), separators=(",", ":"))
        if words[0] in ("upper", "lower", "title") and len(words) == 2:
            v = show(lookup(words[1]))
            return {"upper": v.upper(), "lower": v.lower(), "title": v.title()}[words[0]]
        if words[0] == "join" and len(words) == 3:
            return str(json.loads(words[2])).join(str(x) for x in lookup(words[1]) or [])
        if len(words) == 1 and words[0].startswith("."):
            return show(lookup(words[0]))
        raise UsageError(f"template: unsupported expression {{{{{expr}}}}}")

    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    return re.sub(r"\{\{(.*?)\}\}", sub, fmt)


def print_table(header: list[str], rows: list[list[str]], fmt: str = "") -> None:
    """Docker's tabwriter output (columns padded by 3 spaces), or a --format template."""
    if fmt and not fmt.startswith("table"):
        keys = header
        for row in rows:
            print(render_template(fmt, dict(zip(keys, row, strict=False))))
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    for row in [header, *rows]:
        cells = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        print("   ".join(cells).rstrip())


def progress_bar(total: int | None, desc: str) -> Any:
    """A tqdm bar on a terminal; otherwise None (callers print plain step lines)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def store_of(args: argparse.Namespace) -> Any:
    from imagefmt.store import Store

    return Store(args.root)


# ---------------------------------------------------------------- images ---


def _image_rows(args: argparse.Namespace) -> list[dict[str, str]]:
    from imagefmt.config import parse_time
    from imagefmt.reference import Reference

    store = store_of(args)
    want = Reference.parse(args.reference, default_tag=False) if getattr(args, "reference", None) else None
    rows: list[dict[str, str]] = []
    for img in store.images():
        created = parse_time(img.config.created)
        vsize = store.image_size(img)
        digests = {rd.split("@")[0]: rd.split("@")[1] for rd in img.repo_digests}
        names: list[tuple[str, str, str]] = [
            (t.familiar_repository, t.tag or "<none>", digests.get(t.repository, "<none>")) for t in img.tags
        ] or [("<none>", "<none>", next(iter(digests.values()), "<none>"))]
        for repo, tag, digest in names:
            if want is not None and (
                repo != want.familiar_repository or (want.tag is not None and tag != want.tag)
            ):
                continue
            image_id = str(img.id) if args.no_trunc else img.id.short
            rows.append(
                {
                    "Containers": "N/A",
                    "CreatedAt": _go_time(created),
                    "CreatedSince": since(created),
                    "Digest": digest,
                    "ID": image_id,
                    "Repository": repo,
                    "SharedSize": "N/A",
                    "Size": human_size(vsize),
                    "Tag": tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": human_size(vsize, 4),
                }
            )
    return rows


def _go_time(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(ts))


@parsers
def _image_parsers(sub: Any) -> None:
    def images_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("reference", nargs="?")
        p.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
        p.add_argument("-a", "--all", action="store_true", help="show all images")
        p.add_argument("--digests", action="store_true", help="show digests")
        p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
        p.add_argument("--format", default="", help="Go template, e.g. '{{json .}}'")
        p.add_argument(
            "-f", "--filter", action="append", default=[], help="filter output (dangling=true, reference=…)"
        )

    images_flags(sub.add_parser("images", help="list images"))
    image = sub.add_parser("image", help="manage images")
    isub = image.add_subparsers(dest="sub", parser_class=_Parser, required=True)
    images_flags(isub.add_parser("ls", aliases=["list"], help="list images"))
    for p in (sub.add_parser("rmi", help="remove images"), isub.add_parser("rm", aliases=["remove"])):
        p.add_argument("-f", "--force", action="store_true")
        p.add_argument("--no-prune", action="store_true")
        p.add_argument("images", nargs="+")
    for p in (sub.add_parser("tag", help="tag an image"), isub.add_parser("tag")):
        p.add_argument("source")
        p.add_argument("target")
    for p in (sub.add_parser("history", help="show the history of an image"), isub.add_parser("history")):
        p.add_argument("image")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("-H", "--human", default="true")
        p.add_argument("--format", default="")
    for p in (sub.add_parser("save", help="save images to a tar archive"), isub.add_parser("save")):
        p.add_argument("-o", "--output", default="")
        p.add_argument("images", nargs="+")
    for p in (sub.add_parser("load", help="load images from a tar archive"), isub.add_parser("load")):
        p.add_argument("-i", "--input", default="")
        p.add_argument("-q", "--quiet", action="store_true")
    for p in (
        sub.add_parser("import", help="import a rootfs tarball as an image"),
        isub.add_parser("import"),
    ):
        p.add_argument("file")
        p.add_argument("reference", nargs="?")
        p.add_argument("-c", "--change", action="append", default=[])
        p.add_argument("-m", "--message", default="")
        p.add_argument("--platform", default="")
    p = isub.add_parser("inspect")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", default="")
    p = isub.add_parser("prune", help="remove unused images")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")


def _apply_image_filters(rows: list[dict[str, str]], filters: list[str]) -> list[dict[str, str]]:
    for f in filters:
        key, _, value = f.partition("=")
        if key == "dangling":
            want = value.lower() in ("true", "1")
            rows = [r for r in rows if (r["Tag"] == "<none>") == want]
        elif key == "reference":
            import fnmatch

            rows = [
                r
                for r in rows
                if fnmatch.fnmatch(r["Repository"], value)
                or fnmatch.fnmatch(f"{r['Repository']}:{r['Tag']}", value)
            ]
        else:
            raise UsageError(f"invalid filter '{key}': use dangling=true|false or reference=PATTERN")
    return rows


@command("images")
@command("image ls")
@command("image list")
def cmd_images(args: argparse.Namespace) -> int:
    rows = _apply_image_filters(_image_rows(args), args.filter)
    if args.quiet:
        seen: list[str] = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        for i in seen:
            print(i)
        return 0
    if args.format and not args.format.startswith("table"):
        for r in rows:
            print(render_template(args.format, r))
        return 0
    cols = ["Repository", "Tag", *(["Digest"] if args.digests else []), "ID", "CreatedSince", "Size"]
    header = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "CREATED", "SIZE"]
    print_table(header, [[r[c] for c in cols] for r in rows])
    return 0


@command("tag")
@command("image tag")
def cmd_tag(args: argparse.Namespace) -> int:
    from imagefmt.reference import Reference

    store = store_of(args)
    store.tag(store.image(args.source), Reference.parse(args.target))
    return 0


@command("rmi")
@command("image rm")
@command("image remove")
def cmd_rmi(args: argparse.Namespace) -> int:
    from imagefmt import errors as e

    store = store_of(args)
    status = 0
    for name in args.images:
        try:
            for line in store.remove(name, force=args.force):
                print(line)
        except e.DockyardError as exc:
            err(str(exc))
            status = exit_code_for(exc)
    return status


def image_inspect_doc(store: Any, img: Any) -> dict[str, Any]:
    """``docker image inspect`` JSON for a stored image."""
    cfg = img.config.doc
    size = store.image_size(img)
    return {
        "Id": str(img.id),
        "RepoTags": img.familiar_tags,
        "RepoDigests": [_familiar_digest(rd) for rd in img.repo_digests],
        "Parent": "",
        "Comment": cfg.get("comment", ""),
        "Created": cfg.get("created", ""),
        "Container": cfg.get("container", ""),
        "ContainerConfig": _docker_config(cfg.get("container_config") or {}),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": _docker_config(img.config.config),
        "Architecture": img.config.architecture,
        "Variant": cfg.get("variant") or None,
        "Os": img.config.os,
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Data": None, "Name": "overlay2"},
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in img.config.diff_ids]},
        "Metadata": {"LastTagTime": img.record.get("last_tag_time", "0001-01-01T00:00:00Z")},
    }


def _familiar_digest(rd: str) -> str:
    from imagefmt.reference import Reference

    return Reference.parse(rd).familiar()


def _docker_config(c: dict[str, Any]) -> dict[str, Any]:
    """A container config with every key docker prints, in docker's order."""
    out: dict[str, Any] = {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": None,
        "Cmd": None,
        "Image": "",
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
    }
    out.update(c)
    return out


INSPECTORS: list[Callable[[argparse.Namespace, str], dict[str, Any] | None]] = []


def _inspect_image(args: argparse.Namespace, name: str) -> dict[str, Any] | None:
    from imagefmt.errors import NotFound

    store = store_of(args)
    try:
        return image_inspect_doc(store, store.image(name))
    except NotFound:
        return None


INSPECTORS.append(_inspect_image)


@parsers
def _inspect_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help="low-level information on images and containers")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", default="")
    p.add_argument("--type", default="", choices=["", "image", "container", "volume", "network"])
    p.add_argument("-s", "--size", action="store_true")


def print_inspect(docs: list[dict[str, Any]], fmt: str) -> None:
    import json

    if fmt:
        for d in docs:
            print(render_template(fmt, d))
    else:
        print(json.dumps(docs, indent=4))


@command("inspect")
@command("image inspect")
def cmd_inspect(args: argparse.Namespace) -> int:
    kind = getattr(args, "type", "") or ("image" if args.cmd == "image" else "")
    inspectors = [_inspect_image] if kind == "image" else INSPECTORS
    docs, status = [], 0
    for name in args.names:
        doc = next((d for f in inspectors if (d := f(args, name)) is not None), None)
        if doc is None:
            err(f"No such {'image' if kind == 'image' else 'object'}: {name}")
            status = 1
        else:
            docs.append(doc)
    print_inspect(docs, args.format)
    return status


@command("history")
@command("image history")
def cmd_history(args: argparse.Namespace) -> int:
    from imagefmt.config import parse_time

    store = store_of(args)
    img = store.image(args.image)
    layers = iter(img.manifest.layers)
    chains = iter(img.chain_ids)
    rows: list[dict[str, str]] = []
    for h in img.config.history:
        size = 0
        if not h.get("empty_layer"):
            desc, chain = next(layers, None), next(chains, None)
            snap = store.snapshot_size(chain.hex) if chain else 0
            size = snap or (desc.size if desc else 0)
        created_by = str(h.get("created_by", ""))
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        ts = parse_time(h.get("created", ""))
        rows.append(
            {
                "ID": "<missing>",
                "CreatedSince": since(ts) if ts else "N/A",
                "CreatedAt": _go_time(ts),
                "CreatedBy": created_by,
                "Size": human_size(size),
                "Comment": str(h.get("comment", "")),
            }
        )
    rows.reverse()
    if rows:
        rows[0]["ID"] = str(img.id) if args.no_trunc else img.id.short
    if args.quiet:
        for r in rows:
            print(r["ID"])
        return 0
    if args.format and not args.format.startswith("table"):
        for r in rows:
            print(render_template(args.format, r))
        return 0
    cols = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
    print_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], [[r[c] for c in cols] for r in rows])
    return 0


def _save_names(store: Any, name: str) -> tuple[Any, list[Any]]:
    """The image and the names ``docker save NAME`` records: the tag given,
    every tag of a bare repository name, none for an ID."""
    from imagefmt.errors import Invalid
    from imagefmt.reference import Reference

    img = store.image(name)
    if name.removeprefix("sha256:") and img.id.hex.startswith(name.removeprefix("sha256:")):
        return img, []
    try:
        ref = Reference.parse(name, default_tag=False)
    except Invalid:
        return img, []
    if ref.digest is not None:
        return img, []
    if ref.tag is not None:
        return img, [ref]
    tags = [t for t in img.tags if t.repository == ref.repository]
    return img, tags or [ref.with_tag("latest")]


@command("save")
@command("image save")
def cmd_save(args: argparse.Namespace) -> int:
    from imagefmt.archive import save

    store = store_of(args)
    items = [_save_names(store, n) for n in args.images]
    if not args.output and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    total = sum(d.size for img, _ in items for d in [img.manifest.config, *img.manifest.layers])
    bar = progress_bar(total, "Saving")
    tick = bar.update if bar else None
    if args.output:
        out = Path(args.output)
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                save(store, items, f, tick)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    else:
        save(store, items, sys.stdout.buffer, tick)
    if bar:
        bar.close()
    return 0


@command("load")
@command("image load")
def cmd_load(args: argparse.Namespace) -> int:
    from imagefmt.archive import load

    store = store_of(args)
    if not args.input and sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty: use -i FILE or redirect")
    total = os.path.getsize(args.input) if args.input else None
    bar = None if args.quiet else progress_bar(total, "Loading")
    tick = bar.update if bar else None
    try:
        if args.input:
            try:
                src = open(args.input, "rb")
            except OSError as exc:
                raise errors.NotFound(f"open {args.input}: {exc.strerror}") from exc
            with src:
                loaded = load(store, src, tick)
        else:
            loaded = load(store, sys.stdin.buffer, tick)
    finally:
        if bar:
            bar.close()
    for item in loaded:
        if item.names:
            for n in item.names:
                print(f"Loaded image: {n.familiar()}")
        else:
            print(f"Loaded image ID: {item.image.id}")
    return 0


@command("import")
@command("image import")
def cmd_import(args: argparse.Namespace) -> int:
    from imagefmt.reference import Reference
    from imagefmt.rootfs import import_rootfs

    store = store_of(args)
    ref = Reference.parse(args.reference) if args.reference else None
    arch = args.platform.split("/")[1] if args.platform.count("/") >= 1 else _arch()
    if args.file == "-":
        img = import_rootfs(store, sys.stdin.buffer, ref, args.change, args.message, "-", architecture=arch)
    elif args.file.startswith(("http://", "https://")):
        import requests

        try:
            with requests.get(args.file, stream=True, timeout=60) as resp:
                resp.raise_for_status()
                resp.raw.decode_content = True
                raw: Any = resp.raw
                img = import_rootfs(store, raw, ref, args.change, args.message, args.file, architecture=arch)
        except requests.RequestException as exc:
            raise errors.NotFound(f"import {args.file}: {exc}") from exc
    else:
        try:
            src = open(args.file, "rb")
        except OSError as exc:
            raise errors.NotFound(f"open {args.file}: {exc.strerror}") from exc
        with src:
            img = import_rootfs(store, src, ref, args.change, args.message, "-", architecture=arch)
    print(img.id)
    return 0


@command("image prune")
def cmd_image_prune(args: argparse.Namespace) -> int:
    if not args.force and not _confirm(
        "WARNING! This will remove all "
        + ("images without at least one container associated to them." if args.all else "dangling images.")
    ):
        return 0
    lines, freed = store_of(args).prune(all_images=args.all)
    if lines:
        print("Deleted Images:")
        for line in lines:
            print(line)
        print()
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def _confirm(warning: str) -> bool:
    print(warning)
    print("Are you sure you want to continue? [y/N] ", end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


# ------------------------------------------------------- registry client ---


def _client_parsers_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="reach HOST[:PORT] (or a CIDR) over plain HTTP; env DOCKYARD_INSECURE_REGISTRIES",
    )


def _verbs_of(parser: argparse.ArgumentParser) -> Any:
    """The sub-command action of a parser (argparse offers no public accessor)."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


@parsers
def _client_parsers(sub: Any) -> None:
    image = _verbs_of(sub.choices["image"])  # also as 'image pull' / 'image push'
    for p in (sub.add_parser("pull", help="pull an image from a registry"), image.add_parser("pull")):
        p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
        p.add_argument("-a", "--all-tags", action="store_true", help="download all tags of the repository")
        p.add_argument("--platform", default="", help="os/arch[/variant] of a multi-platform image")
        p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")
        p.add_argument("--max-concurrent-downloads", type=int, default=3, metavar="N")
        _client_parsers_common(p)
    for p in (sub.add_parser("push", help="push an image to a registry"), image.add_parser("push")):
        p.add_argument("name", metavar="NAME[:TAG]")
        p.add_argument("-a", "--all-tags", action="store_true", help="push all tags of the repository")
        p.add_argument("-q", "--quiet", action="store_true", help="print only the name pushed")
        p.add_argument("--max-concurrent-uploads", type=int, default=5, metavar="N")
        _client_parsers_common(p)
    p = sub.add_parser("login", help="log in to a registry")
    p.add_argument("server", nargs="?", default="docker.io")
    p.add_argument("-u", "--username", default="")
    p.add_argument("-p", "--password", default="")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    _client_parsers_common(p)
    p = sub.add_parser("logout", help="log out from a registry")
    p.add_argument("server", nargs="?", default="docker.io")
    p = sub.add_parser("search", help="search a registry's catalog")
    p.add_argument("term", metavar="[HOST/]TERM")
    p.add_argument("--limit", type=int, default=25, help="at most this many results (default 25)")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format", default="")
    _client_parsers_common(p)


def _client(args: argparse.Namespace, **options: Any) -> Any:
    from registry.client import Client, ClientOptions

    insecure = tuple(getattr(args, "insecure_registry", []) or [])
    return Client(ClientOptions.from_env(insecure_registries=insecure, **options))


class LayerProgress:
    """Renders transfer progress as docker does: a tqdm bar per layer on a
    terminal, else one plain line per status change.  Thread-safe."""

    def __init__(self, enabled: bool = True, tty: bool | None = None) -> None:
        import threading

        self.enabled = enabled
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self._bars: dict[str, Any] = {}
        self._last: dict[str, str] = {}

    def __call__(self, ev: Any) -> None:
        from registry import progress as pg

        if not self.enabled:
            return
        with self._lock:
            if self.tty:
                self._bar(ev, pg)
            elif (
                ev.status not in pg.MOVING
                and ev.status != pg.EXTRACTING
                and self._last.get(ev.id) != ev.status
            ):
                print(ev.line(), flush=True)
            self._last[ev.id] = ev.status

    def _bar(self, ev: Any, pg: Any) -> None:
        from tqdm import tqdm

        bar = self._bars.get(ev.id)
        if bar is None:
            bar = tqdm(
                total=ev.total or None,
                desc=f"{ev.id}: {ev.status}",
                unit="B",
                unit_scale=True,
                unit_divisor=1000,
                position=len(self._bars),
                leave=True,
                file=sys.stderr,
                bar_format="{desc:<32} {bar:30} {n_fmt}/{total_fmt}",
            )
            self._bars[ev.id] = bar
        if ev.status in pg.MOVING and self._last.get(ev.id) == ev.status:
            if ev.current > bar.n:
                bar.update(ev.current - bar.n)  # tqdm redraws at most every mininterval
            return
        bar.set_description_str(f"{ev.id}: {ev.status} {ev.detail}".strip(), refresh=False)
        if ev.status in pg.FINAL or ev.status in (pg.VERIFYING, pg.DOWNLOADED):
            bar.n = bar.total or ev.current
        elif ev.status in pg.MOVING:
            bar.n = ev.current
        bar.refresh()

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()


def _platform(args: argparse.Namespace) -> Any:
    from imagefmt.manifest import Platform

    return Platform.parse(args.platform) if args.platform else Platform(architecture=_arch())


@command("pull")
@command("image pull")
def cmd_pull(args: argparse.Namespace) -> int:
    from imagefmt.reference import Reference

    given = Reference.parse(args.name, default_tag=False)
    if args.all_tags and (given.tag or given.digest):
        raise UsageError("tag can't be used with --all-tags/-a")
    store = store_of(args)
    quiet = args.quiet
    if given.tag is None and given.digest is None and not args.all_tags and not quiet:
        print("Using default tag: latest")
    ref = given if (given.tag or given.digest or args.all_tags) else given.with_tag("latest")
    with _client(
        args,
        platform=_platform(args),
        strict_platform=bool(args.platform),
        max_concurrent_downloads=max(1, args.max_concurrent_downloads),
    ) as client:
        refs = [ref.with_tag(t) for t in client.tags(ref)] if args.all_tags else [ref]
        updated = False
        for r in refs:
            if not quiet:
                print(f"{r.tag or r.digest}: Pulling from {r.path}", flush=True)
            bars = LayerProgress(enabled=not quiet)
            try:
                result = client.pull(store, r, bars)
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


@command("push")
@command("image push")
def cmd_push(args: argparse.Namespace) -> int:
    from imagefmt.reference import Reference

    given = Reference.parse(args.name, default_tag=False)
    if given.digest is not None:
        raise UsageError("push takes a tag, not a digest: dockyard push NAME[:TAG]")
    if args.all_tags and given.tag:
        raise UsageError("tag can't be used with --all-tags/-a")
    store = store_of(args)
    if args.all_tags:
        refs = sorted(
            {t for img in store.images() for t in img.tags if t.repository == given.repository},
            key=lambda t: t.tag or "",
        )
        if not refs:
            raise errors.NotFound(f"An image does not exist locally with the tag: {given.familiar()}")
    else:
        if given.tag is None and not args.quiet:
            print("Using default tag: latest")
        refs = [given if given.tag else given.with_tag("latest")]
    if not args.quiet:
        print(f"The push refers to repository [{given.repository}]", flush=True)
    with _client(args, max_concurrent_uploads=max(1, args.max_concurrent_uploads)) as client:
        for ref in refs:
            try:
                image = store.image(str(ref))
            except errors.NotFound:
                raise errors.NotFound(
                    f"An image does not exist locally with the tag: {ref.familiar()}"
                ) from None
            bars = LayerProgress(enabled=not args.quiet)
            try:
                result = client.push(store, image, ref, bars)
            finally:
                bars.close()
            if args.quiet:  # docker push -q prints the reference it pushed
                print(str(result.ref))
            else:
                print(f"{result.ref.tag}: digest: {result.digest} size: {result.size}")
    return 0


@command("login")
def cmd_login(args: argparse.Namespace) -> int:
    from registry import credentials
    from registry.client import registry_key
    from registry.credentials import Credentials

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
            import getpass

            username = username or input("Username: ").strip()
            password = password or getpass.getpass("Password: ")
        if not username or not password:
            raise errors.Invalid("Error: username and password are required")
        creds = Credentials(username, password)
    with _client(args) as client:
        path = client.login(host, creds)
    print(f"WARNING! Your password will be stored unencrypted in {path}.", file=sys.stderr)
    print("Login Succeeded")
    return 0


@command("logout")
def cmd_logout(args: argparse.Namespace) -> int:
    from registry.client import logout, registry_key
    from registry.credentials import config_key

    shown = config_key(registry_key(args.server))
    if logout(args.server):
        print(f"Removing login credentials for {shown}")
    else:
        print(f"Not logged in to {shown}")
    return 0


@command("search")
def cmd_search(args: argparse.Namespace) -> int:
    from imagefmt.reference import DOCKER_HUB

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
    with _client(args) as client:
        names = list(client.search(host, term, args.limit))
    rows = [[f"{host}/{n}", "", "0", "", ""] for n in names]
    header = ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    if args.format:
        print_table(["Name", "Description", "StarCount", "IsOfficial", "IsAutomated"], rows, args.format)
    else:
        print_table(header, rows)
    return 0


# ---------------------------------------------------------------- system ---

# Rows for ``system df`` beyond images: (type, total, active, size, reclaimable); added by other parts.
DF_ROWS: list[Callable[[argparse.Namespace], tuple[str, int, int, int, int]]] = []
PRUNERS: list[Callable[[argparse.Namespace], tuple[list[str], int]]] = []


@parsers
def _system_more_parsers(sub: Any) -> None:
    system = sub.add_parser("system", help="manage dockyard")
    ssub = system.add_subparsers(dest="sub", parser_class=_Parser, required=True)
    df = ssub.add_parser("df", help="show disk usage")
    df.add_argument("-v", "--verbose", action="store_true")
    df.add_argument("--format", default="")
    pr = ssub.add_parser("prune", help="remove unused data")
    pr.add_argument("-a", "--all", action="store_true")
    pr.add_argument("-f", "--force", action="store_true")
    pr.add_argument("--volumes", action="store_true")
    ssub.add_parser("info", help="display system-wide information").add_argument("-f", "--format", default="")
    sub.add_parser("info", help="display system-wide information").add_argument("-f", "--format", default="")


@command("system df")
def cmd_system_df(args: argparse.Namespace) -> int:
    store = store_of(args)
    images = store.images()
    sizes = {str(i.id): store.image_size(i) for i in images}
    active = [i for i in images if store.holders(i.id)]
    total = store.disk_usage()
    used = sum(sizes[str(i.id)] for i in active)
    rows = [("Images", len(images), len(active), total, max(0, total - used))]
    rows += [f(args) for f in DF_ROWS]
    names = {r[0] for r in rows}
    rows += [(n, 0, 0, 0, 0) for n in ("Containers", "Local Volumes", "Build Cache") if n not in names]
    table = []
    for kind, count, act, size, recl in rows:
        pct = f" ({recl * 100 // size}%)" if size and kind != "Containers" else ""
        table.append(
            {
                "Type": kind,
                "TotalCount": str(count),
                "Active": str(act),
                "Size": human_size(size),
                "Reclaimable": human_size(recl) + pct,
            }
        )
    if args.format and not args.format.startswith("table"):
        for r in table:
            print(render_template(args.format, r))
        return 0
    cols = ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
    print_table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], [[r[c] for c in cols] for r in table])
    return 0


@command("system prune")
def cmd_system_prune(args: argparse.Namespace) -> int:
    if not args.force and not _confirm(
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        + (
            "  - all images without at least one container associated to them\n"
            if args.all
            else "  - all dangling images\n"
        )
        + "  - all build cache\n"
    ):
        return 0
    freed = 0
    for pruner in PRUNERS:
        lines, n = pruner(args)
        freed += n
        for line in lines:
            print(line)
    lines, n = store_of(args).prune(all_images=args.all)
    freed += n
    if lines:
        print("Deleted Images:")
        for line in lines:
            print(line)
        print()
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


@command("info")
@command("system info")
def cmd_info(args: argparse.Namespace) -> int:
    import platform

    store = store_of(args)
    images = store.images()
    info: dict[str, Any] = {
        "Images": len(images),
        "Driver": "overlay2",
        "DockerRootDir": str(store.root),
        "CgroupVersion": "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1",
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "ServerVersion": VERSION,
        "Name": platform.node(),
    }
    if args.format:
        print(render_template(args.format, info))
        return 0
    print("Client:")
    print(f" Version:    {VERSION}")
    print(" Context:    default (daemonless)")
    print()
    print("Server:")
    print(f" Images: {info['Images']}")
    print(f" Server Version: {VERSION}")
    print(f" Storage Driver: {info['Driver']}")
    print(f" Cgroup Version: {info['CgroupVersion']}")
    print(f" Kernel Version: {info['KernelVersion']}")
    print(f" Operating System: {info['OperatingSystem']}")
    print(f" OSType: {info['OSType']}")
    print(f" Architecture: {info['Architecture']}")
    print(f" CPUs: {info['NCPU']}")
    print(f" Total Memory: {human_size(int(info['MemTotal']))}")
    print(f" Name: {info['Name']}")
    print(f" Docker Root Dir: {info['DockerRootDir']}")
    return 0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


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
