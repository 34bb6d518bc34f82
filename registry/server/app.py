"""The Flask application factory of the registry: ``create_app(config)``.

It wires storage, uploads, auth and notifications into ``app.extensions``,
registers the blueprints (routes_manifests, routes_blobs, routes_token), checks
every request's rights before its view runs, and renders every DockyardError
as an OCI error body with the status ``registry.protocol`` maps its code to.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from imagefmt.errors import DockyardError, Unsupported
from registry import protocol
from registry.protocol import Scope
from registry.server import routes_blobs, routes_manifests, routes_token
from registry.server.auth import Authorizer, ChallengeRequired
from registry.server.config import Config
from registry.server.notifications import Notifier
from registry.server.services import RegistryResponse, Services, paginate, services
from registry.server.storage.driver import StorageDriver
from registry.server.storage.drivers import open_driver
from registry.server.storage.paths import check_name
from registry.server.storage.store import CHUNK, Storage
from registry.server.uploads import Uploads


def create_app(config: Config | Path, driver: StorageDriver | None = None) -> Flask:
    """A registry app over ``config`` (or default settings with root ``config``),
    storing on ``driver`` (default: the filesystem driver at the config's root).

    Creates the storage directory and, with token auth, the signing key if
    missing; raises Invalid for an unreadable ACL file or a key that is not P-256."""
    if isinstance(config, Path):
        config = Config(root=config)
    storage = Storage(driver if driver is not None else open_driver(config))
    app = Flask("registry")
    app.response_class = RegistryResponse
    app.extensions["dockyard"] = Services(
        config, storage, Uploads(storage), Authorizer(config), Notifier(config.notifications)
    )
    app.url_map.strict_slashes = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_blueprint(base)
    app.register_blueprint(routes_manifests.bp)
    app.register_blueprint(routes_blobs.bp)
    app.register_blueprint(routes_blobs.uploads_bp)
    app.register_blueprint(routes_token.bp)
    app.before_request(_authorize)
    app.after_request(_api_version)
    app.register_error_handler(DockyardError, render_error)
    app.register_error_handler(HTTPException, _render_http)
    app.register_error_handler(OSError, _render_os_error)
    return app


base = Blueprint("base", __name__)


@base.get("/v2/")
def version_check() -> Response:
    return jsonify({})


@base.get("/v2/_catalog")
def catalog() -> Response:
    repos = services().storage.repositories()
    page, link = paginate(repos, "/v2/_catalog")
    resp = jsonify({"repositories": page})
    if link:
        resp.headers["Link"] = link
    return resp


# ------------------------------------------------------------ the hooks ---


def needed_scope() -> Scope | None:
    """The access the matched route needs: None for ``/v2/`` (any valid caller)."""
    endpoint = request.endpoint or ""
    if endpoint == "base.catalog":
        return Scope("registry", "catalog", ("*",))
    name = (request.view_args or {}).get("name")
    if name is None:
        return None
    if endpoint.startswith("uploads."):
        action = "push"
    elif request.method in ("GET", "HEAD"):
        action = "pull"
    elif request.method == "DELETE":
        action = "delete"
    else:
        action = "push"
    return Scope("repository", name, (action,))


def token_realm() -> str:
    return request.host_url.rstrip("/") + "/auth/token"


def _authorize() -> None:
    endpoint = request.endpoint
    if endpoint is None or endpoint.startswith("token."):
        return
    s = services()
    name = (request.view_args or {}).get("name")
    if name is not None:
        check_name(name)
    who = s.auth.identify(request.headers.get("Authorization", ""))
    s.auth.check(who, needed_scope(), token_realm())
    g.identity = who
    request.environ["dockyard.account"] = who.account or "-"
    if s.config.read_only and request.method not in ("GET", "HEAD"):
        raise Unsupported("the registry is in read-only mode")


def _api_version(resp: Response) -> Response:
    resp.headers[protocol.API_VERSION_HEADER] = protocol.API_VERSION
    return resp


DRAIN_LIMIT = 16 << 20


def _drain_body(status: int) -> bool:
    """Read what is left of a refused request's body (up to DRAIN_LIMIT); whether
    the connection can serve another request.

    gunicorn drains only 64 KiB of an unread body before it drops the
    connection, after a reply that said keep-alive; a client reusing it (a PUT
    after a 416 PATCH) would fail.  A body refused for its size (413), or
    announced bigger than the limit, is not read at all: the reply goes out at
    once, even if the body never comes, and says ``Connection: close`` (as
    distribution's, whose Go server closes after a handler left a big body unread)."""
    if request.method not in ("PUT", "PATCH", "POST"):
        return True
    if status == 413 or (request.content_length is not None and request.content_length > DRAIN_LIMIT):
        return False
    left = DRAIN_LIMIT
    try:
        while left > 0 and (chunk := request.stream.read(min(CHUNK, left))):
            left -= len(chunk)
    except (OSError, DockyardError):  # the client went away or stalled: nothing to keep alive
        return False
    return left > 0


def render_error(exc: DockyardError) -> Response:
    status = protocol.status_for(exc)
    reusable = _drain_body(status)
    resp = jsonify(protocol.error_body(exc))
    resp.status_code = status
    if not reusable:
        resp.headers["Connection"] = "close"
    if isinstance(exc, ChallengeRequired):
        resp.headers["WWW-Authenticate"] = str(_with_realm(exc))
    return resp


def _with_realm(exc: ChallengeRequired) -> Any:
    ch = exc.challenge
    if ch.scheme == "Bearer" and not ch.get("realm"):
        params = tuple((k, token_realm() if k == "realm" else v) for k, v in ch.params)
        return protocol.Challenge(ch.scheme, params)
    return ch


def _render_os_error(exc: OSError) -> Response:
    """A full disk is 507 with an OCI body naming it; any other OSError is a 500."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        raise exc
    root = services().config.root
    return render_error(
        protocol.StorageFull(
            f"the registry's storage {root} is full (no space left on device): free space there"
        )
    )


def _render_http(exc: HTTPException) -> Response:
    _drain_body(exc.code or 500)
    code = "UNSUPPORTED" if exc.code == 405 else "UNKNOWN"
    resp = jsonify({"errors": [{"code": code, "message": exc.description or exc.name}]})
    resp.status_code = exc.code or 500
    return resp
