"""The distribution protocol's wire details, shared by the server and the client.

The registry's own error classes (each declares its code and status:
imagefmt/errors.py holds the one table), the OCI error body
``{"errors": [{"code", "message", "detail"}]}`` in both directions, header names,
``Content-Range``/``Range`` of uploads, ``Link`` pagination and ``WWW-Authenticate``
challenges.  No Flask, no requests here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from imagefmt import errors

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"
CONTENT_DIGEST = "Docker-Content-Digest"
UPLOAD_UUID = "Docker-Upload-UUID"
OCI_SUBJECT = "OCI-Subject"
OCI_FILTERS_APPLIED = "OCI-Filters-Applied"
EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v2+json"
JSON = "application/json"


class RangeNotSatisfiable(errors.RangeInvalid):
    """A chunk that does not start where the upload ends (416, DS end-5); a client
    gets RangeInvalid, the class that owns the pair, back."""


class ManifestTooLarge(errors.SizeInvalid):
    """A manifest over the server's size limit (DS end-7)."""

    status = 413


class PaginationInvalid(errors.Invalid):
    """A bad ``n`` on a tags or catalog list (distribution's code, 400)."""

    code = "PAGINATION_NUMBER_INVALID"


class StorageFull(errors.DiskFull):
    """The registry's storage has no room left (ENOSPC): 507 Insufficient Storage."""

    status = 507


class QuotaExceeded(errors.Denied):
    """A push that would take a repository over its quota (403 DENIED)."""


def status_for(exc: errors.DockyardError) -> int:
    """The HTTP status a server answers ``exc`` with (the class's own, see imagefmt/errors.py)."""
    return exc.status


def error_body(exc: errors.DockyardError) -> dict[str, Any]:
    """The OCI error body for ``exc``."""
    item: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.detail is not None:
        item["detail"] = exc.detail
    return {"errors": [item]}


def error_from_response(status: int, body: bytes, what: str = "") -> errors.DockyardError:
    """The error a client raises for a failed reply: the class that owns the body's
    first code with this status (``errors.class_for``), else one chosen by status.
    Never raises."""
    prefix = f"{what}: " if what else ""
    try:
        items = json.loads(body)["errors"]
        first = items[0]
        code, message = str(first["code"]), str(first.get("message") or first["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        cls = errors.class_for(None, status)
        text = body[:200].decode("utf-8", "replace").strip()
        return cls(f"{prefix}HTTP {status}" + (f": {text}" if text else ""))
    return errors.class_for(code, status)(prefix + message, first.get("detail"))


# ------------------------------------------------------------- uploads ---

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def parse_content_range(text: str) -> tuple[int, int]:
    """``<start>-<end>`` (inclusive; a ``bytes`` prefix is tolerated) of a PATCH.

    Raise RangeNotSatisfiable for anything else or for end < start."""
    m = _CONTENT_RANGE.match(text.strip())
    if not m:
        raise RangeNotSatisfiable(f"invalid Content-Range {text!r}: expected <start>-<end>")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise RangeNotSatisfiable(f"invalid Content-Range {text!r}: end before start")
    return start, end


def upload_range(size: int) -> str:
    """The ``Range`` header of an upload holding ``size`` bytes: ``0-<last>``,
    and ``0-0`` when empty, as distribution sends."""
    return f"0-{max(size - 1, 0)}"


def parse_upload_range(text: str) -> int:
    """The size an upload's ``Range: 0-<last>`` reports (``0-0`` is read as 1)."""
    m = re.match(r"^(?:bytes=)?0-(\d+)$", text.strip())
    if not m:
        raise errors.BlobUploadInvalid(f"invalid upload Range {text!r}")
    return int(m.group(1)) + 1


# ---------------------------------------------------------- pagination ---


def next_link(path: str, n: int, last: str, **extra: str) -> str:
    """An RFC 5988 ``Link`` to the next page, as distribution writes it."""
    query = urlencode({**extra, "n": str(n), "last": last})
    return f'<{path}?{query}>; rel="next"'


def parse_next_link(header: str) -> str | None:
    """The target of a ``rel="next"`` Link header, or None."""
    m = re.search(r'<([^>]*)>\s*;\s*rel="?next"?', header or "")
    return m.group(1) if m else None


# ---------------------------------------------------------------- auth ---


@dataclass(frozen=True, slots=True)
class Scope:
    """``repository:<name>:pull,push`` (DIST docs/spec/auth/scope.md)."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse one scope; the name may itself contain ``:`` (``host:5000/x``)."""
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not kind or not name:
            raise errors.Invalid(f"invalid scope {text!r}: expected type:name:actions")
        return cls(kind, name, tuple(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scopes(values: list[str]) -> list[Scope]:
    """Scopes from repeated ``scope=`` parameters, each possibly space-separated."""
    return [Scope.parse(s) for v in values for s in v.split() if s]


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: ``Bearer realm="…",service="…",scope="…"``."""

    scheme: str
    params: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str = "") -> str:
        return next((v for k, v in self.params if k == key), default)

    def __str__(self) -> str:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in self.params)
        return f"{self.scheme} {inner}" if inner else self.scheme

    @classmethod
    def parse(cls, header: str) -> Challenge:
        """Parse the first challenge of a header (quoted or token values)."""
        scheme, _, rest = header.strip().partition(" ")
        params = re.findall(r'([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))', rest)
        return cls(scheme, tuple((k.lower(), re.sub(r"\\(.)", r"\1", q) or t) for k, q, t in params))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def location(name: str, *parts: str) -> str:
    """A relative ``/v2/<name>/…`` URL with each part quoted."""
    return f"/v2/{name}/" + "/".join(quote(p, safe=":") for p in parts)


def raise_for_error(status: int, body: bytes, what: str = "") -> None:
    """Raise the error a failed reply carries (see ``error_from_response``);
    return quietly for a 2xx or 3xx status."""
    if status < 400:
        return
    raise error_from_response(status, body, what)
