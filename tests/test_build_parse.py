"""Dockerfile parsing, variable substitution and .dockerignore matching (no containers)."""

from __future__ import annotations

import pytest

from builder.dockerignore import Matcher, glob_match, read_patterns
from builder.errors import DockerfileError
from builder.flags import CopyFlags
from builder.lexer import SubstitutionError, expand, expand_words, split_words
from builder.parser import parse

ENV = {"A": "a", "EMPTY": "", "SP": "x y"}


@pytest.mark.parametrize(
    ("word", "want"),
    [
        ("$A", "a"),
        ("${A}", "a"),
        ("pre${A}post", "preapost"),
        ("${NOPE:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${NOPE-d}", "d"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${NOPE+alt}", ""),
        ("${NOPE:-${A}}", "a"),
        ("'$A'", "$A"),
        ('"$A b"', "a b"),
        (r"\$A", "$A"),
        (r'"\"q\""', '"q"'),
        ("$", "$"),
        ("a$", "a$"),
        ("$NOPE", ""),
    ],
)
def test_expand(word: str, want: str) -> None:
    assert expand(word, ENV) == want


def test_expand_errors_and_escape_token() -> None:
    with pytest.raises(SubstitutionError):
        expand("${A", ENV)
    with pytest.raises(SubstitutionError, match="NOPE: is not allowed to be unset"):
        expand("${NOPE:?}", ENV)
    assert expand("`$A", ENV, escape="`") == "$A"
    assert expand_words("$SP 'c d' e", ENV) == ["x", "y", "c d", "e"]


def test_split_words_keeps_quotes() -> None:
    assert split_words('A=1 B="x y" C=$A') == ["A=1", 'B="x y"', "C=$A"]
    assert split_words(r"k=a\ b") == [r"k=a\ b"]


def test_parse_stages_flags_lines_and_continuations() -> None:
    df = parse(
        b"# syntax=docker/dockerfile:1\n"
        b"ARG BASE=busybox\n"
        b"FROM $BASE AS Build\n"
        b"RUN echo a \\\n"
        b"  # a comment inside\n"
        b"    b\n"
        b"COPY --from=build --chown=1:2 a /b\n"
        b"FROM --platform=linux/amd64 build\n"
        b'CMD ["sh"]\n'
    )
    assert [a.args for a in df.global_args] == ["BASE=busybox"]
    assert [s.name for s in df.stages] == ["build", None]
    run, copy = df.stages[0].instructions
    assert run.line == 4 and run.args == "echo a     b"
    assert copy.flags == CopyFlags(from_="build", chown="1:2") and copy.args == "a /b"
    assert df.stages[1].platform == "linux/amd64"
    assert df.stages[1].instructions[0].json_args() == ["sh"]
    assert df.directives == {"syntax": "docker/dockerfile:1"}


def test_parse_heredocs() -> None:
    df = parse(
        "FROM busybox\n"
        "RUN <<EOF\n"
        "echo one\n"
        "echo two\n"
        "EOF\n"
        'COPY <<-"A" <<B /dst/\n'
        "\tliteral $X\n"
        "\tA\n"
        "b $X\n"
        "B\n"
        "RUN echo after\n"
    )
    run, copy, after = df.stages[0].instructions
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo one\necho two\n"
    assert [(h.name, h.content, h.expand) for h in copy.heredocs] == [
        ("A", "literal $X\n", False),
        ("B", "b $X\n", True),
    ]
    assert after.line == 11 and after.args == "echo after"


def test_parse_escape_directive() -> None:
    df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\n")
    assert df.escape == "`"
    assert df.stages[0].instructions[0].args == "echo a   b"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("FROM busybox\nFOO bar\n", "unknown instruction: FOO", 2),
        ("RUN true\n", "no build stage in current context", 1),
        ("FROM busybox AS 1x\n", "invalid name for build stage", 1),
        ("FROM a AS x\nFROM b AS X\n", "x stage name already used", 2),
        ("FROM busybox\nCOPY --bogus a b\n", "Unknown flag: bogus", 2),
        ("FROM busybox\nRUN <<EOF\nno end\n", "unterminated heredoc", 2),
        ("# escape=x\nFROM busybox\n", "invalid escape token", 0),
    ],
)
def test_parse_errors(text: str, message: str, line: int) -> None:
    with pytest.raises(DockerfileError, match=message) as info:
        parse(text)
    assert info.value.line == line


def test_dockerignore_rules() -> None:
    patterns = read_patterns(
        "# comment\n/node_modules\n*.log\n!keep.log\n**/*.tmp\ndocs/**\n!docs/README.md\n  \n"
    )
    assert patterns == ["node_modules", "*.log", "!keep.log", "**/*.tmp", "docs/**", "!docs/README.md"]
    m = Matcher(patterns)
    assert m.excluded("node_modules") and m.excluded("node_modules/x/y.js")  # parent matches
    assert m.excluded("a.log") and not m.excluded("keep.log") and not m.excluded("sub/a.log")
    assert m.excluded("a/b/c.tmp") and m.excluded("c.tmp")
    assert m.excluded("docs/x.md") and not m.excluded("docs/README.md")
    assert m.may_reinclude_below("docs") and not m.may_reinclude_below("node_modules")
    assert not m.excluded("src/main.py")


def test_go_filepath_match() -> None:
    assert glob_match("*.txt", "a.txt") and not glob_match("*.txt", "d/a.txt")
    assert glob_match("a?c", "abc") and not glob_match("a?c", "a/c")
    assert glob_match("[a-c]x", "bx") and glob_match("[^a-c]x", "dx") and not glob_match("[^a-c]x", "ax")
    assert glob_match(r"\*", "*") and not glob_match(r"\*", "a")
