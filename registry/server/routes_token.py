"""The built-in token endpoint ``/auth/token`` (DIST docs/spec/auth/token.md, oauth.md).

GET with optional Basic credentials, or the OAuth2 POST form with
``grant_type=password`` or ``refresh_token``.  The token grants the intersection
of the requested scopes and what the ACL allows; a partial grant is no error.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from imagefmt.errors import Invalid, Unauthorized, Unsupported
from registry.protocol import parse_scopes
from registry.server.services import services

bp = Blueprint("token", __name__)


@bp.get("/auth/token")
def get_token() -> Response:
    auth = services().auth
    if auth.issuer is None:
        raise Unsupported("token auth is not enabled on this registry")
    account = auth.basic_account(request.headers.get("Authorization", ""))
    _check_service()
    scopes = parse_scopes(request.args.getlist("scope"))
    offline = request.args.get("offline_token", "").lower() == "true"
    return jsonify(auth.token_reply(account, scopes, offline))


@bp.post("/auth/token")
def post_token() -> Response:
    auth = services().auth
    if auth.issuer is None:
        raise Unsupported("token auth is not enabled on this registry")
    form = request.form
    _check_service(form.get("service"))
    grant = form.get("grant_type", "")
    if grant == "password":
        user, password = form.get("username", ""), form.get("password", "")
        if auth.htpasswd is None or not auth.htpasswd.verify(user, password):
            raise auth.basic_challenge("invalid username or password")
        account: str | None = user
    elif grant == "refresh_token":
        claims = auth.issuer.claims(form.get("refresh_token", ""), use="refresh")
        account = str(claims.get("sub") or "")
        if not account:
            raise Unauthorized("refresh token without a subject")
    else:
        raise Invalid(f"unsupported grant_type {grant!r}: use password or refresh_token")
    scopes = parse_scopes(form.getlist("scope"))
    reply = auth.token_reply(account, scopes, offline=form.get("access_type") == "offline")
    if grant == "refresh_token":
        reply["refresh_token"] = form.get("refresh_token", "")
    reply["scope"] = " ".join(form.getlist("scope"))
    return jsonify(reply)


def _check_service(service: str | None = None) -> None:
    auth = services().auth
    asked = service if service is not None else request.args.get("service")
    if asked and auth.issuer is not None and asked != auth.issuer.service:
        raise Invalid(f"unknown service {asked!r}: this registry is {auth.issuer.service!r}")
