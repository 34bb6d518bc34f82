"""Image holds: a container holds its image while it exists, so that rmi and image
prune spare the image (imagefmt.catalog keeps them); a removed container gives its
hold back."""

from __future__ import annotations

from imagefmt import errors
from imagefmt.catalog import Catalog
from imagefmt.digest import Digest
from runtime.container.store import Container


def release_image(catalog: Catalog, c: Container) -> None:
    """Give back the hold a removed container had on its image (best effort)."""
    try:
        catalog.remove_hold(Digest.parse(c.record["Image"]), c.id)
    except (errors.DockyardError, OSError):
        pass
