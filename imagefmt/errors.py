"""The one error hierarchy of dockyard, and its one table.

Every package raises these classes (or leaf classes of its own derived from
them).  Each class declares, as class attributes, how it travels:

- ``code``: the OCI distribution-spec error code the registry renders it with;
- ``status``: the HTTP status of that reply;
- ``exit_code``: the exit status of the CLI (``cli.exit_code_for``): 1 for every
  class, as docker's CLI exits 1 for any error it reports; an instance may carry
  its own (``run``'s 125/126/127, a failed RUN's status in ``build``).

A class that declares none of them inherits its base's.  The codes and statuses
are distribution's (``registry/api/errcode/register.go``); a family base has no
API classification of its own, so it goes as ``UNKNOWN`` with its family's
status, and the status tells a client which family it is::

    class                   code                   status  exit
    DockyardError           UNKNOWN                500     1
    ├── NotFound            UNKNOWN                404     1
    │   ├── BlobUnknown         BLOB_UNKNOWN
    │   ├── ManifestUnknown     MANIFEST_UNKNOWN
    │   ├── NameUnknown         NAME_UNKNOWN
    │   └── BlobUploadUnknown   BLOB_UPLOAD_UNKNOWN
    ├── Invalid             UNKNOWN                400     1
    │   ├── DigestInvalid       DIGEST_INVALID
    │   ├── ManifestInvalid     MANIFEST_INVALID
    │   ├── ManifestBlobUnknown MANIFEST_BLOB_UNKNOWN
    │   ├── NameInvalid         NAME_INVALID
    │   ├── TagInvalid          TAG_INVALID
    │   ├── SizeInvalid         SIZE_INVALID
    │   ├── BlobUploadInvalid   BLOB_UPLOAD_INVALID
    │   ├── RangeInvalid        BLOB_UPLOAD_INVALID    416
    │   └── UnsafeLayer         (Invalid's)
    ├── Unauthorized        UNAUTHORIZED           401     1
    ├── Denied              DENIED                 403     1
    ├── Unsupported         UNSUPPORTED            405     1
    ├── Conflict            UNKNOWN                409     1   (a name in use, a running container…)
    ├── DiskFull            UNKNOWN                500     1   (the store's filesystem is full)
    └── TooManyRequests     TOOMANYREQUESTS        429     1

The tables are filled as each class is defined (``__init_subclass__``): a class
that declares ``code`` or ``status`` claims that pair on the wire, and the
client raises it back for a reply carrying the pair (:func:`class_for`).  A
subclass may claim its base's pair (it is the more precise); any other second
claim is a TypeError at import, as distribution panics on a code registered
twice.  A class that declares nothing (QuotaExceeded, NoSuchContainer…) comes
back as the class that owns its pair.
"""

from __future__ import annotations

from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import ClassVar

# (code, status) -> the class a client raises for a reply with both.
WIRE: dict[tuple[str, int], type[DockyardError]] = {}
# code -> the class of its first (distribution's) status: a reply whose status
# differs (another registry's) still names the error.  UNKNOWN is left out.
BY_CODE: dict[str, type[DockyardError]] = {}
# status -> the most general class of that status, for a reply without an error body.
BY_STATUS: dict[int, type[DockyardError]] = {}
_CODE_STATUS: dict[str, int] = {}


def _register(cls: type[DockyardError]) -> None:
    wire = (cls.code, cls.status)
    owner = WIRE.get(wire)
    if owner is not None and not issubclass(cls, owner):
        raise TypeError(f"{cls.__qualname__}: {wire} already belongs to {owner.__qualname__}")
    WIRE[wire] = cls
    if cls.code != "UNKNOWN" and _CODE_STATUS.setdefault(cls.code, cls.status) == cls.status:
        BY_CODE[cls.code] = cls
    held = BY_STATUS.get(cls.status)
    if held is None or issubclass(held, cls):
        BY_STATUS[cls.status] = cls


def class_for(code: str | None, status: int) -> type[DockyardError]:
    """The class a client raises for a reply with ``status`` whose error body names
    ``code`` (None: no body): the owner of the pair, else of the code, else the
    family of the status, else DockyardError."""
    if code is not None:
        cls = WIRE.get((code, status)) or (BY_CODE.get(code) if code != "UNKNOWN" else None)
        if cls is not None:
            return cls
    return BY_STATUS.get(status, DockyardError)


class DockyardError(Exception):
    """Base of every error dockyard raises on purpose."""

    code: ClassVar[str] = "UNKNOWN"
    status: ClassVar[int] = 500
    exit_code: int = 1  # docker's CLI: 1 for any error it reports; StartFailed, BuildFailed carry their own

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__ or "status" in cls.__dict__:
            _register(cls)


_register(DockyardError)


class NotFound(DockyardError):
    status = 404


class BlobUnknown(NotFound):
    code = "BLOB_UNKNOWN"


class ManifestUnknown(NotFound):
    code = "MANIFEST_UNKNOWN"


class NameUnknown(NotFound):
    code = "NAME_UNKNOWN"


class BlobUploadUnknown(NotFound):
    code = "BLOB_UPLOAD_UNKNOWN"


class Invalid(DockyardError):
    status = 400


class DigestInvalid(Invalid):
    code = "DIGEST_INVALID"


class ManifestInvalid(Invalid):
    code = "MANIFEST_INVALID"


class ManifestBlobUnknown(Invalid):
    code = "MANIFEST_BLOB_UNKNOWN"


class NameInvalid(Invalid):
    code = "NAME_INVALID"


class TagInvalid(Invalid):
    code = "TAG_INVALID"


class SizeInvalid(Invalid):
    code = "SIZE_INVALID"


class BlobUploadInvalid(Invalid):
    code = "BLOB_UPLOAD_INVALID"


class RangeInvalid(Invalid):
    """A chunk that does not start where its upload ends (DS end-5: 416)."""

    code = "BLOB_UPLOAD_INVALID"
    status = 416


class UnsafeLayer(Invalid):
    """A layer tar tried to write outside its target (``..``, absolute, symlink escape)."""


class Unauthorized(DockyardError):
    code = "UNAUTHORIZED"
    status = 401


class Denied(DockyardError):
    code = "DENIED"
    status = 403


class Unsupported(DockyardError):
    code = "UNSUPPORTED"
    status = 405


class Conflict(DockyardError):
    status = 409


class DiskFull(DockyardError):
    """The store's filesystem is full, or would be by what is being written (ENOSPC)."""


class TooManyRequests(DockyardError):
    code = "TOOMANYREQUESTS"
    status = 429
