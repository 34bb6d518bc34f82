"""Mark-and-sweep garbage collection of the blob store, safe beside a running server.

1. Mark, without a lock: every manifest revision of every repository is kept
   (with ``delete_untagged``: the tagged ones, the manifests their indexes list
   and, transitively, the referrers of kept manifests), and so is every blob a
   kept manifest names.  Parsed manifests are cached for step 2.
2. Under the exclusive ``gc.lock`` (the driver's lock), mark again (cheap: only revisions new since
   step 1 are parsed), unlink the untagged revisions, then delete each unmarked
   blob whose mtime is older than the mark's start minus ``grace`` seconds, and
   the ``_layers`` links to deleted blobs.

Why a concurrent push is safe: a push holds ``gc.lock`` *shared* from the moment
it checks that a manifest's blobs exist until its revision and tag are written
(and while it commits and links a blob), so the sweep sees either the whole
manifest or none of it; a manifest pushed after the sweep is checked against
the blobs that survived it and refused (MANIFEST_BLOB_UNKNOWN), never stored
dangling.  A blob uploaded, mounted, re-uploaded or found by a HEAD (which is
how clients decide to skip an upload) for a manifest that is not pushed yet has
a fresh mtime (each of those touches it) and so is spared for ``grace`` seconds
(default 1 hour): the time a client has between checking or uploading its layers
and pushing the manifest.  Upload sessions untouched for
``upload_max_age`` (default a week) are removed, as distribution purges them.

Everything here goes through the storage driver (walk, list, stat, delete), so
the same collection runs on any driver that keeps modification times.  The
repositories are marked, and the unmarked blobs stat'ed, by ``PARALLEL``
threads: on an object store (the s3 driver) each of those is a round trip, and
1,000 of them one after the other take seconds (distribution's S3 collection is
sequential, and stops the registry).  The doomed blobs and links go by
``delete_many`` (1,000 keys a request on S3).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from imagefmt.digest import Digest
from imagefmt.errors import DockyardError
from imagefmt.manifest import Index, Manifest, parse_any
from registry.server.storage import paths
from registry.server.storage.driver import PathNotFound
from registry.server.storage.store import Storage

PARALLEL = 16  # threads marking repositories and sweeping blobs
_T = TypeVar("_T")
_R = TypeVar("_R")


def _each(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``fn`` of every item, by up to PARALLEL threads, in the items' order."""
    items = list(items)
    if len(items) < 2:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(min(PARALLEL, len(items)), thread_name_prefix="gc") as pool:
        return list(pool.map(fn, items))


@dataclass
class GCResult:
    blobs: list[Digest] = field(default_factory=list)  # deleted (or, in a dry run, deletable)
    bytes: int = 0
    manifests: list[tuple[str, Digest]] = field(default_factory=list)
    uploads: list[tuple[str, str]] = field(default_factory=list)
    marked: int = 0


class _Marker:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.parsed: dict[Digest, Manifest | Index | None] = {}

    def parse(self, d: Digest) -> Manifest | Index | None:
        if d not in self.parsed:
            raw = self.storage.manifest_bytes(d)
            try:
                self.parsed[d] = parse_any(raw) if raw is not None else None
            except DockyardError:
                self.parsed[d] = None
        return self.parsed[d]

    def mark(self, delete_untagged: bool) -> tuple[set[Digest], dict[str, set[Digest]]]:
        """(every digest to keep, the untagged revisions to drop per repository)."""
        marked: set[Digest] = set()
        drop: dict[str, set[Digest]] = {}
        for repo, keep, dropped in _each(
            lambda r: self._mark_repository(r, delete_untagged), self.storage.repositories()
        ):
            marked |= keep
            if dropped:
                drop[repo] = dropped
        return marked, drop

    def _mark_repository(self, repo: str, delete_untagged: bool) -> tuple[str, set[Digest], set[Digest]]:
        """(repo, the digests it keeps, its untagged revisions to drop)."""
        revisions = set(self.storage.revisions(repo))
        if delete_untagged:
            roots = set()
            for tag in self.storage.tags(repo):
                with contextlib.suppress(DockyardError):
                    roots.add(self.storage.resolve(repo, tag))
        else:
            roots = set(revisions)
        keep = self._closure(roots, revisions)
        marked = set(keep)
        for d in keep:
            m = self.parse(d)
            if isinstance(m, Manifest):
                marked.update(b.digest for b in m.blobs())
        return repo, marked, (revisions - keep if delete_untagged else set())

    def _closure(self, roots: set[Digest], revisions: set[Digest]) -> set[Digest]:
        keep: set[Digest] = set()
        todo = [d for d in roots if d in revisions]
        while True:
            while todo:
                d = todo.pop()
                if d in keep or d not in revisions:
                    continue
                keep.add(d)
                m = self.parse(d)
                if isinstance(m, Index):
                    todo.extend(c.digest for c in m.manifests)
            for d in revisions - keep:  # referrers of kept manifests stay with them
                m = self.parse(d)
                if m is not None and m.subject is not None and m.subject.digest in keep:
                    todo.append(d)
            if not todo:
                return keep


def collect(
    storage: Storage,
    dry_run: bool = False,
    delete_untagged: bool = False,
    grace: float = 3600.0,
    upload_max_age: float = 7 * 86400.0,
) -> GCResult:
    """Run one collection (see the module docstring); with ``dry_run`` only report."""
    started = time.time()
    marker = _Marker(storage)
    marker.mark(delete_untagged)
    result = GCResult()
    lock = contextlib.nullcontext() if dry_run else storage.gc_lock()
    with lock:
        marked, drop = marker.mark(delete_untagged)
        result.marked = len(marked)
        for repo, digests in sorted(drop.items()):
            for d in sorted(digests):
                result.manifests.append((repo, d))
                if not dry_run:
                    with contextlib.suppress(DockyardError):
                        storage.delete_manifest(repo, d)
        cutoff = started - grace

        def old(found: tuple[Digest, str]) -> tuple[Digest, str, int] | None:
            d, path = found
            try:
                info = storage.driver.stat(path)  # now, not when listed: a HEAD may just have touched it
            except PathNotFound:
                return None
            return (d, path, info.size) if info.mtime < cutoff else None

        stored = _blob_files(storage)
        candidates = [(d, path) for d, path in stored if d not in marked]
        doomed = [found for found in _each(old, candidates) if found is not None]
        if not dry_run:
            storage.driver.delete_many([path for _, path, _ in doomed])
        for d, _, size in doomed:
            result.blobs.append(d)
            result.bytes += size
        if not dry_run:
            swept = {d for d, _, _ in doomed}
            _prune_links(storage, {d for d, _ in stored} - swept, swept)
    _purge_uploads(storage, started - upload_max_age, dry_run, result)
    return result


def _blob_files(storage: Storage) -> list[tuple[Digest, str]]:
    try:
        found = [(paths.blob_digest(f.path), f.path) for f in storage.driver.walk(paths.BLOBS)]
    except PathNotFound:
        return []
    return [(d, path) for d, path in found if d is not None]


def _prune_links(storage: Storage, kept: set[Digest], swept: set[Digest]) -> None:
    """Delete the ``_layers`` links of every repository to blobs that are gone:
    the ones just swept, and any other the sweep's listing did not see (looked
    up, as a blob may have been stored since)."""
    links = [
        (repo, d)
        for repo, ds in _each(lambda r: (r, storage.layer_links(r)), storage.repositories())
        for d in ds
        if d not in kept
    ]

    def dangling(link: tuple[str, Digest]) -> str | None:
        repo, d = link
        return paths.layer_link(repo, d) if d in swept or not storage.has_blob(d) else None

    storage.driver.delete_many([p for p in _each(dangling, links) if p is not None])


def _purge_uploads(storage: Storage, cutoff: float, dry_run: bool, result: GCResult) -> None:
    """Remove sessions untouched since ``cutoff``.  Sessions finish and vanish while
    we look (a vanished one is skipped), and a repository may hold nothing but an
    upload yet, so this looks at every repository directory, not only repositories."""
    for repo, children in sorted(storage.repository_dirs()):
        if "_uploads" not in children:
            continue
        try:
            sessions = storage.driver.list(paths.uploads(repo))
        except PathNotFound:
            continue
        for session in sessions:
            try:
                entries = [session, *storage.driver.list(session)]
                newest = max(storage.driver.stat(p).mtime for p in entries)
            except PathNotFound:
                continue
            if newest < cutoff:
                result.uploads.append((repo, session.rsplit("/", 1)[1]))
                if not dry_run:
                    with contextlib.suppress(PathNotFound):
                        storage.driver.delete(session)
