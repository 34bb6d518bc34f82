"""What the client remembers between pushes and pulls (Docker's "distribution metadata").

``<store>/distribution.json``::

    {"compressed": {"<diff_id>": {"gzip": {"digest": "sha256:…", "size": 123}}},
     "sources": {"<blob digest>": ["127.0.0.1:5000/team/app", …]}}

``compressed`` lets a push of an uncompressed local layer skip recompression
when the registry already has its gzip form (the gzip output is deterministic,
so the digest is the same when we do recompress).  ``sources`` names the
repositories a blob was pulled from or pushed to, so that a push to another
repository of the same registry can mount it instead of uploading it.  It is
a cache: losing it costs only time.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any

from imagefmt.digest import Digest
from imagefmt.errors import DigestInvalid
from imagefmt.store import Store
from imagefmt.tempstate import owned_name

MAX_SOURCES = 8  # per blob, most recent first


@dataclass(frozen=True, slots=True)
class Compressed:
    digest: Digest
    size: int


class Metadata:
    """The cache, read once; :meth:`save` merges what this process learned into the file."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._path = store.root / "distribution.json"
        self._lock = threading.Lock()
        self._compressed: dict[str, dict[str, Any]] = {}
        self._sources: dict[str, list[str]] = {}
        self._dirty = False
        doc = self._read()
        self._compressed = doc["compressed"]
        self._sources = doc["sources"]

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self._path.read_bytes())
        except (OSError, ValueError):
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        return {"compressed": dict(doc.get("compressed") or {}), "sources": dict(doc.get("sources") or {})}

    def compressed(self, diff_id: Digest, compression: str = "gzip") -> Compressed | None:
        with self._lock:
            entry = (self._compressed.get(str(diff_id)) or {}).get(compression)
        try:
            return Compressed(Digest.parse(entry["digest"]), int(entry["size"])) if entry else None
        except (DigestInvalid, KeyError, TypeError, ValueError):
            return None

    def set_compressed(self, diff_id: Digest, blob: Compressed, compression: str = "gzip") -> None:
        with self._lock:
            forms = self._compressed.setdefault(str(diff_id), {})
            forms[compression] = {"digest": str(blob.digest), "size": blob.size}
            self._dirty = True

    def sources(self, digest: Digest) -> list[str]:
        """Repositories (``host/name``) known to hold ``digest``, most recent first."""
        with self._lock:
            return list(self._sources.get(str(digest), []))

    def add_source(self, digest: Digest, repository: str) -> None:
        with self._lock:
            old = self._sources.get(str(digest), [])
            self._sources[str(digest)] = [repository, *(r for r in old if r != repository)][:MAX_SOURCES]
            self._dirty = True

    def save(self) -> None:
        """Merge into the file under the store lock (atomic replace)."""
        with self._lock:
            if not self._dirty:
                return
            compressed, sources = dict(self._compressed), dict(self._sources)
            self._dirty = False
        with self._store.lock():
            doc = self._read()
            for diff_id, forms in compressed.items():
                doc["compressed"].setdefault(diff_id, {}).update(forms)
            for digest, repos in sources.items():
                old = doc["sources"].get(digest, [])
                doc["sources"][digest] = [*repos, *(r for r in old if r not in repos)][:MAX_SOURCES]
            tmp = self._store.tmp / owned_name("meta", ".json")
            tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
            os.replace(tmp, self._path)
