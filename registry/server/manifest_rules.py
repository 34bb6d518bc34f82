"""The registry's manifest rules: what a pushed manifest must satisfy, the
descriptor the referrers API lists for it, and content negotiation by Accept.
No HTTP here: callers pass header values in and get imagefmt errors out."""

from __future__ import annotations

from dataclasses import dataclass

from imagefmt import mediatypes as mt
from imagefmt.digest import Digest
from imagefmt.errors import BlobUnknown, DigestInvalid, ManifestBlobUnknown, ManifestInvalid, ManifestUnknown
from imagefmt.manifest import Descriptor, Index, Manifest, Platform, detect_media_type, parse_any
from registry.server.storage.store import Storage, StoredManifest

DEFAULT_PLATFORM = Platform("linux", "amd64")


@dataclass(frozen=True)
class Verified:
    """A manifest that may be stored: its exact bytes, digest and media type."""

    raw: bytes
    digest: Digest
    media_type: str
    parsed: Manifest | Index

    @property
    def subject(self) -> Descriptor | None:
        return self.parsed.subject

    def referrer_descriptor(self) -> Descriptor:
        """The entry of the referrers index: ``artifactType`` is the manifest's,
        else its config's media type (none for an index without one)."""
        artifact = self.parsed.artifact_type
        if not artifact and isinstance(self.parsed, Manifest):
            artifact = self.parsed.config.media_type
        return Descriptor(
            self.media_type, self.digest, len(self.raw), dict(self.parsed.annotations), artifact_type=artifact
        )


def verify(storage: Storage, name: str, raw: bytes, content_type: str, reference: str) -> Verified:
    """Check a manifest PUT to ``name`` at ``reference`` (a tag or a digest).

    Raise ManifestInvalid for a body that is not an image manifest or index,
    DigestInvalid when a digest reference does not match the bytes, and
    ManifestBlobUnknown naming the first blob or child manifest ``name`` lacks.
    Layers with ``urls`` (foreign layers) need not be present."""
    declared = content_type.split(";")[0].strip()
    media_type = detect_media_type(raw, declared)
    if media_type in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
        raise ManifestInvalid("schema1 manifests are not supported: push a schema2 or OCI manifest")
    if media_type not in mt.MANIFESTS + mt.INDEXES:
        raise ManifestInvalid(f"unsupported manifest media type {media_type or 'unknown'!r}")
    parsed = parse_any(raw, media_type)
    algorithm = reference.partition(":")[0] if ":" in reference else "sha256"
    digest = Digest.of(raw, algorithm)
    if ":" in reference and Digest.parse(reference) != digest:
        raise DigestInvalid(f"manifest digest mismatch: reference {reference}, content {digest}", reference)
    if isinstance(parsed, Manifest):
        for d in parsed.blobs():
            if d.urls and d.media_type in mt.FOREIGN_LAYERS:
                continue
            try:
                storage.linked_blob_size(name, d.digest)
            except BlobUnknown as err:
                raise ManifestBlobUnknown(
                    f"manifest references unknown blob {d.digest}", str(d.digest)
                ) from err
    else:
        for d in parsed.manifests:
            try:
                storage.manifest(name, str(d.digest))
            except ManifestUnknown as err:
                raise ManifestBlobUnknown(
                    f"index references unknown manifest {d.digest}", str(d.digest)
                ) from err
    return Verified(raw, digest, media_type, parsed)


def accepted_types(accept_headers: list[str]) -> list[str]:
    """Media types from (possibly several) Accept headers, parameters dropped."""
    return [t.split(";")[0].strip() for h in accept_headers for t in h.split(",") if t.strip()]


def negotiate(storage: Storage, name: str, found: StoredManifest, accept: list[str]) -> StoredManifest:
    """What to answer a GET with, given the client's Accept list.

    No Accept, ``*/*`` or an accepted type: the manifest as stored.  An index the
    client cannot read: its linux/amd64 entry if that one is acceptable (as
    distribution serves old Docker clients).  Else ManifestUnknown, naming why."""
    if not accept or "*/*" in accept or found.media_type in accept:
        return found
    if found.media_type in mt.INDEXES:
        index = Index.parse(found.raw, found.media_type)
        for d in index.manifests:
            if d.platform and d.platform.matches(DEFAULT_PLATFORM) and d.media_type in accept:
                return storage.manifest(name, str(d.digest))
    raise ManifestUnknown(
        f"manifest {found.digest} is {found.media_type}, which the Accept header does not include",
        {"digest": str(found.digest), "mediaType": found.media_type},
    )
