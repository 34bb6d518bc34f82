""".dockerignore: moby/patternmatcher's rules, and Go's filepath.Match for COPY globs.

A pattern is a Go ``filepath.Match`` pattern over slash-separated paths
relative to the context, plus ``**`` for any number of directories (none
included).  ``!`` re-includes; the last pattern that matches a path decides;
a pattern also matches every path below a directory it matches
(``MatchesOrParentMatches``).  Lines starting with ``#`` are comments;
patterns are trimmed and cleaned (``filepath.Clean``) and lose a leading
``/``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache

from builder.errors import DockerfileError


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, as buildkit's dockerignore.ReadAll reads them."""
    out = []
    for lineno, line in enumerate(text.splitlines()):
        if lineno == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = posixpath.normpath(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern.lstrip("/") or "/"
        out.append("!" + pattern if invert else pattern)
    return out


def _class(pattern: str, i: int) -> tuple[str, int]:
    """Translate the ``[...]`` class starting at ``i``; return (regex, index after it).
    A class never matches ``/``, as in Go."""
    n = len(pattern)
    j = i + 1
    negate = j < n and pattern[j] == "^"
    if negate:
        j += 1
    items = ""
    while j < n and pattern[j] != "]":
        ch = pattern[j]
        if ch == "\\":
            j += 1
            if j >= n:
                break
            items += re.escape(pattern[j])
        else:
            items += "-" if ch == "-" else re.escape(ch)
        j += 1
    if j >= n or not items:
        raise DockerfileError(f"syntax error in pattern {pattern!r}")
    return ("[^/" + items + "]" if negate else "[" + items + "]"), j + 1


@lru_cache(maxsize=4096)
def compile_glob(pattern: str, doublestar: bool) -> re.Pattern[str]:
    """A regex for a Go filepath.Match pattern (``*`` and ``?`` never match ``/``),
    with patternmatcher's ``**`` when ``doublestar``.  Raise DockerfileError on bad syntax."""
    out = "^"
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if doublestar and i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out += ".*" if i >= n else "(.*/)?"
                continue
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            cls, i = _class(pattern, i)
            out += cls
            continue
        elif ch == "\\":
            if i + 1 < n:
                out += re.escape(pattern[i + 1])
                i += 2
                continue
            raise DockerfileError(f"syntax error in pattern {pattern!r}: trailing backslash")
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$", re.DOTALL)


def has_magic(pattern: str) -> bool:
    """Whether ``pattern`` has glob characters (Go's filepath.Glob hasMeta)."""
    return any(c in pattern for c in "*?[\\")


def glob_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match over slash-separated paths."""
    return compile_glob(pattern, False).match(name) is not None


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


class Matcher:
    """``MatchesOrParentMatches`` over a list of patterns (``!`` re-includes, last wins)."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            exclusion = p.startswith("!")
            if exclusion:
                p = p[1:]
                if not p:
                    raise DockerfileError('illegal exclusion pattern: "!"')
            p = posixpath.normpath(p)
            self.patterns.append(_Pattern(p, exclusion, compile_glob(p, True)))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether the context-relative ``path`` (no leading ``./``) is ignored."""
        matched = False
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            hit = p.regex.match(path) is not None
            if not hit and parents:
                hit = any(p.regex.match("/".join(parents[: i + 1])) for i in range(len(parents)))
            if hit:
                matched = not p.exclusion
        return matched

    def may_reinclude_below(self, directory: str) -> bool:
        """Whether some ``!`` pattern could re-include a path under the excluded
        ``directory`` (so the walk must descend into it)."""
        if not self.has_exclusions:
            return False
        prefix = directory + "/"
        for p in self.patterns:
            if p.exclusion and ((p.text + "/").startswith(prefix) or has_magic(p.text)):
                return True
        return False
