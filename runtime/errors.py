"""The runtime's leaf errors, under the one hierarchy of ``imagefmt.errors``.

Each class's OCI code, HTTP status and CLI exit code are its base's (the table
is in imagefmt/errors.py).  ``docker run`` returns 125 when the runtime itself
failed; a StartFailed carries its own ``exit_code``: 125, 126 when the command
cannot be invoked, 127 when it cannot be found.
"""

from __future__ import annotations

from imagefmt.errors import Conflict, DockyardError, Invalid, NotFound


class RuntimeFailure(DockyardError):
    """Setting up or running a container failed (``run`` exits 125, other verbs 1)."""


class StartFailed(RuntimeFailure):
    """The container's process could not be started; ``exit_code`` is 125, 126 or 127."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UserNotFound(Invalid):
    """``-u`` names a user or group that the container's /etc files lack."""


class NoSuchContainer(NotFound):
    """No container has this name, ID or ID prefix."""


class NoSuchVolume(NotFound):
    """No volume has this name."""


class NoSuchNetwork(NotFound):
    """No network has this name or ID."""


class NameInUse(Conflict):
    """A container, volume or network name is taken."""


class ContainerRunning(Conflict):
    """The operation needs a stopped container (rm without -f, …)."""


class NotRunning(Conflict):
    """The operation needs a running container (exec, attach, kill, …)."""


class BadSpec(Invalid):
    """A malformed flag value: ``-p``, ``-v``, ``--memory``, ``--env-file`` … (docker's
    CLI refuses it while parsing: ``create`` exits 125)."""


class SpecRefused(BadSpec):
    """A well-formed option that docker's daemon, not its CLI, refuses: resources the
    host lacks, an unknown capability, log driver or option, a missing bind source
    (``create`` exits 1 for it, ``run`` 125)."""
