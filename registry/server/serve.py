"""Run the registry under gunicorn (our gthread worker, registry/server/worker.py), never Flask's dev server.

``serve(config)`` blocks until SIGTERM/SIGINT.  Each worker process builds its
own app (and so its own notifier thread) after the fork.  TLS, with optional
client-certificate verification, is gunicorn's.  Access logs are JSON lines
written by :class:`JsonAccessLogger` once a response is fully sent, so the
duration and byte count of a sendfile'd blob are the real ones.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import sys
import time
from errno import EADDRINUSE
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.util import parse_address

from imagefmt.errors import DockyardError
from registry.server.app import create_app
from registry.server.config import Config, ConfigInvalid
from registry.server.htpasswd import ensure_htpasswd
from registry.server.routes_blobs import FileBody
from registry.server.worker import App, RegistryWorker, guard

log = logging.getLogger("dockyard.registry")


class ListenFailed(DockyardError):
    """The address to serve on cannot be bound (in use, not ours, no such host)."""


class JsonAccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with one JSON object per request on the access log."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog):
            return
        status = str(resp.status).split(None, 1)[0] if resp.status else "-"
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "remote": environ.get("REMOTE_ADDR", "-"),
            "account": environ.get("dockyard.account", "-"),
            "method": environ.get("REQUEST_METHOD", "-"),
            "path": environ.get("PATH_INFO", "-"),
            "query": environ.get("QUERY_STRING", ""),
            "status": int(status) if status.isdigit() else status,
            "bytes": _bytes_sent(resp, environ),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "user_agent": environ.get("HTTP_USER_AGENT", ""),
        }
        try:
            self.access_log.info(json.dumps(entry))
        except Exception:  # as gunicorn's own access(): logging never breaks a request
            self.error("failed to log access entry")


def _bytes_sent(resp: Any, environ: dict[str, Any]) -> int | None:
    """The body bytes of a reply: gunicorn's count of what it wrote, plus what
    sendfile sent of a blob (routes_blobs.FileBody), which gunicorn does not count."""
    sent = getattr(resp, "sent", None)
    body = environ.get(FileBody.ENVIRON_KEY)
    if isinstance(body, FileBody):
        return (sent or 0) + body.sent
    return sent


class RegistryServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured from our Config instead of its command line."""

    def __init__(self, config: Config) -> None:
        self.registry_config = config
        super().__init__()

    def load_config(self) -> None:
        c = self.registry_config
        options: dict[str, Any] = {
            "bind": [c.addr],
            "workers": c.workers,
            "worker_class": RegistryWorker,
            "threads": c.threads,
            "timeout": 120,  # gthread heartbeats from its main loop: long uploads are fine
            "graceful_timeout": 10,
            "keepalive": 75,
            "logger_class": JsonAccessLogger,
            "accesslog": c.access_log or None,
            "errorlog": "-",
            "loglevel": "warning",
            "limit_request_line": 8190,
            "proc_name": "dockyard-registry",
        }
        if c.tls_cert:
            options["certfile"] = str(c.tls_cert)
            options["keyfile"] = str(c.tls_key)
        if c.tls_client_ca:
            options["ca_certs"] = str(c.tls_client_ca)
            options["cert_reqs"] = ssl.CERT_REQUIRED
        for key, value in options.items():
            self.cfg.set(key, value)
        RegistryWorker.header_timeout = c.header_timeout  # the workers are forked from here

    def load(self) -> App:
        return guard(create_app(self.registry_config), self.registry_config.body_timeout)


def prepare(config: Config) -> list[str]:
    """Create what the config needs before workers start; return notices to print."""
    notes = []
    if config.tls_client_ca and not config.tls_cert:
        raise ConfigInvalid("a client CA (--tls-client-ca) needs TLS: give --tls-cert and --tls-key")
    if config.tls_cert and not config.tls_key:
        raise ConfigInvalid("--tls-cert needs --tls-key")
    config.root.mkdir(parents=True, exist_ok=True)
    if config.htpasswd is not None:
        password = ensure_htpasswd(config.htpasswd)
        if password is not None:
            notes.append(f"created {config.htpasswd} with user 'docker' and password {password!r}")
    create_app(config)  # fail early, in the parent, on a bad ACL or token key
    check_listen(config.addr)
    return notes


def check_listen(addr: str) -> None:
    """Bind ``addr`` as gunicorn will, and let it go; ListenFailed if it cannot be.

    gunicorn itself retries a taken address for 5 s, logging each failure, after
    we have said that we listen: this fails at once with one line instead."""
    host, port = parse_address(addr)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, sockaddr in infos[:1]:
            with socket.socket(family, kind, proto) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
                s.bind(sockaddr)
    except socket.gaierror as err:
        raise ListenFailed(f"cannot listen on {addr}: unknown host {host!r} ({err.strerror})") from err
    except OSError as err:
        hint = ": another server listens there; choose another with --addr" if err.errno == EADDRINUSE else ""
        raise ListenFailed(f"cannot listen on {addr}: {err.strerror}{hint}") from err


def serve(config: Config) -> None:
    """Serve until stopped.  ``addr`` ``host:port`` (``[::1]:5000`` for IPv6)."""
    for note in prepare(config):
        print(note, file=sys.stderr)
    scheme = "https" if config.tls_cert else "http"
    where = f"root {config.root}"
    if config.storage == "s3":
        where = f"s3 bucket {config.s3.bucket}/{config.s3.prefix} at {config.s3.endpoint or 'AWS'}"
    print(f"dockyard registry on {scheme}://{config.addr} ({where})", file=sys.stderr, flush=True)
    RegistryServer(config).run()
