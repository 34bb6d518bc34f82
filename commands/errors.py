"""The command line's own errors: bad flags or arguments, and --format templates."""

from __future__ import annotations

from imagefmt import errors


class UsageError(Exception):
    """Bad flags or arguments: exit 2 with a one-line message."""


class TemplateError(errors.DockyardError):
    """A --format template that does not apply to the object (docker exits 1)."""
