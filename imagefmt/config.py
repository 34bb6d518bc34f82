"""The image configuration (OCI image-spec config.md; Docker's image JSON).

The raw JSON is kept; the image ID is ``Digest.of(raw)``.  Unknown keys pass
through untouched because we edit the parsed dict and re-serialise only
configs we write ourselves.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from typing import Any

from imagefmt.digest import Digest
from imagefmt.errors import DigestInvalid, ManifestInvalid


def rfc3339(ts: float | None = None) -> str:
    """Docker's timestamp form, UTC with nanoseconds trimmed to what we have."""
    ts = time.time() if ts is None else ts
    whole = int(ts)
    frac = f"{ts - whole:.9f}"[2:].rstrip("0")
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def parse_time(text: str) -> float:
    """Seconds since the epoch for an RFC 3339 timestamp (0.0 if unparsable)."""
    import datetime as dt

    if not text:
        return 0.0
    t = text.strip().replace("Z", "+00:00")
    if "." in t:  # Python accepts at most 6 fractional digits
        head, _, tail = t.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        t = f"{head}.{digits[:6]}{zone}"
    try:
        return dt.datetime.fromisoformat(t).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class ImageConfig:
    raw: bytes
    doc: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> ImageConfig:
        """Parse and check the REQUIRED fields; raise ManifestInvalid."""
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise ManifestInvalid(f"image config is not valid JSON: {err}") from err
        if not isinstance(doc, dict):
            raise ManifestInvalid("image config must be a JSON object")
        rootfs = doc.get("rootfs")
        if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids", []), list):
            raise ManifestInvalid("image config has no rootfs.diff_ids")
        try:
            for d in rootfs.get("diff_ids") or []:
                Digest.parse(d)
        except DigestInvalid as err:
            raise ManifestInvalid(f"image config: bad diff_id: {err}") from err
        return cls(raw, doc)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ImageConfig:
        raw = json.dumps(doc, separators=(",", ":")).encode()
        return cls(raw, doc)

    def edit(self) -> dict[str, Any]:
        """A deep copy of the document, to change and pass to from_dict."""
        return copy.deepcopy(self.doc)

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    @property
    def diff_ids(self) -> list[Digest]:
        return [Digest.parse(d) for d in (self.doc.get("rootfs") or {}).get("diff_ids") or []]

    @property
    def config(self) -> dict[str, Any]:
        """The runtime part (``config``: Env, Cmd, Entrypoint…); {} when absent."""
        return self.doc.get("config") or {}

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.doc.get("history") or [])

    @property
    def created(self) -> str:
        return str(self.doc.get("created") or "")

    @property
    def architecture(self) -> str:
        return str(self.doc.get("architecture") or "")

    @property
    def os(self) -> str:
        return str(self.doc.get("os") or "")


def new_config(
    diff_ids: list[Digest],
    config: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    created: str | None = None,
    architecture: str = "amd64",
) -> ImageConfig:
    """A fresh config for ``diff_ids``."""
    doc: dict[str, Any] = {
        "architecture": architecture,
        "os": "linux",
        "created": created or rfc3339(),
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
        "history": history or [],
    }
    return ImageConfig.from_dict(doc)
