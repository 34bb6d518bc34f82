"""HTTP to one registry host: scheme and TLS choice, authentication, retries.

It knows nothing about images (ggcr's ``remote/transport``).  One
:class:`Transport` per registry host holds a ``requests.Session`` (whose
connection pool the parallel layer transfers share), the auth challenge the
registry answered ``GET /v2/`` with, and bearer tokens cached per scope set.

- Scheme: HTTPS, verified against the system CAs plus ``certs.d/<host>/*.crt``
  (Docker's layout; client certificates from ``*.cert``/``*.key``).  A
  registry named with ``--insecure-registry`` or ``DOCKYARD_INSECURE_REGISTRIES``
  gets HTTPS without verification, then plain HTTP (dockerd's order); a
  loopback one (insecure by default, as in Docker) plain HTTP first, then
  unverified HTTPS (``hosts.py`` holds these rules).
- Auth (DIST docs/spec/auth/token.md): a ``Bearer`` challenge sends us to its
  realm for a token with the scopes the request needs (anonymously, or with
  Basic credentials); a ``Basic`` challenge gets the credentials directly.
  ``Authorization`` is never forwarded to another host on a redirect
  (requests drops it).
- Retries: connection errors, 5xx and 429 are retried with exponential backoff
  for requests whose body can be sent again; the last error is raised.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urljoin

import requests

from imagefmt import errors
from registry import protocol
from registry.client.credentials import Credentials
from registry.client.hosts import (
    DEFAULT_CERTS_DIRS,
    ca_bundle,
    certs_d,
    default_certs_dirs,
    insecure_from_env,
    is_insecure,
    is_loopback,
    quiet_insecure_warning,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "dockyard/0.1.0"

Body = bytes | Callable[[], IO[bytes]] | None
"""A request body: bytes, or an opener called for each attempt (so a retry can
send it again; the opened object is closed after the attempt)."""


class Unavailable(errors.DockyardError):
    """The registry could not be reached, or failed (5xx, 429) on every attempt.

    A caller may try again later; for uploads it starts a new session."""


@dataclass(frozen=True)
class TransportOptions:
    """How to talk to registries.

    ``insecure_registries`` holds host[:port] names or CIDRs reached over
    unverified HTTPS or HTTP; ``secure_registries`` names hosts whose TLS is
    verified even on loopback (skopeo's ``--tls-verify=true``)."""

    insecure_registries: tuple[str, ...] = ()
    secure_registries: tuple[str, ...] = ()
    certs_dirs: tuple[Path, ...] = field(default_factory=lambda: default_certs_dirs())
    retries: int = 4
    backoff: float = 0.5
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    pool_size: int = 10
    user_agent: str = USER_AGENT


@dataclass
class _Token:
    value: str
    expires: float


class Transport:
    """HTTP to one registry host (``host[:port]``, e.g. ``registry-1.docker.io``).

    Thread-safe: the parallel transfers of a pull or push share it.  Close it
    (or use it as a context manager) to release connections and temp files."""

    def __init__(
        self,
        host: str,
        options: TransportOptions | None = None,
        credentials: Credentials | None = None,
        credentials_error: str = "",
    ) -> None:
        self.host = host
        self.options = options or TransportOptions()
        self.credentials = credentials
        self.credentials_error = credentials_error  # why the stored ones could not be read
        self.insecure = is_insecure(host, self.options.insecure_registries, self.options.secure_registries)
        self.base = ""  # scheme://host, known after ping()
        self.challenge: protocol.Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self._ping_lock = threading.Lock()
        self._bundle: str | None = None
        # Passed with every request: a session-wide verify loses to REQUESTS_CA_BUNDLE.
        self._verify: bool | str = True
        self.session = self._new_session()

    # ---------------------------------------------------------- session ---

    def _new_session(self) -> requests.Session:
        s = requests.Session()
        # Proxies from the environment, except for loopback, which Go (so Docker)
        # never proxies; without the environment requests reads no ~/.netrc either.
        s.trust_env = not is_loopback(self.host)
        s.headers["User-Agent"] = self.options.user_agent
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=2, pool_maxsize=self.options.pool_size, max_retries=0
        )
        s.mount("https://", adapter)
        s.mount("http://", adapter)
        cas, client_cert = certs_d(self.host, self.options.certs_dirs)
        if cas:
            self._bundle = ca_bundle(cas)
            self._verify = self._bundle
        if client_cert:
            s.cert = client_cert
        return s

    def close(self) -> None:
        self.session.close()
        if self._bundle:
            with contextlib.suppress(OSError):
                os.unlink(self._bundle)
            self._bundle = None

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- ping ---

    def ping(self) -> protocol.Challenge | None:
        """``GET /v2/`` once: choose the scheme and learn the auth challenge.

        Raise DockyardError when the registry cannot be reached or does not
        speak the v2 API."""
        with self._ping_lock:
            if self.base:
                return self.challenge
            schemes = self._schemes()
            last: Exception | None = None
            for i, scheme in enumerate(schemes):
                base = f"{scheme}://{self.host}"
                more = i + 1 < len(schemes)
                try:
                    resp = self._send_ping(base, verify_tls=not self.insecure, probe=more)
                except requests.exceptions.SSLError as exc:
                    last = exc
                    continue
                except requests.RequestException as exc:
                    last = exc
                    if more and "Connection refused" not in str(exc):
                        continue
                    break
                if scheme == "http" and more and resp.status_code == 400:
                    continue  # a TLS port answering a plain request ("Client sent an HTTP request…")
                self.base = base
                if resp.status_code == 401:
                    self.challenge = _challenge(resp)
                elif resp.status_code >= 400 and resp.status_code != 404:
                    raise errors.DockyardError(
                        f"registry {self.host} answered GET /v2/ with HTTP {resp.status_code}: "
                        "is it a registry (distribution API v2)?"
                    )
                return self.challenge
            raise self._connection_error("ping", last)

    def _schemes(self) -> tuple[str, ...]:
        """Loopback: plain HTTP first, as Docker users expect of localhost (and it spares
        a TLS handshake), then HTTPS; other insecure hosts: HTTPS first, then HTTP."""
        if not self.insecure:
            return ("https",)
        if is_loopback(self.host) and self.host not in self.options.insecure_registries:
            return ("http", "https")
        return ("https", "http")

    def _send_ping(self, base: str, verify_tls: bool, probe: bool = False) -> requests.Response:
        if not verify_tls and base.startswith("https:"):
            self._verify = False
            quiet_insecure_warning()
        attempt = 0
        while True:
            try:
                resp = self.session.get(f"{base}/v2/", timeout=self._timeout(), verify=self._verify)
                resp.close()
                if resp.status_code not in RETRY_STATUSES or attempt >= self.options.retries:
                    return resp
            except requests.exceptions.SSLError:
                raise
            except requests.ConnectionError as exc:
                # Refused is final (nothing listens); any failure of a probe that has
                # another scheme to try is passed on at once.
                if attempt >= self.options.retries or probe or "Connection refused" in str(exc):
                    raise exc from None
            self._sleep(attempt)
            attempt += 1

    def _connection_error(self, what: str, exc: Exception | None) -> errors.DockyardError:
        if isinstance(exc, requests.exceptions.SSLError):
            return errors.DockyardError(
                f"{what} {self.host}: TLS error: {_root_cause(exc)}: put the registry's CA certificate in "
                f"{self._certs_hint()}/{self.host}/ca.crt, or mark it insecure with "
                f"--insecure-registry {self.host}"
            )
        return Unavailable(
            f"{what} {self.host}: cannot reach the registry: {_root_cause(exc)}: is it running and reachable?"
        )

    def _certs_hint(self) -> str:
        dirs = self.options.certs_dirs or DEFAULT_CERTS_DIRS
        return str(dirs[0])

    def _timeout(self) -> tuple[float, float]:
        return (self.options.connect_timeout, self.options.read_timeout)

    def _sleep(self, attempt: int) -> None:
        time.sleep(min(self.options.backoff * (2**attempt), 10.0))

    # ------------------------------------------------------------- auth ---

    def _auth_header(self, scopes: tuple[str, ...]) -> str | None:
        ch = self.challenge
        if ch is None:
            return None
        if ch.scheme.lower() == "basic":
            return _basic(self.credentials) if self.credentials else None
        if ch.scheme.lower() == "bearer":
            return f"Bearer {self.token(scopes)}"
        return None

    def token(self, scopes: tuple[str, ...]) -> str:
        """A bearer token for ``scopes`` from the challenge's realm (cached until it expires).

        Raise Unauthorized when the realm refuses our credentials."""
        ch = self.challenge
        if ch is None or not ch.get("realm"):
            raise errors.Unauthorized(f"registry {self.host} sent a Bearer challenge without a realm")
        key = " ".join(sorted(set(scopes)))
        with self._lock:
            tok = self._tokens.get(key)
            if tok is not None and tok.expires > time.time():
                return tok.value
        oauth = bool(self.credentials and self.credentials.identity_token)
        try:
            resp = self._token_request(ch, sorted(set(scopes)))
        except requests.RequestException as exc:
            raise self._connection_error("get a token for", exc) from exc
        with contextlib.closing(resp):
            # an OAuth2 server refuses a grant with 400 invalid_grant (RFC 6749 5.2)
            if resp.status_code in (401, 403) or (oauth and resp.status_code == 400):
                raise errors.Unauthorized(self._login_hint(f"get a token from {ch.get('realm')}"))
            protocol.raise_for_error(resp.status_code, resp.content, f"get a token from {ch.get('realm')}")
            try:
                doc = resp.json()
                value = str(doc.get("token") or doc.get("access_token"))
                expires_in = max(int(doc.get("expires_in") or 60), 60)
            except (ValueError, TypeError, AttributeError) as exc:
                raise errors.Unauthorized(f"token server {ch.get('realm')} sent no token") from exc
        if value in ("", "None"):
            raise errors.Unauthorized(f"token server {ch.get('realm')} sent no token")
        with self._lock:
            self._tokens[key] = _Token(value, time.time() + expires_in - 10)
        return value

    def _token_request(self, ch: protocol.Challenge, scopes: list[str]) -> requests.Response:
        """GET the realm with Basic credentials (DIST docs/spec/auth/token.md); with an
        identity token, POST a refresh_token grant instead (oauth.md), as docker does."""
        creds, service = self.credentials, ch.get("service")
        if creds and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token}
            form |= {"client_id": "dockyard", "scope": " ".join(scopes)}
            if service:
                form["service"] = service
            return self.session.post(ch.get("realm"), data=form, timeout=self._timeout(), verify=self._verify)
        params = [("service", service)] if service else []
        params += [("scope", s) for s in scopes]
        if creds:
            params.append(("account", creds.username))
        auth = (creds.username, creds.password) if creds else None
        return self.session.get(
            ch.get("realm"), params=params, auth=auth, timeout=self._timeout(), verify=self._verify
        )

    def _login_hint(self, what: str) -> str:
        if self.credentials:
            user = self.credentials.username
            who = f"the credentials of {user!r}" if user else "the stored identity token"
            return (
                f"{what}: unauthorized: the registry {self.host} refused {who}: "
                f"run 'dockyard login {self.host}' again"
            )
        if self.credentials_error:
            return f"{what}: unauthorized: authentication required, but {self.credentials_error}"
        return f"{what}: unauthorized: authentication required: run 'dockyard login {self.host}'"

    def login(self) -> None:
        """Check the credentials against the registry as ``docker login`` does.

        Raise Unauthorized when they are refused."""
        ch = self.ping()
        if ch is None:
            return
        if ch.scheme.lower() == "bearer":
            with self._lock:
                self._tokens.clear()
            self.token(())
            return
        self.request("GET", "/v2/", what="login")

    # ---------------------------------------------------------- request ---

    def url(self, path: str) -> str:
        """An absolute URL for a ``/v2/…`` path or a (relative or absolute) Location."""
        self.ping()
        return urljoin(self.base + "/", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        scopes: tuple[str, ...] = (),
        expect: tuple[int, ...] = (200,),
        what: str = "",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        body: Body = None,
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send a request, authenticated for ``scopes``, and return the reply
        when its status is in ``expect`` (the caller closes streamed replies).

        With ``retry`` (only for requests that may be sent twice) connection
        errors, 5xx and 429 are retried with backoff.  Other statuses raise the
        error class of the body's code, with a message that names the registry
        and the fix; connection failures raise DockyardError."""
        url = self.url(path)
        auth_retried = False
        attempt = 0
        while True:
            hdrs = dict(headers or {})
            auth = self._auth_header(scopes)
            if auth:
                hdrs["Authorization"] = auth
            try:
                resp = self._send(method, url, hdrs, params, body, stream)
            except requests.exceptions.SSLError as exc:
                raise self._connection_error(what or method, exc) from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not retry or attempt >= self.options.retries:
                    raise self._connection_error(what or method, exc) from exc
                self._sleep(attempt)
                attempt += 1
                continue
            if resp.status_code == 401 and not auth_retried and self._rechallenge(resp, scopes):
                resp.close()
                auth_retried = True
                continue
            if resp.status_code in RETRY_STATUSES and retry and attempt < self.options.retries:
                resp.close()
                self._sleep(attempt)
                attempt += 1
                continue
            if resp.status_code in expect:
                return resp
            with contextlib.closing(resp):
                raise self.error(resp, what or f"{method} {path}")

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        params: Mapping[str, str] | list[tuple[str, str]] | None,
        body: Body,
        stream: bool,
    ) -> requests.Response:
        if callable(body):
            with contextlib.closing(body()) as data:
                return self.session.request(
                    method, url, headers=headers, params=params, data=data, stream=stream,
                    timeout=self._timeout(), verify=self._verify,
                )  # fmt: skip
        return self.session.request(
            method, url, headers=headers, params=params, data=body, stream=stream, timeout=self._timeout(),
            verify=self._verify,
        )  # fmt: skip

    def _rechallenge(self, resp: requests.Response, scopes: tuple[str, ...]) -> bool:
        """Take a 401's challenge (a registry may allow an anonymous ping, or want
        more scopes than we asked for); True when the request is worth one retry."""
        ch = _challenge(resp)
        if ch is None:
            return False
        scheme = ch.scheme.lower()
        with self._lock:
            new_scheme = self.challenge is None or self.challenge.scheme.lower() != scheme
            self.challenge = ch
        if scheme == "basic":
            return new_scheme and self.credentials is not None
        if scheme != "bearer":
            return False
        key = " ".join(sorted(set(scopes)))
        with self._lock:
            self._tokens.pop(key, None)
        extra = tuple(s for s in ch.get("scope").split() if s)
        if extra:  # ask for our scopes plus the ones the registry names
            value = self.token((*scopes, *extra))
            with self._lock:
                self._tokens[key] = _Token(value, time.time() + 50)
        return True

    def error(self, resp: requests.Response, what: str) -> errors.DockyardError:
        """The error for a failed reply, with a hint that names the registry and the fix."""
        exc = protocol.error_from_response(resp.status_code, resp.content[: 1 << 16], what)
        status = resp.status_code
        if status in RETRY_STATUSES or status >= 500:
            return Unavailable(f"{exc.message} (registry {self.host}, HTTP {status})", exc.detail)
        if status == 401 or isinstance(exc, errors.Unauthorized):
            return errors.Unauthorized(self._login_hint(what), exc.detail)
        if status == 403 or isinstance(exc, errors.Denied):
            return errors.Denied(
                f"{exc.message} (registry {self.host}): denied: requested access to the resource is "
                "denied: check the repository name and that your account may access it",
                exc.detail,
            )
        return exc


# ------------------------------------------------------------- helpers ---


def _challenge(resp: requests.Response) -> protocol.Challenge | None:
    header = resp.headers.get("WWW-Authenticate", "")
    return protocol.Challenge.parse(header) if header.strip() else None


def _basic(creds: Credentials) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


def _root_cause(exc: BaseException | None) -> str:
    """The useful part of a requests/urllib3 error, for a one-line message."""
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] [^'\")]*", text)
    if m:
        return m.group(0).strip()
    m = re.search(r"\[SSL[^\]]*\] [^'\")(]*", text)
    if m:
        return m.group(0).strip()
    return text


__all__ = [
    "Transport",
    "TransportOptions",
    "Unavailable",
    "default_certs_dirs",
    "insecure_from_env",
    "is_insecure",
]
