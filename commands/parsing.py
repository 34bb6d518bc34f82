"""argparse as the commands use it: a parser that raises docker's usage errors (see
commands.errors for their exit codes), each module's table of verbs (flags and
handlers), and building only the parser of the verb at hand.

Building every verb's flags costs more than a container start (docs/benchmarks.md), so
cli.build_parser wraps the subparsers action in OnlyVerb: a module's flag declarations
run in full, but only the invoked verb's (and group sub-verb's) parser is really made.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Sequence

from commands.errors import FlagError, UsageError
from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

Handler = Callable[[argparse.Namespace], int]


class Formatter(argparse.HelpFormatter):
    """argparse's help formatter with the terminal's width looked up once: the
    default imports shutil (3 ms) and asks the terminal for every add_argument."""

    def __init__(self, prog: str, **kw: Any) -> None:
        kw.setdefault("width", _terminal_width())
        super().__init__(prog, **kw)


_WIDTH: list[int] = []


def _terminal_width() -> int:
    """shutil.get_terminal_size's answer ($COLUMNS, stdout's size, else 80), less
    argparse's margin of 2."""
    if not _WIDTH:
        try:
            width = int(os.environ.get("COLUMNS") or 0) or os.get_terminal_size(1).columns
        except (ValueError, OSError):
            width = 80
        _WIDTH.append(width - 2)
    return _WIDTH[0]


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("formatter_class", Formatter)
        kw.setdefault("allow_abbrev", False)  # docker's flags have no abbreviations: `ps --al` is unknown
        super().__init__(*args, **kw)

    def add_argument(self, *args: Any, **kw: Any) -> Any:
        """argparse's; a flag declared without ``help`` gets docker's line (commands.helptext)."""
        if "help" not in kw and args and str(args[0]).startswith("-"):
            from commands.helptext import flag_help

            kw["help"] = flag_help(self.prog, args)
        return super().add_argument(*args, **kw)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]  # one signature for typeshed's three overloads
        """argparse's, refusing what is left over in the verb's own parser: there its
        name is known (argparse would report it from the top parser, as ``dockyard``)."""
        ns, extra = super().parse_known_args(args, namespace)
        if extra and self._subparsers is None:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return ns, extra

    def error(self, message: str) -> Any:
        """argparse prints usage and exits 2; we raise docker's error for the case."""
        see = f"See '{self.prog} --help'."
        if message.startswith("unrecognized arguments: "):
            extra = message.removeprefix("unrecognized arguments: ").split()
            flags = [w for w in extra if w.startswith("-") and w != "-"]
            if flags:
                raise FlagError(f"unknown flag: {flags[0]}\n{see}")
            raise UsageError(f"{self.prog}: too many arguments: {' '.join(extra)}\n{see}")
        choice = re.match(r"argument (?:cmd|sub): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            raise UnknownCommand(self.prog, choice[1], re.findall(r"'([^']*)'", choice[2]))
        if message == "the following arguments are required: sub":  # `dockyard image`: docker's listing
            raise ShowHelp(self.format_help())
        if message.startswith(("the following arguments are required", "one of the arguments")):
            raise UsageError(f"{self.prog}: {message}\n{see}")
        raise FlagError(f"{self.prog}: {message}\n{see}")


class ShowHelp(UsageError):
    """A group verb without its sub-verb: docker prints the group's help, exit 0."""

    exit_code = 0


class UnknownCommand(UsageError):
    """A verb (or a group's sub-verb) that does not exist: docker's words, and
    the verbs it may have meant (difflib's closest matches); printed as it is."""

    prefixed = False

    def __init__(self, prog: str, word: str, choices: list[str]) -> None:
        import difflib  # only on this error path

        lines = [f"{prog}: unknown command: {prog} {word}", ""]
        near = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
        if near:
            lines += ["Did you mean this?", *(f"\t{n}" for n in near), ""]
        lines.append(f"Run '{prog} --help' for more information")
        super().__init__("\n".join(lines))


class Verbs:
    """A command module's verbs: the functions that declare their flags (run in
    order on a subparsers action, see OnlyVerb) and the handlers by command key
    (``ps``, ``image ls``: the verb, then a group's sub-verb)."""

    def __init__(self) -> None:
        self.parsers: list[Callable[[OnlyVerb], None]] = []
        self.handlers: dict[str, Handler] = {}

    def flags(self, fn: Callable[[OnlyVerb], None]) -> Callable[[OnlyVerb], None]:
        self.parsers.append(fn)
        return fn

    def command(self, *keys: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            for key in keys:
                self.handlers[key] = fn
            return fn

        return register

    def add_parsers(self, sub: OnlyVerb) -> None:
        for add in self.parsers:
            add(sub)


class Null:
    """Swallows a parser's set-up calls for verbs that are not being parsed."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return lambda *a, **k: self


class OnlyVerb:
    """A subparsers action that builds only ``verb``'s parser; in a group verb's
    sub-verbs (see group), only ``subverb``'s when one is given."""

    def __init__(self, real: Any, verb: str, subverb: str | None = None) -> None:
        self.real, self.verb, self.subverb = real, verb, subverb

    def add_parser(self, name: str, **kw: Any) -> Any:
        if name == self.verb or self.verb in kw.get("aliases", ()):
            return self.real.add_parser(name, **kw)
        return Null()

    def group(self, name: str) -> Any:
        """The sub-verbs of group verb ``name`` (image, container, …): made once per
        parser build, kept on the real action (several modules add to a group; an
        id()-keyed cache would hand a new build an old, freed one's)."""
        if name != self.verb:
            return Null()
        groups = self.real.__dict__.setdefault("dockyard_groups", {})
        if name not in groups:
            parser = self.real.add_parser(name)
            groups[name] = parser.add_subparsers(dest="sub", parser_class=Parser, required=True)
        return OnlyVerb(groups[name], self.subverb) if self.subverb else groups[name]


def insecure_registry_flag(p: Any) -> None:
    """--insecure-registry, for every verb that may reach a registry."""
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="reach HOST[:PORT] (or a CIDR) over plain HTTP; env DOCKYARD_INSECURE_REGISTRIES",
    )
