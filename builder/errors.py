"""The builder's leaf errors, under the one hierarchy of ``imagefmt.errors``.

``DockerfileError`` is a Dockerfile that cannot be built as written (bad syntax,
an unknown instruction, a missing COPY source); ``BuildFailed`` is a RUN whose
command failed, carrying the command's exit status as docker's CLI returns it.
"""

from __future__ import annotations

from imagefmt.errors import DockyardError, Invalid


class DockerfileError(Invalid):
    """A Dockerfile problem, at ``line`` (1-based; 0 when no line applies).  ``build``
    exits 1 for it, as docker does for every failure but a RUN's."""

    exit_code = 1

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


class BuildFailed(DockyardError):
    """A step failed while it ran: ``exit_code`` is what ``build`` exits with
    (the RUN command's own status, as ``docker build`` does)."""

    def __init__(
        self, message: str, exit_code: int = 1, line: int = 0, output: str = "", instruction: str = ""
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.line = line
        self.output = output
        self.instruction = instruction
