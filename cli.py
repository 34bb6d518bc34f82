"""The ``dockyard`` command: the entry point, the global flags and the table of verbs.

Each verb lives in a module of commands/, its flags next to its handler; this module
imports only the invoked verb's module and builds only its parser, maps what escapes
a handler to an exit code, and spares the container verbs the interpreter's
finalization.  Nothing imports cli.

Exit codes are docker's CLI's: 0 ok, 1 for any error reported (a DockyardError, a
wrong number of arguments, an unknown command), 125 for a flag that cannot be parsed
(commands.errors), 130 interrupted; ``run`` returns the container's status (125/126/127
when dockyard, the command's execution or its lookup failed), ``build`` a failed RUN's.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from commands.errors import TemplateError, UsageError
from commands.output import err
from commands.parsing import Handler, OnlyVerb, Parser, ShowHelp
from engine import VERSION
from imagefmt import errors
from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from typing import Any

# The command tree, in `dockyard --help`'s order: each verb, the module of commands/ that
# declares its flags and handler, and its line in that help (None: listed without one); a
# group verb's sub-verbs ("NAME ALIAS…") likewise, in `dockyard GROUP --help`'s order.  Only
# the module of the verb at hand is imported (see build_parser); a listing (--help, an
# unknown verb) is built from this table alone.
GROUP = ""  # the module of a group verb: each of its sub-verbs has its own
VERBS: dict[str, tuple[str, str | None]] = {
    "version": ("version", "show the version"),
    "images": ("image", "list images"),
    "image": (GROUP, "manage images"),
    "rmi": ("image", "remove images"),
    "tag": ("image", "tag an image"),
    "history": ("image", "show the history of an image"),
    "save": ("archive", "save images to a tar archive"),
    "load": ("archive", "load images from a tar archive"),
    "import": ("archive", "import a rootfs tarball as an image"),
    "inspect": ("inspect", "low-level information on images and containers"),
    "pull": ("distribution", "pull an image from a registry"),
    "push": ("distribution", "push an image to a registry"),
    "login": ("distribution", "log in to a registry"),
    "logout": ("distribution", "log out from a registry"),
    "search": ("distribution", "search a registry's catalog"),
    "system": (GROUP, "manage dockyard"),
    "daemon": ("daemon", "serve the Docker Engine API (as 'system service')"),
    "info": ("system", "display system-wide information"),
    "events": ("events", "get real time events from the store"),
    "registry": (GROUP, "run and maintain a registry server (the OCI distribution API)"),
    "container": (GROUP, "manage containers"),
    "create": ("container.run", "create a new container"),
    "run": ("container.run", "create and start a container"),
    "start": ("container.lifecycle", "start stopped containers"),
    "stop": ("container.lifecycle", "stop running containers"),
    "restart": ("container.lifecycle", "restart running containers"),
    "kill": ("container.lifecycle", "kill running containers"),
    "rm": ("container.lifecycle", "remove containers"),
    "ps": ("container.ps", "list containers"),
    "logs": ("container.logs", "fetch the logs of a container"),
    "exec": ("container.exec", "run a command in a running container"),
    "wait": ("container.lifecycle", "block until containers stop, then print their exit codes"),
    "rename": ("container.lifecycle", "rename a container"),
    "attach": ("container.attach", "attach to a running container"),
    "pause": ("container.lifecycle", "pause all processes in containers"),
    "unpause": ("container.lifecycle", "unpause all processes in containers"),
    "port": ("container.ps", "list port mappings of a container"),
    "stats": ("container.stats", "live resource usage of containers"),
    "top": ("container.stats", "the running processes of a container"),
    "update": ("container.stats", "update the resource limits of containers"),
    "commit": ("container.transfer", "create an image from a container's changes"),
    "export": ("container.transfer", "export a container's filesystem as a tar archive"),
    "diff": ("container.transfer", "inspect changes to files or directories on a container's filesystem"),
    "cp": ("container.transfer", "copy files between a container and the host"),
    "volume": (GROUP, "manage volumes"),
    "network": (GROUP, "manage networks"),
    "build": ("build", "build an image from a Dockerfile"),
    "builder": (GROUP, "manage the build cache"),
}
GROUPS: dict[str, dict[str, tuple[str, str | None]]] = {
    "image": {
        "ls list": ("image", "list images"),
        "rm remove": ("image", None),
        "tag": ("image", None),
        "history": ("image", None),
        "save": ("archive", None),
        "load": ("archive", None),
        "import": ("archive", None),
        "inspect": ("image", None),
        "prune": ("disk", "remove unused images"),
        "pull": ("distribution", None),
        "push": ("distribution", None),
        "build": ("build", None),
    },
    "system": {
        "df": ("disk", "show disk usage"),
        "prune": ("disk", "remove unused data"),
        "info": ("system", "display system-wide information"),
        "check": ("check", "check the store after a crash (--repair fixes it)"),
        "service": ("daemon", "serve the Docker Engine API on a unix socket or TCP (mutual TLS)"),
        "gen-certs": ("daemon", "make the service's CA, server and client certificates"),
        "events": ("events", "get real time events from the store"),
    },
    "registry": {
        "serve": ("registry", "serve the registry (gunicorn), by default on 0.0.0.0:5000"),
        "garbage-collect": ("registry", "delete blobs no manifest references (safe while serving)"),
        "gen-certs": ("registry", "make a CA, a server and a client certificate"),
        "htpasswd": ("registry", "add or replace a user in an htpasswd file (password on stdin)"),
    },
    "container": {
        "create": ("container.run", None),
        "run": ("container.run", None),
        "start": ("container.lifecycle", None),
        "stop": ("container.lifecycle", None),
        "restart": ("container.lifecycle", None),
        "kill": ("container.lifecycle", None),
        "rm remove": ("container.lifecycle", None),
        "ls ps list": ("container.ps", None),
        "logs": ("container.logs", None),
        "exec": ("container.exec", None),
        "wait": ("container.lifecycle", None),
        "rename": ("container.lifecycle", None),
        "attach": ("container.attach", None),
        "pause": ("container.lifecycle", None),
        "unpause": ("container.lifecycle", None),
        "port": ("container.ps", None),
        "prune": ("prune", "remove all stopped containers"),
        "inspect": ("container.ps", "display detailed information on containers"),
        "stats": ("container.stats", None),
        "top": ("container.stats", None),
        "update": ("container.stats", None),
        "commit": ("container.transfer", None),
        "export": ("container.transfer", None),
        "diff": ("container.transfer", None),
        "cp": ("container.transfer", None),
    },
    "volume": {
        "create": ("volume", "create a volume"),
        "ls list": ("volume", "list volumes"),
        "inspect": ("volume", "display detailed information on volumes"),
        "rm remove": ("volume", "remove volumes"),
        "prune": ("prune", "remove unused local volumes"),
    },
    "network": {
        "create": ("network", "create a network"),
        "ls list": ("network", "list networks"),
        "rm remove": ("network", "remove networks"),
        "inspect": ("network", "display detailed information on networks"),
        "connect": ("network", "connect a container to a network"),
        "disconnect": ("network", "disconnect a container to a network"),
        "prune": ("prune", "remove all unused networks"),
    },
    "builder": {
        "prune": ("disk", "remove build cache"),
    },
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
    """The exit status for an error a handler reports: the class's (or the instance's)
    ``exit_code``, 1 but for run's 125/126/127 and a failed RUN's status."""
    return exc.exit_code


def build_parser(argv: Sequence[str] | None = None) -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    """The parser and the handlers by command key.  With ``argv`` naming a verb (and a
    group's sub-verb), only its module is imported and only its parser built: building
    every verb's flags costs more than a container start (docs/benchmarks.md).  Else a
    listing, all that --help, an unknown verb and argparse's list of choices need: every
    verb with its help line, or a group verb's sub-verbs with theirs."""
    p = Parser(prog="dockyard", description="A daemonless, Docker-compatible image toolchain")
    p.add_argument("--root", type=Path, default=None, help="store directory (env DOCKYARD_ROOT)")
    p.add_argument("-D", "--debug", action="store_true", help="print tracebacks")
    p.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", parser_class=Parser)
    verb, subverb, helped = _words(argv) if argv is not None else (None, None, True)
    module = VERBS[verb][0] if verb is not None and verb in VERBS else None
    if verb is not None and module == GROUP:
        module = next((m for names, (m, _) in GROUPS[verb].items() if subverb in names.split()), None)
    else:
        subverb = None
    if verb is not None and module:
        # importlib.import_module's answer, without importing importlib
        verbs = __import__(f"commands.{module}", fromlist=["VERBS"]).VERBS
        verbs.add_parsers(OnlyVerb(sub, verb, subverb))
        return p, verbs.handlers
    if verb in GROUPS:  # a group's listing: its sub-verbs
        group = sub.add_parser(verb).add_subparsers(dest="sub", parser_class=Parser, required=True)
        for names, (_, line) in GROUPS[verb].items():
            first, *aliases = names.split()
            group.add_parser(first, aliases=aliases, **_help(line))
    elif verb is not None or helped:  # the verbs' listing
        for name, (_, line) in VERBS.items():
            sub.add_parser(name, **_help(line))
    return p, {}


def _help(line: str | None) -> dict[str, Any]:
    """add_parser's help: argparse lists a verb without one only when the key is absent."""
    return {} if line is None else {"help": line}


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
    except ShowHelp as exc:
        print(exc, end="")
        return 0
    except UsageError as exc:
        if exc.prefixed:
            err(str(exc))
        else:
            print(exc, file=sys.stderr)
        return exc.exit_code
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
