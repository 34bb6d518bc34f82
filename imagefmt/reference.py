"""Image references ``[host[:port]/]path[:tag][@sha256:…]``, normalised as Docker does.

``busybox`` → ``docker.io/library/busybox:latest``; ``localhost:5000/a/b`` keeps
its host; ``index.docker.io`` is ``docker.io``.  The normalisation lives only in
:meth:`Reference.parse`; ``Reference.parse(str(r)) == r`` holds.
"""

from __future__ import annotations

from imagefmt.digest import Digest
from imagefmt.errors import DigestInvalid, NameInvalid
from imagefmt.records import NamedTuple

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
NAME_TOTAL_MAX = 255

# Docker's reference grammar (distribution/reference), checked by hand rather than by
# regular expressions: compiling them cost 1.9 ms of every command that names an image,
# and Go's \w and [0-9] are ASCII where Python's \w is any Unicode letter.
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_TAG = _WORD | {".", "-"}
_HOST = _WORD - {"_"}
_IPV6 = frozenset("0123456789abcdefABCDEF:.")


def _is_component(c: str) -> bool:
    r"""``[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*``"""
    if not c or c[0] not in _LOWER or c[-1] not in _LOWER:
        return False
    sep = ""
    for ch in c:
        if ch in _LOWER:
            if sep and sep not in (".", "_", "__") and sep != "-" * len(sep):
                return False
            sep = ""
        elif ch in "._-":
            sep += ch
        else:
            return False
    return True


def _is_path(path: str) -> bool:
    """``component(?:/component)*``"""
    return all(_is_component(c) for c in path.split("/"))


def _is_tag(tag: str) -> bool:
    r"""``[\w][\w.-]{0,127}`` with Go's ASCII ``\w``."""
    return 0 < len(tag) <= 128 and tag[0] in _WORD and all(ch in _TAG for ch in tag)


def _is_label(label: str) -> bool:
    """``[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]``"""
    return (
        bool(label)
        and label[0] in _HOST
        and label[-1] in _HOST
        and all(ch in _HOST or ch == "-" for ch in label)
    )


def _is_domain(domain: str) -> bool:
    r"""``(?:label(?:\.label)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?``"""
    if domain.startswith("["):
        host, bracket, port = domain[1:].partition("]")
        if not bracket or not host or not all(ch in _IPV6 for ch in host):
            return False
    else:
        host, colon, digits = domain.partition(":")
        port = colon + digits
        if not all(_is_label(label) for label in host.split(".")):
            return False
    return not port or (port[0] == ":" and port[1:].isascii() and port[1:].isdigit())


def _bad(text: str, why: str) -> NameInvalid:
    return NameInvalid(f"invalid reference format {text!r}: {why}")


class Reference(NamedTuple):
    """A normalised image reference; ``tag`` and ``digest`` may each be None.
    Immutable and hashable (a NamedTuple: cheaper to import than a dataclass)."""

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str, default_tag: bool = True) -> Reference:
        """Parse and normalise; add tag ``latest`` when neither tag nor digest is
        given (unless ``default_tag`` is False).  Raise NameInvalid."""
        if not text or text != text.strip():
            raise _bad(text, "empty or surrounded by spaces")
        rest, digest = text, None
        if "@" in rest:
            rest, _, dg = rest.partition("@")
            try:
                digest = Digest.parse(dg)
            except DigestInvalid as err:
                raise _bad(text, f"bad digest ({err})") from err
        tag = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _is_tag(tag):
                raise _bad(text, "a tag is up to 128 letters, digits, '_', '.', '-'")
        domain, path = split_domain(rest)
        if domain.lower() != domain and not any(c in domain for c in ".:"):
            # a host only because of its capitals (UPPER/case): docker's daemon refuses it
            raise _bad(text, "repository name must be lowercase")
        if not _is_domain(domain):
            raise _bad(text, f"bad registry host {domain!r}")
        if path.lower() == path and not _is_path(path):
            raise _bad(text, "a name is lowercase components of [a-z0-9] joined by '.', '_', '-' or '/'")
        if not _is_path(path):
            raise _bad(text, "repository name must be lowercase")
        if len(domain) + 1 + len(path) > NAME_TOTAL_MAX:
            raise _bad(text, f"repository name must not be longer than {NAME_TOTAL_MAX} characters")
        if tag is None and digest is None and default_tag:
            tag = "latest"
        return cls(domain, path, tag, digest)

    @property
    def repository(self) -> str:
        """``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """The short form docker prints: ``busybox``, ``user/app``, ``localhost:5000/x``."""
        if self.domain == DOCKER_HUB:
            return self.path.removeprefix("library/")
        return self.repository

    def familiar(self) -> str:
        return self.familiar_repository + self._suffix()

    @property
    def endpoint(self) -> str:
        """The host to talk to for this reference's registry."""
        return DOCKER_HUB_ENDPOINT if self.domain == DOCKER_HUB else self.domain

    def with_tag(self, tag: str | None) -> Reference:
        return self._replace(tag=tag)

    def with_digest(self, digest: Digest | None) -> Reference:
        return self._replace(digest=digest)

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag else ""
        return out + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.repository + self._suffix()


def split_domain(name: str) -> tuple[str, str]:
    """Docker's rule: the first component is a host if it has '.' or ':', is
    'localhost', or has uppercase letters; otherwise the name is on Docker Hub."""
    first, sep, remainder = name.partition("/")
    if not sep or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DOCKER_HUB, name
    else:
        domain = first
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def is_valid_repository_path(path: str) -> bool:
    """True for a registry repository name (``<name>`` in ``/v2/<name>/…``)."""
    return _is_path(path) and len(path) <= NAME_TOTAL_MAX


def is_valid_tag(tag: str) -> bool:
    return _is_tag(tag)
