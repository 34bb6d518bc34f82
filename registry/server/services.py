"""What a request's handler reaches: the app's services (storage, uploads, auth,
webhooks), the caller's identity, pagination of listings and the webhook events of
this request.  The app factory (registry/server/app.py) puts the services in place;
the routes import this module, never the factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from flask import Response, current_app, g, request

from imagefmt.digest import Digest
from registry import protocol
from registry.server import notifications
from registry.server.auth import Authorizer, Identity
from registry.server.config import Config
from registry.server.notifications import Notifier
from registry.server.storage.store import Storage
from registry.server.uploads import Uploads


class RegistryResponse(Response):
    """No ``text/html`` on the many empty 201/202/204 replies: a body sets its own type."""

    default_mimetype = None


@dataclass(frozen=True)
class Services:
    config: Config
    storage: Storage
    uploads: Uploads
    auth: Authorizer
    notifier: Notifier


def services() -> Services:
    return cast(Services, current_app.extensions["dockyard"])


def identity() -> Identity:
    return cast(Identity, g.get("identity") or Identity(None))


def paginate(items: list[str], path: str) -> tuple[list[str], str]:
    """Apply ``n``/``last`` (DS end-8b): items after ``last``, at most ``n``, and
    a ``Link`` to the next page when more remain."""
    last = request.args.get("last", "")
    if last:
        items = [i for i in items if i > last]
    raw_n = request.args.get("n")
    if raw_n is None:
        return items, ""
    try:
        n = int(raw_n)
        if n < 0:
            raise ValueError(raw_n)
    except ValueError as err:
        raise protocol.PaginationInvalid(f"invalid n={raw_n!r}: expected a non-negative integer") from err
    page = items[:n]
    link = protocol.next_link(path, n, page[-1]) if n and len(items) > n else ""
    return page, link


def publish(action: str, name: str, media_type: str, digest: Digest, size: int, tag: str = "") -> None:
    """Queue a webhook event for this request (registry/server/notifications.py); never blocks."""
    s = services()
    if not s.config.notifications:
        return
    req = {
        "addr": request.remote_addr or "",
        "host": request.host,
        "method": request.method,
        "useragent": request.user_agent.string,
        "url_root": request.host_url,
    }
    ev = notifications.event(action, name, media_type, str(digest), size, tag, req, identity().account)
    s.notifier.publish(ev)
