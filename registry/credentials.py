"""Registry credentials in Docker's ``config.json``, so that ``docker login`` and
``dockyard login`` share them.

The file is ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``)::

    {"auths": {"localhost:5000": {"auth": "<base64 user:password>"},
               "https://index.docker.io/v1/": {"auth": "…"}}}

Other keys (``credsStore``, ``HttpHeaders``, …) are kept untouched when we
rewrite it.  The file is written atomically with mode 0600.
Not supported: credential helpers (``credsStore``/``credHelpers``); an entry
kept by one is reported as missing.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefmt.errors import Invalid
from imagefmt.reference import DOCKER_HUB, DOCKER_HUB_ENDPOINT

# The key Docker has always used for Docker Hub in ``auths``.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and password (or an identity token, sent as a refresh token)."""

    username: str
    password: str
    identity_token: str = ""

    def __repr__(self) -> str:  # never print a secret by accident
        return f"Credentials(username={self.username!r}, password='***')"


def config_dir() -> Path:
    """``$DOCKER_CONFIG``, else ``~/.docker``."""
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


def config_path() -> Path:
    return config_dir() / "config.json"


def config_key(host: str) -> str:
    """The ``auths`` key for a registry host (Docker Hub has its historical URL)."""
    return DOCKER_HUB_KEY if host in (DOCKER_HUB, DOCKER_HUB_ENDPOINT, "index.docker.io") else host


def _bare(key: str) -> str:
    """``https://host:5000/v2/`` → ``host:5000``, as docker matches ``auths`` keys."""
    key = key.split("://", 1)[-1]
    return key.split("/", 1)[0]


def _read() -> dict[str, Any]:
    path = config_path()
    try:
        doc = json.loads(path.read_bytes() or b"{}")
    except FileNotFoundError:
        return {}
    except (ValueError, OSError) as err:
        raise Invalid(f"read {path}: {err}: fix or remove the file") from err
    if not isinstance(doc, dict):
        raise Invalid(f"read {path}: not a JSON object: fix or remove the file")
    return doc


def _write(doc: dict[str, Any]) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # a umask cannot widen it, but an existing file might be wider
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _find_key(auths: dict[str, Any], host: str) -> str | None:
    want = config_key(host)
    if want in auths:
        return want
    bare = _bare(want) if want == DOCKER_HUB_KEY else want
    return next((k for k in auths if _bare(k) == bare), None)


def load(host: str) -> Credentials | None:
    """The stored credentials for ``host``, or None.  Raise Invalid for a broken file."""
    auths = _read().get("auths") or {}
    key = _find_key(auths, host)
    entry = auths.get(key) if key else None
    if not isinstance(entry, dict):
        return None
    token = str(entry.get("identitytoken") or "")
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError) as err:
            raise Invalid(f"{config_path()}: the auth entry for {host} is not base64 user:password") from err
        if not sep:
            raise Invalid(f"{config_path()}: the auth entry for {host} is not base64 user:password")
        return Credentials(user, password, token)
    if entry.get("username"):
        return Credentials(str(entry["username"]), str(entry.get("password", "")), token)
    return None


def save(host: str, creds: Credentials) -> Path:
    """Store ``creds`` for ``host`` (replacing any older entry); return the file's path."""
    doc = _read()
    auths = doc.setdefault("auths", {})
    old = _find_key(auths, host)
    if old is not None:
        del auths[old]
    entry: dict[str, str] = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
    if creds.identity_token:
        entry["identitytoken"] = creds.identity_token
    auths[config_key(host)] = entry
    return _write(doc)


def erase(host: str) -> bool:
    """Forget the credentials for ``host``; False if there were none."""
    doc = _read()
    auths = doc.get("auths") or {}
    key = _find_key(auths, host)
    if key is None:
        return False
    del auths[key]
    _write(doc)
    return True
