"""Plain HTTP(S) downloads (the builder's ``ADD <url>``), so that requests stays out of builder/.

``fetch(url, headers)`` is the ``fetch`` callback of ``builder.options.BuildOptions``:
a GET that follows redirects, its body streamed and decoded as served.  It
raises our errors, never requests': NotFound (404, 410), Unauthorized (401),
Denied (403), DockyardError for another status of 400 or more and for a
connection that fails; their text is what the builder prints after ``ADD <url>:``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from imagefmt import errors

if TYPE_CHECKING:
    import requests

TIMEOUT = 60  # seconds to connect, and between two reads
CHUNK = 1 << 20

_STATUS_ERRORS: dict[int, type[errors.DockyardError]] = {
    401: errors.Unauthorized,
    403: errors.Denied,
    404: errors.NotFound,
    410: errors.NotFound,
}


class Download:
    """One response being read: ``read(size)`` gives at most ``size`` bytes (b"" at the end)."""

    def __init__(self, resp: requests.Response) -> None:
        self._resp = resp
        self.url: str = resp.url
        self.status: int = resp.status_code
        length = resp.headers.get("Content-Length")
        self.length: int | None = int(length) if length and length.isdigit() else None
        self.last_modified: str | None = resp.headers.get("Last-Modified")
        self._chunks: Iterator[bytes] = resp.iter_content(CHUNK)
        self._buffer = b""

    def read(self, size: int = -1, /) -> bytes:
        """The next bytes of the body (all the rest for ``size`` < 0); DockyardError when
        the connection fails in between."""
        import requests

        try:
            while size < 0 or len(self._buffer) < size:
                chunk = next(self._chunks, b"")
                if not chunk:
                    break
                self._buffer += chunk
        except requests.RequestException as err:
            raise errors.DockyardError(str(err)) from err
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> Download:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fetch(url: str, headers: Mapping[str, str] | None = None) -> Download:
    """GET ``url`` with ``headers`` (If-Modified-Since: a 304 is returned, with no body)."""
    import requests  # here: importing it costs a build that downloads nothing ~0.1 s

    try:
        resp = requests.get(url, headers=dict(headers or {}), stream=True, timeout=TIMEOUT)
    except requests.RequestException as err:
        raise errors.DockyardError(str(err)) from err
    if resp.status_code >= 400:
        resp.close()
        raise _STATUS_ERRORS.get(resp.status_code, errors.DockyardError)(f"HTTP {resp.status_code}")
    return Download(resp)
