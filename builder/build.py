"""``build``: a Dockerfile and a context in, a tagged image in the store out.

Only the stages the target needs are built (BuildKit's rule), independent
ones at the same time; their output is printed as Docker's classic builder
prints it, one stage after the other.  Steps are cached (``builder.cache``);
a failed step leaves no half-written image, only the cached steps before it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from builder.cache import BuildCache
from builder.commit import NewLayer, commit
from builder.context import BuildContext
from builder.errors import DockerfileError
from builder.flags import CopyFlags, RunFlags, mount_from_refs
from builder.lexer import SubstitutionError, expand, failed_to_process, split_words
from builder.options import PROXY_ARGS, BuildOptions, Output, parse_platform, platform_args
from builder.parser import Dockerfile, Instruction, Stage, parse
from builder.remotecache import ExportedStep, step_layer
from builder.stage import StageRun
from imagefmt.errors import DockyardError, NotFound
from imagefmt.manifest import Descriptor, Index, Platform
from imagefmt.space import reported
from imagefmt.store import PlatformMismatch, Store, StoredImage, image_platform


class StageCancelled(DockyardError):
    """Another stage failed: this one stops at its next step."""


class _Printer:
    """Prints stages' output in stage order: the first unfinished stage streams,
    later ones are held until it is done."""

    def __init__(self, out: Output, order: list[int]) -> None:
        self.out = out
        self.order = order
        self.pos = 0
        self.held: dict[int, bytearray] = {i: bytearray() for i in order}
        self.done: set[int] = set()
        self.lock = threading.Lock()

    def write(self, stage: int, data: bytes) -> None:
        with self.lock:
            if self.pos < len(self.order) and self.order[self.pos] == stage:
                self.out(data)
            else:
                self.held[stage] += data

    def finish(self, stage: int) -> None:
        with self.lock:
            self.done.add(stage)
            while self.pos < len(self.order) and self.order[self.pos] in self.done:
                self.pos += 1
                if self.pos < len(self.order):
                    nxt = self.order[self.pos]
                    self.out(bytes(self.held[nxt]))
                    self.held[nxt].clear()

    def flush_all(self) -> None:
        """After a failure: what every stage printed, in stage order."""
        with self.lock:
            for i in self.order[self.pos :]:
                if self.held[i]:
                    self.out(bytes(self.held[i]))
                    self.held[i].clear()
            self.pos = len(self.order)


class Build:
    """One build: its options, parsed Dockerfile, context, cache and stage results."""

    def __init__(self, store: Store, opts: BuildOptions, out: Output) -> None:
        self.store = store
        self.opts = opts
        self.out = out
        self.cache = BuildCache(store)
        self.df: Dockerfile = parse(opts.dockerfile)
        self.ctx = BuildContext.open(opts.context, opts.dockerfile_path)
        self.platform = parse_platform(opts.platform)
        self.auto_args = platform_args(self.platform)
        self.build_args = {k: v for k, v in opts.build_args.items() if v is not None}
        self.sde = opts.source_date_epoch
        self.consumed: set[str] = set()
        self.global_args: dict[str, str | None] = {}
        self.results: dict[int, StoredImage] = {}
        self.temp_files: list[Path] = []
        self.failed = threading.Event()
        self._pulled: dict[str, StoredImage] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.target_index = self._target()
        self.order = self._needed(self.target_index)
        self.printer = _Printer(out, self.order)
        self.cache_from = [self._cache_from_image(n) for n in opts.cache_from]
        self.steps: list[tuple[int, str, StoredImage]] = []  # (stage, key, image), for --cache-to

    # ---------------------------------------------------------------- planning ---

    def _target(self) -> int:
        if self.opts.target is None:
            return len(self.df.stages) - 1
        stage = self.df.stage(self.opts.target)
        if stage is None or (self.opts.target.isdigit() and stage.name is not None):
            raise DockerfileError(f"failed to reach build target {self.opts.target} in Dockerfile")
        return stage.index

    def stage_ref(self, ref: str, before: int) -> Stage | None:
        """The stage ``ref`` names (name or index) among those before ``before``."""
        low = ref.lower()
        for s in self.df.stages[:before]:
            if s.name == low:
                return s
        if ref.isdigit():
            i = int(ref)
            return self.df.stages[i] if i < before else None
        return None

    def _deps(self, stage: Stage) -> set[int]:
        env = self.global_env()
        refs = [stage.base]
        for ins in stage.instructions:
            f = ins.flags_as(CopyFlags).from_
            if f:
                refs.append(f)
            for m in ins.flags_as(RunFlags).mounts:
                refs.extend(mount_from_refs(m))
        deps = set()
        for ref in refs:
            with contextlib.suppress(SubstitutionError):
                ref = expand(ref, env, self.df.escape)
            found = self.stage_ref(ref, stage.index)
            if found is not None:
                deps.add(found.index)
        return deps

    def _needed(self, target: int) -> list[int]:
        self._eval_global_args(print_steps=False)
        self.deps = {s.index: self._deps(s) for s in self.df.stages[: target + 1]}
        needed: set[int] = set()
        todo = [target]
        while todo:
            i = todo.pop()
            if i not in needed:
                needed.add(i)
                todo.extend(self.deps[i])
        return sorted(needed)

    # -------------------------------------------------------------------- args ---

    def global_env(self) -> dict[str, str]:
        env = dict(self.auto_args)
        env.update({k: v for k, v in self.global_args.items() if v is not None})
        return env

    def _eval_global_args(self, print_steps: bool) -> None:
        self.global_args = {}
        for ins in self.df.global_args:
            if print_steps:
                self.header(-1, ins)
            for word in split_words(ins.args, self.df.escape):
                name, eq, default = word.partition("=")
                value: str | None
                if name in self.build_args:
                    value = self.build_args[name]
                elif eq:
                    try:
                        value = expand(default, self.global_env(), self.df.escape)
                    except SubstitutionError as err:
                        raise DockerfileError(failed_to_process(default, err), ins.line) from None
                else:
                    value = None
                self.consumed.add(name)
                self.global_args[name] = value

    def arg_value(self, name: str, default: str | None) -> str | None:
        """A stage's ``ARG name[=default]``: --build-arg, else the default, else the global value."""
        with self._lock:
            self.consumed.add(name)
        if name in self.build_args:
            return self.build_args[name]
        if default is not None:
            return default
        if name in self.global_args:
            return self.global_args[name]
        return self.auto_args.get(name)

    def proxy_args(self) -> dict[str, str]:
        """Proxy build args: in every RUN's environment, kept out of history and keys."""
        return {k: v for k, v in self.build_args.items() if k in PROXY_ARGS}

    # ------------------------------------------------------------------ images ---

    def base_image(self, name: str, stage: Stage) -> StoredImage | None:
        if name.lower() == "scratch":
            return None
        found = self.stage_ref(name, stage.index)
        if found is not None and found.name is not None:
            return self.results[found.index]
        return self._image(name, self.stage_platform(stage))

    def stage_platform(self, stage: Stage) -> str | None:
        """``FROM --platform=P`` (ARGs expanded), else ``--platform``; None: the host's, unasked."""
        if stage.platform:
            try:
                return expand(stage.platform, self.global_env(), self.df.escape) or self.opts.platform
            except SubstitutionError as err:
                raise DockerfileError(
                    failed_to_process(stage.platform, err), stage.instruction.line
                ) from None
        return self.opts.platform

    def _image(self, name: str, platform: str | None = None) -> StoredImage:
        if self.opts.always_pull and self.opts.pull is not None and name.lower() != "scratch":
            with self._lock:
                pulled = self._pulled.get(f"{name} {platform}")
            if pulled is None:
                pulled = self.opts.pull(name, platform)
                with self._lock:
                    self._pulled[f"{name} {platform}"] = pulled
            return pulled
        try:
            if platform:
                return self.store.image_for_platform(name, Platform.parse(platform))
            return self.store.image(name)
        except NotFound as err:
            if self.opts.pull is None:
                if isinstance(err, PlatformMismatch):
                    raise
                raise NotFound(
                    f"pull access denied for {name}: the image is not in the local store "
                    f"(dockyard build does not pull: 'dockyard pull {name}' or 'dockyard load' it first)"
                ) from None
            if not isinstance(err, PlatformMismatch):
                return self.opts.pull(name, platform)
            try:  # the store has it for another platform: a registry may have this one's
                return self.opts.pull(name, platform)
            except DockyardError as pulling:
                raise PlatformMismatch(f"{err}; pulling it for {platform} failed: {pulling}") from None

    def from_image(self, ref: str, stage: Stage, line: int) -> StoredImage:
        """``--from=ref``: an earlier stage (by name or index) or an image."""
        if ref.lower() == (stage.name or "\0") or (ref.isdigit() and int(ref) == stage.index):
            raise DockerfileError(f"invalid from flag value {ref}: refers to current build stage", line)
        found = self.stage_ref(ref, stage.index)
        if found is not None:
            return self.results[found.index]
        if ref.isdigit():
            raise DockerfileError(
                f"invalid from flag value {ref}: no stage with index {ref} before this one", line
            )
        return self._image(ref, self.opts.platform)

    def _cache_from_image(self, name: str) -> StoredImage:
        try:
            return self.store.image(name)
        except NotFound:
            raise NotFound(f"--cache-from {name}: no such image in the local store") from None

    def cache_from_match(self, run: StageRun, key: str, descriptor: dict[str, Any]) -> StoredImage | None:
        """Docker's ``--cache-from``: reuse the next step of an image whose history
        starts like ours and continues with this very step."""
        ours = run.image.config.history if run.image else []
        n_layers = len(run.image.manifest.layers) if run.image else 0
        for c in self.cache_from:
            theirs = c.config.history
            if len(theirs) <= len(ours) or any(
                _same(a, b) is False for a, b in zip(ours, theirs, strict=False)
            ):
                continue
            nxt = theirs[len(ours)]
            if nxt.get("created_by") != descriptor.get("created_by"):
                continue
            layer = None
            if not nxt.get("empty_layer"):
                if n_layers >= len(c.manifest.layers):
                    continue
                layer = NewLayer(blob=c.manifest.layers[n_layers], diff_id=c.config.diff_ids[n_layers])
            doc = dict(run.doc)
            doc["created"] = nxt.get("created") or run.now()
            hist = {k: v for k, v in nxt.items() if k != "empty_layer"}
            record = {"built": True, "parent": str(run.image.id) if run.image else ""}
            image = commit(self.store, run.image, doc, hist, layer, record)
            self.cache.put(key, image, run.parent_id, descriptor)
            return image
        return None

    @contextlib.contextmanager
    def key_lock(self, key: str) -> Iterator[None]:
        """Held while one stage makes the step of ``key`` (stages run in threads)."""
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def remote_hit(self, run: StageRun, key: str, descriptor: dict[str, Any]) -> StoredImage | None:
        """A step found in an imported registry cache (``--cache-from type=registry``)."""
        for remote in self.opts.cache_imports:
            image = remote.image_for(self.store, key, run.image)
            if image is not None:
                self.cache.put(key, image, run.parent_id, descriptor)
                return image
        return None

    def note_step(self, stage: int, key: str, image: StoredImage) -> None:
        with self._lock:
            self.steps.append((stage, key, image))

    def exported_steps(self) -> list[ExportedStep]:
        """The steps ``--cache-to`` exports: the target stage's ("min"), or all ("max")."""
        with self._lock:
            steps = list(self.steps)
        if self.opts.cache_mode != "max":
            steps = [s for s in steps if s[0] == self.target_index]
        return [ExportedStep(key, image, step_layer(image)) for _, key, image in steps]

    def temp_file(self) -> tuple[Path, IO[bytes]]:
        """A file in the store's tmp/, removed when the build ends (a layer tar, a download)."""
        path, out = self.store.temp_file()
        self.temp_files.append(path)
        return path, out

    # ------------------------------------------------------------------ output ---

    def header(self, stage: int, ins: Instruction, number: int | None = None) -> None:
        if self.failed.is_set():
            raise StageCancelled("build cancelled: another stage failed")
        if number is None:
            with self._lock:
                self._global_step = getattr(self, "_global_step", 0) + 1
                number = self._global_step
        self.write(stage, f"Step {number}/{self.total} : {ins.original}\n".encode())

    def write(self, stage: int, data: bytes) -> None:
        if stage < 0:
            self.out(data)
        else:
            self.printer.write(stage, data)

    # --------------------------------------------------------------------- run ---

    def run(self) -> StoredImage:
        """Build the target stage; return its image (tagged, marked as a result)."""
        first: dict[int, int] = {}
        n = len(self.df.global_args)
        for i in self.order:
            first[i] = n + 1
            n += 1 + len(self.df.stages[i].instructions)
        self.total = n + len(self.opts.labels)
        self._eval_global_args(print_steps=True)
        try:
            with reported(self.store.root, "build"):  # a layer tar that fills the disk: one line
                self._run_stages(first)
        finally:
            for p in self.temp_files:
                with contextlib.suppress(OSError):
                    os.unlink(p)
        image = self.results[self.target_index]
        self._finish(image)
        if self.opts.export_cache is not None:
            self.opts.export_cache(self.exported_steps())
        return image

    def _run_stages(self, first: dict[int, int]) -> None:
        jobs = max(1, self.opts.jobs)
        if jobs == 1 or len(self.order) == 1:
            for i in self.order:
                self.results[i] = self._stage(i, first[i])
                self.printer.finish(i)
            return
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        pending = list(self.order)
        running: dict[Future[StoredImage], int] = {}
        errors: dict[int, BaseException] = {}
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="stage") as pool:
            while pending or running:
                for i in list(pending):
                    if len(running) >= jobs or errors:
                        break
                    if all(d in self.results for d in self.deps[i]):
                        pending.remove(i)
                        running[pool.submit(self._stage, i, first[i])] = i
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = running.pop(fut)
                    exc = fut.exception()
                    if exc is not None:
                        errors[i] = exc
                        self.failed.set()  # the others stop at their next step
                    else:
                        self.results[i] = fut.result()
                        self.printer.finish(i)
        if errors:
            self.printer.flush_all()
            real = {i: e for i, e in errors.items() if not isinstance(e, StageCancelled)} or errors
            raise real[min(real)]

    def _stage(self, index: int, first_step: int) -> StoredImage:
        run = StageRun(self, self.df.stages[index], first_step)
        return run.run()

    def _finish(self, image: StoredImage) -> None:
        unused = sorted(
            k
            for k in self.opts.build_args
            if k not in self.consumed and k not in PROXY_ARGS and k != "SOURCE_DATE_EPOCH"
        )
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n".encode())
        if not image.record.get("result"):  # each index rewrite costs an fsync: skip no-ops
            self.store.set_record(image, result=True)
        self.out(f"Successfully built {image.id.hex[:12]}\n".encode())
        for ref in self.opts.tags:
            if ref not in image.tags:
                self.store.tag(image, ref)
            self.out(f"Successfully tagged {ref.familiar()}\n".encode())


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("created_by") == b.get("created_by") and bool(a.get("empty_layer")) == bool(
        b.get("empty_layer")
    )


def build(store: Store, opts: BuildOptions, out: Output) -> StoredImage:
    """Build ``opts.dockerfile`` into ``store``; write Docker's classic output to ``out``.

    Raises DockerfileError (bad Dockerfile, missing sources; ``line`` set),
    BuildFailed (a RUN failed; ``exit_code`` is the command's status), NotFound
    (a base image is missing).  Steps that succeeded stay cached."""
    return Build(store, opts, out).run()


def build_platforms(store: Store, opts: BuildOptions, platforms: list[str], out: Output) -> StoredImage:
    """``--platform linux/amd64,linux/arm64``: the Dockerfile built once per platform
    (another CPU's RUN steps through qemu), then an OCI index of the results.  The
    tags name the image of this machine's platform (else the first one's), which
    records the others and the index: ``run --platform`` picks among them, ``push``
    sends the index.  Returns that image."""
    images: list[StoredImage] = []
    steps: list[ExportedStep] = []  # --cache-to: one cache for every platform, pushed once
    collect = steps.extend if opts.export_cache is not None else None
    for platform in platforms:
        out(f"[{platform}]\n".encode())
        images.append(
            Build(store, replace(opts, platform=platform, tags=(), export_cache=collect), out).run()
        )
    if opts.export_cache is not None:
        opts.export_cache(steps)
    entries = [
        Descriptor(
            img.manifest.media_type, img.manifest.digest, len(img.manifest.raw), platform=image_platform(img)
        )
        for img in images
    ]
    index = Index.build(entries)
    desc = store.put_bytes(index.raw, index.media_type)
    host = Platform(*parse_platform(None))
    primary = next((img for img in images if image_platform(img).matches(host)), images[0])
    store.set_platforms(primary, images, desc)
    for ref in opts.tags:
        store.tag(primary, ref)
        out(f"Successfully tagged {ref.familiar()}\n".encode())
    return store.image(str(primary.id))
