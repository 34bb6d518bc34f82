"""COPY and ADD: sources (the context, another stage, heredocs, ADD's URLs) to one layer tar.

The plan reads every source once to checksum it (the cache key holds the
content, never mtimes); the layer is written only on a miss.  ``ADD <url>``
downloads through the build's ``fetch`` callback: the builder does no HTTP.
A ``--link`` layer does not depend on the image below it, so it is cached
without the parent and reused on another base.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import time
from typing import Any

from builder import copier, history
from builder.cache import step_key
from builder.commit import NewLayer
from builder.context import Item
from builder.copyparents import with_parents
from builder.errors import DockerfileError
from builder.flags import CopyFlags
from builder.instructions.step import LayerJob, Plan, StepState, mtime_now, write_copy_plan
from builder.lexer import expand_heredoc
from builder.parser import Instruction, heredoc_name
from imagefmt.errors import DockyardError
from imagefmt.store import StoredImage
from imagefmt.tario import TarEntry


def copy(state: StepState, ins: Instruction) -> Plan:
    return _plan(state, ins, add=False)


def add(state: StepState, ins: Instruction) -> Plan:
    return _plan(state, ins, add=True)


def _plan(state: StepState, ins: Instruction, add: bool) -> Plan:
    flags = ins.flags_as(CopyFlags)
    form = ins.json_args()
    words = form if form is not None else ins.args.split()
    if len(words) < 2:
        raise DockerfileError(f"{ins.keyword} requires at least two arguments", ins.line)
    dest_raw = state.expand(words[-1], ins)
    view = state.view(state.image)
    owner = copier.parse_chown(state.expand(flags.chown, ins), view, ins.line) if flags.chown else None
    chmod = state.expand(flags.chmod, ins) if flags.chmod else None
    chmod_fn = copier.chmod_function(chmod, ins.line) if chmod else None
    from_id, sources = _sources(state, ins, flags, words[:-1], add)
    # "" (an empty variable) is the WORKDIR itself: a directory, as "." is
    dest_is_dir = (
        flags.parents or dest_raw.endswith("/") or dest_raw in ("", ".", "..") or dest_raw.endswith("/.")
    )
    dest = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", dest_raw))
    where = copier.Placement(
        dest,
        dest_is_dir,
        None if flags.link else view,
        owner,
        keep_owner=bool(flags.from_),
        chmod=chmod_fn,
    )
    if state.source_date_epoch is not None:
        where.now = float(state.source_date_epoch)
    summary = copier.summarize(sources, dest, dest_is_dir, ins.line, state.cache.sums)
    chown_part = f"--chown={flags.chown}" if flags.chown else ""
    created_by = history.nop(
        state.shell, f"{ins.keyword} {chown_part}{summary[0]}:{summary[1]} in {dest_raw} "
    )
    # --from: keyed by what is copied (in created_by's checksum), not by the stage's image; the
    # sources' names, which the checksum lacks, name the files copied into a directory
    key: dict[str, Any] = {
        "from": bool(from_id),
        "names": [s.name for s in sources],
        "dest": dest,
        "owner": owner,
        "chmod": chmod,
        "link": flags.link,
    }
    if flags.parents:
        key["parents"] = [s.parents for s in sources]

    def make_layer(job: LayerJob) -> NewLayer:
        if not flags.link:
            return write_copy_plan(job.state, copier.plan(sources, where, ins.line, summary))
        # --link: keyed without the parent (and its config), so another base reuses the blob
        cache = job.state.cache
        layer_key = step_key("link", {"created_by": created_by, **key, "sde": job.state.source_date_epoch})
        found = cache.get_layer(layer_key)
        if found is not None:
            return NewLayer(blob=found[0], diff_id=found[1])

        def remember(image: StoredImage) -> None:
            cache.put_layer(layer_key, image.manifest.layers[-1], image.config.diff_ids[-1])

        job.on_commit(remember)
        return write_copy_plan(job.state, copier.plan(sources, where, ins.line, summary))

    return Plan(created_by, key, make_layer=make_layer, container=False)


def _sources(
    state: StepState, ins: Instruction, flags: CopyFlags, srcs: list[str], add: bool
) -> tuple[str, list[copier.Source]]:
    """The ``--from`` image ID ("" for none) and the sources: heredocs first, then the
    files of the other stage or image, or ADD's URLs and the context's files."""
    heredocs = {h.name: h for h in ins.heredocs}
    sources: list[copier.Source] = []
    for s in srcs:
        name = heredoc_name(s)
        if name is not None and name in heredocs:
            doc = heredocs[name]
            data = expand_heredoc(doc.content, state.subst_env(), state.escape) if doc.expand else doc.content
            sources.append(copier.data_source(name, data.encode(), 0o644, mtime_now(state)))
    plain = [state.expand(s, ins) for s in srcs if heredoc_name(s) not in heredocs]
    if flags.from_:
        image = state.from_image(state.expand(flags.from_, ins), ins.line)
        what = f"{ins.keyword} failed"
        view = state.view(image)
        if flags.parents:

            def in_image(p: str) -> list[tuple[str, copier.Source]]:
                return [(s.path, s) for s in copier.view_sources(view, [p], what, ins.line)]

            return str(image.id), sources + with_parents(plain, in_image, ins.line)
        return str(image.id), sources + copier.view_sources(view, plain, what, ins.line)
    urls = [s for s in plain if s.startswith(("http://", "https://"))]
    if urls and not add:
        raise DockerfileError("source can't be a URL for COPY", ins.line)
    for u in urls:
        sources.append(download(state, u, ins, flags.checksum))
    local = [s for s in plain if s not in urls]
    if local:
        try:
            if flags.parents:

                def in_context(p: str) -> list[tuple[str, copier.Source]]:
                    return [(s.path, s) for s in copier.context_sources(state.context, [p], ins.line, False)]

                sources += with_parents(local, in_context, ins.line)
            else:
                sources += copier.context_sources(state.context, local, ins.line, archives=add)
        except DockerfileError as err:
            raise DockerfileError(f"{ins.keyword} failed: {err}", ins.line) from None
    if flags.exclude:
        sources = _exclude(sources, list(flags.exclude))
    return "", sources


def _exclude(sources: list[copier.Source], patterns: list[str]) -> list[copier.Source]:
    from builder.dockerignore import Matcher

    m = Matcher(patterns)
    out = []
    for s in sources:
        if m.excluded(s.name):
            continue
        kept = [s.items[0], *[it for it in s.items[1:] if not m.excluded(it.rel)]]
        out.append(copier.Source(s.name, tuple(kept), s.archive))
    return out


def download(state: StepState, url: str, ins: Instruction, checksum: str | None) -> copier.Source:
    """ADD <url>: fetch it into the store's tmp/ (mode 0600, Last-Modified as its mtime),
    checking ``--checksum``; DockerfileError names the URL."""
    import email.utils  # here: email costs every build's start-up ~10 ms
    import urllib.parse

    fetch = state.options.fetch
    if fetch is None:
        raise DockerfileError(f"ADD {url}: this build has no way to download (no fetch callback)", ins.line)
    path, out = state.temp_file()
    h = hashlib.sha256()
    try:
        with out, contextlib.closing(fetch(url, {})) as resp:
            while chunk := resp.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
            modified = resp.last_modified
    except DockyardError as err:
        raise DockerfileError(f"ADD {url}: {err}", ins.line) from err
    if checksum and checksum.removeprefix("sha256:") != h.hexdigest():
        raise DockerfileError(
            f"ADD {url}: checksum mismatch: expected {checksum}, got sha256:{h.hexdigest()}", ins.line
        )
    mtime = time.time()
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            mtime = email.utils.parsedate_to_datetime(modified).timestamp()
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "download"
    entry = TarEntry("", "file", 0o600, 0, 0, os.path.getsize(path), mtime)
    return copier.Source(name, (Item("", entry, os.fsencode(path)),))
