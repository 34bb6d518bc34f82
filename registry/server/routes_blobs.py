"""Blobs and uploads: DS end-2, end-4 to end-6, end-10, end-11, end-13, end-14.

A blob GET streams the driver's reader through ``wsgi.file_wrapper`` (gunicorn
answers a real file with sendfile); werkzeug's ``make_conditional`` decides a
Range request and the driver reads from its first byte; a driver with URLs (S3)
gets a 307 to one.

With an ``upload_secret`` in the config, the Location of an upload session
carries ``_state``: the repository, the session id and the time it began,
signed with HMAC-SHA256 under the secret (distribution's ``_state``).  Every
later request on the session must bring it back: an unsigned, forged or
foreign state (another repository's, another secret's) is BLOB_UPLOAD_INVALID.
Every process of one store shares the secret, so a session begun on one is
continued on any other, no sticky sessions needed: the session itself lives in
the store (registry/server/uploads.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from typing import IO, Any, cast
from urllib.parse import quote

from flask import Blueprint, Response, request
from werkzeug.wsgi import wrap_file

from imagefmt.digest import Digest
from imagefmt.errors import BlobUnknown, BlobUploadInvalid, DigestInvalid, NameInvalid, Unsupported
from registry import protocol
from registry.protocol import QuotaExceeded, Scope
from registry.server.services import RegistryResponse, identity, publish, services
from registry.server.storage.paths import check_name
from registry.server.storage.store import CHUNK
from registry.server.uploads import UploadStatus

bp = Blueprint("blobs", __name__)
uploads_bp = Blueprint("uploads", __name__)
OCTET = "application/octet-stream"


@bp.route("/v2/<path:name>/blobs/<digest>", methods=["GET", "HEAD"])
def get_blob(name: str, digest: str) -> Response:
    s = services()
    d = Digest.parse(digest)
    size = s.storage.linked_blob_size(name, d)
    if request.method == "HEAD":
        s.storage.touch_blob(d)  # a pusher that finds the blob skips its upload: keep GC off it (gc.py)
    elif (url := s.storage.blob_url(d)) is not None:  # the driver serves it (S3: a presigned URL)
        resp = RegistryResponse(status=307)
        resp.headers["Location"] = url
        resp.headers[protocol.CONTENT_DIGEST] = str(d)
        return resp
    resp = RegistryResponse(content_type=OCTET)
    resp.content_length = size
    resp.headers[protocol.CONTENT_DIGEST] = str(d)
    resp.set_etag(str(d))
    resp.cache_control.max_age = 31536000
    resp.headers["Accept-Ranges"] = "bytes"
    if request.method == "GET":
        resp.make_conditional(request.environ, accept_ranges=True, complete_length=size)
        if resp.status_code in (200, 206):
            _attach_body(resp, d, size)
    return resp


def _attach_body(resp: Response, d: Digest, size: int) -> None:
    """The blob (or the range make_conditional chose) as the body, read from its
    first byte by the driver: through ``wsgi.file_wrapper``, so gunicorn sends a
    real file (the filesystem driver's) with sendfile, ``Content-Length`` bytes
    from where it stands.  The body is left in the environ for the access log,
    which counts what sendfile sent (serve.py)."""
    start, length = 0, size
    if resp.status_code == 206 and resp.content_range.stop is not None:
        start = resp.content_range.start or 0
        length = resp.content_range.stop - start
    body = FileBody(services().storage.open_blob(d, start), start, length)
    request.environ[FileBody.ENVIRON_KEY] = body
    resp.response = wrap_file(request.environ, cast(IO[bytes], body), CHUNK)
    resp.direct_passthrough = True


class FileBody(io.RawIOBase):
    """The next ``length`` bytes of ``f`` (at ``start``), and how many of them went
    out by sendfile.  ``fileno`` lets gunicorn sendfile them; Python's
    ``socket.sendfile`` seeks the file to where it stopped, which is how ``sent``
    learns the count (gunicorn's own counter only sees bytes it wrote)."""

    ENVIRON_KEY = "dockyard.file_body"

    def __init__(self, f: IO[bytes], start: int, length: int) -> None:
        super().__init__()
        self._f = f
        self._start = start
        self._left = length
        self.sent = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left)
        data = self._f.read(n) if n else b""
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("FileBody seeks from the start only")
        self.sent = max(self.sent, pos - self._start)
        return self._f.seek(pos)

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        self._f.close()
        super().close()


@bp.delete("/v2/<path:name>/blobs/<digest>")
def delete_blob(name: str, digest: str) -> Response:
    s = services()
    if not s.config.delete_enabled:
        raise Unsupported("deletes are disabled on this registry")
    d = Digest.parse(digest)
    s.storage.unlink_blob(name, d)
    publish("delete", name, OCTET, d, 0)
    return RegistryResponse(status=202)


# ------------------------------------------------------------- uploads ---


@uploads_bp.post("/v2/<path:name>/blobs/uploads/")
def start_upload(name: str) -> Response:
    """A mount (``?mount=&from=``), a monolithic upload (``?digest=``) or a new session."""
    s = services()
    if "mount" in request.args:
        mounted = _mount(name, Digest.parse(request.args["mount"]), request.args.get("from", ""))
        if mounted is not None:
            return mounted
    elif "digest" in request.args:
        d = Digest.parse(request.args["digest"])
        _check_quota(name, request.content_length or 0)
        size = s.storage.put_blob(request.stream, d, request.content_length)
        if request.content_length is None:  # a chunked body: its size is known only now
            _check_quota(name, size)  # unlinked, the stored blob is GC's
        return _created(name, d, size)
    return _session_reply(s.uploads.start(name), 202)


def _mount(name: str, d: Digest, source: str) -> Response | None:
    """Link a blob of ``source`` into ``name`` if the caller may pull it there; None
    (fall back to a session, DS end-11) when it cannot be mounted."""
    s = services()
    if not source:
        return None
    try:
        check_name(source)
        if not s.auth.may(identity(), Scope("repository", source, ("pull",))):
            return None
        size = s.storage.linked_blob_size(source, d)
    except (BlobUnknown, NameInvalid):
        return None
    _check_quota(name, size)
    with s.storage.push_lock():  # GC may have swept it since: then an upload it is
        try:
            s.storage.linked_blob_size(source, d)
            s.storage.touch_blob(d)
            s.storage.link_blob(name, d)
        except BlobUnknown:
            return None
    return _created(name, d, size, link=False, action="mount")


@uploads_bp.patch("/v2/<path:name>/blobs/uploads/<uuid>")
def patch_upload(name: str, uuid: str) -> Response:
    s = services()
    _check_state(name, uuid)
    start, length = _chunk_range()
    if s.config.quota_for(name) is not None:
        _check_quota(name, s.uploads.status(name, uuid).offset + (length or request.content_length or 0))
    status = s.uploads.append(name, uuid, request.stream, start, length)
    return _session_reply(status, 202)


@uploads_bp.put("/v2/<path:name>/blobs/uploads/<uuid>")
def finish_upload(name: str, uuid: str) -> Response:
    s = services()
    _check_state(name, uuid)
    raw = request.args.get("digest")
    if not raw:
        raise DigestInvalid("the closing PUT of an upload needs ?digest=")
    d = Digest.parse(raw)
    start, length = _chunk_range()
    if s.config.quota_for(name) is not None:
        _check_quota(name, s.uploads.status(name, uuid).offset + (length or request.content_length or 0))
    size = s.uploads.finish(name, uuid, d, request.stream, start, length)
    return _created(name, d, size, link=False)


@uploads_bp.get("/v2/<path:name>/blobs/uploads/<uuid>")
def upload_status(name: str, uuid: str) -> Response:
    _check_state(name, uuid)
    return _session_reply(services().uploads.status(name, uuid), 204)


@uploads_bp.delete("/v2/<path:name>/blobs/uploads/<uuid>")
def cancel_upload(name: str, uuid: str) -> Response:
    _check_state(name, uuid)
    services().uploads.cancel(name, uuid)
    return RegistryResponse(status=204)


def _chunk_range() -> tuple[int | None, int | None]:
    """(start, length) from Content-Range and Content-Length; they must agree."""
    header = request.headers.get("Content-Range")
    length = request.content_length
    if not header:
        return None, length
    start, end = protocol.parse_content_range(header)
    if length is not None and length != end - start + 1:
        raise protocol.RangeNotSatisfiable(f"Content-Range {header} does not match Content-Length {length}")
    return start, end - start + 1


def _session_reply(status: UploadStatus, code: int) -> Response:
    resp = RegistryResponse(status=code)
    resp.headers["Location"] = protocol.location(status.name, "blobs", "uploads", status.uuid) + _signed(
        status
    )
    resp.headers["Range"] = protocol.upload_range(status.offset)
    resp.headers[protocol.UPLOAD_UUID] = status.uuid
    resp.content_length = 0
    return resp


def _signed(status: UploadStatus) -> str:
    """``?_state=…`` for a session's Location, or "" without an upload secret."""
    secret = services().config.upload_secret
    if not secret:
        return ""
    payload = _b64(json.dumps({"name": status.name, "uuid": status.uuid, "started_at": status.started_at}))
    return f"?_state={quote(payload + '.' + _mac(secret, payload))}"


def _check_state(name: str, uuid: str) -> None:
    """Refuse a request on a session whose ``_state`` is missing, forged or another session's."""
    secret = services().config.upload_secret
    if not secret:
        return
    payload, _, mac = request.args.get("_state", "").partition(".")
    if not payload:
        raise BlobUploadInvalid(f"blob upload {uuid}: the upload URL carries no signed _state")
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise BlobUploadInvalid(f"blob upload {uuid}: the _state of its URL is not signed by this registry")
    try:
        doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError as err:
        raise BlobUploadInvalid(f"blob upload {uuid}: unreadable _state") from err
    if not isinstance(doc, dict) or doc.get("name") != name or doc.get("uuid") != uuid:
        raise BlobUploadInvalid(f"blob upload {uuid}: the _state of its URL is another upload's")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _mac(secret: str, payload: str) -> str:
    return (
        base64.urlsafe_b64encode(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
        .decode()
        .rstrip("=")
    )


def _created(name: str, d: Digest, size: int, link: bool = True, action: str = "push") -> Response:
    s = services()
    if link:
        with s.storage.push_lock():
            s.storage.link_blob(name, d)
    publish(action, name, OCTET, d, size)
    resp = RegistryResponse(status=201)
    resp.headers["Location"] = protocol.location(name, "blobs", str(d))
    resp.headers[protocol.CONTENT_DIGEST] = str(d)
    resp.content_length = 0
    return resp


def _check_quota(name: str, adding: int) -> None:
    s = services()
    limit = s.config.quota_for(name)
    if limit is None:
        return
    used = s.storage.repository_size(name)
    if used + adding > limit:
        raise QuotaExceeded(
            f"repository {name}: quota of {limit} bytes exceeded ({used} used, {adding} more)",
            {"limit": limit, "used": used},
        )
