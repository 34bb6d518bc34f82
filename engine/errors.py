"""The engine's leaf errors (the rest are imagefmt.errors classes)."""

from __future__ import annotations

from imagefmt import errors


class FilterInvalid(errors.Invalid):
    """A --filter the daemon does not know (an unknown key or value): its 400, and
    exit 1 from docker's CLI."""


class FilterSyntax(FilterInvalid):
    """A --filter that is not ``name=value``: docker's CLI refuses it while parsing
    the flag, so it exits 125 as for any flag error (commands.errors)."""

    exit_code = 125
