"""htpasswd files: the accounts of Basic auth and of the token endpoint, and the
``registry htpasswd`` admin verb.  Entries are bcrypt (``user:$2y$…``, what
``htpasswd -B`` writes and distribution accepts).  A valid bcrypt check is cached
in memory (keyed by the user, the password and the stored hash) because clients
send Basic credentials on every request and a bcrypt check costs tens of
milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from pathlib import Path

import bcrypt

from imagefmt.errors import Invalid

BCRYPT_MAX = 72  # bcrypt's key is at most 72 bytes; bcrypt 5 raises on longer ones


def htpasswd_entry(user: str, password: str, rounds: int = 10) -> str:
    """One ``user:$2y$…`` line, the form ``htpasswd -B`` writes."""
    if not user or ":" in user:
        raise Invalid(f"invalid user name {user!r}: it must be non-empty and without ':'")
    if len(password.encode()) > BCRYPT_MAX:
        raise Invalid(f"password longer than {BCRYPT_MAX} bytes: bcrypt uses only the first {BCRYPT_MAX}")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
    return f"{user}:$2y${hashed[4:]}"


def set_htpasswd_user(path: Path, user: str, password: str) -> None:
    """Add or replace ``user`` in an htpasswd file (created 0600)."""
    entry = htpasswd_entry(user, password)
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [ln for ln in lines if ln.strip().partition(":")[0] != user]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join([*kept, entry]) + "\n")
    os.replace(tmp, path)


def ensure_htpasswd(path: Path) -> str | None:
    """Create a missing htpasswd file with user ``docker`` and a random password,
    as distribution does; return that password (None when the file existed)."""
    if path.exists():
        return None
    password = secrets.token_urlsafe(18)
    path.parent.mkdir(parents=True, exist_ok=True)
    set_htpasswd_user(path, "docker", password)
    return password


class Htpasswd:
    """bcrypt entries of an htpasswd file, reloaded when its mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, bytes] = {}
        self._mtime = -1.0
        self._ok: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self._dummy: bytes | None = None

    def _load(self) -> dict[str, bytes]:
        mtime = self.path.stat().st_mtime
        with self._lock:
            if mtime != self._mtime:
                entries = {}
                for line in self.path.read_text().splitlines():
                    line = line.strip()
                    if line and not line.startswith("#") and ":" in line:
                        user, _, hashed = line.partition(":")
                        entries[user.strip()] = hashed.strip().encode()
                self._entries, self._mtime = entries, mtime
            return self._entries

    def verify(self, user: str, password: str) -> bool:
        """True when the password matches the user's bcrypt hash.  Unknown users
        are checked against a dummy hash so timing does not reveal them: both
        take the same path, whatever the password.  As in distribution (Go's
        bcrypt) and bcrypt before version 5, only a password's first 72 bytes
        count."""
        hashed = self._load().get(user)
        secret = password.encode()[:BCRYPT_MAX]
        key = hashlib.sha256(b"\0".join([user.encode(), secret, hashed or b""])).digest()
        if hashed is not None and key in self._ok:
            return True
        if self._dummy is None:
            self._dummy = bcrypt.hashpw(b"dummy", bcrypt.gensalt(10))
        try:
            ok = bcrypt.checkpw(secret, hashed or self._dummy) and hashed is not None
        except ValueError:  # not a bcrypt hash: distribution accepts bcrypt only
            return False
        if ok:
            with self._lock:
                if len(self._ok) > 4096:
                    self._ok.clear()
                self._ok[key] = time.time()
        return ok
