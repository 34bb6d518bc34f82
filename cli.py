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
