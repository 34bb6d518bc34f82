"""``COPY --parents``: sources keep their parent directories under the destination
(BuildKit's semantics, Dockerfile frontend 1.7).

``COPY --parents x/a.txt y/*/b.txt /dst/`` writes ``/dst/x/a.txt`` and
``/dst/y/<dir>/b.txt``; a directory source keeps its own path too
(``COPY --parents x/dir /dst/`` gives ``/dst/x/dir/…``).  A ``/./`` in a source
is the pivot: only the parents after it are kept (``COPY --parents
./x/./y/a.txt /dst/`` gives ``/dst/y/a.txt``).  The destination is always a
directory.  Sources come from the context or, with ``--from``, from another
stage's or image's file system.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Sequence

from builder.copier import Source
from builder.errors import DockerfileError


def split_pivot(pattern: str) -> tuple[str, str]:
    """(the part before the ``/./`` pivot, the whole source path) of a ``--parents`` source."""
    body = pattern[2:] if pattern.startswith("./") else pattern
    head, sep, _ = body.partition("/./")
    if not sep:
        return "", pattern
    return posixpath.normpath(head).strip("/"), pattern


def with_parents(
    patterns: Sequence[str], select: Callable[[str], list[tuple[str, Source]]], line: int
) -> list[Source]:
    """The sources of ``patterns`` with their kept parents set; ``select(pattern)``
    gives each match's path (from the context or image root) and its source."""
    out = []
    for pattern in patterns:
        pivot, whole = split_pivot(pattern)
        for path, src in select(whole):
            path = posixpath.normpath("/" + path).strip("/")
            if pivot:
                if path != pivot and not path.startswith(pivot + "/"):
                    raise DockerfileError(f"COPY --parents {pattern}: {path} is not below {pivot}", line)
                path = path[len(pivot) :].lstrip("/")
            kept = tuple(p for p in path.split("/") if p)
            out.append(dataclasses.replace(src, parents=kept))
    return out
