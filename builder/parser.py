"""Dockerfile text to typed instructions and stages.

dockerfile-parse splits the file into instructions (line continuations,
comments, the ``# escape=`` directive).  It knows nothing of heredocs
(containerbuildsystem/dockerfile-parse#145), so ``parse`` first lifts every
heredoc body out of the text (leaving blank lines, so that line numbers stay
right) and attaches it to its instruction.  Each instruction's ``--flags``
are typed by ``builder.flags``.  Arguments are not expanded here: that needs
the build's ARG and ENV values, known only while building.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

from builder.errors import DockerfileError
from builder.flags import NO_FLAGS, F, Flags, FromFlags, parse_flags

KEYWORDS = frozenset(
    "ADD ARG CMD COPY ENTRYPOINT ENV EXPOSE FROM HEALTHCHECK LABEL MAINTAINER ONBUILD "
    "RUN SHELL STOPSIGNAL USER VOLUME WORKDIR".split()
)
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"^(\d*)<<(-?)(.*)$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")


@dataclass(frozen=True, slots=True)
class Heredoc:
    """One ``<<NAME`` body; ``expand`` is False when the delimiter was quoted."""

    name: str
    content: str
    expand: bool = True


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction as written: ``args`` is the text after the keyword and
    its ``--flags`` (typed in ``flags``); ``original`` is what ``Step N/M :`` prints."""

    keyword: str
    args: str
    line: int
    original: str
    flags: Flags = NO_FLAGS
    heredocs: tuple[Heredoc, ...] = ()
    end_line: int = 0

    def flags_as(self, kind: type[F]) -> F:
        """The flags as the parser typed them for this keyword (``kind()`` when it has none)."""
        return self.flags if isinstance(self.flags, kind) else kind()

    def check_flag(self, name: str) -> None:
        """Raise the problem the parser found with ``--name`` (DockerfileError), if any."""
        for flag, message in self.flags.problems:
            if flag == name:
                raise DockerfileError(message, self.line)

    def json_args(self) -> list[str] | None:
        """The exec (JSON array of strings) form of ``args``, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        return None


@dataclass(frozen=True, slots=True)
class Stage:
    """``FROM base [AS name]`` and the instructions up to the next FROM."""

    index: int
    name: str | None
    base: str
    platform: str | None
    instruction: Instruction
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True, slots=True)
class Dockerfile:
    escape: str
    directives: dict[str, str]
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...] = field(default=())

    def stage(self, ref: str) -> Stage | None:
        """A stage by name (case-insensitive) or index."""
        low = ref.lower()
        for s in self.stages:
            if s.name == low:
                return s
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


# --------------------------------------------------------------------- directives ---


def read_directives(lines: list[str]) -> dict[str, str]:
    """Parser directives (``# syntax=``, ``# escape=``, ``# check=``) at the very top."""
    found: dict[str, str] = {}
    for line in lines:
        m = _DIRECTIVE.match(line.strip())
        if not m:
            break
        key = m.group(1).lower()
        if key in found:
            raise DockerfileError(f"only one {key} parser directive can be used")
        found[key] = m.group(2)
    escape = found.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"invalid escape token '{escape}' does not match ` or \\")
    return found


# ------------------------------------------------------------------------ heredocs ---


def _heredoc_markers(text: str) -> list[tuple[str, bool, bool]]:
    """(name, strip_tabs, expand) for every ``<<NAME`` word of an instruction."""
    out = []
    for word in text.split():
        m = _HEREDOC.match(word)
        if not m or not m.group(3):
            continue
        raw = m.group(3)
        quoted = raw[0] in "'\"" and raw[-1] == raw[0] and len(raw) > 1
        name = raw[1:-1] if quoted else raw
        if re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            out.append((name, m.group(2) == "-", not quoted))
    return out


def lift_heredocs(lines: list[str], escape: str) -> tuple[list[str], dict[int, list[Heredoc]]]:
    """Remove heredoc bodies from ``lines`` (0-based); return the new lines and the
    bodies keyed by their instruction's first line (0-based)."""
    out = list(lines)
    bodies: dict[int, list[Heredoc]] = {}
    cont = re.compile(r"^.*" + re.escape(escape) + r"\s*$")
    i = 0
    start = -1
    text = ""
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if start < 0:
            if not stripped or stripped.startswith("#"):
                i += 1
                continue
            start, text = i, ""
        elif not stripped or stripped.startswith("#"):  # an empty or comment line inside one
            i += 1
            continue
        text += line.rstrip("\n").rstrip().removesuffix(escape) + " "
        i += 1
        if cont.match(line.rstrip("\n")):
            continue
        keyword = text.split(None, 1)[0].upper() if text.strip() else ""
        markers = _heredoc_markers(text) if keyword in ("RUN", "COPY", "ADD") else []
        for name, strip_tabs, expand in markers:
            body: list[str] = []
            while i < len(lines):
                raw = lines[i].rstrip("\n")
                out[i] = "\n"
                i += 1
                if (raw.lstrip("\t") if strip_tabs else raw) == name:
                    break
                body.append(raw.lstrip("\t") if strip_tabs else raw)
            else:
                raise DockerfileError(f"unterminated heredoc {name}", start + 1)
            content = "".join(b + "\n" for b in body)
            bodies.setdefault(start, []).append(Heredoc(name, content, expand))
        start = -1
    return out, bodies


def heredoc_name(word: str) -> str | None:
    """The delimiter of a ``<<NAME`` word (quotes and ``-`` removed), or None."""
    if not word.startswith("<<"):
        return None
    name = word[2:].lstrip("-")
    if len(name) > 1 and name[0] in "'\"" and name[-1] == name[0]:
        name = name[1:-1]
    return name or None


# ------------------------------------------------------------------------- parsing ---


def continue_over_empty_lines(lines: list[str], escape: str) -> list[str]:
    """Empty lines inside a continued instruction, as docker skips them: each becomes a
    lone escape token (an empty continued line, for dockerfile-parse, which would end
    the instruction there), unless only empty lines and comments follow it."""
    out = list(lines)
    continued = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if not stripped:
            if continued and any(s.strip() and not s.strip().startswith("#") for s in lines[i + 1 :]):
                out[i] = escape + "\n"
            continue
        continued = line.rstrip().endswith(escape)
    return out


def parse_error(message: str, line: int) -> DockerfileError:
    """An error in the Dockerfile's text, found before any step runs, in docker's words."""
    return DockerfileError(f"dockerfile parse error line {line}: {message}", line)


ONE_ARGUMENT = frozenset(("MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR"))
NO_ARGUMENT_OK = frozenset(("CMD", "ENTRYPOINT", "RUN"))  # docker runs an empty command


def make_instruction(
    keyword_raw: str, value: str, line: int, end_line: int = 0, heredocs: tuple[Heredoc, ...] = ()
) -> Instruction:
    """One Instruction from its keyword as written and its argument text; raise DockerfileError
    (``dockerfile parse error line N: …``) where docker's ``instructions.Parse`` does."""
    keyword = keyword_raw.upper()
    if keyword not in KEYWORDS:
        raise parse_error(f"unknown instruction: {keyword}", line)
    value = value.strip()
    original = f"{keyword_raw} {value}".rstrip()
    flags, args = parse_flags(keyword, value, line)
    ins = Instruction(keyword, args, line, original, flags, heredocs, end_line or line)
    _check_arguments(ins, value)
    return ins


def _check_arguments(ins: Instruction, value: str) -> None:
    """docker's argument-count checks (and ARG's blank name), by keyword."""
    keyword, line = ins.keyword, ins.line
    # HEALTHCHECK's flags count as arguments here: a lone "--interval=5s" fails when the step runs
    if not (value if keyword == "HEALTHCHECK" else ins.args) and not ins.heredocs:
        if keyword in ONE_ARGUMENT:
            raise parse_error(f"{keyword} requires exactly one argument", line)
        if keyword not in NO_ARGUMENT_OK and keyword not in ("COPY", "ADD"):
            raise parse_error(f"{keyword} requires at least one argument", line)
    if keyword in ("COPY", "ADD"):
        form = ins.json_args()
        words = form if form is not None else ins.args.split()
        if len(words) < 2:
            raise parse_error(
                f"{keyword} requires at least two arguments, but only one was provided. "
                "Destination could not be determined",
                line,
            )
    elif keyword == "ARG":
        for word in ins.args.split():
            if word.startswith("="):
                raise parse_error("ARG names can not be blank", line)
    elif keyword == "HEALTHCHECK":
        words = ins.args.split()
        if words and words[0].upper() == "NONE" and len(words) > 1:
            raise parse_error("HEALTHCHECK NONE takes no arguments", line)


def parse_line(text: str, line: int = 0) -> Instruction:
    """One instruction from a single line (ONBUILD triggers)."""
    parts = text.strip().split(None, 1)
    if not parts:
        raise DockerfileError("empty instruction", line)
    return make_instruction(parts[0], parts[1] if len(parts) > 1 else "", line)


def parse(source: bytes | str) -> Dockerfile:
    """Parse a whole Dockerfile; raise DockerfileError (with the line) for bad syntax."""
    from dockerfile_parse import DockerfileParser

    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    directives = read_directives(lines)
    escape = directives.get("escape", "\\")
    lifted, bodies = lift_heredocs(lines, escape)
    # dockerfile-parse drops a last instruction that ends in a continuation or lacks its newline
    body = "".join(continue_over_empty_lines(lifted, escape))
    body += "\n\n"
    parser = DockerfileParser(fileobj=io.BytesIO(body.encode()), cache_content=False)
    instructions: list[Instruction] = []
    for item in parser.structure:
        if item["instruction"] == "COMMENT":
            continue
        start = item["startline"]
        content: str = item["content"]
        keyword_raw = content.split(None, 1)[0]
        value = item["value"] or ""
        heredocs = tuple(bodies.get(start, ()))
        instructions.append(make_instruction(keyword_raw, value, start + 1, item["endline"] + 1, heredocs))
    return _stages(instructions, escape, directives)


def _stages(instructions: list[Instruction], escape: str, directives: dict[str, str]) -> Dockerfile:
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    current: Instruction | None = None
    body: list[Instruction] = []
    names: set[str] = set()

    def close() -> None:
        if current is None:
            return
        words = current.args.split()
        name = None
        if len(words) == 3 and words[1].lower() == "as":
            name = words[2].lower()
            if not _STAGE_NAME.match(name):
                raise parse_error(
                    f"invalid name for build stage: {json.dumps(words[2])}, name can't start with a number "
                    "or contain symbols",
                    current.line,
                )
            if name in names:
                raise DockerfileError(f"{name} stage name already used", current.line)
            names.add(name)
        elif len(words) != 1:
            raise parse_error("FROM requires either one or three arguments", current.line)
        platform = current.flags_as(FromFlags).platform
        stages.append(Stage(len(stages), name, words[0], platform, current, tuple(body)))

    for ins in instructions:
        if ins.keyword == "FROM":
            close()
            current, body = ins, []
        elif current is None:
            if ins.keyword != "ARG":
                raise DockerfileError("no build stage in current context", ins.line)
            global_args.append(ins)
        else:
            body.append(ins)
    close()
    if not stages:
        raise DockerfileError(
            "the Dockerfile has no FROM instruction" if instructions else "file with no instructions"
        )
    return Dockerfile(escape, directives, tuple(global_args), tuple(stages))
