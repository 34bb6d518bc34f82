"""Manifests, tags and referrers: DS end-3, end-7, end-8, end-9, end-12."""

from __future__ import annotations

import json

from flask import Blueprint, Response, request

from imagefmt import mediatypes as mt
from imagefmt.digest import Digest
from imagefmt.errors import Unsupported
from registry import protocol
from registry.protocol import ManifestTooLarge, QuotaExceeded
from registry.server.manifest_rules import accepted_types, negotiate, verify
from registry.server.services import RegistryResponse, paginate, publish, services
from registry.server.storage.paths import check_tag

bp = Blueprint("manifests", __name__)


@bp.route("/v2/<path:name>/manifests/<reference>", methods=["GET", "HEAD"])
def get_manifest(name: str, reference: str) -> Response:
    s = services()
    found = s.storage.manifest(name, reference)
    found = negotiate(s.storage, name, found, accepted_types(request.headers.getlist("Accept")))
    resp = RegistryResponse(found.raw, content_type=found.media_type)
    resp.headers[protocol.CONTENT_DIGEST] = str(found.digest)
    resp.set_etag(str(found.digest))
    return resp


@bp.put("/v2/<path:name>/manifests/<reference>")
def put_manifest(name: str, reference: str) -> Response:
    s = services()
    tags = request.args.getlist("tag")
    if ":" not in reference:
        tags.insert(0, reference)
    for t in tags:
        check_tag(t)
    raw = _read_manifest_body(s.config.max_manifest_bytes)
    with s.storage.push_lock():
        v = verify(s.storage, name, raw, request.content_type or "", reference)
        limit = s.config.quota_for(name)
        if limit is not None and s.storage.repository_size(name) + len(raw) > limit:
            raise QuotaExceeded(f"repository {name}: quota of {limit} bytes exceeded")
        s.storage.put_manifest(name, raw, v.media_type, v.digest)
        for t in tags:
            s.storage.tag(name, t, v.digest, v.media_type)
        if v.subject is not None:
            s.storage.add_referrer(name, v.subject.digest, v.referrer_descriptor())
    for t in tags or [""]:
        publish("push", name, v.media_type, v.digest, len(raw), t)
    resp = RegistryResponse(status=201)
    resp.headers["Location"] = protocol.location(name, "manifests", str(v.digest))
    resp.headers[protocol.CONTENT_DIGEST] = str(v.digest)
    if v.subject is not None:
        resp.headers[protocol.OCI_SUBJECT] = str(v.subject.digest)
    if request.args.getlist("tag"):
        for t in tags:
            resp.headers.add("OCI-Tag", t)
    return resp


def _read_manifest_body(limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise ManifestTooLarge(f"manifest of {request.content_length} bytes is over the limit of {limit}")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise ManifestTooLarge(f"manifest is over the limit of {limit} bytes")
    return raw


@bp.delete("/v2/<path:name>/manifests/<reference>")
def delete_manifest(name: str, reference: str) -> Response:
    s = services()
    if not s.config.delete_enabled:
        raise Unsupported("deletes are disabled on this registry")
    if ":" in reference:
        digest = Digest.parse(reference)
        s.storage.delete_manifest(name, digest)
        publish("delete", name, "", digest, 0)
    else:
        digest = s.storage.resolve(name, reference)
        s.storage.untag(name, reference)
        publish("delete", name, "", digest, 0, reference)
    return RegistryResponse(status=202)


@bp.get("/v2/<path:name>/tags/list")
def list_tags(name: str) -> Response:
    tags = services().storage.tags(name)
    page, link = paginate(tags, f"/v2/{name}/tags/list")
    resp = RegistryResponse(json.dumps({"name": name, "tags": page}), content_type=protocol.JSON)
    if link:
        resp.headers["Link"] = link
    return resp


@bp.get("/v2/<path:name>/referrers/<digest>")
def referrers(name: str, digest: str) -> Response:
    """DS end-12: always 200 with an index, empty for an unknown subject."""
    s = services()
    subject = Digest.parse(digest)
    items = s.storage.referrers(name, subject)
    resp = RegistryResponse(content_type=mt.OCI_INDEX)
    artifact_type = request.args.get("artifactType")
    if artifact_type is not None:
        items = [d for d in items if d.artifact_type == artifact_type]
        resp.headers[protocol.OCI_FILTERS_APPLIED] = "artifactType"
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [d.to_json() for d in items]}
    resp.set_data(json.dumps(body))
    return resp
