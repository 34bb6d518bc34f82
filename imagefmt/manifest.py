"""Descriptors, image manifests and indexes (OCI and Docker schema2).

The raw bytes are the truth: a manifest's digest is ``Digest.of(raw)`` and we
never re-serialise a manifest we did not write.  We read both OCI and Docker
media types and write OCI by default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from imagefmt import mediatypes as mt
from imagefmt.digest import Digest
from imagefmt.errors import DigestInvalid, ManifestInvalid


@dataclass(frozen=True, slots=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/amd64``, ``linux/arm64/v8``, ``amd64``."""
        parts = text.strip().lower().split("/")
        if len(parts) == 1:
            return cls(architecture=parts[0])
        if len(parts) in (2, 3) and all(parts):
            return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")
        raise ManifestInvalid(f"invalid platform {text!r}: use os/arch[/variant], e.g. linux/amd64")

    @classmethod
    def from_json(cls, d: Any) -> Platform | None:
        """A descriptor's ``platform``; ManifestInvalid unless it is an object of
        strings (``os.features`` and ``features`` lists of strings)."""
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ManifestInvalid(f"platform must be a JSON object, not {_kind(d)}")
        for key in ("os", "architecture", "variant", "os.version"):
            _opt_str(d, key, "platform")
        for key in ("os.features", "features"):
            _opt_str_list(d, key, "platform")
        if not d:
            return None
        return cls(d.get("os") or "", d.get("architecture") or "", d.get("variant") or "")

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def matches(self, other: Platform) -> bool:
        return (
            self.os == other.os
            and self.architecture == other.architecture
            and (not self.variant or not other.variant or self.variant == other.variant)
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    platform: Platform | None = field(default=None, compare=False)
    artifact_type: str = field(default="", compare=False)
    urls: tuple[str, ...] = field(default=(), compare=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_json(cls, d: Any) -> Descriptor:
        """A descriptor from its JSON; ManifestInvalid for a missing field or one of
        the wrong type, as distribution's typed decoding refuses it."""
        if not isinstance(d, dict):
            raise ManifestInvalid(f"a descriptor must be a JSON object, not {_kind(d)}")
        for key in ("digest", "size"):
            if key not in d:
                raise ManifestInvalid(f"descriptor without {key!r}")
        raw_digest = d["digest"]
        if not isinstance(raw_digest, str):
            raise ManifestInvalid(f"descriptor digest must be a string, not {_kind(raw_digest)}")
        try:
            digest = Digest.parse(raw_digest)
        except DigestInvalid as err:
            raise ManifestInvalid(f"descriptor: {err}") from err
        size = d["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestInvalid(f"descriptor {digest}: size must be a non-negative integer")
        where = f"descriptor {digest}"
        known = {"mediaType", "digest", "size", "annotations", "platform", "artifactType", "urls"}
        return cls(
            _opt_str(d, "mediaType", where),
            digest,
            size,
            _annotations(d, where),
            Platform.from_json(d.get("platform")),
            _opt_str(d, "artifactType", where),
            tuple(_opt_str_list(d, "urls", where)),
            {k: v for k, v in d.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out.update(self.extra)
        return out


def _kind(value: Any) -> str:
    """The JSON type of a decoded value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _opt_str(d: dict[str, Any], key: str, where: str) -> str:
    """``d[key]``, a string ("" when absent or null)."""
    value = d.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ManifestInvalid(f"{where}: {key} must be a string, not {_kind(value)}")
    return value


def _opt_str_list(d: dict[str, Any], key: str, where: str) -> list[str]:
    """``d[key]``, an array of strings ([] when absent or null)."""
    value = d.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestInvalid(f"{where}: {key} must be an array of strings, not {_kind(value)}")
    return value


def _annotations(d: dict[str, Any], where: str) -> dict[str, str]:
    """``d["annotations"]``, an object of strings ({} when absent or null)."""
    value = d.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ManifestInvalid(f"{where}: annotations must be an object of strings, not {_kind(value)}")
    return dict(value)


def _load(raw: bytes) -> dict[str, Any]:
    """The JSON object of a manifest or index, its common fields type-checked."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestInvalid(f"manifest is not valid JSON: {err}") from err
    except RecursionError as err:  # '[' * 100000: nested deeper than the parser goes
        raise ManifestInvalid("manifest is not valid JSON: nested too deeply") from err
    if not isinstance(doc, dict):
        raise ManifestInvalid(f"manifest must be a JSON object, not {_kind(doc)}")
    version = doc.get("schemaVersion")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise ManifestInvalid(f"manifest schemaVersion must be a number, not {_kind(version)}")
    for key in ("mediaType", "artifactType"):
        _opt_str(doc, key, "manifest")
    _annotations(doc, "manifest")
    for key in ("config", "subject"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise ManifestInvalid(f"manifest {key} must be a descriptor object, not {_kind(doc[key])}")
    for key in ("layers", "manifests"):
        if doc.get(key) is not None and not isinstance(doc[key], list):
            raise ManifestInvalid(f"manifest {key} must be an array, not {_kind(doc[key])}")
    return doc


def detect_media_type(raw: bytes, declared: str = "") -> str:
    """The media type of a manifest or index from its declared type or its body.

    Reject an ambiguous body (both ``layers`` and ``manifests``) as
    containers/image does."""
    doc = _load(raw)
    body = doc.get("mediaType") or ""
    if "layers" in doc and "manifests" in doc:
        raise ManifestInvalid("ambiguous manifest: it has both 'layers' and 'manifests'")
    if declared and body and declared != body and declared not in ("application/json", ""):
        raise ManifestInvalid(f"manifest mediaType {body!r} does not match Content-Type {declared!r}")
    found = body or (declared if declared not in ("application/json",) else "")
    if not found:
        if "manifests" in doc:
            found = mt.OCI_INDEX
        elif "config" in doc or "layers" in doc:
            found = mt.OCI_MANIFEST
        elif doc.get("schemaVersion") == 1:
            found = mt.DOCKER_SCHEMA1_SIGNED
    return found


@dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker schema2)."""

    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    artifact_type: str = ""

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    @classmethod
    def parse(cls, raw: bytes, media_type: str = "") -> Manifest:
        """Parse an image manifest; raise ManifestInvalid for any other document."""
        found = detect_media_type(raw, media_type)
        if found not in mt.MANIFESTS:
            raise ManifestInvalid(f"not an image manifest (media type {found or 'unknown'!r})")
        doc = _load(raw)
        if doc.get("schemaVersion") != 2:
            raise ManifestInvalid("manifest schemaVersion must be 2")
        if "config" not in doc:
            raise ManifestInvalid("manifest has no config descriptor")
        return cls(
            raw,
            found,
            Descriptor.from_json(doc["config"]),
            tuple(Descriptor.from_json(d) for d in doc.get("layers") or []),
            Descriptor.from_json(doc["subject"]) if doc.get("subject") is not None else None,
            _annotations(doc, "manifest"),
            _opt_str(doc, "artifactType", "manifest"),
        )

    @classmethod
    def build(
        cls,
        config: Descriptor,
        layers: list[Descriptor],
        media_type: str = mt.OCI_MANIFEST,
        annotations: dict[str, str] | None = None,
    ) -> Manifest:
        """Serialise a new manifest (OCI unless a Docker type is asked for)."""
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        doc["config"] = config.to_json()
        doc["layers"] = [d.to_json() for d in layers]
        if annotations:
            doc["annotations"] = annotations
        raw = json.dumps(doc, separators=(",", ":")).encode()
        return cls(raw, media_type, config, tuple(layers), None, dict(annotations or {}))

    def blobs(self) -> list[Descriptor]:
        return [self.config, *self.layers]


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    raw: bytes
    media_type: str
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    artifact_type: str = ""

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    @classmethod
    def parse(cls, raw: bytes, media_type: str = "") -> Index:
        found = detect_media_type(raw, media_type)
        if found not in mt.INDEXES:
            raise ManifestInvalid(f"not an image index (media type {found or 'unknown'!r})")
        doc = _load(raw)
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise ManifestInvalid("index manifests must be a list")
        return cls(
            raw,
            found,
            tuple(Descriptor.from_json(d) for d in items),
            Descriptor.from_json(doc["subject"]) if doc.get("subject") is not None else None,
            _annotations(doc, "index"),
            _opt_str(doc, "artifactType", "index"),
        )

    @classmethod
    def build(cls, manifests: list[Descriptor], media_type: str = mt.OCI_INDEX) -> Index:
        doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": [d.to_json() for d in manifests]}
        raw = json.dumps(doc, separators=(",", ":")).encode()
        return cls(raw, media_type, tuple(manifests))

    def select(self, platform: Platform) -> Descriptor:
        """The entry for ``platform``; raise ManifestInvalid naming what exists."""
        for d in self.manifests:
            if d.platform and d.platform.matches(platform):
                return d
        have = ", ".join(str(d.platform) for d in self.manifests if d.platform) or "none"
        raise ManifestInvalid(f"no manifest for platform {platform} (available: {have})")


def parse_any(raw: bytes, media_type: str = "") -> Manifest | Index:
    """Parse a manifest or an index from its bytes."""
    found = detect_media_type(raw, media_type)
    if found in mt.INDEXES:
        return Index.parse(raw, found)
    if found in mt.MANIFESTS:
        return Manifest.parse(raw, found)
    raise ManifestInvalid(f"unsupported manifest media type {found or 'unknown'!r}")
