"""One build stage: FROM and its base's ONBUILD triggers, then every instruction as a cached step.

Every step ends as an image in the store (as Docker's classic builder does),
so its ID can be printed and a rebuild can reuse it.  ``StageRun.step`` runs
each instruction's plan (``builder.instructions``) the same way: apply its
config change, look its key up in the cache, and on a miss make its layer
(none for a metadata step), commit the image and record it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from builder import instructions
from builder.cache import BuildCache, step_key
from builder.commit import NewLayer, base_doc, commit
from builder.context import BuildContext
from builder.errors import BuildFailed, DockerfileError
from builder.instructions.onbuild import trigger
from builder.instructions.step import LayerJob, config_of
from builder.lexer import SubstitutionError, expand, expand_words, failed_to_process
from builder.options import BuildOptions, parse_platform
from builder.parser import Instruction, Stage
from builder.rootview import RootView
from imagefmt.changes import set_env
from imagefmt.config import rfc3339
from imagefmt.errors import Invalid
from imagefmt.store import Store, StoredImage
from runtime.spec import DEFAULT_PATH

if TYPE_CHECKING:
    from builder.build import Build

DEFAULT_SHELL = ["/bin/sh", "-c"]


def env_map(cfg: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in cfg.get("Env") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


class StageRun:
    """Runs one stage's steps against the store; ``image`` is the result so far.

    It is the ``StepState`` the instructions plan against."""

    def __init__(self, build: Build, stage: Stage, first_step: int = 1) -> None:
        self.b = build
        self.stage = stage
        self.step_no = first_step
        self.in_triggers = False
        self.image: StoredImage | None = None
        self.doc: dict[str, Any] = {}
        self.args: dict[str, str | None] = {}
        self.cmd_set = False
        self._views: dict[str, RootView] = {}

    # --------------------------------------------------------- what steps see ---

    @property
    def config(self) -> dict[str, Any]:
        return config_of(self.doc)

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    @property
    def escape(self) -> str:
        return self.b.df.escape

    @property
    def store(self) -> Store:
        return self.b.store

    @property
    def cache(self) -> BuildCache:
        return self.b.cache

    @property
    def context(self) -> BuildContext:
        return self.b.ctx

    @property
    def options(self) -> BuildOptions:
        return self.b.opts

    @property
    def source_date_epoch(self) -> int | None:
        return self.b.sde

    def subst_env(self) -> dict[str, str]:
        """What ``$VAR`` sees: the ARGs in scope with a value, then ENV (which wins)."""
        env = {k: v for k, v in self.args.items() if v is not None}
        env.update(env_map(self.config))
        return env

    def expand(self, text: str, ins: Instruction) -> str:
        try:
            return expand(text, self.subst_env(), self.escape)
        except SubstitutionError as err:
            raise DockerfileError(failed_to_process(text, err), ins.line) from None

    def expand_words(self, text: str, ins: Instruction) -> list[str]:
        try:
            return expand_words(text, self.subst_env(), self.escape)
        except SubstitutionError as err:
            raise DockerfileError(failed_to_process(text, err), ins.line) from None

    def declare_arg(self, name: str, default: str | None) -> str | None:
        return self.b.arg_value(name, default)

    def build_args_in_effect(self) -> list[str]:
        """``K=V`` for declared ARGs with a value that ENV does not override (docker's
        FilterAllowed), proxy args given on the command line included for the env."""
        env = env_map(self.config)
        return [f"{k}={v}" for k, v in self.args.items() if v is not None and k not in env]

    def proxy_args(self) -> dict[str, str]:
        return self.b.proxy_args()

    def view(self, image: StoredImage | None) -> RootView:
        """The read-only file system view of ``image`` (layers unpacked on demand)."""
        if image is None:
            return RootView([])
        key = str(image.id)
        if key not in self._views:
            store = self.b.store
            self._views[key] = RootView(lambda: store.lowerdirs(image))
        return self._views[key]

    def from_image(self, ref: str, line: int) -> StoredImage:
        return self.b.from_image(ref, self.stage, line)

    def temp_file(self) -> tuple[Path, IO[bytes]]:
        return self.b.temp_file()

    # ------------------------------------------------------------------ output ---

    def say(self, text: str) -> None:
        self.b.write(self.stage.index, text.encode())

    def say_raw(self, data: bytes) -> None:
        self.b.write(self.stage.index, data)

    def header(self, ins: Instruction) -> None:
        self.b.header(self.stage.index, ins, self.step_no)
        self.step_no += 1

    @property
    def parent_id(self) -> str:
        return str(self.image.id) if self.image is not None else f"scratch:{'/'.join(self.b.platform)}"

    def now(self) -> str:
        return rfc3339(self.b.sde) if self.b.sde is not None else rfc3339()

    # ------------------------------------------------------------------- stage ---

    def run(self) -> StoredImage:
        self.start()
        for ins in self.stage.instructions:
            self.header(ins)
            self.step(ins)
        if self.stage.index == self.b.target_index:
            for k, v in sorted(self.b.opts.labels.items()):  # docker: one LABEL step per --label
                ins = Instruction("LABEL", f"{json.dumps(k)}={json.dumps(v)}", 0, f"LABEL {k}={v}")
                self.header(ins)
                self.step(ins)
        if self.image is None:
            raise DockerfileError(
                "No image was generated. Is your Dockerfile empty?", self.stage.instruction.line
            )
        return self.image

    def start(self) -> None:
        """FROM: the base image and its config (with docker's default PATH), then the
        base's ONBUILD triggers, printed as one step."""
        stage = self.stage
        self.header(stage.instruction)
        try:
            base = expand(stage.base, self.b.global_env(), self.escape)
        except SubstitutionError as err:
            raise DockerfileError(failed_to_process(stage.base, err), stage.instruction.line) from None
        if not base:
            raise DockerfileError("base name (${...}) should not be blank", stage.instruction.line)
        self.image = self.b.base_image(base, stage)
        platform = self.b.stage_platform(stage)
        self.doc = base_doc(self.image, parse_platform(platform) if platform else self.b.platform)
        self.say(f" ---> {self.image.id.hex[:12] if self.image is not None else ''}\n")
        if "PATH" not in env_map(self.config):  # docker's setDefaultPath
            set_env(self.config, "PATH", DEFAULT_PATH)
        triggers = list(self.config.get("OnBuild") or [])
        if triggers:
            self.config["OnBuild"] = None
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            self.in_triggers = True
            for text in triggers:
                self.step(trigger(text, stage.instruction.line))
            self.in_triggers = False
            assert self.image is not None
            self.say(f" ---> {self.image.id.hex[:12]}\n")

    # ------------------------------------------------------------------- steps ---

    def step(self, ins: Instruction) -> None:
        """Plan ``ins``, then reuse its cached image or make its layer and commit."""
        try:
            plan = instructions.plan(self, ins)
            if plan.change is not None:
                plan.change(self.doc)
            descriptor = {"created_by": plan.created_by, **plan.key, "config": self.config}
            key, hit = self.cached(ins, descriptor)
            if hit is not None:
                self.b.note_step(self.stage.index, key, hit)
                self.use(hit)
                return
            with contextlib.ExitStack() as stack:
                if not self.b.opts.no_cache:
                    # a stage running the same step at the same time makes it once: the other waits
                    # and reuses it, or its later steps would be keyed on an image no build keeps
                    stack.enter_context(self.b.key_lock(key))
                    hit = self.b.cache.get(key)
                    if hit is not None:
                        self.b.note_step(self.stage.index, key, hit)
                        self.use(hit)
                        return
                job = LayerJob(self, self.say_raw, stack)
                layer = plan.make_layer(job) if plan.make_layer is not None else None
                if plan.container:  # docker ran even a metadata step in a container
                    job.start_container()
                image = self.save(ins, key, descriptor, layer)
                self.b.note_step(self.stage.index, key, image)
                for callback in job.committed:
                    callback(image)
                self.finish(job.container)
        except (DockerfileError, BuildFailed):
            raise
        except Invalid as err:
            raise DockerfileError(f"{ins.keyword}: {err}", ins.line) from err

    def cached(self, ins: Instruction, descriptor: dict[str, Any]) -> tuple[str, StoredImage | None]:
        """The step's key and its cached image (None on a miss or with --no-cache).

        As in docker, the key is what the step does, not how it was written:
        ``LABEL k v`` hits the image of ``LABEL k=v``.  (The instruction is kept
        beside the key, for ``explain``.)"""
        if self.b.sde is not None:  # it sets the created times and clamps the layers' mtimes
            descriptor["source_date_epoch"] = self.b.sde
        key = step_key(self.parent_id, descriptor)
        if self.b.opts.no_cache:
            return key, None
        hit = (
            self.b.cache.get(key)
            or self.b.cache_from_match(self, key, descriptor)
            or self.b.remote_hit(self, key, descriptor)
        )
        if hit is None and self.b.opts.explain:
            self.say(self.b.cache.explain(self.parent_id, {"instruction": ins.original, **descriptor}))
        return key, hit

    def use(self, image: StoredImage) -> None:
        self.say(" ---> Using cache\n")
        self.adopt(image)
        if not self.in_triggers:
            self.say(f" ---> {image.id.hex[:12]}\n")

    def adopt(self, image: StoredImage) -> None:
        self.image = image
        self.doc = image.config.edit()
        self.doc.setdefault("config", {})

    def save(
        self, ins: Instruction, key: str, descriptor: dict[str, Any], layer: NewLayer | None
    ) -> StoredImage:
        """Commit the step's image, record it in the cache and make it the stage's image."""
        hist: dict[str, Any] = {"created": self.now(), "created_by": descriptor["created_by"]}
        doc = dict(self.doc)
        doc["created"] = hist["created"]
        record = {"built": True, "parent": str(self.image.id) if self.image else ""}
        image = commit(self.b.store, self.image, doc, hist, layer, record)
        if layer is not None and layer.tar is not None and layer.upperdir is None and layer.entries < 256:
            # a small COPY layer is unpacked at once (cheap, and 'history' shows its real size);
            # a big one only when a step or a container needs its files
            self.b.store.ensure_snapshots(image)
        self.b.cache.put(key, image, self.parent_id, {"instruction": ins.original, **descriptor})
        self.adopt(image)
        return image

    def finish(self, container: str | None) -> None:
        if container:
            self.say(f"Removing intermediate container {container}\n")
        assert self.image is not None
        if not self.in_triggers:  # docker prints one ID after all the ONBUILD triggers
            self.say(f" ---> {self.image.id.hex[:12]}\n")
