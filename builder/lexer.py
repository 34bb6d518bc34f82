"""Dockerfile variable substitution: a port of moby's shell lexer (buildkit frontend/dockerfile/shell/lex.go).

``expand(word, env)`` processes one word as the Dockerfile reference says:
``$v``, ``${v}``, ``${v:-w}``, ``${v-w}``, ``${v:+w}``, ``${v+w}``, ``${v:?msg}``,
``${v?msg}``; single quotes keep everything literal, double quotes keep all
but ``$`` and the escape token, and the escape token escapes the next
character.  Quotes are removed, as Docker removes them from ENV values.
``expand_words`` also splits the result into words on unquoted whitespace
(EXPOSE, VOLUME, USER…).  Values that come from variables are never re-split
for quotes, only for whitespace when splitting words.
"""

from __future__ import annotations

from collections.abc import Mapping

from imagefmt.errors import Invalid


class SubstitutionError(Invalid):
    """A malformed ``${…}`` or an unterminated quote."""


def failed_to_process(word: str, err: SubstitutionError) -> str:
    """docker's message for a word it could not expand: ``failed to process "…": …``."""
    import json

    return f"failed to process {json.dumps(word, ensure_ascii=False)}: {err}"


class _Words:
    """moby's wordsStruct: collects words, splitting on whitespace outside quotes."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, quotes: bool) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.quotes = quotes  # False: quotes are ordinary characters (heredoc bodies)
        # escape "": backslashes are ordinary characters too

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def process(self, stop: str = "") -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "$":
                value = self.dollar()
                result.append(value)
                words.add_string(value)
            elif self.quotes and ch in "'\"":
                value = self.single_quote() if ch == "'" else self.double_quote()
                result.append(value)
                words.add_raw(value)
            else:
                ch = self.next()
                if self.escape and ch == self.escape:
                    ch = self.next()
                    if not ch:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise SubstitutionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise SubstitutionError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise SubstitutionError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                nxt = self.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out: list[str] = []
        while self.peek():
            ch = self.peek()
            if not out and ch.isdigit():
                while self.peek().isdigit():
                    out.append(self.next())
                return "".join(out)
            if not out and ch in "@*#?-$!":  # special parameters
                return self.next()
            if not (ch.isalnum() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()
        if not self.peek():
            raise SubstitutionError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise SubstitutionError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        modifier = self.next() if colon else ch
        if modifier not in ("+", "-", "?"):
            if not ch:
                raise SubstitutionError("syntax error: missing '}'")
            raise SubstitutionError(f"unsupported modifier ({modifier}) in substitution")
        try:
            word, _ = self.process("}")
        except SubstitutionError:
            raise SubstitutionError("syntax error: missing '}'") from None
        found = name in self.env
        value = self.env.get(name, "")
        unset = not found or (colon and value == "")
        if modifier == "-":
            return word if unset else value
        if modifier == "+":
            return "" if unset else word
        if unset:  # "?"
            default = "is not allowed to be empty" if found else "is not allowed to be unset"
            raise SubstitutionError(f"{name}: {word or default}")
        return value


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Substitute variables in ``word`` and remove its quotes; raise SubstitutionError."""
    result, _ = _Lexer(word, env, escape, True).process()
    return result


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """``expand`` and split into words on whitespace outside quotes."""
    _, words = _Lexer(text, env, escape, True).process()
    return words


def expand_heredoc(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """An unquoted heredoc body (``COPY <<EOF``), as BuildKit reads it: variables are
    substituted, quotes are ordinary characters, and the escape token keeps the next
    character as it is (``\\$`` is ``$``, ``\\\\`` is ``\\``, a ``\\`` before a newline
    leaves the newline)."""
    result, _ = _Lexer(text, env, escape, False).process()
    return result


def split_words(rest: str, escape: str = "\\") -> list[str]:
    """moby's parseWords: split on whitespace outside quotes, keeping quotes and escapes
    (ENV, LABEL, ARG: each word is then ``expand``-ed)."""
    words: list[str] = []
    word = ""
    quote = ""
    blank_ok = False
    in_word = False
    i = 0
    while i < len(rest):
        ch = rest[i]
        if not in_word and not quote:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == len(rest):
                    i += 1
                    continue
                word += ch
                i += 1
                ch = rest[i]
            word += ch
            i += 1
            continue
        if ch.isspace():
            if blank_ok or word:
                words.append(word)
            word, blank_ok, in_word = "", False, False
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            blank_ok = True
        elif ch == escape:
            if i + 1 == len(rest):
                i += 1
                continue
            word += ch
            i += 1
            ch = rest[i]
        word += ch
        i += 1
    if in_word and (blank_ok or word):
        words.append(word)
    return words
