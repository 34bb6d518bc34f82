"""Registry credentials where Docker keeps them, so that ``docker login`` and
``dockyard login`` share them.

``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``) says where each
registry's secret lives::

    {"auths": {"localhost:5000": {"auth": "<base64 user:password>"},
               "https://index.docker.io/v1/": {}},
     "credsStore": "pass",
     "credHelpers": {"123456789.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login"}}

The store of a registry is the helper ``credHelpers[key]`` names, else the one
``credsStore`` names, else the file itself (``auths``, base64, unencrypted); see
:mod:`registry.client.credhelper` for the helper programs.  As docker cli's native_store.go
does, a helper keeps the secret and ``auths`` gets an empty entry for the registry.
The key is ``https://index.docker.io/v1/`` for Docker Hub, else ``host[:port]``.
Other keys of the file (``HttpHeaders``, …) are kept untouched when we rewrite it;
it is written atomically with mode 0600.
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
from registry.client.credhelper import TOKEN_USERNAME, Helper

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


def _auths(doc: dict[str, Any]) -> dict[str, Any]:
    auths = doc.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise Invalid(f"read {config_path()}: auths is not a JSON object: fix or remove the file")
    return auths


def _helper(doc: dict[str, Any], key: str) -> Helper | None:
    """The helper that keeps ``key``'s secret, or None for the file (docker's
    getConfiguredCredentialStore: an exact ``credHelpers`` key wins over ``credsStore``)."""
    helpers = doc.get("credHelpers") or {}
    if isinstance(helpers, dict) and key in helpers:
        name, setting = helpers[key], f'credHelpers["{key}"]'
    else:
        name, setting = doc.get("credsStore") or "", "credsStore"
    if not isinstance(name, str):
        raise Invalid(f"read {config_path()}: {setting} is not a string: fix or remove it")
    return Helper(name, setting, config_path()) if name else None


def load(host: str) -> Credentials | None:
    """The stored credentials for ``host``, or None.

    Raise Invalid for a broken file, HelperError when its helper is missing or fails."""
    doc = _read()
    key = config_key(host)
    helper = _helper(doc, key)
    if helper is not None:  # as docker does, an ``auths`` secret does not count then
        found = helper.get(key)
        if found is None:
            return None
        username, secret = found
        if username == TOKEN_USERNAME:
            return Credentials("", "", secret)
        return Credentials(username, secret)
    auths = _auths(doc)
    name = _find_key(auths, host)
    entry = auths.get(name) if name else None
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
    if entry.get("username") or token:
        return Credentials(str(entry.get("username") or ""), str(entry.get("password") or ""), token)
    return None


def save(host: str, creds: Credentials) -> Path | None:
    """Store ``creds`` for ``host``, replacing any older entry.

    Return the file that now holds the password unencrypted, or None when a helper
    keeps it (``auths`` then gets an empty entry, as docker writes).  Raise Invalid
    for a broken file, HelperError when the helper is missing or fails (the file
    is then unchanged)."""
    doc = _read()
    key = config_key(host)
    helper = _helper(doc, key)
    auths = _auths(doc)
    old = _find_key(auths, host)
    if old is not None:
        del auths[old]
    if helper is not None:
        if creds.identity_token:
            helper.store(key, TOKEN_USERNAME, creds.identity_token)
        else:
            helper.store(key, creds.username, creds.password)
        auths[key] = {}
        _write(doc)
        return None
    entry: dict[str, str] = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
    if creds.identity_token:
        entry["identitytoken"] = creds.identity_token
    auths[key] = entry
    return _write(doc)


def erase(host: str) -> bool:
    """Forget the credentials for ``host``, in its helper and in ``auths``; False if
    there were none.  Raise HelperError when the helper is missing or fails (the
    file entry is then kept, as docker keeps it)."""
    doc = _read()
    key = config_key(host)
    helper = _helper(doc, key)
    # docker runs ``erase`` blindly and ignores its errors; asking first tells
    # "not logged in" apart from a helper that failed.
    erased = helper is not None and helper.get(key) is not None and helper.erase(key)
    auths = _auths(doc)
    name = _find_key(auths, host)
    if name is None:
        return erased
    del auths[name]
    _write(doc)
    return True
