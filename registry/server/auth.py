"""Who may do what: htpasswd accounts (checked by registry/server/htpasswd.py), the
ACL file, and bearer tokens (JWT, ES256).

Three modes, chosen by the config: no auth (everyone may do everything); Basic
(``htpasswd``: bcrypt entries, as distribution accepts); token (the built-in
endpoint ``/auth/token`` checks htpasswd credentials and issues JWTs signed
with an EC P-256 key, DIST docs/spec/auth/token.md and jwt.md).

The ACL file is JSON: a list of rules, each granting ``actions`` (``pull``,
``push``, ``delete``, ``*``) on the resources of ``type`` (default
``repository``; ``registry`` for the catalog, name ``catalog``) whose ``name``
matches a glob (``*`` spans ``/``; ``${account}`` is the caller's account) to
``account``: a user, ``"*"`` for any authenticated user, ``""`` for everyone,
anonymous callers included.  The rights of a caller are the union of its rules::

    [{"account": "alice", "name": "alice/*", "actions": ["pull", "push", "delete"]},
     {"account": "*", "name": "${account}/*", "actions": ["pull", "push"]},
     {"account": "", "name": "public/*", "actions": ["pull"]},
     {"account": "admin", "type": "registry", "name": "catalog", "actions": ["*"]}]

Without an ACL file an authenticated account may do everything and an anonymous
caller nothing.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from imagefmt.errors import Denied, Invalid, Unauthorized
from registry.protocol import Challenge, Scope
from registry.server.config import Config
from registry.server.htpasswd import Htpasswd

ALL_ACTIONS = frozenset({"pull", "push", "delete"})
CLOCK_SKEW = 30


class ChallengeRequired(Unauthorized):
    """401 with a ``WWW-Authenticate`` challenge the client can answer."""

    def __init__(self, message: str, challenge: Challenge, detail: object = None) -> None:
        super().__init__(message, detail)
        self.challenge = challenge


# ----------------------------------------------------------------- ACL ---


@dataclass(frozen=True, slots=True)
class Rule:
    account: str
    name: str
    actions: frozenset[str]
    type: str = "repository"

    def applies(self, account: str | None, type_: str, name: str) -> bool:
        if self.type != type_:
            return False
        if self.account == "*" and account is None:
            return False
        if self.account not in ("", "*") and self.account != account:
            return False
        pattern = self.name.replace("${account}", account or "\0")
        return fnmatch.fnmatchcase(name, pattern)


class Acl:
    """Rights per account and resource, from the JSON rules in the module docstring."""

    def __init__(self, rules: list[Rule] | None) -> None:
        self.rules = rules  # None: no ACL file

    @classmethod
    def load(cls, path: Path | None) -> Acl:
        if path is None:
            return cls(None)
        try:
            doc = json.loads(path.read_text())
            rules = [
                Rule(
                    str(r.get("account", "")),
                    str(r["name"]),
                    frozenset(r["actions"]),
                    r.get("type", "repository"),
                )
                for r in doc
            ]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise Invalid(f"read ACL {path}: {err}") from err
        return cls(rules)

    def allowed(self, account: str | None, type_: str, name: str) -> frozenset[str]:
        """The actions ``account`` (None = anonymous) may take on ``type_:name``."""
        if self.rules is None:
            return frozenset({"*"}) if account is not None else frozenset()
        out: set[str] = set()
        for r in self.rules:
            if r.applies(account, type_, name):
                out |= r.actions
        return frozenset(out)

    def grant(self, account: str | None, scope: Scope) -> tuple[str, ...]:
        """The requested actions that are allowed (the intersection, token.md)."""
        allowed = self.allowed(account, scope.type, scope.name)
        return tuple(a for a in scope.actions if "*" in allowed or a in allowed)

    def has_anonymous_rules(self) -> bool:
        return bool(self.rules) and any(r.account == "" for r in self.rules or ())


# ------------------------------------------------------------ JWT (ES256) ---


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The token signing key at ``path``; a new P-256 key (0600) if the file is missing."""
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp256r1":
        raise Invalid(f"token key {path}: an EC P-256 private key is needed for ES256")
    return loaded


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    """The libtrust key ID distribution expects in ``kid``: base32 of the first
    240 bits of sha256(DER SubjectPublicKeyInfo), in groups of four."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(b32[i : i + 4] for i in range(0, 48, 4))


@dataclass(frozen=True)
class Grant:
    """What a verified access token allows."""

    account: str | None
    access: frozenset[tuple[str, str, str]]  # (type, name, action)

    def allows(self, scope: Scope) -> bool:
        return all((scope.type, scope.name, a) in self.access for a in scope.actions)


class TokenIssuer:
    """Signs and verifies the registry's JWTs (ES256)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, issuer: str, service: str, expiration: int) -> None:
        self.key = key
        self.issuer = issuer
        self.service = service
        self.expiration = max(expiration, 60)  # token.md: never less than 60 s
        self.kid = key_id(key.public_key())

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "ES256", "kid": self.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def issue(self, account: str | None, access: list[Scope], now: float | None = None) -> str:
        """An access token for ``access`` (already intersected with the ACL)."""
        now = time.time() if now is None else now
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,
            "exp": int(now) + self.expiration,
            "nbf": int(now) - 1,
            "iat": int(now),
            "jti": secrets.token_hex(16),
            "access": [{"type": s.type, "name": s.name, "actions": list(s.actions)} for s in access],
        }
        return self.sign(claims)

    def issue_refresh(self, account: str, lifetime: int = 30 * 86400) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": account, "aud": self.service, "use": "refresh"}
        return self.sign({**claims, "exp": now + lifetime, "iat": now, "jti": secrets.token_hex(16)})

    def claims(self, token: str, use: str = "access") -> dict[str, Any]:
        """Verified claims of one of our tokens; Unauthorized for anything else."""
        try:
            head_b64, body_b64, sig_b64 = token.split(".")
            header = json.loads(_unb64(head_b64))
            claims: dict[str, Any] = json.loads(_unb64(body_b64))
            sig = _unb64(sig_b64)
        except (ValueError, TypeError, RecursionError) as err:
            raise Unauthorized("malformed token") from err
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise Unauthorized("malformed token: its header and claims must be JSON objects")
        if header.get("alg") != "ES256" or len(sig) != 64:
            raise Unauthorized("token: unsupported signature algorithm")
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            self.key.public_key().verify(der, f"{head_b64}.{body_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as err:
            raise Unauthorized("token: bad signature") from err
        now = time.time()
        if claims.get("iss") != self.issuer or claims.get("aud") != self.service:
            raise Unauthorized("token: wrong issuer or audience")
        if not isinstance(claims.get("exp"), int) or claims["exp"] + CLOCK_SKEW < now:
            raise Unauthorized("token expired")
        if claims.get("nbf", 0) - CLOCK_SKEW > now:
            raise Unauthorized("token not yet valid")
        if claims.get("use", "access") != use:
            raise Unauthorized(f"token: not an {use} token")
        return claims

    def verify(self, token: str) -> Grant:
        claims = self.claims(token)
        access: set[tuple[str, str, str]] = set()
        items = claims.get("access") or []
        for item in items if isinstance(items, list) else []:
            actions = item.get("actions") if isinstance(item, dict) else None
            for action in actions if isinstance(actions, list) else []:
                access.add((str(item.get("type")), str(item.get("name")), str(action)))
        return Grant(claims.get("sub") or None, frozenset(access))


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------- authorizer ---


@dataclass(frozen=True)
class Identity:
    account: str | None  # None: anonymous
    grant: Grant | None = None  # set in token mode
    presented: bool = False  # credentials came with the request


class Authorizer:
    """Decides, per request, from the ``Authorization`` header and the needed scope."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.htpasswd = Htpasswd(config.htpasswd) if config.htpasswd else None
        self.acl = Acl.load(config.acl)
        self.issuer: TokenIssuer | None = None
        if config.token is not None:
            t = config.token
            key = load_or_create_key(t.key or config.root / "token.key")
            self.issuer = TokenIssuer(key, t.issuer, t.service, t.expiration)
        self.mode = "token" if self.issuer else "basic" if self.htpasswd else "none"

    def basic_account(self, authorization: str) -> str | None:
        """The account of valid Basic credentials; None without any; Unauthorized if wrong."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic" or not value:
            return None
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as err:
            raise self.basic_challenge("malformed Basic credentials") from err
        if self.htpasswd is None or not self.htpasswd.verify(user, password):
            raise self.basic_challenge("invalid username or password")
        return user

    def basic_challenge(self, message: str, detail: object = None) -> ChallengeRequired:
        return ChallengeRequired(message, Challenge("Basic", (("realm", self.config.realm),)), detail)

    def identify(self, authorization: str) -> Identity:
        """Who is calling; ChallengeRequired for credentials that do not check out."""
        if self.mode == "none":
            return Identity(None)
        if self.mode == "basic":
            account = self.basic_account(authorization)
            return Identity(account, presented=account is not None)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return Identity(None)
        assert self.issuer is not None
        try:
            grant = self.issuer.verify(token.strip())
        except Unauthorized as err:
            raise ChallengeRequired(str(err), self.bearer_challenge("", None, "invalid_token")) from err
        return Identity(grant.account, grant, presented=True)

    def bearer_challenge(self, realm: str, scope: Scope | None, error: str = "") -> Challenge:
        assert self.config.token is not None
        params = [("realm", self.config.token.realm or realm), ("service", self.config.token.service)]
        if scope is not None:
            params.append(("scope", str(scope)))
        if error:
            params.append(("error", error))
        return Challenge("Bearer", tuple(params))

    def check(self, who: Identity, scope: Scope | None, realm: str) -> None:
        """Allow or raise: ChallengeRequired (401) when credentials could help,
        Denied (403) for an authenticated Basic account the ACL refuses.

        ``scope`` None is the base endpoint ``/v2/``: any valid credentials."""
        if self.mode == "none":
            return
        detail = (
            [{"Type": scope.type, "Name": scope.name, "Action": a} for a in scope.actions] if scope else None
        )
        if self.mode == "token":
            if who.grant is not None and (scope is None or who.grant.allows(scope)):
                return
            error = "insufficient_scope" if who.grant is not None else ""
            challenge = self.bearer_challenge(realm, _challenge_scope(scope), error)
            raise ChallengeRequired("authentication required", challenge, detail)
        if scope is None:
            if who.account is None:
                raise self.basic_challenge("authentication required")
            return
        if set(scope.actions) <= set(self.acl.grant(who.account, scope)):
            return
        if who.account is None:
            raise self.basic_challenge("authentication required", detail)
        raise Denied(f"requested access to {scope.name} is denied", detail)

    def may(self, who: Identity, scope: Scope) -> bool:
        try:
            self.check(who, scope, "")
        except (Unauthorized, Denied):
            return False
        return True

    def token_reply(self, account: str | None, scopes: list[Scope], offline: bool) -> dict[str, Any]:
        """The token endpoint's JSON for an authenticated (or anonymous) caller."""
        assert self.issuer is not None
        granted = []
        for s in scopes:
            actions = self.acl.grant(account, s)
            if actions:
                granted.append(Scope(s.type, s.name, actions))
        now = time.time()
        token = self.issuer.issue(account, granted, now)
        reply: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.issuer.expiration,
            "issued_at": rfc3339(now),
        }
        if offline and account is not None:
            reply["refresh_token"] = self.issuer.issue_refresh(account)
        return reply


def _challenge_scope(scope: Scope | None) -> Scope | None:
    """Docker Hub asks for ``pull,push`` on a push, so one token serves the whole push."""
    if scope is not None and scope.type == "repository" and "push" in scope.actions:
        return Scope(scope.type, scope.name, ("pull", "push"))
    return scope
