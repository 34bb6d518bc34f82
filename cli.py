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

from imagefmt import errors
from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

VERSION = "0.1.0"
API_VERSION = "1.41"

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad flags or arguments: exit 2 with a one-line message."""


class _Formatter(argparse.HelpFormatter):
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


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kw)

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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``argv`` only the part its verb needs: building
    every verb's flags costs more than a container start (see docs/benchmarks.md)."""
    p = _Parser(prog="dockyard", description="A daemonless, Docker-compatible image toolchain")
    p.add_argument("--root", type=Path, default=None, help="store directory (env DOCKYARD_ROOT)")
    p.add_argument("-D", "--debug", action="store_true", help="print tracebacks")
    p.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    sub: Any = p.add_subparsers(dest="cmd", parser_class=_Parser)
    verb = _verb(argv) if argv is not None else None
    if verb is not None:
        sub = _OnlyVerb(sub, verb)
    for add in PARSERS:
        add(sub)
    if verb is not None and not sub.found:  # an unknown verb: let argparse list them all
        return build_parser()
    return p


def _verb(argv: Sequence[str]) -> str | None:
    """The first non-option word, skipping the global options' values."""
    it = iter(argv)
    for word in it:
        if word in ("--root",):
            next(it, None)
        elif word in ("-h", "--help"):
            return None
        elif not word.startswith("-"):
            return word
    return None


class _Null:
    """Swallows a parser's set-up calls for verbs that are not being parsed."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return lambda *a, **k: self


class _OnlyVerb:
    """A subparsers action that builds only ``verb``'s parser."""

    def __init__(self, real: Any, verb: str) -> None:
        self.real, self.verb, self.found = real, verb, False

    def add_parser(self, name: str, **kw: Any) -> Any:
        if name == self.verb or self.verb in kw.get("aliases", ()):
            self.found = True
            return self.real.add_parser(name, **kw)
        return _Null()

    @property
    def choices(self) -> dict[str, Any]:
        """The parsers built so far (only the verb's)."""
        return self.real.choices  # type: ignore[no-any-return]


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
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


# ---------------------------------------------------------------- output ---


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration ("2 minutes", "About an hour", "3 years")."""
    from runtime.containers import human_duration as go_units_duration

    return go_units_duration(seconds)


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


def print_pruned(title: str, lines: list[str]) -> None:
    """A prune command's section ("Deleted Images:", one line each, a blank line), as docker prints it."""
    if lines:
        print(f"{title}:")
        for line in lines:
            print(line)
        print()


class TemplateError(errors.DockyardError):
    """A --format template that does not apply to the object (docker exits 1)."""


def render_template(fmt: str, obj: Any) -> str:
    """Go's text/template as docker's --format and inspect -f use it: fields and
    chains (``.A.B``, ``$v.X``, ``(pipeline).X``), pipelines with ``|``, variables,
    ``if``/``else if``/``else``, ``range`` (with ``$i, $v :=``), ``with``, ``{{-``/``-}}``
    trimming, comments, Go's functions (and, or, not, len, index, print, printf,
    println, eq, ne, lt, le, gt, ge, slice) and docker's (json, join, split, upper,
    lower, title, pad, truncate); ``\\t``/``\\n`` escapes.

    Values print as Go prints docker's types: maps as ``map[k:v]``, structs as
    ``{v1 v2}``, nil slices/maps/pointers as ``[]``/``map[]``/``<nil>``; a key
    that is not there is docker's "map has no entry" error."""
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    return "".join(_GoTemplate(fmt).run(obj))


class _GoTemplate:
    """A parsed template: nodes are ("text", s), ("action", pipe), and ("if" | "range" |
    "with", pipe, body, else_body); a pipe is (declared variables, commands), a command
    a list of operands."""

    TOKEN = (
        r"""(?P<ws>\s+)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<chr>'(?:[^'\\]|\\.)+')"""
        r"""|(?P<num>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<decl>:=)|(?P<assign>=)|(?P<lp>\()"""
        r"""|(?P<rp>\))|(?P<pipe>\|)|(?P<comma>,)|(?P<var>\$[A-Za-z0-9_]*)"""
        r"""|(?P<field>(?:\.[A-Za-z0-9_]+)+|\.)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"""
    )  # compiled on first use: a container start renders no template

    def __init__(self, src: str) -> None:
        self.src = src
        self.items = self._split(src)
        self.pos = 0
        self.nodes, end = self._block(())
        if end is not None:
            raise TemplateError(f"template parsing error: template: :1: unexpected {{{{{end[0]}}}}}")

    # ------------------------------------------------------------- parse ---

    def _split(self, src: str) -> list[Any]:
        """Text and actions (as token lists), with {{- -}} trimming and comments gone."""
        items: list[Any] = []
        i = 0
        while True:
            start = src.find("{{", i)
            if start < 0:
                items.append(("text", src[i:]))
                return items
            text = src[i:start]
            body_at = start + 2
            if (
                src.startswith("{{- ", start)
                or src.startswith("{{-\t", start)
                or src.startswith("{{-\n", start)
            ):
                text = text.rstrip(" \t\r\n")
                body_at += 1
            items.append(("text", text))
            end = self._action_end(src, body_at)
            body_end = end
            trim = src[body_at:end].endswith((" -", "\t-", "\n-"))
            if trim:
                body_end -= 1
            body = src[body_at:body_end]
            i = end + 2
            if trim:
                while i < len(src) and src[i] in " \t\r\n":
                    i += 1
            if body.strip().startswith("/*"):
                continue
            items.append(("action", self._lex(body, body_at)))

    def _action_end(self, src: str, i: int) -> int:
        quote = ""
        while i < len(src):
            ch = src[i]
            if quote:
                if ch == "\\" and quote != "`":
                    i += 1
                elif ch == quote:
                    quote = ""
            elif ch in "\"`'":
                quote = ch
            elif src.startswith("}}", i):
                return i
            i += 1
        raise TemplateError("template parsing error: template: :1: unclosed action")

    def _lex(self, body: str, at: int) -> list[tuple[str, str, int]]:
        out = []
        i = 0
        while i < len(body):
            m = _compiled(self.TOKEN).match(body, i)
            if not m:
                raise UsageError(f"template: unsupported expression {{{{{body.strip()}}}}}")
            if m.lastgroup != "ws":
                out.append((m.lastgroup or "", m.group(), at + i))
            i = m.end()
        return out

    def _block(self, ends: tuple[str, ...]) -> tuple[list[Any], tuple[str, list[Any]] | None]:
        """Nodes up to one of ``ends`` (else, end): returns them and (keyword, rest-of-tokens)."""
        nodes: list[Any] = []
        while self.pos < len(self.items):
            kind, value = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                if value:
                    nodes.append(("text", value))
                continue
            toks = value
            word = toks[0][1] if toks and toks[0][0] == "ident" else ""
            if word in ("end", "else"):
                if word not in ends:
                    raise TemplateError(f"template parsing error: template: :1: unexpected {{{{{word}}}}}")
                return nodes, (word, toks[1:])
            if word in ("if", "range", "with"):
                nodes.append(self._control(word, toks[1:]))
            elif word in ("define", "template", "block"):
                raise UsageError(f"template: {{{{{word}}}}} is not supported")
            else:
                nodes.append(("action", self._pipe(toks)))
        if ends:
            raise TemplateError("template parsing error: template: :1: unexpected EOF")
        return nodes, None

    def _control(self, word: str, toks: list[Any]) -> Any:
        pipe = self._pipe(toks)
        body, end = self._block(("else", "end"))
        other: list[Any] = []
        assert end is not None
        if end[0] == "else":
            rest = end[1]
            if rest and rest[0][1] in ("if", "with"):  # else if / else with: a nested block
                other = [self._control(rest[0][1], rest[1:])]
            else:
                other, end = self._block(("end",))
        return (word, pipe, body, other)

    def _pipe(self, toks: list[Any]) -> tuple[list[str], list[list[Any]]]:
        decl: list[str] = []
        for k, t in enumerate(toks):
            if t[0] in ("decl", "assign"):
                decl = [x[1] for x in toks[:k] if x[0] == "var"]
                toks = toks[k + 1 :]
                break
            if t[0] not in ("var", "comma"):
                break
        cmds: list[list[Any]] = [[]]
        depth = 0
        for t in toks:
            depth += {"lp": 1, "rp": -1}.get(t[0], 0)
            if t[0] == "pipe" and depth == 0:
                cmds.append([])
                continue
            cmds[-1].append(t)
        return decl, [self._operands(c) for c in cmds if c]

    def _operands(self, toks: list[Any]) -> list[Any]:
        out: list[Any] = []
        i = 0
        while i < len(toks):
            kind, text, at = toks[i]
            i += 1
            if kind == "lp":
                depth, j = 1, i
                while j < len(toks) and depth:
                    depth += {"lp": 1, "rp": -1}.get(toks[j][0], 0)
                    j += 1
                if depth:
                    raise TemplateError("template parsing error: template: :1: unclosed left paren")
                operand: Any = ("sub", self._pipe(toks[i : j - 1]), [], at)
                i = j
            elif kind == "field":
                operand = ("field", [p for p in text.split(".") if p], at)
            elif kind == "var":
                operand = ("var", text, [], at)
            elif kind in ("str", "raw", "chr", "num"):
                operand = ("lit", self._literal(kind, text))
            elif kind == "ident":
                operand = {"true": ("lit", True), "false": ("lit", False), "nil": ("lit", None)}.get(
                    text, ("func", text)
                )
            else:
                raise UsageError(f"template: unsupported expression {{{{{self.src}}}}}")
            # a field chain right after a variable or a parenthesis: $v.X, (index .A 0).X
            end = at + len(text) if kind != "lp" else toks[i - 1][2] + 1
            if operand[0] in ("sub", "var") and i < len(toks) and toks[i][0] == "field" and toks[i][2] == end:
                operand = (operand[0], operand[1], [p for p in toks[i][1].split(".") if p], operand[3])
                i += 1
            out.append(operand)
        return out

    @staticmethod
    def _literal(kind: str, text: str) -> Any:
        import json

        if kind == "str":
            return json.loads(text)
        if kind == "raw":
            return text[1:-1]
        if kind == "chr":
            return ord(json.loads('"' + text[1:-1].replace('"', '\\"') + '"'))
        return float(text) if any(c in text for c in ".eE") else int(text)

    # --------------------------------------------------------------- run ---

    def run(self, data: Any) -> list[str]:
        out: list[str] = []
        self._exec(self.nodes, data, [("$", data)], out)
        return out

    def _exec(self, nodes: list[Any], dot: Any, env: list[tuple[str, Any]], out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                value, hint = self._pipeline(node[1], dot, env)
                if not node[1][0]:  # a declaration prints nothing
                    out.append(_go_show(value, hint))
            else:
                _, pipe, body, other = node
                mark = len(env)
                value, _hint = self._pipeline(pipe, dot, env)
                if kind == "if":
                    self._exec(body if _go_true(value) else other, dot, env, out)
                elif kind == "with":
                    self._exec(
                        body if _go_true(value) else other, value if _go_true(value) else dot, env, out
                    )
                else:
                    self._range(pipe[0], value, body, other, env, out, dot)
                del env[mark:]

    def _range(
        self,
        names: list[str],
        value: Any,
        body: list[Any],
        other: list[Any],
        env: list[Any],
        out: list[str],
        dot: Any,
    ) -> None:
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif value is None:
            pairs = []
        else:
            raise TemplateError(f"template: :1: range can't iterate over {_go_show(value, '')}")
        if not pairs:
            self._exec(other, dot, env, out)
            return
        del env[len(env) - len(names) :]  # the pipeline bound them to the collection
        for key, item in pairs:
            mark = len(env)
            if len(names) == 1:
                env.append((names[0], item))
            elif len(names) == 2:
                env.extend([(names[0], key), (names[1], item)])
            self._exec(body, item, env, out)
            del env[mark:]

    def _pipeline(self, pipe: tuple[list[str], list[list[Any]]], dot: Any, env: list[Any]) -> tuple[Any, str]:
        decl, cmds = pipe
        value: Any = _NO_ARG
        hint = ""
        for cmd in cmds:
            value, hint = self._command(cmd, dot, env, value)
        for name in decl:
            env.append((name, value))
        return (None if value is _NO_ARG else value), hint

    def _command(self, cmd: list[Any], dot: Any, env: list[Any], piped: Any) -> tuple[Any, str]:
        head = cmd[0]
        if head[0] == "func":
            args = [self._operand(o, dot, env)[0] for o in cmd[1:]]
            if piped is not _NO_ARG:
                args.append(piped)
            return self._call(head[1], args), ""
        if len(cmd) > 1 or piped is not _NO_ARG:
            raise TemplateError(f"template: :1: can't give argument to non-function {self.src}")
        return self._operand(head, dot, env)

    def _operand(self, op: Any, dot: Any, env: list[Any]) -> tuple[Any, str]:
        kind = op[0]
        if kind == "lit":
            return op[1], ""
        if kind == "func":
            return self._call(op[1], []), ""
        if kind == "field":
            return self._chain(dot, op[1], op[2], ""), "." + ".".join(op[1])
        if kind == "var":
            for name, value in reversed(env):
                if name == op[1]:
                    return self._chain(value, op[2], op[3], op[1]), op[1] + "".join("." + p for p in op[2])
            raise TemplateError(f'template parsing error: template: :1: undefined variable "{op[1]}"')
        value, hint = self._pipeline(op[1], dot, env)
        return self._chain(value, op[2], op[3], ""), hint + "".join("." + p for p in op[2])

    def _chain(self, value: Any, parts: list[str], at: int, base: str) -> Any:
        path = base
        for part in parts:
            path += "." + part
            if isinstance(value, dict):
                if part not in value:
                    if part in _GO_OMITTED:  # a field of docker's type that its JSON omits when empty
                        value = _GO_OMITTED[part]
                        continue
                    col = at + len(path) - len(part) - 1
                    raise TemplateError(
                        f'template parsing error: template: :1:{col}: executing "" at <{path}>: '
                        f'map has no entry for key "{part}"'
                    )
                value = value[part]
            elif value is None:
                return None
            else:
                value = getattr(value, part, None)
        return value

    def _call(self, name: str, args: list[Any]) -> Any:
        fn = _GO_FUNCS.get(name)
        if fn is None:
            raise TemplateError(f'template parsing error: template: :1: function "{name}" not defined')
        try:
            return fn(*args)
        except (TypeError, ValueError, IndexError, KeyError) as err:
            raise TemplateError(f"template: :1: error calling {name}: {err}") from None


_NO_ARG = object()


def _go_true(v: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, slices and maps are false."""
    if isinstance(v, _GoZero):
        return v not in ("", "false")
    return bool(v)


def _go_show(v: Any, path: str = "") -> str:
    """%v of a value as Go prints docker's types (see render_template)."""
    field = path.rsplit(".", 1)[-1]
    if v is None:
        return _go_nil(field)
    if isinstance(v, _GoZero):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    if isinstance(v, dict):
        if field in _GO_MAPS or path.endswith(("LogConfig.Config", "GraphDriver.Data")):
            return "map[" + " ".join(f"{k}:{_go_show(x)}" for k, x in sorted(v.items())) + "]"
        return "{" + " ".join(_go_show(x, f"{path}.{k}") for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_go_show(x) for x in v) + "]"
    return str(v)


def _go_json(v: Any) -> str:
    """docker's json function: Go's encoder without HTML escaping (SetEscapeHTML(false)),
    compact, UTF-8, a map's keys sorted. A dict whose keys are all capitalized is taken
    for one of docker's structs, whose fields keep their order; any other (labels,
    ports) for a map."""
    import json

    def go(x: Any) -> Any:
        if isinstance(x, dict):
            struct = all(k[:1].isupper() and k[:1].isascii() for k in x)
            return {k: go(x[k]) for k in (x if struct else sorted(x))}
        if isinstance(x, list):
            return [go(i) for i in x]
        return x

    return json.dumps(go(v), separators=(",", ":"), ensure_ascii=False)


def _go_index(item: Any, *keys: Any) -> Any:
    """Go's index; a missing key gives the map's zero value: "" in a map of strings
    (docker's Labels), nil otherwise."""
    for key in keys:
        if item is None:
            return None
        if isinstance(item, dict):
            strings = all(isinstance(v, str) for v in item.values())
            item = item[key] if key in item else ("" if strings else None)
        else:
            item = item[int(key)]
    return item


def _go_print(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = ""
    for k, a in enumerate(args):
        if k and not isinstance(a, str) and not isinstance(args[k - 1], str):
            out += " "
        out += _go_show(a)
    return out


_GO_VERB = r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])"


def _compiled(pattern: str) -> Any:
    import re

    return re.compile(pattern)  # re caches it


def _go_printf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use: %v %s %d %q %t %x %X %f %g %e %c %%."""
    import json

    values = list(args)

    def verb(m: Any) -> str:
        flags, width, prec, v = m.groups()
        if v == "%":
            return "%"
        if not values:
            return f"%!{v}(MISSING)"
        a = values.pop(0)
        zero = "0" in flags and "-" not in flags
        spec = f"{'<' if '-' in flags else '>'}{'0' if zero else ''}{width}" if width else ""
        if v in "dxXoc" and isinstance(a, (int, float)) and not isinstance(a, bool):
            n = int(a)
            text = format(n, {"d": "d", "x": "x", "X": "X", "o": "o"}[v]) if v != "c" else chr(n)
            text = ("+" + text) if "+" in flags and n >= 0 and v == "d" else text
        elif v in "feEgG" and isinstance(a, (int, float)):
            text = format(float(a), f".{prec or 6}{v}" if v in "feE" else (f".{prec}{v}" if prec else v))
        elif v == "q":
            text = json.dumps(_go_show(a), ensure_ascii=False)
        elif v == "t" and isinstance(a, bool):
            text = "true" if a else "false"
        elif v in "vsxX" or v == "t":
            text = _go_show(a)
            if v in "xX" and isinstance(a, str):
                text = a.encode().hex() if v == "x" else a.encode().hex().upper()
            if prec is not None and v == "s":
                text = text[: int(prec)]
        else:
            text = f"%!{v}({_go_show(a)})"
        return format(text, spec) if spec else text

    out: str = _compiled(_GO_VERB).sub(verb, fmt)
    if values:
        out += "%!(EXTRA " + ", ".join(_go_show(a) for a in values) + ")"
    return out


def _go_compare(op: str) -> Callable[..., bool]:
    def compare(a: Any, *bs: Any) -> bool:
        if op == "eq":
            return any(a == b for b in bs)
        b = bs[0]
        return bool({"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op])

    return compare


_GO_FUNCS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: next((x for x in a if not _go_true(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _go_true(x)), a[-1]),
    "not": lambda a: not _go_true(a),
    "len": lambda a: len(a or ()),
    "index": _go_index,
    "slice": lambda a, *i: a[slice(*(int(x) for x in i))],
    "print": _go_print,
    "println": lambda *a: " ".join(_go_show(x) for x in a) + "\n",
    "printf": _go_printf,
    **{op: _go_compare(op) for op in ("eq", "ne", "lt", "le", "gt", "ge")},
    # docker's (cli/templates): json, join, split, title, lower, upper, pad, truncate
    "json": _go_json,
    "join": lambda items, sep: sep.join(_go_show(x) for x in items or ()),
    "split": lambda s, sep: s.split(sep),
    "title": lambda s: _go_show(s).title(),
    "lower": lambda s: _go_show(s).lower(),
    "upper": lambda s: _go_show(s).upper(),
    "pad": lambda s, left, right: " " * int(left) + _go_show(s) + " " * int(right),
    "truncate": lambda s, n: _go_show(s)[: int(n)],
}


# Fields of docker's inspect types that are slices, maps or pointers: a nil one prints
# as Go prints it ("[]", "map[]", "<nil>"), also when docker's JSON omits it (see
# _GO_OMITTED); other null values print "<no value>", other absent keys are an error.
_GO_SLICES = frozenset(
    "Env Cmd Entrypoint OnBuild Shell RepoTags RepoDigests Args Mounts Binds Dns DnsOptions DnsSearch "
    "ExtraHosts CapAdd CapDrop SecurityOpt Links VolumesFrom Devices Layers Aliases GroupAdd "
    "DeviceCgroupRules DeviceRequests MaskedPaths ReadonlyPaths BlkioWeightDevice Ulimits".split()
)
_GO_MAPS = frozenset(
    "Volumes Labels ExposedPorts PortBindings Ports Networks Tmpfs Sysctls StorageOpt DriverOpts".split()
)
_GO_POINTERS = frozenset("Health Healthcheck RestartPolicy Metadata IPAM StopTimeout".split())


class _GoZero(str):
    """The printed zero value of a field that docker's JSON omitted."""


_GO_OMITTED: dict[str, Any] = {
    **{k: None for k in _GO_SLICES | _GO_MAPS | _GO_POINTERS},
    **{k: _GoZero("") for k in ("MacAddress", "StopSignal", "Domainname")},
    **{k: _GoZero("false") for k in ("ArgsEscaped", "NetworkDisabled")},
}


def _go_nil(field: str) -> str:
    if field in _GO_SLICES:
        return "[]"
    if field in _GO_MAPS:
        return "map[]"
    return "<nil>" if field in _GO_POINTERS else "<no value>"


def print_table(header: list[str], rows: list[list[str]], fmt: str = "") -> None:
    """Docker's tabwriter output (see print_docker_table), or a --format template."""
    if fmt and not fmt.startswith("table"):
        keys = header
        for row in rows:
            print(render_template(fmt, dict(zip(keys, row, strict=False))))
        return
    print_docker_table(header, rows)


def progress_bar(total: int | None, desc: str) -> Any:
    """A tqdm bar on a terminal; otherwise None (callers print plain step lines)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def store_of(args: argparse.Namespace) -> Any:
    from imagefmt.store import Store

    return Store(args.root)


def image_store_in_use(args: argparse.Namespace) -> Any:
    """The store, with the holds of containers that are gone released first, so
    that rmi, prune and df see only images that existing containers use."""
    from runtime.containers import ContainerStore

    store = store_of(args)
    containers = ContainerStore(args.root).dir
    store.release_holds(lambda cid: (containers / cid).is_dir())
    return store


# ---------------------------------------------------------------- images ---


def _image_rows(args: argparse.Namespace) -> list[dict[str, str]]:
    from imagefmt.config import parse_time
    from imagefmt.reference import Reference

    store = store_of(args)
    want = Reference.parse(args.reference, default_tag=False) if getattr(args, "reference", None) else None
    rows: list[dict[str, str]] = []
    images = store.images()
    # docker hides intermediate images (untagged parents of other images) unless -a
    parents = {img.record.get("parent") for img in images} - {None, ""}
    for img in images:
        if not img.tags and str(img.id) in parents and not getattr(args, "all", False):
            continue
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
    if args.quiet and not args.format:  # docker: --format wins over -q here
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

    store = image_store_in_use(args)
    status = 0
    for name in args.images:
        try:
            for line in store.remove(name, force=args.force):
                print(line)
        except e.DockyardError as exc:
            err(str(exc))
            if not (args.force and isinstance(exc, e.NotFound)):  # rmi -f: missing is fine
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
    inspectors = [f for f in INSPECTORS if not kind or f.__name__ == f"_inspect_{kind}"]
    if not inspectors:
        raise UsageError(f'"{kind}" is not a valid value for --type')
    docs, status = [], 0
    for name in args.names:
        doc = next((d for f in inspectors if (d := f(args, name)) is not None), None)
        if doc is None:
            err(f"No such {kind or 'object'}: {name}")
            status = 1
        else:
            docs.append(doc)
    print_inspect(docs, args.format)
    return status


@command("history")
@command("image history")
def cmd_history(args: argparse.Namespace) -> int:
    from imagefmt.config import parse_time

    human = args.human.lstrip("=").lower() not in ("false", "0", "f")  # -H=false, --human=false
    store = store_of(args)
    img = store.image(args.image)
    layers = iter(img.manifest.layers)
    chains = iter(img.chain_ids)
    rows: list[dict[str, str]] = []
    for h in img.config.history:
        size = 0
        if not h.get("empty_layer"):
            desc, chain = next(layers, None), next(chains, None)
            unpacked = chain is not None and (store.snapshots / chain.hex / "size").exists()
            # an unpacked layer's content size (0 for a layer of directories), else its blob's
            size = store.snapshot_size(chain.hex) if unpacked and chain else (desc.size if desc else 0)
        created_by = str(h.get("created_by", ""))
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        ts = parse_time(h.get("created", ""))
        rows.append(
            {
                "ID": "<missing>",
                "CreatedSince": (since(ts) if ts else "N/A") if human else _rfc3339_seconds(ts),
                "CreatedAt": _go_time(ts) if human else _rfc3339_seconds(ts),
                "CreatedBy": created_by,
                "Size": human_size(size) if human else str(size),
                "Comment": str(h.get("comment", "")),
            }
        )
    rows.reverse()
    if rows:
        rows[0]["ID"] = str(img.id) if args.no_trunc else img.id.short
    if args.quiet and not args.format:  # docker: --format wins over -q here
        for r in rows:
            print(r["ID"])
        return 0
    if args.format and not args.format.startswith("table"):
        for r in rows:
            print(render_template(args.format, r))
        return 0
    cols = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
    created = "CREATED" if human else "CREATED AT"
    print_table(["IMAGE", created, "CREATED BY", "SIZE", "COMMENT"], [[r[c] for c in cols] for r in rows])
    return 0


def _rfc3339_seconds(ts: float | None) -> str:
    """docker history -H=false's times: UTC to the second."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else ""


def _save_names(store: Any, name: str) -> tuple[Any, list[Any]]:
    """The image and the names ``docker save NAME`` records: the tag given,
    every tag of a bare repository name, none for an ID."""
    from imagefmt.errors import Invalid
    from imagefmt.reference import Reference

    try:
        img = store.image(name)
    except errors.NotFound:
        raise errors.NotFound(f"No such image: {name}") from None  # docker save's words: the name as given
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
    lines, freed = image_store_in_use(args).prune(all_images=args.all)
    print_pruned("Deleted Images", lines)
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
    built = sub.choices.get("image")  # also as 'image pull' / 'image push'
    image = _verbs_of(built) if built is not None else _Null()
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

    def __init__(self, enabled: bool = True, tty: bool | None = None, lines: Any = None) -> None:
        import threading

        self.lines = lines  # where the plain lines go: stdout when None
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
                print(ev.line(), file=self.lines or sys.stdout, flush=True)
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
            missing = given.familiar_repository
            raise errors.NotFound(f"An image does not exist locally with the tag: {missing}")
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
                    f"An image does not exist locally with the tag: {ref.familiar_repository}"
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
    if path is not None:  # not when a credential helper keeps it, as docker
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
    store = image_store_in_use(args)
    images = store.images()
    sizes = {str(i.id): store.image_size(i) for i in images}
    active = [i for i in images if store.holders(i.id)]
    total = sum(sizes.values())  # docker's SIZE: the images' content, not the store's files
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
                "Size": human_size(size, 4),
                "Reclaimable": human_size(recl, 4) + pct,
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
    lines, n = image_store_in_use(args).prune(all_images=args.all)
    freed += n
    print_pruned("Deleted Images", lines)
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


# ------------------------------------------------------------ containers ---

IGNORING_FORMAT = "WARNING: Ignoring custom format, because both --format and --quiet are set."
# Container verbs: argparse and docker's output here, everything else in runtime/.


def containers_of(args: argparse.Namespace) -> Any:
    from runtime.containers import ContainerStore

    return ContainerStore(args.root)


def _container_flags(p: argparse.ArgumentParser, run: bool) -> None:
    """``docker create``/``run`` flags (-h is --hostname, as in docker)."""
    a = p.add_argument
    a("--help", action="help", help="show this help message and exit")
    if run:
        a("-d", "--detach", action="store_true", help="run in the background and print the container ID")
        a("--sig-proxy", default="true", help="proxy received signals to the process")
        a("--detach-keys", default="", help="override the key sequence for detaching (ctrl-p,ctrl-q only)")
    a("-a", "--attach", action="append", default=[], choices=["stdin", "stdout", "stderr"])
    a("-i", "--interactive", action="store_true", help="keep STDIN open even if not attached")
    a("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    a("--rm", action="store_true", help="remove the container when it exits")
    a("--name", default="")
    a("-e", "--env", action="append", default=[])
    a("--env-file", action="append", default=[])
    a("-w", "--workdir", default="")
    a("-u", "--user", default="")
    a("-h", "--hostname", default="")
    a("--entrypoint", default=None)
    a("--read-only", action="store_true")
    a("--init", action="store_true", help="run an init (tini) as pid 1 that reaps and forwards signals")
    a("-l", "--label", action="append", default=[])
    a("-v", "--volume", action="append", default=[])
    a("--mount", action="append", default=[], help="attach a filesystem mount (type=bind|volume|tmpfs,…)")
    a("--tmpfs", action="append", default=[], help="mount a tmpfs directory (/dest[:options])")
    a("--volumes-from", action="append", default=[])
    a("-p", "--publish", action="append", default=[])
    a("-P", "--publish-all", action="store_true")
    a("--expose", action="append", default=[])
    a("--network", "--net", default="bridge")
    a("--network-alias", "--net-alias", action="append", default=[])
    a("--ip", default="")
    a("-m", "--memory", default="")
    a("--memory-swap", default="")
    a("--cpus", default="")
    a("-c", "--cpu-shares", type=int, default=0)
    a("--cpuset-cpus", default="")
    a("--cpu-period", type=int, default=0)
    a("--cpu-quota", type=int, default=0)
    a("--pids-limit", type=int, default=0)
    a("--device-read-bps", action="append", default=[])
    a("--device-write-bps", action="append", default=[])
    a("--log-driver", default="json-file")
    a("--log-opt", action="append", default=[])
    a("--cap-add", action="append", default=[], help="add Linux capabilities (or ALL)")
    a("--cap-drop", action="append", default=[], help="drop Linux capabilities (or ALL)")
    a("--group-add", action="append", default=[], help="add more groups to join")
    a("--add-host", action="append", default=[], help="add a custom host-to-IP mapping (host:ip)")
    a("--dns", action="append", default=[], help="set custom DNS servers")
    a("--dns-search", action="append", default=[], help="set custom DNS search domains")
    a("--dns-option", action="append", default=[], help="set DNS options")
    a("--ulimit", action="append", default=[], help="ulimit options (name=soft[:hard])")
    a("--shm-size", default="", help="size of /dev/shm")
    a("--cidfile", default="", help="write the container ID to the file")
    a("--pid", default="", help="PID namespace to use (host, container:NAME)")
    a("--ipc", default="", help="IPC mode to use (private, shareable, host, container:NAME)")
    a("--uts", default="", help="UTS namespace to use (host)")
    a("--privileged", action="store_true", help="give extended privileges to this container")
    a("--restart", default="", help="restart policy: no, on-failure[:N], always, unless-stopped")
    a("--health-cmd", default="", help="command to run to check health")
    a("--health-interval", default="", help="time between running the check (ms|s|m|h)")
    a("--health-timeout", default="", help="maximum time to allow one check to run (ms|s|m|h)")
    a("--health-start-period", default="", help="start period before failures count (ms|s|m|h)")
    a("--health-retries", type=int, default=0, help="consecutive failures needed to report unhealthy")
    a("--no-healthcheck", action="store_true", help="disable any container-specified HEALTHCHECK")
    a("--sysctl", action="append", default=[], help="namespaced kernel parameters (net.*, kernel.shm*, …)")
    a("--security-opt", action="append", default=[], help="no-new-privileges[:false], seccomp=unconfined, …")
    a("--label-file", action="append", default=[], help="read in a line delimited file of labels")
    a("--stop-signal", default="")
    a("--stop-timeout", type=int, default=None)
    a("--cgroup-parent", default="")
    a("--pull", default="missing", choices=["missing", "always", "never"], help="when to pull the image")
    a("--platform", default="", help="os/arch[/variant] to pull, for a multi-platform image")
    a("-q", "--quiet", action="store_true", help="suppress the pull output")
    _client_parsers_common(p)
    a("image")
    a("command", nargs=argparse.REMAINDER)


def _limit_flags(p: argparse.ArgumentParser) -> None:
    for flag in ("-m", "--memory"), ("--memory-swap",), ("--cpus",), ("--cpuset-cpus",):
        p.add_argument(*flag, default="")
    for flag in ("-c", "--cpu-shares"), ("--cpu-period",), ("--cpu-quota",), ("--pids-limit",):
        p.add_argument(*flag, type=int, default=0)


def _limits(args: argparse.Namespace, base: Any = None) -> Any:
    """cgroups.Limits from -m/--memory-swap/--cpus/… (unset flags keep ``base``'s)."""
    from runtime.cgroups import Limits
    from runtime.units import nano_cpus, ram_in_bytes

    def bps(items: list[str], flag: str) -> tuple[tuple[str, int], ...]:
        out = []
        for item in items:
            path, sep, rate = item.rpartition(":")
            if not sep or not path:
                raise errors.Invalid(f"invalid argument {item!r} for {flag}: expected PATH:RATE")
            out.append((path, ram_in_bytes(rate, flag)))
        return tuple(out)

    swap = args.memory_swap
    return (base or Limits()).merged(
        memory=ram_in_bytes(args.memory, "-m, --memory") if args.memory else None,
        memory_swap=(-1 if swap == "-1" else ram_in_bytes(swap, "--memory-swap")) if swap else None,
        nano_cpus=nano_cpus(args.cpus) if args.cpus else None,
        cpu_shares=args.cpu_shares or None,
        cpuset_cpus=args.cpuset_cpus or None,
        cpu_period=args.cpu_period or None,
        cpu_quota=args.cpu_quota or None,
        pids_limit=args.pids_limit or None,
        read_bps=bps(getattr(args, "device_read_bps", []), "--device-read-bps") or None,
        write_bps=bps(getattr(args, "device_write_bps", []), "--device-write-bps") or None,
    )


def _label_file(path: str) -> list[str]:
    """``--label-file``: a label a line, blank lines and # comments skipped (docker's
    ReadKVStrings; a bare key is a label with an empty value)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.lstrip() for ln in f.read().splitlines()]
    except OSError as err:
        raise errors.Invalid(f"open {path}: {(err.strerror or str(err)).lower()}") from None
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _create_options(args: argparse.Namespace, run: bool) -> Any:
    from runtime.create import CreateOptions

    attach = tuple(args.attach)
    if run and not args.detach and not attach:
        attach = ("stdin", "stdout", "stderr") if args.interactive else ("stdout", "stderr")
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    return CreateOptions(
        command=tuple(command),
        entrypoint=args.entrypoint,
        name=args.name,
        env=tuple(args.env),
        env_files=tuple(args.env_file),
        workdir=args.workdir,
        user=args.user,
        hostname=args.hostname,
        tty=args.tty,
        interactive=args.interactive,
        attach=attach,
        auto_remove=args.rm,
        read_only=args.read_only,
        init=args.init,
        labels=(*(ln for f in args.label_file for ln in _label_file(f)), *args.label),
        volumes=tuple(args.volume),
        mounts=tuple(args.mount),
        tmpfs=tuple(args.tmpfs),
        volumes_from=tuple(args.volumes_from),
        publish=tuple(args.publish),
        publish_all=args.publish_all,
        expose=tuple(args.expose),
        network=args.network,
        network_aliases=tuple(args.network_alias),
        ip=args.ip,
        limits=_limits(args),
        log_driver=args.log_driver,
        log_opts=tuple(args.log_opt),
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        cgroup_parent=args.cgroup_parent,
        cap_add=tuple(args.cap_add),
        cap_drop=tuple(args.cap_drop),
        group_add=tuple(args.group_add),
        add_hosts=tuple(args.add_host),
        dns=tuple(args.dns),
        dns_search=tuple(args.dns_search),
        dns_options=tuple(args.dns_option),
        ulimits=tuple(args.ulimit),
        shm_size=args.shm_size,
        pid=args.pid,
        ipc=args.ipc,
        uts=args.uts,
        privileged=args.privileged,
        restart=args.restart,
        health_cmd=args.health_cmd,
        health_interval=args.health_interval,
        health_timeout=args.health_timeout,
        health_start_period=args.health_start_period,
        health_retries=args.health_retries,
        no_healthcheck=args.no_healthcheck,
        sysctls=tuple(args.sysctl),
        security_opts=tuple(args.security_opt),
    )


def _image_info(args: argparse.Namespace, catalog: Any, name: str) -> Any:
    """The runtime's ImageInfo for ``name``; docker's "Unable to find image" first.

    Through the catalog when every layer is unpacked (a container start imports
    no manifest parsing), else through the full store, which unpacks."""
    from runtime.create import ImageInfo

    pull = getattr(args, "pull", "missing")
    found = None if pull == "always" else catalog.launchable(name)
    if found is None:
        found = _unpacked(args, name, pull)
    return ImageInfo(
        id=str(found.id),
        name=name,
        config=found.config.get("config") or {},
        lowerdirs=found.lowerdirs,
        mount_cwd=str(catalog.root),
    )


def _unpacked(args: argparse.Namespace, name: str, pull: str = "missing") -> Any:
    """The image, unpacked; pulled first as docker run does when it is missing
    (``--pull missing``, the default) or whatever the store has (``always``),
    its lines on stderr, where they stay apart from the container's output."""
    from imagefmt.catalog import Launchable
    from imagefmt.reference import Reference

    store = store_of(args)

    def say(line: bytes) -> None:
        if not args.quiet:
            sys.stderr.buffer.write(line)
            sys.stderr.flush()

    try:
        img = _pull_base(args, name, say, sys.stderr) if pull == "always" else store.image(name)
    except errors.NotFound:
        try:
            shown = Reference.parse(name).familiar()
        except errors.Invalid:
            raise errors.NotFound(f"No such image: {name}") from None
        print(f"Unable to find image '{shown}' locally", file=sys.stderr)
        if pull == "never":
            raise errors.NotFound(f"No such image: {shown}") from None
        img = _pull_base(args, name, say, sys.stderr)
    return Launchable(img.id, img.config.doc, tuple(store.short_lowerdirs(img)))


def _create(args: argparse.Namespace, run: bool) -> Any:
    from imagefmt.catalog import Catalog
    from imagefmt.digest import Digest
    from runtime.create import create

    opts = _create_options(args, run)
    if opts.network == "host" and (opts.publish or opts.publish_all):
        print("WARNING: Published ports are discarded when using host network mode", file=sys.stderr)
    if args.cidfile and os.path.exists(args.cidfile):
        raise errors.Invalid(
            f"Container ID file found, make sure the other container isn't running or delete {args.cidfile}"
        )
    catalog = Catalog(args.root)
    info = _image_info(args, catalog, args.image)
    c = create(containers_of(args), info, opts)
    catalog.add_hold(Digest.parse(info.id), c.id)
    if args.cidfile:
        with open(args.cidfile, "x") as f:
            f.write(c.id)
    return c


def _run_error(exc: errors.DockyardError) -> int:
    """docker run's status for a failure of its own: 125, or 126/127 from the command."""
    err(str(exc))
    return int(getattr(exc, "exit_code", 125) or 125)


def _container_group(sub: Any) -> Any:
    """The ``container`` verb's subparsers, made once per parser build and kept on
    ``sub`` itself (an id()-keyed cache would hand a new build an old, freed one's)."""
    group = getattr(sub, "_container_group", None)
    if group is None:
        ctr = sub.add_parser("container", help="manage containers")
        group = ctr.add_subparsers(dest="sub", parser_class=_Parser, required=True)
        sub._container_group = group
    return group


@parsers
def _container_parsers(sub: Any) -> None:
    csub = _container_group(sub)

    def both(name: str, help: str, aliases: tuple[str, ...] = (), add_help: bool = True) -> list[Any]:
        top = sub.add_parser(name, help=help, add_help=add_help)
        return [top, csub.add_parser(name, aliases=list(aliases), add_help=add_help)]

    for p in both("create", "create a new container", add_help=False):
        _container_flags(p, run=False)
    for p in both("run", "create and start a container", add_help=False):
        _container_flags(p, run=True)
    for p in both("start", "start stopped containers"):
        p.add_argument("-a", "--attach", action="store_true")
        p.add_argument("-i", "--interactive", action="store_true")
        p.add_argument("containers", nargs="+")
    for name in ("stop", "restart"):
        for p in both(name, f"{name} running containers"):
            p.add_argument("-t", "--time", type=int, default=None)
            p.add_argument("containers", nargs="+")
    for p in both("kill", "kill running containers"):
        p.add_argument("-s", "--signal", default="KILL")
        p.add_argument("containers", nargs="+")
    for p in both("rm", "remove containers", aliases=("remove",)):
        p.add_argument("-f", "--force", action="store_true")
        p.add_argument("-v", "--volumes", action="store_true")
        p.add_argument("-l", "--link", action="store_true")
        p.add_argument("containers", nargs="+")
    for p in (sub.add_parser("ps", help="list containers"), csub.add_parser("ls", aliases=["ps", "list"])):
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("-f", "--filter", action="append", default=[])
        p.add_argument("--format", default="")
        p.add_argument("-n", "--last", type=int, default=-1)
        p.add_argument("-l", "--latest", action="store_true")
        p.add_argument("-s", "--size", action="store_true")
    for p in both("logs", "fetch the logs of a container"):
        p.add_argument("-f", "--follow", action="store_true")
        p.add_argument("--tail", "-n", default="all")
        p.add_argument("--since", default="")
        p.add_argument("--until", default="")
        p.add_argument("-t", "--timestamps", action="store_true")
        p.add_argument("--details", action="store_true")
        p.add_argument("container")
    for p in both("exec", "run a command in a running container"):
        p.add_argument("-d", "--detach", action="store_true")
        p.add_argument("-i", "--interactive", action="store_true")
        p.add_argument("-t", "--tty", action="store_true")
        p.add_argument("-e", "--env", action="append", default=[])
        p.add_argument("--env-file", action="append", default=[])
        p.add_argument("-u", "--user", default="")
        p.add_argument("-w", "--workdir", default="")
        p.add_argument("--privileged", action="store_true")
        p.add_argument("container")
        p.add_argument("command", nargs=argparse.REMAINDER)
    for p in both("wait", "block until containers stop, then print their exit codes"):
        p.add_argument("containers", nargs="+")
    for p in both("rename", "rename a container"):
        p.add_argument("container")
        p.add_argument("new_name")
    for p in both("attach", "attach to a running container"):
        p.add_argument("--no-stdin", action="store_true")
        p.add_argument("--sig-proxy", default="true")
        p.add_argument("--detach-keys", default="")
        p.add_argument("container")
    for name in ("pause", "unpause"):
        for p in both(name, f"{name} all processes in containers"):
            p.add_argument("containers", nargs="+")
    for p in both("port", "list port mappings of a container"):
        p.add_argument("container")
        p.add_argument("port", nargs="?")
    p = csub.add_parser("prune", help="remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    p = csub.add_parser("inspect", help="display detailed information on containers")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", default="")
    p.add_argument("-s", "--size", action="store_true")


@command("create")
@command("container create")
def cmd_create(args: argparse.Namespace) -> int:
    c = _create(args, run=False)
    print(c.id)
    return 0


@command("run")
@command("container run")
def cmd_run(args: argparse.Namespace) -> int:
    from runtime.cgroups import keep_migrations_warm

    warm_off = keep_migrations_warm()  # while the runtime imports and the record is made

    def started() -> None:
        warm_off()
        collect_garbage()

    try:
        return _run(args, started)
    finally:
        warm_off()


def _run(args: argparse.Namespace, started_hook: Callable[[], None]) -> int:
    from runtime import attach as A
    from runtime import lifecycle, trace
    from runtime.monitor import Attach

    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        print("the input device is not a TTY", file=sys.stderr)  # docker's words, before anything is made
        return 1
    try:
        c = _create(args, run=True)
    except errors.DockyardError as exc:
        return _run_error(exc)
    trace.mark("created")
    attached = bool(c.config["AttachStdout"] or c.config["AttachStderr"] or c.config["AttachStdin"])
    want = Attach(
        stdin=bool(c.config["AttachStdin"]),
        stdout=bool(c.config["AttachStdout"]),
        stderr=bool(c.config["AttachStderr"]),
        window=_window() if args.tty else None,
    )
    try:
        started = lifecycle.start(containers_of(args), c, want if attached else Attach())
    except errors.DockyardError as exc:
        return _run_error(exc)
    assert started is not None
    started_hook()
    trace.mark("started")
    sock, reader, pid = started
    if not attached:
        sock.close()
        print(c.id)
        return 0
    try:
        return _relay(args, c, sock, reader, pid, stdin=want.stdin, proxy=args.sig_proxy != "false")
    except A.Detached:
        return 0


def _window() -> tuple[int, int] | None:
    from runtime.attach import window_size

    for fd in (0, 1, 2):
        if os.isatty(fd) and (size := window_size(fd)):
            return size
    return None


def _relay(
    args: argparse.Namespace, c: Any, sock: Any, reader: Any, pid: int, stdin: bool, proxy: bool
) -> int:
    """Stream an attached container until it exits and return its exit code;
    raises attach.Detached on Ctrl-P Ctrl-Q."""
    from runtime import attach as A

    sys.stdout.flush()
    sys.stderr.flush()

    def forward(sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    tty = bool(c.config.get("Tty"))
    with sock:
        code = A.relay(
            sock,
            stdin=0 if stdin else None,
            stdout=1,
            stderr=2,
            tty=tty,
            reader=reader,
            on_signal=forward if proxy else None,
        )
    if code is None:  # the monitor went away without a word: report what the store says
        try:
            state = containers_of(args).load(c.id).state
        except errors.NotFound:
            return 125
        return 125 if state.get("Running") or state.get("Dead") else int(state.get("ExitCode") or 0)
    return code


def _each(
    args: argparse.Namespace, refs: list[str], action: Callable[[Any, Any], None], missing_ok: bool = False
) -> int:
    """Apply ``action(store, container)`` to each ref, printing it as given (docker's echo);
    ``missing_ok``: an unknown container is said but is no failure (``rm -f``)."""
    cstore = containers_of(args)
    status = 0
    for ref in refs:
        try:
            action(cstore, cstore.get(ref))
            print(ref)
        except errors.DockyardError as exc:
            err(str(exc))
            if not (missing_ok and isinstance(exc, errors.NotFound)):
                status = 1
    return status


@command("start")
@command("container start")
def cmd_start(args: argparse.Namespace) -> int:
    from runtime import attach as A
    from runtime import lifecycle
    from runtime.monitor import Attach

    if not args.attach and not args.interactive:

        def start(cstore: Any, c: Any) -> None:
            got = lifecycle.start(cstore, c)
            if got is not None:
                got[0].close()

        return _each(args, args.containers, start)
    if len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    cstore = containers_of(args)
    c = cstore.get(args.containers[0])
    stdin = args.interactive and bool(c.config.get("OpenStdin"))
    want = Attach(stdin=stdin, stdout=True, stderr=True, window=_window() if c.config.get("Tty") else None)
    try:
        started = lifecycle.start(cstore, c, want)
    except errors.DockyardError as exc:
        err(str(exc))
        return 1  # docker start's status for any failure, unlike run's 125/126/127
    if started is None:
        return _attach(args, c, stdin)
    try:
        return _relay(args, c, *started, stdin=stdin, proxy=True)
    except A.Detached:
        return 0


@command("stop")
@command("container stop")
def cmd_stop(args: argparse.Namespace) -> int:
    from runtime import lifecycle

    return _each(args, args.containers, lambda s, c: lifecycle.stop(s, c, args.time))


@command("restart")
@command("container restart")
def cmd_restart(args: argparse.Namespace) -> int:
    from runtime import lifecycle

    return _each(args, args.containers, lambda s, c: lifecycle.restart(s, c, args.time))


@command("kill")
@command("container kill")
def cmd_kill(args: argparse.Namespace) -> int:
    from runtime import lifecycle
    from runtime.spec import parse_signal

    sig = parse_signal(args.signal)
    return _each(args, args.containers, lambda s, c: lifecycle.kill(s, c, sig))


@command("rm")
@command("container rm")
@command("container remove")
def cmd_rm(args: argparse.Namespace) -> int:
    from runtime import lifecycle

    def rm(cstore: Any, c: Any) -> None:
        lifecycle.remove(cstore, c, force=args.force, volumes=args.volumes)
        _release_image(args, c)

    return _each(args, args.containers, rm, missing_ok=args.force)


def _release_image(args: argparse.Namespace, c: Any) -> None:
    from imagefmt.digest import Digest

    try:
        store_of(args).remove_hold(Digest.parse(c.record["Image"]), c.id)
    except (errors.DockyardError, OSError):
        pass


@command("pause")
@command("container pause")
def cmd_pause(args: argparse.Namespace) -> int:
    from runtime import lifecycle

    return _each(args, args.containers, lambda s, c: lifecycle.set_paused(s, c, True))


@command("unpause")
@command("container unpause")
def cmd_unpause(args: argparse.Namespace) -> int:
    from runtime import lifecycle

    return _each(args, args.containers, lambda s, c: lifecycle.set_paused(s, c, False))


@command("rename")
@command("container rename")
def cmd_rename(args: argparse.Namespace) -> int:
    from runtime import lifecycle

    cstore = containers_of(args)
    lifecycle.rename(cstore, cstore.get(args.container), args.new_name)
    return 0


@command("wait")
@command("container wait")
def cmd_wait(args: argparse.Namespace) -> int:
    from runtime import lifecycle

    cstore = containers_of(args)
    status = 0
    for ref in args.containers:
        try:
            print(lifecycle.wait(cstore, cstore.get(ref)), flush=True)
        except errors.DockyardError as exc:
            err(str(exc))
            status = 1
    return status


@command("attach")
@command("container attach")
def cmd_attach(args: argparse.Namespace) -> int:
    cstore = containers_of(args)
    c = cstore.get(args.container)
    return _attach(args, c, not args.no_stdin and bool(c.config.get("OpenStdin")))


def _attach(args: argparse.Namespace, c: Any, stdin: bool) -> int:
    from runtime import attach as A

    if not c.running:
        raise errors.Conflict("You cannot attach to a stopped container, start it first")
    if c.status == "paused":
        raise errors.Conflict("You cannot attach to a paused container, unpause it first")
    try:
        sock = A.connect(c.socket_path)
    except OSError as exc:
        raise errors.Conflict(f"cannot attach to container {c.name}: {exc.strerror}") from None
    sock.sendall(A.frame_json(A.HELLO, {"stdin": stdin, "stdout": True, "stderr": True}))
    if c.config.get("Tty") and (size := _window()):
        sock.sendall(A.frame(A.RESIZE, f"{size[0]} {size[1]}".encode()))
    try:
        return _relay(args, c, sock, A.FrameReader(), c.pid, stdin=stdin, proxy=args.sig_proxy != "false")
    except A.Detached:
        print("read escape sequence", file=sys.stderr)
        return 0


@command("port")
@command("container port")
def cmd_port(args: argparse.Namespace) -> int:
    c = containers_of(args).get(args.container)
    ports = c.network_settings().get("Ports") or {}
    want = args.port if not args.port or "/" in args.port else f"{args.port}/tcp"
    shown = False
    for key in sorted(ports, key=_port_key):
        if want and key != want:
            continue
        for b in ports[key] or []:
            shown = True
            print(f"{b['HostIp']}:{b['HostPort']}" if want else f"{key} -> {b['HostIp']}:{b['HostPort']}")
    if want and not shown:
        raise errors.NotFound(f"No public port '{want}' published for {c.name}")
    return 0


@command("container prune")
def cmd_container_prune(args: argparse.Namespace) -> int:
    if not args.force and not _confirm("WARNING! This will remove all stopped containers."):
        return 0
    removed, freed = _prune_containers(args)
    print_pruned("Deleted Containers", removed)
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def _prune_filter(filters: list[str], until: bool = True) -> Callable[[str, dict[str, str] | None], bool]:
    """docker's prune filters as a test of (created RFC 3339 time, labels): ``until=``
    a timestamp or a duration ago (created before it), ``label=k[=v]``, ``label!=k[=v]``."""
    from runtime.containers import parse_time

    cutoffs: list[float] = []
    labels_wanted: list[tuple[str, bool]] = []  # (k[=v], wanted)
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {f}")
        if key == "until" and until:
            cutoffs.append(_until(value))
        elif key in ("label", "label!"):
            labels_wanted.append((value, key == "label"))
        else:
            raise errors.Invalid(f"Invalid filter '{key}'")

    def keep(created: str, labels: dict[str, str] | None) -> bool:
        when = parse_time(created) if cutoffs else 0.0
        return all(when < cut for cut in cutoffs) and all(
            _label_match(labels or {}, spec) == wanted for spec, wanted in labels_wanted
        )

    return keep


def _until(text: str) -> float:
    """--filter until=: a Go duration ago (10m, 24h), an RFC 3339 time or Unix seconds."""
    import time

    from imagefmt.changes import parse_duration
    from runtime.containers import parse_time

    try:
        return time.time() - parse_duration(text) / 1e9
    except errors.DockyardError:
        pass
    try:
        return float(text) if text.replace(".", "", 1).isdigit() else parse_time(text)
    except ValueError:
        raise UsageError(f"invalid filter 'until={text}'") from None


def _prune_containers(args: argparse.Namespace) -> tuple[list[str], int]:
    from runtime import lifecycle

    cstore = containers_of(args)
    stopped = {c.id: c for c in cstore.all() if not c.running}
    keep = _prune_filter(getattr(args, "filter", []))
    removed, freed = lifecycle.prune(cstore, lambda c: keep(c.record["Created"], c.config.get("Labels")))
    for cid in removed:
        _release_image(args, stopped[cid])
    return removed, freed


def _prune_for_system(args: argparse.Namespace) -> tuple[list[str], int]:
    removed, freed = _prune_containers(args)
    lines = ["Deleted Containers:", *removed, ""] if removed else []
    return lines, freed


PRUNERS.append(_prune_for_system)


def _containers_df(args: argparse.Namespace) -> tuple[str, int, int, int, int]:
    from imagefmt.catalog import tree_size

    cs = containers_of(args).all()
    sizes = {c.id: tree_size(c.dir / "upper") for c in cs}
    active = [c for c in cs if c.running]
    return (
        "Containers",
        len(cs),
        len(active),
        sum(sizes.values()),
        sum(sizes[c.id] for c in cs if not c.running),
    )


DF_ROWS.append(_containers_df)


# ---------------------------------------------------------------------- ps ---


def _ports_text(c: Any) -> str:
    """docker ps PORTS: ``0.0.0.0:8080->80/tcp`` for published, ``80/tcp`` for exposed."""
    ports = c.network_settings().get("Ports") or {}
    out = []
    for key in sorted(set(ports) | set(c.config.get("ExposedPorts") or {}), key=_port_key):
        bindings = ports.get(key) or []
        if not bindings:
            out.append(key)
        for b in bindings:
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{key}")
    return ", ".join(out)


def _port_key(key: str) -> tuple[int, str]:
    num, _, proto = key.partition("/")
    return (int(num) if num.isdigit() else 0, proto)


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _ps_row(c: Any, trunc: bool, now: float) -> dict[str, str]:
    import json

    from runtime.containers import parse_time

    command = c.command()
    image = c.config.get("Image") or c.record["Image"]
    if image.startswith("sha256:") and trunc:
        image = image[7:19]
    labels = c.config.get("Labels") or {}
    mounts = [m.get("Name") or m.get("Source", "") for m in c.record.get("Mounts") or []]
    return {
        "ID": c.short_id if trunc else c.id,
        "Image": image,
        "Command": json.dumps(_ellipsis(command, 20) if trunc else command, ensure_ascii=False),
        "CreatedAt": _go_time(parse_time(c.record["Created"])),
        "RunningFor": c.created_ago(now),
        "Ports": _ports_text(c),
        "State": c.status,
        "Status": c.status_text(now),
        "Size": "0B",
        "Names": c.name,
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "Mounts": ",".join(_ellipsis(m, 15) if trunc else m for m in mounts),
        "Networks": c.host_config.get("NetworkMode", ""),
        "LocalVolumes": str(sum(1 for m in c.record.get("Mounts") or [] if m.get("Type") == "volume")),
    }


def _ps_sizes(args: argparse.Namespace, cs: list[Any], rows: list[dict[str, str]]) -> None:
    """``ps -s``: what each container wrote, and that with its image (docker's "virtual")."""
    from imagefmt.catalog import tree_size

    store = store_of(args)
    images: dict[str, int] = {}  # each image's size once, however many containers share it

    def image_size(ref: str) -> int:
        if ref not in images:
            try:
                images[ref] = store.image_size(store.image(ref))
            except errors.DockyardError:
                images[ref] = 0
        return images[ref]

    for c, row in zip(cs, rows, strict=True):
        rw = tree_size(c.dir / "upper")
        row["Size"] = f"{human_size(rw)} (virtual {human_size(rw + image_size(c.record['Image']))})"


def _ps_filter(c: Any, filters: list[str]) -> bool:
    import re

    by: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {f}")
        by.setdefault(key, []).append(value)
    for key, values in by.items():
        if key == "id":
            ok = any(c.id.startswith(v) for v in values)
        elif key == "name":
            ok = any(re.search(v.lstrip("/"), c.name) for v in values)
        elif key == "status":
            ok = c.status in values
        elif key == "exited":
            ok = c.status == "exited" and str(c.state.get("ExitCode")) in values
        elif key == "label":
            labels = c.config.get("Labels") or {}
            ok = all(_label_match(labels, v) for v in values)
        elif key == "ancestor":
            ok = any(v in (c.config.get("Image"), c.record["Image"], c.record["Image"][7:19]) for v in values)
        elif key == "volume":
            ok = any(
                v in (m.get("Name"), m.get("Destination"))
                for m in c.record.get("Mounts") or []
                for v in values
            )
        elif key == "network":
            ok = c.host_config.get("NetworkMode") in values
        elif key == "health":  # starting, healthy, unhealthy, or none without a check
            ok = ((c.state.get("Health") or {}).get("Status") or "none") in values
        else:
            raise UsageError(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


def _label_match(labels: dict[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


PS_FILTERS = ("id", "name", "status", "exited", "label", "ancestor", "volume", "network", "health")
PS_COLUMNS = [
    ("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
    ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names"),
]  # fmt: skip


@command("ps")
@command("container ls")
@command("container ps")
@command("container list")
def cmd_ps(args: argparse.Namespace) -> int:
    import time

    now = time.time()
    for f in args.filter:
        key, sep, _ = f.partition("=")
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {f}")
        if key not in PS_FILTERS:
            raise UsageError(f"invalid filter '{f}'")
    cs = containers_of(args).all()
    if not args.all and not args.latest and args.last < 0:
        cs = [c for c in cs if c.running or c.restarting]
    cs = [c for c in cs if _ps_filter(c, args.filter)]
    if args.latest:
        cs = cs[:1]
    elif args.last >= 0:
        cs = cs[: args.last]
    if args.quiet:
        if args.format:
            print(IGNORING_FORMAT, file=sys.stderr)
        for c in cs:
            print(c.short_id if not args.no_trunc else c.id)
        return 0
    rows = [_ps_row(c, not args.no_trunc, now) for c in cs]
    if args.size:
        _ps_sizes(args, cs, rows)
    fmt = args.format
    if fmt and not fmt.startswith("table"):
        for r in rows:
            print(render_template(fmt, r))
        return 0
    columns = PS_COLUMNS + ([("SIZE", "Size")] if args.size else [])
    if fmt.startswith("table"):
        import re

        keys = re.findall(r"\{\{\s*\.(\w+)\s*\}\}", fmt)
        names = {k: h for h, k in PS_COLUMNS} | {"CreatedAt": "CREATED AT"}
        columns = [(names.get(k, k.upper()), k) for k in keys]
    print_docker_table([h for h, _ in columns], [[r[k] for _, k in columns] for r in rows])
    return 0


def print_docker_table(header: list[str], rows: list[list[str]], minwidth: int = 10) -> None:
    """Go tabwriter as docker sets it up (minwidth 10, or 20 for ``top``; padding 3):
    every column but the last is as wide as its widest cell plus 3, and at least minwidth."""
    widths = [max(minwidth, max(len(r[i]) for r in [header, *rows]) + 3) for i in range(len(header))]
    for row in [header, *rows]:
        print("".join(c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)).rstrip())


# ------------------------------------------------------------- inspect etc ---


def _inspect_container(args: argparse.Namespace, name: str) -> dict[str, Any] | None:
    try:
        return containers_of(args).get(name).inspect()  # type: ignore[no-any-return]
    except errors.NotFound:
        return None


INSPECTORS.insert(0, _inspect_container)


@command("container inspect")
def cmd_container_inspect(args: argparse.Namespace) -> int:
    docs, status = [], 0
    for name in args.names:
        doc = _inspect_container(args, name)
        if doc is None:
            err(f"No such container: {name}")
            status = 1
        else:
            docs.append(doc)
    print_inspect(docs, args.format)
    return status


# -------------------------------------------------------------------- logs ---


def _since(text: str, now: float) -> float:
    """docker's --since/--until: RFC 3339, a unix timestamp, or a duration ago (10m, 1h30m)."""
    import re

    from runtime.containers import parse_time

    if not text:
        return 0.0
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if m := re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|ms|m|s|us|ns))+)", text):
        mult = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
        total = sum(float(n) * mult[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)", m.group(1)))
        return now - total
    try:
        return parse_time(text if text.endswith("Z") or "." in text else text + "Z")
    except ValueError:
        raise errors.Invalid(f'invalid value for "since": {text!r}') from None


@command("logs")
@command("container logs")
def cmd_logs(args: argparse.Namespace) -> int:
    import time

    from runtime import logs
    from runtime.containers import parse_time

    cstore = containers_of(args)
    c = cstore.get(args.container)
    if (c.host_config.get("LogConfig") or {}).get("Type") == "none":
        raise errors.Unsupported("configured logging driver does not support reading")
    now = time.time()
    since, until = _since(args.since, now), _since(args.until, now)
    if args.tail != "all" and not str(args.tail).lstrip("-").isdigit():
        raise UsageError(f"invalid value for --tail: {args.tail}")
    entries, pos = logs.read(c.log_path)
    entries = [
        e
        for e in entries
        if (not since or parse_time(e.time) >= since) and (not until or parse_time(e.time) <= until)
    ]
    if args.tail != "all" and int(args.tail) >= 0:
        entries = entries[len(entries) - int(args.tail) :] if int(args.tail) else []
    out, errout = sys.stdout.buffer, sys.stderr.buffer

    def emit(e: Any) -> None:
        stream = errout if e.stream == "stderr" else out
        details = b" " if args.details else b""  # docker: the extra attributes (none), a space
        stream.write((e.time.encode() + b" " if args.timestamps else b"") + details + e.line)
        stream.flush()

    for e in entries:
        emit(e)
    if args.follow and not until:
        running = lambda: cstore.load(c.id).running if c.dir.exists() else False  # noqa: E731
        for e in logs.follow(c.log_path, pos, running):
            emit(e)
    return 0


# -------------------------------------------------------------------- exec ---


@command("exec")
@command("container exec")
def cmd_exec(args: argparse.Namespace) -> int:
    from runtime import attach as A
    from runtime import execute, launch
    from runtime.create import read_env_file
    from runtime.errors import StartFailed

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError('"exec" requires at least 2 arguments')
    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        print("the input device is not a TTY", file=sys.stderr)
        return 1
    c = containers_of(args).get(args.container)
    env = [e for f in args.env_file for e in read_env_file(f)] + list(args.env)
    window = _window() or (24, 80)
    proc = execute.process_for(
        c,
        command,
        env=env,
        user=args.user,
        workdir=args.workdir,
        tty=args.tty,
        window=window,
        privileged=args.privileged,
    )
    try:
        if args.tty:
            import socket

            ours, theirs = socket.socketpair()
            try:
                pid = execute.spawn(c, proc, launch.Stdio(0, 0, 0, console=theirs.fileno()))
            finally:
                theirs.close()
            _, fds, _, _ = socket.recv_fds(ours, 16, 1)
            ours.close()
            if args.detach:
                os.close(fds[0])
                return 0
            return A.pty_relay(fds[0], 0 if args.interactive else None, 1, pid)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        stdin = 0 if args.interactive and not args.detach else null
        out = null if args.detach else 1
        sys.stdout.flush()
        pid = execute.spawn(c, proc, launch.Stdio(stdin, out, null if args.detach else 2))
        os.close(null)
    except StartFailed as exc:  # docker prints the runtime's refusal on stdout, unprefixed
        print(exc, flush=True)
        return exc.exit_code
    except errors.DockyardError as exc:
        err(str(exc))
        return exit_code_for(exc)
    if args.detach:
        return 0
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)  # the exec helper already gives docker's code


# ------------------------------------------------------- stats, top, update ---


@parsers
def _stats_parsers(sub: Any) -> None:
    csub = _container_group(sub)
    for p in (sub.add_parser("stats", help="live resource usage of containers"), csub.add_parser("stats")):
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("--no-stream", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("--format", default="")
        p.add_argument("containers", nargs="*")
    for p in (sub.add_parser("top", help="the running processes of a container"), csub.add_parser("top")):
        p.add_argument("container")
        p.add_argument("ps_args", nargs=argparse.REMAINDER)
    for p in (
        sub.add_parser("update", help="update the resource limits of containers"),
        csub.add_parser("update"),
    ):
        _limit_flags(p)
        p.add_argument("--blkio-weight", type=int, default=0)
        p.add_argument("--restart", default="")
        p.add_argument("containers", nargs="+")


def _stats_row(c: Any, a: Any, b: Any, trunc: bool) -> dict[str, str]:
    from runtime.stats import cpu_percent
    from runtime.units import human_size as units_size

    mem_pct = b.mem_usage / b.mem_limit * 100 if b.mem_limit else 0.0
    return {
        "Container": c.short_id if trunc else c.id,
        "ID": c.short_id if trunc else c.id,
        "Name": c.name,
        "CPUPerc": f"{cpu_percent(a, b):.2f}%",
        "MemUsage": f"{units_size(b.mem_usage, binary=True)} / {units_size(b.mem_limit, binary=True)}",
        "MemPerc": f"{mem_pct:.2f}%",
        "NetIO": f"{units_size(b.net_rx)} / {units_size(b.net_tx)}",
        "BlockIO": f"{units_size(b.blk_read)} / {units_size(b.blk_write)}",
        "PIDs": str(b.pids),
    }


STATS_COLUMNS = [
    ("CONTAINER ID", "ID"), ("NAME", "Name"), ("CPU %", "CPUPerc"), ("MEM USAGE / LIMIT", "MemUsage"),
    ("MEM %", "MemPerc"), ("NET I/O", "NetIO"), ("BLOCK I/O", "BlockIO"), ("PIDS", "PIDs"),
]  # fmt: skip


@command("stats")
@command("container stats")
def cmd_stats(args: argparse.Namespace) -> int:
    import time

    from runtime.stats import sample

    cstore = containers_of(args)
    if args.containers:
        cs = [cstore.get(ref) for ref in args.containers]
    else:
        cs = [c for c in cstore.all() if args.all or c.running]
    first = True
    while True:
        before = {c.id: sample(c) for c in cs if c.running}
        time.sleep(0.5 if first else 1.0)
        rows = []
        for c in cs:
            c = cstore.load(c.id) if c.dir.exists() else c
            if c.id in before and c.running:
                rows.append(_stats_row(c, before[c.id], sample(c), not args.no_trunc))
            else:
                zero = {
                    "CPUPerc": "0.00%",
                    "MemUsage": "0B / 0B",
                    "MemPerc": "0.00%",
                    "NetIO": "0B / 0B",
                    "BlockIO": "0B / 0B",
                    "PIDs": "0",
                }
                rows.append({"Container": c.short_id, "ID": c.short_id, "Name": c.name, **zero})
        if not args.no_stream:
            print("\033[2J\033[H", end="")
        if args.format and not args.format.startswith("table"):
            for r in rows:
                print(render_template(args.format, r))
        else:
            print_docker_table(
                [h for h, _ in STATS_COLUMNS], [[r[k] for _, k in STATS_COLUMNS] for r in rows]
            )
        sys.stdout.flush()
        if args.no_stream:
            return 0
        first = False


@command("top")
@command("container top")
def cmd_top(args: argparse.Namespace) -> int:
    from runtime.stats import top

    header, rows = top(containers_of(args).get(args.container), list(args.ps_args))
    print_docker_table(header, rows, minwidth=20)
    return 0


@command("update")
@command("container update")
def cmd_update(args: argparse.Namespace) -> int:
    from runtime.cgroups import Limits
    from runtime.stats import update

    lim = _limits(args, Limits())
    changes = {k: getattr(lim, k) for k in Limits._fields if getattr(lim, k) != getattr(Limits(), k)}
    if not changes and not args.restart:
        raise UsageError("you must provide one or more flags when using this command")
    return _each(args, args.containers, lambda s, c: update(s, c, changes, args.restart))


# ----------------------------------------------------- commit, export, cp ---


@parsers
def _transfer_parsers(sub: Any) -> None:
    csub = _container_group(sub)
    for p in (
        sub.add_parser("commit", help="create an image from a container's changes"),
        csub.add_parser("commit"),
    ):
        p.add_argument("-a", "--author", default="")
        p.add_argument("-m", "--message", default="")
        p.add_argument("-c", "--change", action="append", default=[])
        p.add_argument("-p", "--pause", default="true")
        p.add_argument("container")
        p.add_argument("repository", nargs="?")
    for p in (
        sub.add_parser("export", help="export a container's filesystem as a tar archive"),
        csub.add_parser("export"),
    ):
        p.add_argument("-o", "--output", default="")
        p.add_argument("container")
    for p in (
        sub.add_parser("diff", help="inspect changes to files or directories on a container's filesystem"),
        csub.add_parser("diff"),
    ):
        p.add_argument("container")
    for p in (
        sub.add_parser("cp", help="copy files between a container and the host"),
        csub.add_parser("cp"),
    ):
        p.add_argument("-a", "--archive", action="store_true")
        p.add_argument("-L", "--follow-link", action="store_true")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("src")
        p.add_argument("dest")


@command("commit")
@command("container commit")
def cmd_commit(args: argparse.Namespace) -> int:
    from imagefmt.reference import Reference
    from runtime.transfer import commit

    ref = Reference.parse(args.repository) if args.repository else None
    cstore = containers_of(args)
    c = cstore.get(args.container)
    img = commit(
        cstore,
        c,
        store_of(args),
        ref=ref,
        author=args.author,
        message=args.message,
        changes=list(args.change),
        pause=args.pause != "false",
    )
    print(img.id)
    return 0


@command("diff")
@command("container diff")
def cmd_diff(args: argparse.Namespace) -> int:
    from runtime.transfer import changes

    cstore = containers_of(args)
    for kind, path in changes(cstore, cstore.get(args.container)):
        print(kind, path)
    return 0


@command("export")
@command("container export")
def cmd_export(args: argparse.Namespace) -> int:
    from runtime.transfer import export

    cstore = containers_of(args)
    c = cstore.get(args.container)
    if not args.output and sys.stdout.isatty():
        raise errors.Invalid("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    sys.stdout.flush()
    if args.output:
        tmp = f"{args.output}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            export(cstore, c, fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, args.output)
    else:
        export(cstore, c, 1)
    return 0


@command("cp")
@command("container cp")
def cmd_cp(args: argparse.Namespace) -> int:
    from runtime.transfer import copy_from, copy_to, split_container_path

    src_ctr, src = split_container_path(args.src)
    dst_ctr, dst = split_container_path(args.dest)
    if (src_ctr is None) == (dst_ctr is None):
        raise UsageError(
            "copying between containers is not supported"
            if src_ctr
            else "must specify at least one container source"
        )
    cstore = containers_of(args)
    if src_ctr is not None:
        copy_from(cstore, cstore.get(src_ctr), src, dst, follow=args.follow_link, out=sys.stdout.buffer)
    else:
        assert dst_ctr is not None
        copy_to(
            cstore,
            cstore.get(dst_ctr),
            src,
            dst,
            archive=args.archive,
            follow=args.follow_link,
            stdin=sys.stdin.buffer,
        )
    return 0


# ----------------------------------------------------------------- volumes ---


def volumes_of(args: argparse.Namespace) -> Any:
    from runtime.volumes import VolumeStore

    return VolumeStore(args.root)


@parsers
def _volume_parsers(sub: Any) -> None:
    vol = sub.add_parser("volume", help="manage volumes")
    vsub = vol.add_subparsers(dest="sub", parser_class=_Parser, required=True)
    p = vsub.add_parser("create", help="create a volume")
    p.add_argument("name", nargs="?", default="")
    p.add_argument("--name", dest="name_flag", default="")
    p.add_argument("-d", "--driver", default="local")
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p = vsub.add_parser("ls", aliases=["list"], help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format", default="")
    p = vsub.add_parser("inspect", help="display detailed information on volumes")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", default="")
    p = vsub.add_parser("rm", aliases=["remove"], help="remove volumes")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+")
    p = vsub.add_parser("prune", help="remove unused local volumes")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--filter", action="append", default=[])


def _volume_users(args: argparse.Namespace) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for c in containers_of(args).all():
        for m in c.record.get("Mounts") or []:
            if m.get("Type") == "volume":
                users.setdefault(m["Name"], []).append(c.id)
    return users


@command("volume create")
def cmd_volume_create(args: argparse.Namespace) -> int:
    if args.driver != "local":
        raise errors.NotFound(
            f'error looking up volume plugin {args.driver}: plugin "{args.driver}" not found'
        )
    labels = dict(item.partition("=")[::2] for item in args.label)
    opts = dict(item.partition("=")[::2] for item in args.opt)
    name, _ = volumes_of(args).create(args.name or args.name_flag, labels, opts)
    print(name)
    return 0


@command("volume ls")
@command("volume list")
def cmd_volume_ls(args: argparse.Namespace) -> int:
    vstore = volumes_of(args)
    names = vstore.names()
    users = _volume_users(args) if args.filter else {}
    for f in args.filter:
        key, _, value = f.partition("=")
        if key == "dangling":
            names = [n for n in names if (n not in users) == (value.lower() in ("true", "1"))]
        elif key == "name":
            names = [n for n in names if value in n]
        elif key == "label":
            names = [n for n in names if _label_match(vstore.get(n)["Labels"] or {}, value)]
        elif key != "driver":
            raise UsageError(f"invalid filter '{key}'")
    if args.quiet and not args.format:  # docker: --format wins over -q here
        for n in names:
            print(n)
        return 0

    def labels(name: str) -> str:
        return ",".join(f"{k}={v}" for k, v in (vstore.get(name)["Labels"] or {}).items())

    rows = [
        {
            "Driver": "local",
            "Name": n,
            "Mountpoint": str(vstore.path(n)),
            "Scope": "local",
            "Labels": labels(n),
        }
        for n in names
    ]
    if args.format and not args.format.startswith("table"):
        for r in rows:
            print(render_template(args.format, r))
        return 0
    print_docker_table(["DRIVER", "VOLUME NAME"], [[r["Driver"], r["Name"]] for r in rows])
    return 0


@command("volume inspect")
def cmd_volume_inspect(args: argparse.Namespace) -> int:
    vstore = volumes_of(args)
    docs, status = [], 0
    for name in args.names:
        try:
            docs.append(vstore.get(name))
        except errors.NotFound as exc:
            err(str(exc))
            status = 1
    print_inspect(docs, args.format)
    return status


@command("volume rm")
@command("volume remove")
def cmd_volume_rm(args: argparse.Namespace) -> int:
    vstore = volumes_of(args)
    users = _volume_users(args)
    status = 0
    for name in args.names:
        try:
            vstore.remove(name, users.get(name, []), force=args.force)
            print(name)
        except errors.DockyardError as exc:
            err(str(exc))
            status = 1
    return status


@command("volume prune")
def cmd_volume_prune(args: argparse.Namespace) -> int:
    if not args.force and not _confirm(
        "WARNING! This will remove all local volumes not used by at least one container."
    ):
        return 0
    names, freed = _prune_volumes(args)
    print_pruned("Deleted Volumes", names)
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def _prune_volumes(args: argparse.Namespace) -> tuple[list[str], int]:
    vstore = volumes_of(args)
    users = _volume_users(args)
    keep = _prune_filter(getattr(args, "filter", []), until=False)  # docker: labels only, for volumes
    removed, freed = [], 0
    for name in vstore.names():
        if name in users or not keep("", vstore.get(name)["Labels"]):
            continue
        size = vstore.size(name)
        vstore.remove(name)
        removed.append(name)
        freed += size
    return removed, freed


def _volumes_df(args: argparse.Namespace) -> tuple[str, int, int, int, int]:
    vstore = volumes_of(args)
    users = _volume_users(args)
    names = vstore.names()
    sizes = {n: vstore.size(n) for n in names}
    unused = sum(sizes[n] for n in names if n not in users)
    return ("Local Volumes", len(names), sum(1 for n in names if n in users), sum(sizes.values()), unused)


DF_ROWS.append(_volumes_df)


def _prune_volumes_for_system(args: argparse.Namespace) -> tuple[list[str], int]:
    if not getattr(args, "volumes", False):
        return [], 0
    names, freed = _prune_volumes(args)
    return (["Deleted Volumes:", *names, ""] if names else []), freed


PRUNERS.append(_prune_volumes_for_system)


def _inspect_volume(args: argparse.Namespace, name: str) -> dict[str, Any] | None:
    try:
        return volumes_of(args).get(name)  # type: ignore[no-any-return]
    except errors.NotFound:
        return None


INSPECTORS.append(_inspect_volume)


# ---------------------------------------------------------------- networks ---


def networks_of(args: argparse.Namespace) -> Any:
    from runtime.network import NetworkStore

    return NetworkStore(args.root)


@parsers
def _network_parsers(sub: Any) -> None:
    net = sub.add_parser("network", help="manage networks")
    nsub = net.add_subparsers(dest="sub", parser_class=_Parser, required=True)
    p = nsub.add_parser("create", help="create a network")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("--subnet", default="")
    p.add_argument("--ip-range", default="")
    p.add_argument("--gateway", default="")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--internal", action="store_true")
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("name")
    p = nsub.add_parser("ls", aliases=["list"], help="list networks")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format", default="")
    p = nsub.add_parser("rm", aliases=["remove"], help="remove networks")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+")
    p = nsub.add_parser("inspect", help="display detailed information on networks")
    p.add_argument("-f", "--format", default="")
    p.add_argument("names", nargs="+")
    for verb in ("connect", "disconnect"):
        p = nsub.add_parser(verb, help=f"{verb} a container to a network")
        if verb == "connect":
            p.add_argument("--alias", action="append", default=[])
            p.add_argument("--ip", default="")
        else:
            p.add_argument("-f", "--force", action="store_true")
        p.add_argument("network")
        p.add_argument("container")
    p = nsub.add_parser("prune", help="remove all unused networks")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])


def _network_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The inspect document (lease bookkeeping left out)."""
    out = dict(doc)
    out["Containers"] = {
        cid: {k: v for k, v in e.items() if k != "Aliases"}
        for cid, e in (doc.get("Containers") or {}).items()
    }
    return out


@command("network create")
def cmd_network_create(args: argparse.Namespace) -> int:
    labels = dict(item.partition("=")[::2] for item in args.label)
    doc = networks_of(args).create(
        args.name,
        subnet=args.subnet,
        ip_range=args.ip_range,
        gateway=args.gateway,
        labels=labels,
        internal=args.internal,
        driver=args.driver,
    )
    print(doc["Id"])
    return 0


@command("network ls")
@command("network list")
def cmd_network_ls(args: argparse.Namespace) -> int:
    docs = networks_of(args).all()
    for f in args.filter:
        key, _, value = f.partition("=")
        if key == "name":
            docs = [d for d in docs if value in d["Name"]]
        elif key == "driver":
            docs = [d for d in docs if d["Driver"] == value]
        elif key == "id":
            docs = [d for d in docs if d["Id"].startswith(value)]
        elif key == "label":
            docs = [d for d in docs if _label_match(d.get("Labels") or {}, value)]
        elif key == "type":
            builtin = {"bridge", "host", "none"}
            docs = [d for d in docs if (d["Name"] in builtin) == (value == "builtin")]
        else:
            raise UsageError(f"invalid filter '{key}'")
    docs.sort(key=lambda d: d["Name"])
    ids = [d["Id"] if args.no_trunc else d["Id"][:12] for d in docs]
    if args.quiet and not args.format:  # docker: --format wins over -q here
        for i in ids:
            print(i)
        return 0
    rows = [
        {"ID": i, "Name": d["Name"], "Driver": d["Driver"], "Scope": d["Scope"]}
        for i, d in zip(ids, docs, strict=True)
    ]
    if args.format and not args.format.startswith("table"):
        for r in rows:
            print(render_template(args.format, r))
        return 0
    print_docker_table(
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
        [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows],
    )
    return 0


@command("network rm")
@command("network remove")
def cmd_network_rm(args: argparse.Namespace) -> int:
    nstore = networks_of(args)
    status = 0
    for name in args.names:
        try:
            nstore.remove(name)
            print(name)
        except errors.NotFound as exc:
            if not args.force:
                err(str(exc))
                status = 1
        except errors.DockyardError as exc:
            err(str(exc))
            status = 1
    return status


@command("network inspect")
def cmd_network_inspect(args: argparse.Namespace) -> int:
    nstore = networks_of(args)
    docs, status = [], 0
    for name in args.names:
        try:
            docs.append(_network_doc(nstore.get(name)))
        except errors.NotFound as exc:
            err(str(exc))
            status = 1
    print_inspect(docs, args.format)
    return status


def _inspect_network(args: argparse.Namespace, name: str) -> dict[str, Any] | None:
    try:
        return _network_doc(networks_of(args).get(name))
    except errors.NotFound:
        return None


INSPECTORS.append(_inspect_network)


@command("network connect")
def cmd_network_connect(args: argparse.Namespace) -> int:
    from runtime.wiring import connect

    cstore = containers_of(args)
    c = cstore.get(args.container)
    doc = networks_of(args).get(args.network)
    if doc["Name"] in ("host", "none") or c.host_config.get("NetworkMode") in ("host", "none"):
        raise errors.Conflict(
            "container cannot be disconnected from host network or connected to host network"
        )
    with cstore.locked(c) as cur:
        nets = cur.private.setdefault("Networks", {})
        if doc["Name"] in nets:
            raise errors.Conflict(f"endpoint with name {cur.name} already exists in network {doc['Name']}")
        if cur.running:
            entry = connect(args.root, cur, doc["Name"], tuple(args.alias), args.ip)
            live = cur.state.setdefault("Network", {}).setdefault("Networks", {})
            live[doc["Name"]] = entry
            cstore.save_state(cur)
        nets[doc["Name"]] = {"Aliases": list(args.alias), "IP": args.ip}
        cstore.save_record(cur)
    return 0


@command("network disconnect")
def cmd_network_disconnect(args: argparse.Namespace) -> int:
    from runtime.network import unplug

    cstore = containers_of(args)
    c = cstore.get(args.container)
    doc = networks_of(args).get(args.network)
    with cstore.locked(c) as cur:
        nets = cur.private.get("Networks") or {}
        if doc["Name"] not in nets and not args.force:
            raise errors.Conflict(f"container {cur.id} is not connected to network {doc['Name']}")
        nets.pop(doc["Name"], None)
        live = (cur.state.get("Network") or {}).get("Networks") or {}
        entry = live.pop(doc["Name"], None)
        if entry and entry.get("HostVeth"):
            unplug(entry["HostVeth"])
        networks_of(args).release_one(doc["Name"], cur.id)
        cstore.save_record(cur)
        if entry:
            cstore.save_state(cur)
    return 0


@command("network prune")
def cmd_network_prune(args: argparse.Namespace) -> int:
    if not args.force and not _confirm(
        "WARNING! This will remove all custom networks not used by at least one container."
    ):
        return 0
    removed = _prune_networks(args)
    if removed:
        print("Deleted Networks:")
        for name in removed:
            print(name)
    return 0


def _prune_networks(args: argparse.Namespace) -> list[str]:
    nstore = networks_of(args)
    used = {n for c in containers_of(args).all() for n in c.private.get("Networks") or {}}
    keep = _prune_filter(getattr(args, "filter", []))
    removed = []
    for d in nstore.all():
        if d["Name"] in ("bridge", "host", "none") or d["Name"] in used or d["Containers"]:
            continue
        if not keep(d.get("Created") or "", d.get("Labels")):
            continue
        nstore.remove(d["Name"])
        removed.append(d["Name"])
    return removed


def _prune_networks_for_system(args: argparse.Namespace) -> tuple[list[str], int]:
    removed = _prune_networks(args)
    return (["Deleted Networks:", *removed, ""] if removed else []), 0


PRUNERS.append(_prune_networks_for_system)


# ----------------------------------------------------------------- build ---


@parsers
def _build_parsers(sub: Any) -> None:
    built = sub.choices.get("image")  # also as 'image build'
    image = _verbs_of(built) if built is not None else _Null()
    for p in (sub.add_parser("build", help="build an image from a Dockerfile"), image.add_parser("build")):
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
        p.add_argument("--cache-from", action="append", default=[], help="images to take cached steps from")
        p.add_argument("--pull", nargs="?", const="true", default="false", help="always pull base images")
        p.add_argument("--label", action="append", default=[], metavar="K=V", help="label the image")
        p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
        p.add_argument("--network", default="host", choices=["default", "host", "none"], help="RUN's network")
        p.add_argument(
            "--progress", default="auto", choices=["auto", "plain", "tty"], help="plain explains misses"
        )
        p.add_argument("--platform", default=None, help="target platform (os/arch)")
        p.add_argument("--secret", action="append", default=[], help="id=ID,src=PATH or id=ID,env=VAR")
        p.add_argument("--iidfile", default=None, help="write the image ID to this file")
        p.add_argument(
            "--rm", nargs="?", const="true", default="true", help="(always) remove step containers"
        )
        p.add_argument("--force-rm", action="store_true", help="(always) remove step containers")
        p.add_argument("-j", "--jobs", type=int, default=2, help="stages built at once (default 2)")
        _client_parsers_common(p)
    bp = sub.add_parser("builder", help="manage the build cache")
    bsub = bp.add_subparsers(dest="sub", parser_class=_Parser, required=True)
    pr = bsub.add_parser("prune", help="remove build cache")
    pr.add_argument("-a", "--all", action="store_true", help="also remove cache mounts")
    pr.add_argument("-f", "--force", action="store_true", help="do not prompt")


def _key_values(items: list[str], what: str, from_env: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid {what} {item!r}: use KEY=VALUE")
        if not eq:
            if not from_env:
                raise UsageError(f"invalid {what} {item!r}: use KEY=VALUE")
            if key not in os.environ:
                continue  # docker: --build-arg NAME takes NAME from the environment, if set
            value = os.environ[key]
        out[key] = value
    return out


def _secrets(items: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for item in items:
        fields = dict(f.partition("=")[::2] for f in item.split(","))
        ident = fields.get("id", "")
        if not ident:
            raise UsageError(f"invalid --secret {item!r}: use id=ID,src=PATH or id=ID,env=VAR")
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
            raise errors.NotFound(f"--secret {item}: {exc.strerror}: {src}") from exc
    return out


def _build_inputs(args: argparse.Namespace, stack: Any) -> tuple[Path | None, bytes, Path | None]:
    """(context dir or None, Dockerfile content, Dockerfile path) as docker resolves them."""
    import tempfile

    if args.context == "-":
        data = sys.stdin.buffer.read()
        from builder.context import looks_like_tar

        if not looks_like_tar(data):
            return None, data, None
        ctx = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-ctx-")))
        from builder.context import extract_context

        extract_context(data, ctx)
    else:
        if args.context.startswith(("http://", "https://", "git@", "git://")):
            raise UsageError("a URL or git build context is not supported: clone it and give the directory")
        ctx = Path(args.context)
        if not ctx.is_dir():
            raise errors.NotFound(f'unable to prepare context: path "{args.context}" not found')
    if args.file == "-":
        return ctx, sys.stdin.buffer.read(), None
    path = Path(args.file) if args.file else ctx / "Dockerfile"
    try:
        return ctx, path.read_bytes(), path
    except OSError as exc:
        raise errors.NotFound(
            f"unable to prepare context: cannot read Dockerfile {path}: {exc.strerror}"
        ) from exc


_BOOL_WORDS = ("true", "false", "1", "0", "yes", "no", "always", "never", "missing")


@command("build")
@command("image build")
def cmd_build(args: argparse.Namespace) -> int:
    import contextlib

    from builder.build import build
    from builder.errors import BuildFailed, DockerfileError
    from builder.options import BuildOptions
    from imagefmt.reference import Reference
    from registry.fetch import fetch

    if args.pull.lower() not in _BOOL_WORDS:  # '--pull CONTEXT': argparse took the context as --pull's value
        if args.context is not None:
            raise UsageError(f"invalid value {args.pull!r} for --pull: use --pull or --pull=true|false")
        args.context, args.pull = args.pull, "true"
    if args.context is None:
        raise UsageError('"build" requires exactly 1 argument: the context directory, or -')
    try:
        tags = tuple(Reference.parse(t) for t in args.tag)
    except errors.Invalid as exc:
        raise UsageError(f"invalid argument for -t: {exc}") from exc
    build_args = _key_values(args.build_arg, "--build-arg", from_env=True)
    sde_text = build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH") or ""
    if sde_text and not sde_text.isdigit():
        raise UsageError(f"invalid SOURCE_DATE_EPOCH {sde_text!r}: use seconds since the epoch")
    held = bytearray()
    stdout = sys.stdout.buffer

    def out(data: bytes) -> None:
        if args.quiet:
            held.extend(data)
        else:
            stdout.write(data)
            stdout.flush()

    with contextlib.ExitStack() as stack:
        ctx, dockerfile, path = _build_inputs(args, stack)
        opts = BuildOptions(
            dockerfile=dockerfile,
            context=ctx,
            dockerfile_path=path,
            tags=tags,
            build_args=build_args,
            target=args.target,
            no_cache=args.no_cache,
            cache_from=tuple(args.cache_from),
            labels=_key_values(args.label, "--label"),
            network="host" if args.network == "default" else args.network,
            secrets=_secrets(args.secret),
            platform=args.platform,
            quiet=args.quiet,
            explain=args.progress == "plain",
            source_date_epoch=int(sde_text) if sde_text else None,
            jobs=args.jobs,
            pull=lambda name: _pull_base(args, name, out),
            always_pull=args.pull.lower() in ("true", "1", "yes", "always"),
            fetch=fetch,
        )
        try:
            image = build(store_of(args), opts, out)
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
    if args.iidfile:
        Path(args.iidfile).write_text(str(image.id))
    if args.quiet:
        print(image.id)
    return 0


def _pull_base(args: argparse.Namespace, name: str, out: Callable[[bytes], None], lines: Any = None) -> Any:
    """An image that is not in the store (a build's base, run's image): pulled as
    'pull NAME' would, with docker's lines through ``out`` and the layers' on
    ``lines`` (stdout when None; progress bars on a terminal)."""
    from imagefmt.reference import Reference

    ref = Reference.parse(name, default_tag=False)
    ref = ref if (ref.tag or ref.digest) else ref.with_tag("latest")
    store = store_of(args)
    out(f"{ref.tag or ref.digest}: Pulling from {ref.path}\n".encode())
    with _client(args, platform=_platform(args), strict_platform=bool(args.platform)) as client:
        bars = LayerProgress(enabled=not args.quiet, lines=lines)
        try:
            result = client.pull(store, ref, bars)
        finally:
            bars.close()
    status = "Downloaded newer image for" if result.updated else "Image is up to date for"
    out(f"Digest: {result.digest}\nStatus: {status} {ref.familiar()}\n".encode())
    return store.image(str(ref))


@command("builder prune")
def cmd_builder_prune(args: argparse.Namespace) -> int:
    from builder.cache import BuildCache

    if not args.force and not _confirm(
        "WARNING! This will remove all build cache."
        if args.all
        else "WARNING! This will remove all dangling build cache."
    ):
        return 0
    lines, freed = BuildCache(store_of(args)).prune(all_cache=args.all)
    print_pruned("Deleted build cache objects", lines)
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def _build_cache_df(args: argparse.Namespace) -> tuple[str, int, int, int, int]:
    from builder.cache import BuildCache

    count, active, size, reclaimable = BuildCache(store_of(args)).usage()
    return "Build Cache", count, active, size, reclaimable


def _prune_build_cache(args: argparse.Namespace) -> tuple[list[str], int]:
    from builder.cache import BuildCache

    lines, freed = BuildCache(store_of(args)).prune(all_cache=getattr(args, "all", False))
    return (["Deleted build cache objects:", *lines, ""] if lines else []), freed


DF_ROWS.append(_build_cache_df)
PRUNERS.append(_prune_build_cache)


# ------------------------------------------------------------------ main ---


def main(argv: Sequence[str] | None = None) -> int:
    if os.environ.get("DOCKYARD_TRACE"):
        from runtime import trace

        trace.mark("main")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "-D" in argv or "--debug" in argv
    try:
        args = build_parser(argv).parse_args(argv)
        if args.version:
            print(f"dockyard version {VERSION}")
            return 0
        if not args.cmd:
            build_parser().print_help()
            return 0
        if args.root is None:
            args.root = default_root()
        key = args.cmd if args.cmd in COMMANDS else f"{args.cmd} {getattr(args, 'sub', '')}".strip()
        if key != "run":  # run collects once its container is up
            collect_garbage()
        if os.environ.get("DOCKYARD_TRACE"):
            from runtime import trace

            trace.mark("parsed")
        return COMMANDS[key](args)
    except UsageError as exc:
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
    import gc

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
    import gc

    gc.disable()
    argv = sys.argv[1:]
    code = main(argv)
    if os.environ.get("DOCKYARD_TRACE"):
        from runtime import trace

        trace.mark("end")
    if _verb(argv) in FAST_EXIT:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
