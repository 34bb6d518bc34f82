"""The ``created_by`` strings Docker's classic builder writes into image history.

They are Go format verbs applied to Go values (``%q`` of a []string, ``%v``
of a struct pointer), so they are rebuilt here the same way: ``docker
history`` of our images reads like that of Docker's.
"""

from __future__ import annotations

import json
from typing import Any


def go_quote(text: str) -> str:
    """Go's strconv.Quote (close enough: JSON escaping, non-ASCII kept)."""
    return json.dumps(text, ensure_ascii=False)


def go_quote_list(items: list[str]) -> str:
    """``%q`` of a []string: ``["a" "b c"]``."""
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def go_list(items: list[str]) -> str:
    """``%v`` of a []string: ``[a b c]``."""
    return "[" + " ".join(items) + "]"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): ``1m30s``, ``500ms``, ``0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, div in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= div:
                return sign + _trim(ns / div) + unit
    hours, rem = divmod(ns, 3600 * 10**9)
    minutes, rem = divmod(rem, 60 * 10**9)
    secs = _trim(rem / 10**9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def go_rune(n: int) -> str:
    """``%q`` of an int: a quoted rune literal (``'\\x03'``, ``'A'``)."""
    if n == 39:
        return "'\\''"
    if n == 92:
        return "'\\\\'"
    if 32 <= n < 127:
        return f"'{chr(n)}'"
    named = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if n in named:
        return f"'{named[n]}'"
    if n < 128:
        return f"'\\x{n:02x}'"
    return f"'{chr(n)}'" if chr(n).isprintable() else f"'\\u{n:04x}'"


def healthcheck(hc: dict[str, Any]) -> str:
    """``HEALTHCHECK %q`` of Docker 20.10's HealthConfig."""
    return (
        "HEALTHCHECK &{"
        + go_quote_list(list(hc.get("Test") or []))
        + f" {go_quote(go_duration(int(hc.get('Interval') or 0)))}"
        + f" {go_quote(go_duration(int(hc.get('Timeout') or 0)))}"
        + f" {go_quote(go_duration(int(hc.get('StartPeriod') or 0)))}"
        + f" {go_rune(int(hc.get('Retries') or 0))}"
        + "}"
    )


def metadata(shell: list[str], comment: str) -> str:
    """A metadata step: ``/bin/sh -c #(nop)  CMD ["sh"]`` (two spaces, as Docker)."""
    return " ".join([*shell, "#(nop) ", comment])


def nop(shell: list[str], comment: str) -> str:
    """WORKDIR, COPY and ADD: ``/bin/sh -c #(nop) WORKDIR /app`` (one space)."""
    return " ".join([*shell, f"#(nop) {comment}"])


def run(argv: list[str], args: list[str]) -> str:
    """A RUN: ``|1 FOO=bar /bin/sh -c echo $FOO`` when build args are in effect."""
    prefix = [f"|{len(args)}", *sorted(args)] if args else []
    return " ".join([*prefix, *argv])
