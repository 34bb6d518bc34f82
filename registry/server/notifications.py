"""Webhooks: distribution's notification envelope POSTed to configured URLs.

Each event (push or delete of a manifest or blob) is put on a bounded queue and
returns at once: a push never waits on a webhook.  One daemon thread per worker
process, started on the first event (so after gunicorn forks), delivers each
envelope to every endpoint with ``attempts`` tries and exponential backoff
(``backoff``, 2×, 4×… seconds).  When the queue is full an event is dropped and
logged; undelivered events are lost on shutdown (distribution keeps them in
memory too).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import requests

from registry.protocol import EVENTS_MEDIA_TYPE
from registry.server.config import WebhookEndpoint

log = logging.getLogger("dockyard.registry.notify")
INSTANCE = str(uuid.uuid4())


def event(
    action: str,
    repository: str,
    media_type: str,
    digest: str,
    size: int,
    tag: str = "",
    request: dict[str, str] | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """One event of the envelope (DIST notifications/event.go)."""
    target: dict[str, Any] = {
        "mediaType": media_type,
        "size": size,
        "digest": digest,
        "length": size,
        "repository": repository,
        "url": (request or {}).get("url_root", "").rstrip("/") + f"/v2/{repository}/manifests/{digest}",
    }
    if tag:
        target["tag"] = tag
    req = dict(request or {})
    req.pop("url_root", None)
    return {
        "id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "action": action,
        "target": target,
        "request": req,
        "actor": {"name": actor} if actor else {},
        "source": {"addr": os.uname().nodename, "instanceID": INSTANCE},
    }


class Notifier:
    """Non-blocking delivery of events to the endpoints."""

    def __init__(self, endpoints: tuple[WebhookEndpoint, ...], maxsize: int = 10000) -> None:
        self.endpoints = endpoints
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def publish(self, ev: dict[str, Any]) -> None:
        """Queue an event; never blocks, never raises."""
        if not self.endpoints:
            return
        self._start()
        try:
            self._queue.put_nowait(ev)
        except queue.Full:
            log.warning("notification queue full: dropped event %s", ev.get("id"))

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="dockyard-notify", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        session = requests.Session()
        while True:
            ev = self._queue.get()
            body = json.dumps({"events": [ev]}).encode()
            for ep in self.endpoints:
                self._deliver(session, ep, body)

    def _deliver(self, session: requests.Session, ep: WebhookEndpoint, body: bytes) -> bool:
        headers = {"Content-Type": EVENTS_MEDIA_TYPE, **ep.headers}
        delay = ep.backoff
        for attempt in range(1, max(ep.attempts, 1) + 1):
            try:
                r = session.post(ep.url, data=body, headers=headers, timeout=ep.timeout)
                if 200 <= r.status_code < 400:
                    return True
                why = f"HTTP {r.status_code}"
            except requests.RequestException as err:
                why = str(err)
            log.warning("notify %s: attempt %d/%d failed: %s", ep.url, attempt, ep.attempts, why)
            if attempt < ep.attempts:
                time.sleep(delay)
                delay *= 2
        return False
