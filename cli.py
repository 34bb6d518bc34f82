"""The ``dockyard`` command: the entry point, the global flags and the table of verbs.

Each verb lives in a module of commands/, its flags next to its handler; this module
imports only the invoked verb's module and builds only its parser, maps what escapes
a handler to an exit code, and spares the container verbs the interpreter's
finalization.  Nothing imports cli.

Exit codes: 0 ok, 1 other DockyardError, 2 usage, 3 NotFound, 4 Unauthorized/Denied,
5 Invalid, 130 interrupted; ``run`` returns the container's status (125/126/127
when dockyard, the command's execution or its lookup failed, as docker does).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from commands.errors import TemplateError, UsageError
from commands.output import err
from commands.parsing import Handler, OnlyVerb, Parser
from engine import VERSION
from engine.errors import FilterInvalid
from imagefmt import errors
from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

# Each verb and the module of commands/ that declares it, in `dockyard --help`'s order; a
# group verb's sub-verbs (with their aliases) each with its module, in `dockyard GROUP
# --help`'s order.  Only the invoked verb's module is imported (see build_parser).
_CONTAINER = {
    "create": "container.run",
    "run": "container.run",
    "start": "container.lifecycle",
    "stop": "container.lifecycle",
    "restart": "container.lifecycle",
    "kill": "container.lifecycle",
    "rm remove": "container.lifecycle",
    "ls ps list": "container.ps",
    "logs": "container.logs",
    "exec": "container.exec",
    "wait": "container.lifecycle",
    "rename": "container.lifecycle",
    "attach": "container.attach",
    "pause": "container.lifecycle",
    "unpause": "container.lifecycle",
    "port": "container.ps",
    "prune": "disk",
    "inspect": "container.ps",
    "stats": "container.stats",
    "top": "container.stats",
    "update": "container.stats",
    "commit": "container.transfer",
    "export": "container.transfer",
    "diff": "container.transfer",
    "cp": "container.transfer",
}
VERBS: dict[str, str | dict[str, str]] = {
    "version": "version",
    "images": "image",
    "image": {
        "ls list": "image",
        "rm remove": "image",
        "tag": "image",
        "history": "image",
        "save": "archive",
        "load": "archive",
        "import": "archive",
        "inspect": "image",
        "prune": "disk",
        "pull": "distribution",
        "push": "distribution",
        "build": "build",
    },
    "rmi": "image",
    "tag": "image",
    "history": "image",
    "save": "archive",
    "load": "archive",
    "import": "archive",
    "inspect": "inspect",
    "pull": "distribution",
    "push": "distribution",
    "login": "distribution",
    "logout": "distribution",
    "search": "distribution",
    "system": {"df": "disk", "prune": "disk", "info": "system"},
    "info": "system",
    "registry": {
        "serve": "registry",
        "garbage-collect": "registry",
        "gen-certs": "registry",
        "htpasswd": "registry",
    },
    "container": _CONTAINER,
    "create": "container.run",
    "run": "container.run",
    "start": "container.lifecycle",
    "stop": "container.lifecycle",
    "restart": "container.lifecycle",
    "kill": "container.lifecycle",
    "rm": "container.lifecycle",
    "ps": "container.ps",
    "logs": "container.logs",
    "exec": "container.exec",
    "wait": "container.lifecycle",
    "rename": "container.lifecycle",
    "attach": "container.attach",
    "pause": "container.lifecycle",
    "unpause": "container.lifecycle",
    "port": "container.ps",
    "stats": "container.stats",
    "top": "container.stats",
    "update": "container.stats",
    "commit": "container.transfer",
    "export": "container.transfer",
    "diff": "container.transfer",
    "cp": "container.transfer",
    "volume": {
        "create": "volume",
        "ls list": "volume",
        "inspect": "volume",
        "rm remove": "volume",
        "prune": "disk",
    },
    "network": {
        "create": "network",
        "ls list": "network",
        "rm remove": "network",
        "inspect": "network",
        "connect": "network",
        "disconnect": "network",
        "prune": "disk",
    },
    "build": "build",
    "builder": {"prune": "disk"},
}


def default_root() -> Path:
    """/var/lib/dockyard for root, else ~/.local/share/dockyard; DOCKYARD_ROOT overrides."""
    env = os.environ.get("DOCKYARD_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/dockyard")
    return Path.home() / ".local/share/dockyard"


def exit_code_for(exc: errors.DockyardError) -> int:
    if isinstance(exc, errors.NotFound):
        return 3
    if isinstance(exc, errors.Unauthorized | errors.Denied):
        return 4
    if isinstance(exc, errors.Invalid):
        return 5
    return 1


def build_parser(argv: Sequence[str] | None = None) -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    """The parser and the handlers by command key: with ``argv``, only what its verb
    needs (building every verb's flags costs more than a container start, see
    docs/benchmarks.md), else every verb's."""
    p = Parser(prog="dockyard", description="A daemonless, Docker-compatible image toolchain")
    p.add_argument("--root", type=Path, default=None, help="store directory (env DOCKYARD_ROOT)")
    p.add_argument("-D", "--debug", action="store_true", help="print tracebacks")
    p.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", parser_class=Parser)
    handlers: dict[str, Handler] = {}
    for verb, subverb, module in _plan(argv):
        # importlib.import_module's answer, without importing importlib
        verbs = __import__(f"commands.{module}", fromlist=["VERBS"]).VERBS
        verbs.add_parsers(OnlyVerb(sub, verb, subverb))
        handlers.update(verbs.handlers)
    return p, handlers


def _plan(argv: Sequence[str] | None) -> list[tuple[str, str | None, str]]:
    """(verb, sub-verb, module) of each parser to build: the invoked verb's (a group's
    sub-verb's), a whole group for a missing or unknown sub-verb; every one for --help
    or an unknown verb; none when there is no verb (-v, or help printed by main)."""
    verb, subverb, helped = _words(argv) if argv is not None else (None, None, True)
    if verb is None:
        return _every_verb() if helped else []
    entry = VERBS.get(verb)
    if entry is None:  # an unknown verb: let argparse list them all
        return _every_verb()
    if isinstance(entry, str):
        return [(verb, None, entry)]
    known: list[tuple[str, str | None, str]] = [
        (verb, subverb, m) for names, m in entry.items() if subverb in names.split()
    ]
    return known or [(verb, names.split()[0], m) for names, m in entry.items()]


def _every_verb() -> list[tuple[str, str | None, str]]:
    plan: list[tuple[str, str | None, str]] = []
    for verb, entry in VERBS.items():
        if isinstance(entry, str):
            plan.append((verb, None, entry))
        else:
            plan += [(verb, names.split()[0], m) for names, m in entry.items()]
    return plan


def _words(argv: Sequence[str]) -> tuple[str | None, str | None, bool]:
    """The verb and the next word that is not an option (a group's sub-verb), skipping
    the global options' values; and whether help was asked before the verb."""
    words: list[str] = []
    it = iter(argv)
    for word in it:
        if not words and word in ("--root",):
            next(it, None)
        elif not words and word in ("-h", "--help"):
            return None, None, True
        elif not word.startswith("-"):
            words.append(word)
            if len(words) == 2:
                break
    return (words[0] if words else None), (words[1] if len(words) > 1 else None), False


def main(argv: Sequence[str] | None = None) -> int:
    if os.environ.get("DOCKYARD_TRACE"):
        from runtime import trace  # only when tracing

        trace.mark("main")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "-D" in argv or "--debug" in argv
    try:
        parser, handlers = build_parser(argv)
        args = parser.parse_args(argv)
        if args.version:
            print(f"dockyard version {VERSION}")
            return 0
        if not args.cmd:
            build_parser()[0].print_help()
            return 0
        if args.root is None:
            args.root = default_root()
        key = args.cmd if args.cmd in handlers else f"{args.cmd} {getattr(args, 'sub', '')}".strip()
        # what handlers need of the entry point (commands/ never imports cli)
        args.exit_code_for, args.collect_garbage = exit_code_for, collect_garbage
        if key != "run":  # run collects once its container is up
            collect_garbage()
        if os.environ.get("DOCKYARD_TRACE"):
            from runtime import trace  # only when tracing

            trace.mark("parsed")
        return handlers[key](args)
    except (UsageError, FilterInvalid) as exc:  # a bad filter is a usage error, as in docker's CLI
        err(str(exc))
        return 2
    except TemplateError as exc:  # docker prints these unprefixed
        print(exc, file=sys.stderr)
        return 1
    except errors.DockyardError as exc:
        if debug:
            raise
        err(str(exc))
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


# Verbs whose work is over when main returns: nothing of theirs needs the interpreter's
# finalization (17-25 ms with the runtime loaded), so the entry point skips it.
FAST_EXIT = {"run", "create", "start", "stop", "kill", "rm", "exec", "ps", "wait", "logs", "container"}


def collect_garbage() -> None:
    """Turn the cycle collector back on if entry turned it off, past what
    start-up made."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def entry() -> None:
    """The ``dockyard`` console script: main(), then a fast exit for container verbs.

    The cycle collector is off until main has parsed the command line (until
    ``run``'s container is up): start-up allocates tens of thousands of objects
    that live as long as the process; collecting them again and again is 2.7% of
    the CLI's instructions on ``run --rm`` (callgrind), and its passes over them
    after the monitor's fork copy pages that would stay shared.  collect_garbage then
    freezes them, as Instagram's servers do, and collects what comes after."""
    gc.disable()
    argv = sys.argv[1:]
    code = main(argv)
    if os.environ.get("DOCKYARD_TRACE"):
        from runtime import trace  # only when tracing

        trace.mark("end")
    if _words(argv)[0] in FAST_EXIT:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
