"""Docker credential helpers: the programs ``docker-credential-<name>`` on PATH that keep
registry secrets in a keychain (``pass``, ``secretservice``, ``osxkeychain``,
``ecr-login``…).  We speak to them as docker-credential-helpers' ``client`` package does,
one run per call, the action as the only argument::

    get    stdin: the server URL     stdout: {"ServerURL": …, "Username": …, "Secret": …}
    store  stdin: {"ServerURL": …, "Username": …, "Secret": …}
    erase  stdin: the server URL

A helper with nothing stored for the URL exits non-zero and says
``credentials not found in native keychain``.  Only :mod:`registry.client.credentials` decides
which helper (if any) holds a registry's secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from imagefmt.errors import Invalid

PREFIX = "docker-credential-"
NOT_FOUND = "credentials not found in native keychain"
# docker stores an identity token (an OAuth refresh token) under this user name.
TOKEN_USERNAME = "<token>"


class HelperError(Invalid):
    """A credential helper is missing from PATH, cannot run, or failed."""


@dataclass(frozen=True, slots=True)
class Helper:
    """One helper as a Docker config names it.

    ``setting`` and ``config`` say where it is named (``credsStore`` or
    ``credHelpers["host"]`` in that file), so that every error can name the fix."""

    name: str  # the suffix: "pass" runs docker-credential-pass
    setting: str
    config: Path

    @property
    def program(self) -> str:
        return PREFIX + self.name

    def get(self, server_url: str) -> tuple[str, str] | None:
        """The (username, secret) the helper keeps for ``server_url``, or None.

        Raise HelperError when it is missing, fails or answers something else than JSON."""
        out = self._run("get", server_url.encode())
        if out is None:
            return None
        try:
            doc = json.loads(out)
            username, secret = doc.get("Username", ""), doc.get("Secret", "")
        except (ValueError, AttributeError) as err:
            raise self._error("get", "answered no JSON object") from err
        if not isinstance(username, str) or not isinstance(secret, str):
            raise self._error("get", "answered a Username or Secret that is not a string")
        return username, secret

    def store(self, server_url: str, username: str, secret: str) -> None:
        """Keep ``secret`` for ``server_url`` (replacing any older one).  Raise HelperError."""
        doc = {"ServerURL": server_url, "Username": username, "Secret": secret}
        if self._run("store", json.dumps(doc).encode()) is None:
            raise self._error("store", NOT_FOUND)

    def erase(self, server_url: str) -> bool:
        """Forget the secret of ``server_url``; False when the helper had none.  Raise HelperError."""
        return self._run("erase", server_url.encode()) is not None

    def _run(self, action: str, stdin: bytes) -> bytes | None:
        """The helper's stdout, or None when it reports that it has no credentials."""
        import subprocess  # only when a helper is configured: start-up time matters

        if not self.name or "/" in self.name:  # a name, looked up on PATH, never a path
            raise HelperError(
                f"{self.setting} in {self.config} is {self.name!r}: name a helper, such as 'pass'"
            )
        try:
            proc = subprocess.run([self.program, action], input=stdin, capture_output=True, check=False)
        except FileNotFoundError as err:
            raise HelperError(
                f"credential helper {self.program} not found in PATH: "
                f"install it or remove {self.setting} from {self.config}"
            ) from err
        except OSError as err:  # not executable, a bad interpreter line…
            raise self._error(action, f"cannot run: {err.strerror or err}") from err
        if proc.returncode == 0:
            return proc.stdout
        said = [_one_line(proc.stdout), _one_line(proc.stderr)]
        if any(NOT_FOUND in s for s in said):
            return None
        why = "; ".join(s for s in said if s) or "no message"
        rc = proc.returncode
        status = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
        raise self._error(action, f"failed ({status}): {why}")

    def _error(self, action: str, what: str) -> HelperError:
        return HelperError(
            f"credential helper {self.program} {action}: {what}: "
            f"fix the helper or remove {self.setting} from {self.config}"
        )


def _one_line(data: bytes, limit: int = 300) -> str:
    """A helper's message as one short line, for a one-line error."""
    text = " ".join(data.decode(errors="replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
