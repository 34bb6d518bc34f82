"""Fakes and tools of the registry client tests, on 127.0.0.1 random ports.

- :class:`TokenServer`: a Docker-Hub-like token service (distribution's token
  spec: ``GET /token?service=…&scope=…`` with optional Basic credentials,
  RS256 JWTs carrying an ``x5c`` certificate that the registry trusts).
- :class:`FlakyProxy`: a proxy in front of a registry that fails on purpose.
- :func:`make_ca` / :func:`make_cert`: a throwaway CA and server certificates;
  :func:`htpasswd_auth`: distribution's htpasswd section; :func:`skopeo`.

The live registries themselves are in support/peers.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

# ----------------------------------------------------------------- certs ---


@dataclass(frozen=True)
class KeyPair:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        crt, key = directory / f"{name}.crt", directory / f"{name}.key"
        crt.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        return crt, key


def _builder(subject: str, issuer: str, public: Any) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
    )


def make_ca(name: str = "dockyard test CA") -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(key, cert)


def make_cert(ca: KeyPair, host: str = "127.0.0.1") -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")])
    cert = (
        _builder(host, ca.cert.subject.rfc4514_string().removeprefix("CN="), key.public_key())
        .add_extension(san, critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return KeyPair(key, cert)


def htpasswd_auth(root: Path, users: dict[str, str]) -> dict[str, Any]:
    """An ``auth.htpasswd`` section with bcrypt entries for ``users``."""
    import bcrypt

    path = root / "htpasswd"
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()}" for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return {"htpasswd": {"realm": "dockyard-test", "path": str(path)}}


# ---------------------------------------------------------- token server ---


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """A token service like auth.docker.io: anonymous pull of any repository,
    everything for the users it knows.  ``requests`` records what was asked."""

    users: dict[str, str]
    service: str = "dockyard-test-registry"
    issuer: str = "dockyard-test-issuer"
    anonymous_actions: tuple[str, ...] = ("pull",)
    requests: list[dict[str, Any]] = field(default_factory=list)
    signer: KeyPair = field(default_factory=lambda: make_ca("token signer"))
    port: int = 0

    def __post_init__(self) -> None:
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def auth_section(self, directory: Path) -> dict[str, Any]:
        """The registry's ``auth.token`` section trusting this server's certificate."""
        crt, _ = self.signer.write(directory, "token-signer")
        return {
            "token": {
                "realm": self.realm,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": str(crt),
            }
        }

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _account(self, request: Request) -> tuple[bool, str | None]:
        auth = request.authorization
        if auth is None:
            return True, None
        ok = auth.username in self.users and self.users[auth.username] == auth.password
        return ok, auth.username if ok else None

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        ok, account = self._account(request)
        scopes = [s for v in request.args.getlist("scope") for s in v.split()]
        self.requests.append({"account": account, "scopes": scopes, "service": request.args.get("service")})
        if not ok:
            resp = Response(json.dumps({"details": "incorrect username or password"}), 401)
            return resp(environ, start_response)
        access = []
        for s in scopes:
            kind, _, rest = s.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = actions.split(",")
            granted = wanted if account else [a for a in wanted if a in self.anonymous_actions]
            access.append({"type": kind, "name": name, "actions": granted})
        token = self.issue(account or "", access)
        body = {"token": token, "access_token": token, "expires_in": 300, "issued_at": _now_rfc3339()}
        return Response(json.dumps(body), 200, content_type="application/json")(environ, start_response)

    def issue(self, subject: str, access: list[dict[str, Any]]) -> str:
        der = self.signer.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = self.signer.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(sig)}"


def _now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def skopeo(*args: str) -> str:
    r = subprocess.run(["skopeo", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def env_without_docker_config() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}


@dataclass
class FlakyProxy:
    """A proxy in front of a registry that fails on purpose: the first ``fail``
    requests whose path matches ``pattern`` (and method) get ``status``.  For the
    5xx we cannot make distribution send."""

    upstream: str
    pattern: str
    method: str = "GET"
    fail: int = 2
    status: int = 503
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        import re

        self._re = re.compile(self.pattern)
        self._failed = 0
        self._lock = threading.Lock()
        self._session = __import__("requests").Session()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._session.close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        path = request.full_path.rstrip("?")
        with self._lock:
            hit = request.method == self.method and self._re.search(request.path) and self._failed < self.fail
            if hit:
                self._failed += 1
        if hit:
            self.seen.append((request.method, path, self.status))
            return Response("injected failure", self.status)(environ, start_response)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        body = request.get_data()
        up = self._session.request(
            request.method, f"http://{self.upstream}{path}", headers=headers, data=body or None,
            allow_redirects=False, stream=True,
        )  # fmt: skip
        self.seen.append((request.method, path, up.status_code))
        drop = {"connection", "transfer-encoding", "content-encoding"}
        out = Response(
            up.raw.stream(1 << 16, decode_content=False),
            up.status_code,
            headers=[(k, v) for k, v in up.headers.items() if k.lower() not in drop],
        )
        out.call_on_close(up.close)
        return out(environ, start_response)
