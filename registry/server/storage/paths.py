"""The layout of a registry's store: the one place its driver paths are built.

Under the driver's root (for the filesystem driver, the ``--root`` directory)::

    /
    ├── blobs/<alg>/<hex[:2]>/<hex>                the bytes; created once, by a move, after verification
    ├── repositories/<name…>/                      <name> nests (a/b/c); its components never start
    │   │                                          with "_", so the entries below cannot clash with one
    │   ├── _layers/<alg>/<hex>                    empty: <name> may serve blob <alg>:<hex>
    │   ├── _manifests/revisions/<alg>/<hex>       holds the manifest's media type; its bytes are a blob
    │   ├── _manifests/tags/<tag>                  "<digest>\n<media type>" of the revision it points at
    │   ├── _referrers/<alg>/<subject hex>/<alg>-<hex>   the referrer's descriptor as JSON
    │   └── _uploads/<uuid>/                       an upload session (registry/server/uploads.py):
    │       ├── data                               the bytes so far (a driver writer's path)
    │       ├── state.json                         offset, digest and hash state: the commit point
    │       └── lock                               the session's lock
    ├── tmp/<uuid>                                 a monolithic upload until it is verified
    └── gc.lock                                    pushes hold it shared; the GC sweep exclusive

Names and tags are checked (:func:`check_name`, :func:`check_tag`) before they
become paths: the regexes admit no ``..``, no leading ``_`` and nothing the
driver's path rule refuses.
"""

from __future__ import annotations

from imagefmt.digest import Digest
from imagefmt.errors import NameInvalid, TagInvalid
from imagefmt.reference import is_valid_repository_path, is_valid_tag

BLOBS = "/blobs"
REPOSITORIES = "/repositories"
TMP = "/tmp"
GC_LOCK = "/gc.lock"


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise NameInvalid.

    The regex admits no ``..``, ``/`` at either end or uppercase, so a name is a
    safe relative path below ``repositories/``."""
    if not is_valid_repository_path(name):
        raise NameInvalid(f"invalid repository name {name!r}", {"name": name})
    return name


def check_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise TagInvalid(f"invalid tag {tag!r}", {"tag": tag})
    return tag


def blob(d: Digest) -> str:
    return f"{BLOBS}/{d.algorithm}/{d.hex[:2]}/{d.hex}"


def blob_digest(path: str) -> Digest | None:
    """The digest of a path :func:`blob` made, or None for anything else."""
    parts = path.split("/")
    if len(parts) != 5 or f"/{parts[1]}" != BLOBS or not parts[4].startswith(parts[3]):
        return None
    return Digest(parts[2], parts[4])


def repository(name: str) -> str:
    return f"{REPOSITORIES}/{name}"


def layer_links(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_layers"


def layer_link(name: str, d: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_layers/{d.algorithm}/{d.hex}"


def revisions(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/revisions"


def revision(name: str, d: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/revisions/{d.algorithm}/{d.hex}"


def tags(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/tags"


def tag(name: str, tag: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/tags/{tag}"


def referrers(name: str, subject: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_referrers/{subject.algorithm}/{subject.hex}"


def referrer(name: str, subject: Digest, d: Digest) -> str:
    return f"{referrers(name, subject)}/{d.algorithm}-{d.hex}"


def uploads(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads"


def upload(name: str, uuid: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{uuid}"


def upload_data(name: str, uuid: str) -> str:
    return f"{upload(name, uuid)}/data"


def upload_state(name: str, uuid: str) -> str:
    return f"{upload(name, uuid)}/state.json"


def upload_lock(name: str, uuid: str) -> str:
    return f"{upload(name, uuid)}/lock"


def tmp(name: str) -> str:
    return f"{TMP}/{name}"
