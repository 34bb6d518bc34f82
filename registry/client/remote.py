"""The distribution API calls on one remote repository (DS@v1.1.1 "Endpoints").

:class:`Repository` turns each endpoint into a method that returns verified
content or raises one of our errors; it holds no state beyond its transport
and name.  Pull and push orchestration live in ``pull.py`` and ``push.py``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from imagefmt import errors
from imagefmt import mediatypes as mt
from imagefmt.digest import Digest
from registry import protocol
from registry.client.transport import Transport

MANIFEST_MAX = 4 << 20  # DS: registries must accept manifests of at least 4 MB; we read no more


def pull_scope(name: str) -> str:
    return f"repository:{name}:pull"


def push_scope(name: str) -> str:
    return f"repository:{name}:pull,push"


@dataclass(frozen=True)
class Repository:
    """``<transport host>/<name>``; every method authenticates for what it needs."""

    transport: Transport
    name: str

    def __str__(self) -> str:
        return f"{self.transport.host}/{self.name}"

    @property
    def pull_scopes(self) -> tuple[str, ...]:
        return (pull_scope(self.name),)

    @property
    def push_scopes(self) -> tuple[str, ...]:
        return (push_scope(self.name),)

    # -------------------------------------------------------- manifests ---

    def get_manifest(self, reference: str) -> tuple[bytes, str, Digest]:
        """Fetch a manifest or index by tag or digest: (raw, media type, digest).

        Verified: by-digest content must hash to the digest, and a tag's
        ``Docker-Content-Digest`` must match the bytes.  Raise ManifestUnknown
        with a hint, DigestInvalid, or the registry's error."""
        what = f"pull manifest {self}:{reference}" if ":" not in reference else f"pull {self}@{reference}"
        try:
            resp = self.transport.request(
                "GET",
                f"/v2/{self.name}/manifests/{reference}",
                scopes=self.pull_scopes,
                headers={"Accept": mt.ACCEPT_ALL},
                what=what,
                stream=True,
            )
        except errors.NotFound as exc:
            raise errors.ManifestUnknown(
                f"manifest for {self}{'@' if ':' in reference else ':'}{reference} not found: "
                f"{exc.message.split(': ', 1)[-1]}: check the repository name and the tag",
                exc.detail,
            ) from exc
        with contextlib.closing(resp):
            raw = _read_limited(resp, MANIFEST_MAX, what)
        got = Digest.of(raw)
        if ":" in reference:
            want = Digest.parse(reference)
            got = Digest.of(raw, want.algorithm)
            if got != want:
                raise errors.DigestInvalid(f"{what}: the registry sent a manifest whose digest is {got}")
        header = resp.headers.get(protocol.CONTENT_DIGEST, "")
        if header and ":" not in reference:
            with contextlib.suppress(errors.DigestInvalid):
                claimed = Digest.parse(header)
                if claimed.algorithm == "sha256" and claimed != got:
                    raise errors.DigestInvalid(
                        f"{what}: manifest digest mismatch: the registry says {claimed}, the bytes are {got}"
                    )
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return raw, media_type, got

    def put_manifest(self, reference: str, raw: bytes, media_type: str) -> Digest:
        """Upload a manifest under a tag (or its digest); return its digest.

        Raise the registry's error (ManifestBlobUnknown, ManifestInvalid, Denied…)."""
        digest = Digest.of(raw)
        resp = self.transport.request(
            "PUT",
            f"/v2/{self.name}/manifests/{reference}",
            scopes=self.push_scopes,
            headers={"Content-Type": media_type},
            body=raw,
            expect=(200, 201, 202),
            what=f"push manifest {self}:{reference}",
        )
        resp.close()
        header = resp.headers.get(protocol.CONTENT_DIGEST, "")
        if header and header != str(digest):
            raise errors.DigestInvalid(
                f"push manifest {self}:{reference}: the registry stored {header}, we sent {digest}"
            )
        return digest

    def tags(self) -> list[str]:
        """Every tag, following pagination; raise NameUnknown for a missing repository."""
        out: list[str] = []
        what = f"list tags of {self}"
        for doc in self._pages(f"/v2/{self.name}/tags/list", self.pull_scopes, what):
            out += [str(t) for t in (doc.get("tags") or [])]
        return out

    # ------------------------------------------------------------ blobs ---

    def blob_size(self, digest: Digest, push: bool = False) -> int | None:
        """``HEAD`` a blob: its size, or None when the repository does not have it."""
        resp = self.transport.request(
            "HEAD",
            f"/v2/{self.name}/blobs/{digest}",
            scopes=self.push_scopes if push else self.pull_scopes,
            expect=(200, 404),
            what=f"check blob {digest.short} in {self}",
        )
        resp.close()
        if resp.status_code == 404:
            return None
        return int(resp.headers.get("Content-Length") or -1)

    def open_blob(self, digest: Digest, offset: int = 0) -> requests.Response:
        """``GET`` a blob from ``offset`` (``Range: bytes=N-``), streamed; the caller
        verifies the digest and closes it.  The reply is 206 when the range was
        honoured, else 200 with the whole blob."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self.transport.request(
            "GET",
            f"/v2/{self.name}/blobs/{digest}",
            scopes=self.pull_scopes,
            headers=headers,
            expect=(200, 206),
            stream=True,
            what=f"pull blob {digest.short} from {self}",
        )

    def start_upload(self, mount: Digest | None = None, source: str = "") -> tuple[bool, str]:
        """``POST …/blobs/uploads/`` (with ``mount``/``from`` to mount a blob of
        repository ``source``): (True, blob URL) when mounted, else (False,
        upload location)."""
        params: list[tuple[str, str]] = []
        scopes = self.push_scopes
        if mount is not None:
            params.append(("mount", str(mount)))
            if source:
                params.append(("from", source))
                scopes = (*scopes, pull_scope(source))
        resp = self.transport.request(
            "POST",
            f"/v2/{self.name}/blobs/uploads/",
            scopes=scopes,
            params=params,
            headers={"Content-Length": "0"},
            expect=(201, 202),
            what=f"start a blob upload to {self}",
        )
        resp.close()
        loc = resp.headers.get("Location", "")
        if not loc:
            raise errors.BlobUploadInvalid(f"start a blob upload to {self}: the registry sent no Location")
        return resp.status_code == 201, loc

    def upload(
        self,
        location: str,
        opener: Callable[[], IO[bytes]],
        digest: Digest,
        size: int,
        chunk_size: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Upload ``size`` bytes from ``opener()`` to an upload ``location`` and
        close it with ``PUT ?digest=``: one PUT when ``size <= chunk_size``,
        else ``PATCH`` chunks with ``Content-Range`` (DS end-5/end-6).

        Not retried here (a broken session cannot be resumed blindly): the
        caller starts a new upload.  Raise the registry's error."""
        what = f"push blob {digest.short} to {self}"
        octet = {"Content-Type": "application/octet-stream"}
        start = 0
        if size > chunk_size:
            while start < size:
                n = min(chunk_size, size - start)
                hdrs = {**octet, "Content-Range": f"{start}-{start + n - 1}", "Content-Length": str(n)}
                resp = self.transport.request(
                    "PATCH",
                    location,
                    scopes=self.push_scopes,
                    headers=hdrs,
                    body=_slice_opener(opener, start, n, progress),
                    expect=(202, 204),
                    what=what,
                    retry=False,
                )
                resp.close()
                location = resp.headers.get("Location") or location
                start += n
        n = size - start
        resp = self.transport.request(
            "PUT",
            _with_query(location, digest=str(digest)),
            scopes=self.push_scopes,
            headers={**octet, "Content-Length": str(n)},
            body=_slice_opener(opener, start, n, progress) if n else b"",
            expect=(201, 204),
            what=what,
            retry=False,
        )
        resp.close()
        header = resp.headers.get(protocol.CONTENT_DIGEST, "")
        if header and header != str(digest):
            raise errors.DigestInvalid(f"{what}: the registry stored {header}, we sent {digest}")

    def cancel_upload(self, location: str) -> None:
        """``DELETE`` an upload session; errors are ignored (it expires anyway)."""
        with contextlib.suppress(errors.DockyardError):
            self.transport.request(
                "DELETE", location, scopes=self.push_scopes, expect=(200, 202, 204, 404, 405), retry=False
            ).close()

    # ----------------------------------------------------------- paging ---

    def _pages(self, path: str, scopes: tuple[str, ...], what: str) -> Iterator[dict[str, Any]]:
        yield from iter_pages(self.transport, path, scopes, what)


def iter_pages(
    transport: Transport, path: str, scopes: tuple[str, ...], what: str
) -> Iterator[dict[str, Any]]:
    """The JSON documents of a paginated listing, following ``Link: rel="next"``."""
    nxt: str | None = path
    seen: set[str] = set()
    while nxt and nxt not in seen:
        seen.add(nxt)
        resp = transport.request("GET", nxt, scopes=scopes, what=what)
        with contextlib.closing(resp):
            try:
                doc = resp.json()
            except ValueError as exc:
                raise errors.DockyardError(f"{what}: the registry sent invalid JSON") from exc
            nxt = protocol.parse_next_link(resp.headers.get("Link", ""))
        if not isinstance(doc, dict):
            raise errors.DockyardError(f"{what}: the registry sent an unexpected document")
        yield doc


def catalog(transport: Transport, page: int = 100, limit: int = 0) -> list[str]:
    """Repository names from ``/v2/_catalog`` (scope ``registry:catalog:*``), up to ``limit``."""
    out: list[str] = []
    path = f"/v2/_catalog?n={page}"
    for doc in iter_pages(transport, path, ("registry:catalog:*",), f"list the catalog of {transport.host}"):
        out += [str(r) for r in (doc.get("repositories") or [])]
        if limit and len(out) >= limit:
            return out[:limit]
    return out


# ------------------------------------------------------------- helpers ---


def _read_limited(resp: requests.Response, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    for chunk in resp.iter_content(1 << 16):
        total += len(chunk)
        if total > limit:
            raise errors.SizeInvalid(f"{what}: manifest larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _with_query(url: str, **extra: str) -> str:
    """``url`` with ``extra`` added to its query (a Location may carry its own state)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query, safe=":")))


class _Slice:
    """``n`` bytes of a file from ``start``, with a length (requests sends a
    Content-Length) and a progress callback every MiB."""

    def __init__(self, f: IO[bytes], n: int, progress: Callable[[int], None] | None) -> None:
        self._f = f
        self._left = n
        self._progress = progress
        self._pending = 0

    def __len__(self) -> int:
        return self._left

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n < 0 else min(max(n, 1 << 20), self._left)
        data = self._f.read(n)
        self._left -= len(data)
        if self._progress is not None:
            self._pending += len(data)
            if self._pending >= 1 << 20 or not self._left or not data:
                self._progress(self._pending)
                self._pending = 0
        if not data and self._left:
            raise errors.SizeInvalid("blob shrank while it was being uploaded")
        return data

    def close(self) -> None:
        self._f.close()


def _slice_opener(
    opener: Callable[[], IO[bytes]], start: int, n: int, progress: Callable[[int], None] | None
) -> Callable[[], IO[bytes]]:
    def open_slice() -> IO[bytes]:
        f = opener()
        if start:
            f.seek(start, os.SEEK_SET)
        return _Slice(f, n, progress)  # type: ignore[return-value]

    return open_slice
