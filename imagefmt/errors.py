"""The one error hierarchy of dockyard.

Every package raises these classes (or leaf classes of its own derived from
them); ``code`` is the OCI distribution-spec error code that the registry
renders and the client maps back.

    DockyardError
    ├── NotFound        BlobUnknown, ManifestUnknown, NameUnknown, BlobUploadUnknown
    ├── Invalid         DigestInvalid, ManifestInvalid, NameInvalid, SizeInvalid,
    │                   BlobUploadInvalid, ManifestBlobUnknown, UnsafeLayer
    ├── Unauthorized
    ├── Denied
    ├── Unsupported
    ├── Conflict        (a name in use, a running container…)
    └── TooManyRequests
"""

from __future__ import annotations

from imagefmt.records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import ClassVar


class DockyardError(Exception):
    """Base of every error dockyard raises on purpose."""

    code: ClassVar[str] = "UNKNOWN"

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(DockyardError):
    code = "NAME_UNKNOWN"


class BlobUnknown(NotFound):
    code = "BLOB_UNKNOWN"


class ManifestUnknown(NotFound):
    code = "MANIFEST_UNKNOWN"


class NameUnknown(NotFound):
    code = "NAME_UNKNOWN"


class BlobUploadUnknown(NotFound):
    code = "BLOB_UPLOAD_UNKNOWN"


class Invalid(DockyardError):
    code = "UNSUPPORTED"


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
    code = "BLOB_UPLOAD_INVALID"


class UnsafeLayer(Invalid):
    """A layer tar tried to write outside its target (``..``, absolute, symlink escape)."""

    code = "BLOB_UPLOAD_INVALID"


class Unauthorized(DockyardError):
    code = "UNAUTHORIZED"


class Denied(DockyardError):
    code = "DENIED"


class Unsupported(DockyardError):
    code = "UNSUPPORTED"


class Conflict(DockyardError):
    code = "DENIED"


class TooManyRequests(DockyardError):
    code = "TOOMANYREQUESTS"


BY_CODE: dict[str, type[DockyardError]] = {
    cls.code: cls
    for cls in (
        BlobUnknown,
        ManifestUnknown,
        NameUnknown,
        BlobUploadUnknown,
        DigestInvalid,
        ManifestInvalid,
        ManifestBlobUnknown,
        NameInvalid,
        SizeInvalid,
        BlobUploadInvalid,
        Unauthorized,
        Denied,
        Unsupported,
        TooManyRequests,
    )
}
