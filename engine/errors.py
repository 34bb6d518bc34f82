"""The engine's leaf errors (the rest are imagefmt.errors classes)."""

from __future__ import annotations

from imagefmt import errors


class FilterInvalid(errors.Invalid):
    """A --filter that cannot be parsed or is not known: docker's CLI refuses it as a
    usage error (exit 2), its daemon with 400."""
