"""Go's text/template as docker's --format and inspect -f use it, with docker's functions.

Values print as Go prints docker's types (maps, structs, nil slices and pointers),
so that a template gives what ``docker … --format`` gives for the same JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from commands.errors import TemplateError, UsageError
from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


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
        for i, part in enumerate(parts):
            path += "." + part
            if isinstance(value, dict):
                if part not in value:
                    if part in _GO_OMITTED:  # a field of docker's type that its JSON omits when empty
                        value = _GO_OMITTED[part]
                        continue
                    if i and parts[i - 1] in _GO_MAPS:  # a Go map's missing key: no value
                        return None
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

    if hasattr(v, "to_json"):  # a record kept as its JSON (engine.events.Event): as it is
        return json.dumps(v.to_json(), separators=(",", ":"), ensure_ascii=False)

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
    return re.compile(pattern)  # re caches it


def _go_printf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use: %v %s %d %q %t %x %X %f %g %e %c %%."""
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
    "Volumes Labels ExposedPorts PortBindings Ports Networks Tmpfs Sysctls StorageOpt DriverOpts"
    " Attributes".split()
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
