"""The Dockerfile interpreter: parse, plan stages, run steps, cache them.

``builder.build(store, options)`` builds an image; see ``builder.build``.
"""

from builder.errors import BuildFailed, DockerfileError

__all__ = ["BuildFailed", "DockerfileError"]
