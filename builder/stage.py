"""One build stage: FROM, then each instruction as a cached step.

Every step ends as an image in the store (as Docker's classic builder does),
so its ID can be printed and a rebuild can reuse it: metadata steps with an
empty layer, RUN with its upperdir, COPY/ADD with a tar of what they add.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder import copier, history, mounts
from builder.cache import step_key
from builder.commit import NewLayer, base_doc, commit
from builder.errors import BuildFailed, DockerfileError
from builder.lexer import SubstitutionError, expand, expand_raw, expand_words, split_words
from builder.options import PROXY_ARGS
from builder.parser import Instruction, Stage, parse_line
from builder.rootview import RootView
from imagefmt.changes import parse_healthcheck
from imagefmt.config import rfc3339
from imagefmt.errors import Invalid
from imagefmt.layer import write_layer
from imagefmt.store import StoredImage
from runtime.spec import DEFAULT_PATH, Mount

if TYPE_CHECKING:
    from builder.build import Build

DEFAULT_SHELL = ["/bin/sh", "-c"]
_SIGNALS = {
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
    "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF",
    "WINCH", "IO", "POLL", "PWR", "SYS",
}  # fmt: skip


def set_env(cfg: dict[str, Any], key: str, value: str) -> None:
    """Set ``key`` in the config's Env, in place when it is there (Docker keeps the order)."""
    env = list(cfg.get("Env") or [])
    for i, item in enumerate(env):
        if item.split("=", 1)[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    cfg["Env"] = env


def env_map(cfg: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in cfg.get("Env") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


class StageRun:
    """Runs one stage's steps against the store; ``image`` is the result so far."""

    def __init__(self, build: Build, stage: Stage, first_step: int = 1) -> None:
        self.b = build
        self.stage = stage
        self.step_no = first_step
        self.current = ""
        self.in_triggers = False
        self.image: StoredImage | None = None
        self.doc: dict[str, Any] = {}
        self.args: dict[str, str | None] = {}
        self.cmd_set = False
        self._views: dict[str, RootView] = {}

    # ------------------------------------------------------------------ helpers ---

    def say(self, text: str) -> None:
        self.b.write(self.stage.index, text.encode())

    def say_raw(self, data: bytes) -> None:
        self.b.write(self.stage.index, data)

    def header(self, ins: Instruction) -> None:
        self.b.header(self.stage.index, ins, self.step_no)
        self.step_no += 1
        self.current = ins.original

    @property
    def cfg(self) -> dict[str, Any]:
        cfg: dict[str, Any] = self.doc.setdefault("config", {})
        return cfg

    @property
    def shell(self) -> list[str]:
        return list(self.cfg.get("Shell") or DEFAULT_SHELL)

    @property
    def parent_id(self) -> str:
        return str(self.image.id) if self.image is not None else f"scratch:{'/'.join(self.b.platform)}"

    def subst_env(self) -> dict[str, str]:
        """What ``$VAR`` sees: the ARGs in scope with a value, then ENV (which wins)."""
        env = {k: v for k, v in self.args.items() if v is not None}
        env.update(env_map(self.cfg))
        return env

    def expand(self, text: str, ins: Instruction) -> str:
        try:
            return expand(text, self.subst_env(), self.b.df.escape)
        except SubstitutionError as err:
            raise DockerfileError(f"{ins.keyword}: {err}", ins.line) from None

    def expand_words(self, text: str, ins: Instruction) -> list[str]:
        try:
            return expand_words(text, self.subst_env(), self.b.df.escape)
        except SubstitutionError as err:
            raise DockerfileError(f"{ins.keyword}: {err}", ins.line) from None

    def view(self, image: StoredImage | None) -> RootView:
        """The read-only file system view of ``image`` (layers unpacked on demand)."""
        if image is None:
            return RootView([])
        key = str(image.id)
        if key not in self._views:
            store = self.b.store
            self._views[key] = RootView(lambda: store.lowerdirs(image))
        return self._views[key]

    def now(self) -> str:
        return rfc3339(self.b.sde) if self.b.sde is not None else rfc3339()

    def build_args_in_effect(self) -> list[str]:
        """``K=V`` for declared ARGs with a value that ENV does not override (docker's
        FilterAllowed), proxy args given on the command line included for the env."""
        env = env_map(self.cfg)
        return [f"{k}={v}" for k, v in self.args.items() if v is not None and k not in env]

    # ------------------------------------------------------------------- stage ---

    def run(self) -> StoredImage:
        self.start()
        for ins in self.stage.instructions:
            self.header(ins)
            self.dispatch(ins)
        if self.stage.index == self.b.target_index:
            for k, v in sorted(self.b.opts.labels.items()):  # docker: one LABEL step per --label
                ins = Instruction("LABEL", f"{json.dumps(k)}={json.dumps(v)}", 0, f"LABEL {k}={v}")
                self.header(ins)
                self.dispatch(ins)
        if self.image is None:
            raise DockerfileError(
                "No image was generated. Is your Dockerfile empty?", self.stage.instruction.line
            )
        return self.image

    def start(self) -> None:
        stage = self.stage
        self.header(stage.instruction)
        try:
            base = expand(stage.base, self.b.global_env(), self.b.df.escape)
        except SubstitutionError as err:
            raise DockerfileError(f"FROM: {err}", stage.instruction.line) from None
        if not base:
            raise DockerfileError("base name (${...}) should not be blank", stage.instruction.line)
        self.image = self.b.base_image(base, stage)
        self.doc = base_doc(self.image, self.b.platform)
        self.say(f" ---> {self.image.id.hex[:12] if self.image is not None else ''}\n")
        env = env_map(self.cfg)
        if "PATH" not in env:  # docker's setDefaultPath
            set_env(self.cfg, "PATH", DEFAULT_PATH)
        triggers = list(self.cfg.get("OnBuild") or [])
        if triggers:
            self.cfg["OnBuild"] = None
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            self.in_triggers = True
            for text in triggers:
                ins = parse_line(text, stage.instruction.line)
                if ins.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
                    raise DockerfileError(f"{ins.keyword} isn't allowed as an ONBUILD trigger", ins.line)
                self.current = ins.original
                self.dispatch(ins)
            self.in_triggers = False
            assert self.image is not None
            self.say(f" ---> {self.image.id.hex[:12]}\n")

    def dispatch(self, ins: Instruction) -> None:
        handler: Callable[[Instruction], None] | None = getattr(self, f"do_{ins.keyword.lower()}", None)
        if handler is None or ins.keyword == "FROM":
            raise DockerfileError(f"unknown instruction: {ins.keyword}", ins.line)
        try:
            handler(ins)
        except (DockerfileError, BuildFailed):
            raise
        except Invalid as err:
            raise DockerfileError(f"{ins.keyword}: {err}", ins.line) from err

    # ------------------------------------------------------------------- steps ---

    def cached(self, ins: Instruction, descriptor: dict[str, Any]) -> tuple[str, StoredImage | None]:
        """The step's key and its cached image (None on a miss or with --no-cache)."""
        descriptor = {"instruction": ins.original, **descriptor}
        if self.b.sde is not None:  # it sets the created times and clamps the layers' mtimes
            descriptor["source_date_epoch"] = self.b.sde
        key = step_key(self.parent_id, descriptor)
        if self.b.opts.no_cache:
            return key, None
        hit = self.b.cache.get(key) or self.b.cache_from_match(self, key, descriptor)
        if hit is None and self.b.opts.explain:
            self.say(self.b.cache.explain(self.parent_id, descriptor))
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

    def save(self, key: str, descriptor: dict[str, Any], created_by: str, layer: NewLayer | None) -> None:
        """Commit the step's image, record it in the cache and make it the stage's image."""
        hist: dict[str, Any] = {"created": self.now(), "created_by": created_by}
        doc = dict(self.doc)
        doc["created"] = hist["created"]
        record = {"built": True, "parent": str(self.image.id) if self.image else ""}
        image = commit(self.b.store, self.image, doc, hist, layer, record)
        if layer is not None and layer.tar is not None and layer.upperdir is None and layer.entries < 256:
            # a small COPY layer is unpacked at once (cheap, and 'history' shows its real size);
            # a big one only when a step or a container needs its files
            self.b.store.ensure_snapshots(image)
        self.b.cache.put(key, image, self.parent_id, {"instruction": self.current, **descriptor})
        self.adopt(image)

    def finish(self, container: str | None) -> None:
        if container:
            self.say(f"Removing intermediate container {container}\n")
        assert self.image is not None
        if not self.in_triggers:  # docker prints one ID after all the ONBUILD triggers
            self.say(f" ---> {self.image.id.hex[:12]}\n")

    def metadata(
        self, ins: Instruction, comment: str, change: Callable[[], None], created_by: str = ""
    ) -> None:
        """A step that only changes the config: apply ``change``, then commit (or hit)."""
        change()
        created_by = created_by or history.metadata(self.shell, comment)
        descriptor = {"created_by": created_by, "config": self.cfg, "author": self.doc.get("author")}
        key, hit = self.cached(ins, descriptor)
        if hit is not None:
            self.use(hit)
            return
        container = os.urandom(6).hex()
        self.say(f" ---> Running in {container}\n")
        self.save(key, descriptor, created_by, None)
        self.finish(container)

    # ------------------------------------------------------------- metadata ---

    def do_env(self, ins: Instruction) -> None:
        pairs = self._pairs(ins)
        comment = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)

        def change() -> None:
            for k, v in pairs:
                set_env(self.cfg, k, v)

        self.metadata(ins, comment, change)

    def do_label(self, ins: Instruction) -> None:
        pairs = self._pairs(ins)
        comment = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)

        def change() -> None:
            labels = dict(self.cfg.get("Labels") or {})
            labels.update(pairs)
            self.cfg["Labels"] = labels

        self.metadata(ins, comment, change)

    def _pairs(self, ins: Instruction) -> list[tuple[str, str]]:
        """ENV/LABEL ``k=v …`` (or the legacy ``k v``), expanded with the values from before."""
        words = split_words(ins.args, self.b.df.escape)
        if words and "=" not in words[0]:
            parts = ins.args.split(None, 1)
            if len(parts) < 2:
                raise DockerfileError(f"{ins.keyword} must have two arguments", ins.line)
            return [(self.expand(parts[0], ins), self.expand(parts[1], ins))]
        out = []
        for w in words:
            if "=" not in w:
                raise DockerfileError(
                    f"Syntax error - can't find = in {w!r}. Must be of the form: name=value", ins.line
                )
            k, _, v = w.partition("=")
            k = self.expand(k, ins)
            if not k:
                raise DockerfileError(f"{ins.keyword} names can not be blank", ins.line)
            out.append((k, self.expand(v, ins)))
        return out

    def do_arg(self, ins: Instruction) -> None:
        declared: list[tuple[str, str | None]] = []
        for word in split_words(ins.args, self.b.df.escape):
            name, eq, default = word.partition("=")
            value = self.b.arg_value(name, self.expand(default, ins) if eq else None)
            declared.append((name, self.expand(default, ins) if eq else None))
            self.args[name] = value
        comment = "ARG " + " ".join(f"{k}={v}" if v is not None else k for k, v in declared)
        effective = {k: self.args[k] for k, _ in declared}
        created_by = history.metadata(self.shell, comment)
        descriptor = {"created_by": created_by, "values": effective, "config": self.cfg}
        key, hit = self.cached(ins, descriptor)
        if hit is not None:
            self.use(hit)
            return
        container = os.urandom(6).hex()
        self.say(f" ---> Running in {container}\n")
        self.save(key, descriptor, created_by, None)
        self.finish(container)

    def do_maintainer(self, ins: Instruction) -> None:
        self.metadata(ins, f"MAINTAINER {ins.args}", lambda: self.doc.__setitem__("author", ins.args))

    def _command(self, ins: Instruction) -> tuple[list[str], str]:
        form = ins.json_args()
        if form is not None:
            return form, history.go_quote_list(form)
        argv = [*self.shell, ins.args]
        return argv, history.go_quote_list(argv)

    def do_cmd(self, ins: Instruction) -> None:
        argv, shown = self._command(ins)
        self.cmd_set = True
        self.metadata(ins, f"CMD {shown}", lambda: self.cfg.__setitem__("Cmd", argv))

    def do_entrypoint(self, ins: Instruction) -> None:
        argv, shown = self._command(ins)

        def change() -> None:
            self.cfg["Entrypoint"] = argv
            if not self.cmd_set:  # docker: an ENTRYPOINT resets the CMD inherited from the base
                self.cfg["Cmd"] = None

        self.metadata(ins, f"ENTRYPOINT {shown}", change)

    def do_shell(self, ins: Instruction) -> None:
        form = ins.json_args()
        if not form:
            raise DockerfileError("SHELL requires the arguments to be in JSON form", ins.line)
        self.metadata(ins, f"SHELL {history.go_list(form)}", lambda: self.cfg.__setitem__("Shell", form))

    def do_expose(self, ins: Instruction) -> None:
        raw = sorted(ins.args.split())
        ports: list[str] = []
        for word in raw:
            for p in self.expand_words(word, ins):
                ports.extend(_port_specs(p, ins.line))

        def change() -> None:
            exposed = dict(self.cfg.get("ExposedPorts") or {})
            for p in ports:
                exposed[p] = {}
            self.cfg["ExposedPorts"] = exposed

        self.metadata(ins, "EXPOSE " + " ".join(self.expand(w, ins) for w in raw), change)

    def do_volume(self, ins: Instruction) -> None:
        form = ins.json_args()
        raw = form if form is not None else ins.args.split()
        vols = [self.expand(v, ins) for v in raw]
        if any(not v.strip() for v in vols):
            raise DockerfileError("VOLUME specified can not be an empty string", ins.line)

        def change() -> None:
            volumes = dict(self.cfg.get("Volumes") or {})
            for v in vols:
                volumes[v] = {}
            self.cfg["Volumes"] = volumes

        self.metadata(ins, f"VOLUME {history.go_list(vols)}", change)

    def do_user(self, ins: Instruction) -> None:
        user = self.expand(ins.args, ins)
        self.metadata(ins, f"USER {user}", lambda: self.cfg.__setitem__("User", user))

    def do_stopsignal(self, ins: Instruction) -> None:
        sig = self.expand(ins.args, ins)
        name = sig.upper().removeprefix("SIG")
        if not (sig.isdigit() or name in _SIGNALS or name.startswith("RTMIN") or name.startswith("RTMAX")):
            raise DockerfileError(f"Invalid signal: {sig}", ins.line)
        self.metadata(ins, f"STOPSIGNAL {sig}", lambda: self.cfg.__setitem__("StopSignal", sig))

    def do_healthcheck(self, ins: Instruction) -> None:
        hc = parse_healthcheck(ins.args)
        assert hc is not None
        self.metadata(ins, history.healthcheck(hc), lambda: self.cfg.__setitem__("Healthcheck", hc))

    def do_onbuild(self, ins: Instruction) -> None:
        trigger = parse_line(ins.args, ins.line)
        if trigger.keyword == "ONBUILD":
            raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", ins.line)
        if trigger.keyword in ("FROM", "MAINTAINER"):
            raise DockerfileError(f"{trigger.keyword} isn't allowed as an ONBUILD trigger", ins.line)
        expression = ins.args.strip()

        def change() -> None:
            self.cfg["OnBuild"] = [*(self.cfg.get("OnBuild") or []), expression]

        self.metadata(ins, f"ONBUILD {expression}", change)

    # ----------------------------------------------------------------- WORKDIR ---

    def do_workdir(self, ins: Instruction) -> None:
        path = self.expand(ins.args, ins)
        workdir = posixpath.normpath(posixpath.join(self.cfg.get("WorkingDir") or "/", path))
        created_by = history.nop(self.shell, f"WORKDIR {workdir}")
        self.cfg["WorkingDir"] = workdir
        # whether the directory must be made follows from the parent image, already in the key
        descriptor = {"created_by": created_by, "config": self.cfg, "author": self.doc.get("author")}
        key, hit = self.cached(ins, descriptor)
        if hit is not None:
            self.use(hit)
            return
        view = self.view(self.image)
        parts = view.resolve(workdir)
        found = view.lookup(parts)[0]
        if found is not None and not found.is_dir:
            raise DockerfileError(f"WORKDIR {workdir}: not a directory", ins.line)
        layer = None
        if found is None:
            where = copier.Placement("/" + "/".join(parts), True, view, None, False)
            plan = copier.CopyPlan()
            copier.parents(plan, parts, where, set(), ins.line)
            layer = self.write_plan(plan)
        container = os.urandom(6).hex()
        self.say(f" ---> Running in {container}\n")
        self.save(key, descriptor, created_by, layer)
        self.finish(container)

    def write_plan(self, plan: copier.CopyPlan) -> NewLayer:
        path, out = self.b.store.temp_file()
        try:
            with out:
                entries = copier.write(plan, out, self.b.sde)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.b.temp_files.append(path)
        return NewLayer(tar=path, entries=entries)

    # -------------------------------------------------------------- COPY / ADD ---

    def do_copy(self, ins: Instruction) -> None:
        self.copy(ins, add=False)

    def do_add(self, ins: Instruction) -> None:
        self.copy(ins, add=True)

    def copy(self, ins: Instruction, add: bool) -> None:
        form = ins.json_args()
        words = form if form is not None else ins.args.split()
        heredocs = {h.name: h for h in ins.heredocs}
        if len(words) < 2:
            raise DockerfileError(f"{ins.keyword} requires at least two arguments", ins.line)
        dest_raw = self.expand(words[-1], ins)
        srcs = words[:-1]
        from_flag = ins.flag("from")
        chown = ins.flag("chown")
        chmod = ins.flag("chmod")
        link = ins.flag("link") is not None and ins.flag("link") != "false"
        if ins.flag("parents") is not None:
            raise DockerfileError("COPY --parents is not supported by dockyard", ins.line)
        view = self.view(self.image)
        owner = copier.parse_chown(self.expand(chown, ins), view, ins.line) if chown else None
        chmod_fn = copier.chmod_function(self.expand(chmod, ins), ins.line) if chmod else None
        from_id = ""
        sources: list[copier.Source] = []
        for s in srcs:
            name = _heredoc_name(s)
            if name is not None and name in heredocs:
                doc = heredocs[name]
                data = expand_raw(doc.content, self.subst_env()) if doc.expand else doc.content
                sources.append(copier.data_source(name, data.encode(), 0o644, self._mtime()))
        plain = [self.expand(s, ins) for s in srcs if _heredoc_name(s) not in heredocs]
        if from_flag:
            ref = self.expand(from_flag, ins)
            src_image = self.b.from_image(ref, self.stage, ins.line)
            from_id = str(src_image.id)
            sources += copier.view_sources(self.view(src_image), plain, f"{ins.keyword} failed", ins.line)
        else:
            urls = [s for s in plain if s.startswith(("http://", "https://"))]
            if urls and not add:
                raise DockerfileError("source can't be a URL for COPY", ins.line)
            for u in urls:
                sources.append(self.b.download(u, ins, dest_raw.endswith("/")))
            local = [s for s in plain if s not in urls]
            if local:
                try:
                    sources += copier.context_sources(self.b.ctx, local, ins.line, archives=add)
                except DockerfileError as err:
                    raise DockerfileError(f"{ins.keyword} failed: {err}", ins.line) from None
            excludes = ins.flag_all("exclude")
            if excludes:
                sources = _exclude(sources, excludes)
        dest_is_dir = dest_raw.endswith("/") or dest_raw in (".", "..") or dest_raw.endswith("/.")
        dest = posixpath.normpath(posixpath.join(self.cfg.get("WorkingDir") or "/", dest_raw))
        where = copier.Placement(
            dest, dest_is_dir, None if link else view, owner, keep_owner=bool(from_flag), chmod=chmod_fn
        )
        if self.b.sde is not None:
            where.now = float(self.b.sde)
        kind, digest = copier.summarize(sources, dest, dest_is_dir, ins.line, self.b.cache.sums)
        chown_part = f"--chown={chown}" if chown else ""
        created_by = history.nop(self.shell, f"{ins.keyword} {chown_part}{kind}:{digest} in {dest_raw} ")
        descriptor = {
            "created_by": created_by,
            "from": from_id,
            "dest": dest,
            "owner": owner,
            "chmod": chmod,
            "link": link,
            "config": self.cfg,
        }
        key, hit = self.cached(ins, descriptor)
        if hit is not None:
            self.use(hit)
            return
        if not link:
            plan = copier.plan(sources, where, ins.line, (kind, digest))
            self.save(key, descriptor, created_by, self.write_plan(plan))
            self.finish(None)
            return
        # --link: the layer does not depend on the parent, so one made on another parent is reused
        layer_key = step_key(
            "link", {k: v for k, v in descriptor.items() if k != "config"} | {"sde": self.b.sde}
        )
        found = self.b.cache.get_layer(layer_key)
        if found is not None:
            layer = NewLayer(blob=found[0], diff_id=found[1])
        else:
            layer = self.write_plan(copier.plan(sources, where, ins.line, (kind, digest)))
        self.save(key, descriptor, created_by, layer)
        assert self.image is not None
        if found is None:
            self.b.cache.put_layer(layer_key, self.image.manifest.layers[-1], self.image.config.diff_ids[-1])
        self.finish(None)

    def _mtime(self) -> float:
        return float(self.b.sde) if self.b.sde is not None else time.time()

    # --------------------------------------------------------------------- RUN ---

    def do_run(self, ins: Instruction) -> None:
        argv = self._run_argv(ins)
        args = self.build_args_in_effect()
        shown_args = [a for a in args if a.split("=", 1)[0] in self.args]
        created_by = history.run(
            argv if not self._heredoc_script(ins) else [*self.shell, ins.args], shown_args
        )
        env = self._run_env(args)
        network = ins.flag("network") or "default"
        if network == "default":
            network = self.b.opts.network
        if network not in ("none", "host"):
            raise DockerfileError(f"RUN --network={network}: use default, none or host", ins.line)
        if ins.flag("security") not in (None, "sandbox"):
            raise DockerfileError("RUN --security=insecure is not supported by dockyard", ins.line)
        specs = [mounts.parse_mount(self.expand(m, ins), ins.line) for m in ins.flag_all("mount")]
        user = self.cfg.get("User") or ""
        workdir = self.cfg.get("WorkingDir") or "/"
        mount_key = [self._mount_key(s, ins) for s in specs]
        descriptor = {
            "created_by": created_by,
            "argv": argv,
            # proxy args stay out of the key unless declared (BuildKit's rule)
            "env": [
                e for e in env if e.split("=", 1)[0] not in PROXY_ARGS or e.split("=", 1)[0] in self.args
            ],
            "user": user,
            "workdir": workdir,
            "network": network,
            "mounts": mount_key,
            "config": self.cfg,
        }
        key, hit = self.cached(ins, descriptor)
        if hit is not None:
            self.use(hit)
            return
        self._run(ins, key, descriptor, created_by, argv, env, user, workdir, network, specs)

    def _heredoc_script(self, ins: Instruction) -> bool:
        return bool(ins.heredocs) and ins.json_args() is None

    def _run_argv(self, ins: Instruction) -> list[str]:
        form = ins.json_args()
        if form is not None:
            if not form:
                raise DockerfileError("RUN requires at least one argument", ins.line)
            return form
        if not ins.heredocs:
            if not ins.args:
                raise DockerfileError("RUN requires at least one argument", ins.line)
            return [*self.shell, ins.args]
        words = ins.args.split()
        only = len(ins.heredocs) == 1 and len(words) == 1 and _heredoc_name(words[0]) == ins.heredocs[0].name
        if only:
            body = ins.heredocs[0].content
            if body.startswith("#!"):  # a script with its own interpreter: BuildKit runs it as a file
                return [*self.shell, f"f=$(mktemp) && cat >\"$f\" <<'DOCKYARD_EOF'\n{body}DOCKYARD_EOF\n"
                        'chmod +x "$f" && "$f"; rc=$?; rm -f "$f"; exit $rc']  # fmt: skip
            return [*self.shell, body]
        script = ins.args + "\n" + "".join(f"{h.content}{h.name}\n" for h in ins.heredocs)
        return [*self.shell, script]

    def _run_env(self, args: list[str]) -> list[str]:
        env = list(self.cfg.get("Env") or [])
        names = {e.split("=", 1)[0] for e in env}
        env += [a for a in args if a.split("=", 1)[0] not in names]
        have = {e.split("=", 1)[0] for e in env}
        for k, v in self.b.proxy_args().items():
            if k not in have:
                env.append(f"{k}={v}")
        if "PATH" not in have:
            env.append(f"PATH={DEFAULT_PATH}")
        return env

    def _mount_key(self, spec: mounts.MountSpec, ins: Instruction) -> dict[str, Any]:
        key: dict[str, Any] = {
            "type": spec.type,
            "target": spec.target,
            "readonly": spec.readonly,
            "id": spec.id,
            "env": spec.env,
            "mode": spec.mode,
            "uid": spec.uid,
            "gid": spec.gid,
        }
        if spec.type == "bind":
            if spec.from_:
                key["from"] = str(self.b.from_image(spec.from_, self.stage, ins.line).id)
                key["source"] = spec.source
            else:
                items = self.b.ctx.items(self.b.ctx.select(spec.source or ".", ins.line)[0])
                from builder.context import checksum

                key["source"] = spec.source
                key["content"] = checksum(items)
        elif spec.type == "secret" and spec.required and spec.id not in self.b.opts.secrets:
            raise DockerfileError(
                f"secret {spec.id} is required but was not given (--secret id={spec.id},src=…)"
            )
        return key

    def _run(
        self,
        ins: Instruction,
        key: str,
        descriptor: dict[str, Any],
        created_by: str,
        argv: list[str],
        env: list[str],
        user: str,
        workdir: str,
        network: str,
        specs: list[mounts.MountSpec],
    ) -> None:
        from runtime.errors import StartFailed  # imported here: a fully cached build never runs anything
        from runtime.fs import ensure_init_layer
        from runtime.sandbox import run_step

        store = self.b.store
        work = store.tmp / f"build-{uuid.uuid4().hex}"
        upper = work / "upper"
        upper.mkdir(parents=True)
        container = os.urandom(6).hex()
        self.say(f" ---> Running in {container}\n")
        prepared = mounts.Prepared()
        tail = bytearray()

        def sink(chunk: bytes) -> None:
            tail.extend(chunk)
            del tail[:-8192]
            self.say_raw(chunk)

        try:
            view = self.view(self.image)
            self._prepare_mounts(specs, prepared, work, workdir, ins)
            points = mounts.mount_points(view, [mounts.absolute(t, workdir) for t in prepared.targets])
            lowers = store.short_lowerdirs(self.image) if self.image is not None else []
            init = ensure_init_layer(self.b.cache.init_layer)
            try:
                code = run_step(
                    lowers,
                    upper,
                    argv,
                    mount_cwd=store.root,
                    env=[*env, *prepared.env],
                    workdir=workdir,
                    user=user,
                    hostname=container,
                    network=network,
                    stdout=sink,
                    stderr=sink,
                    mounts=prepared.mounts,
                    init_layer=init,
                )
            except StartFailed as err:
                sink(f"{err}\n".encode())
                code = err.exit_code
            finally:
                prepared.close()
            if code != 0:
                raise BuildFailed(
                    f"The command '{' '.join(argv)}' returned a non-zero code: {code}",
                    code,
                    ins.line,
                    tail.decode(errors="replace"),
                    ins.original,
                )
            mounts.remove_mount_points(upper, view, points)
            layer: NewLayer | None = None
            if any(upper.iterdir()):
                path, out = store.temp_file()
                self.b.temp_files.append(path)
                with out:
                    write_layer(upper, out, overlay_whiteouts=True, mtime_clamp=self.b.sde)
                layer = NewLayer(tar=path, upperdir=upper)
            self.save(key, descriptor, created_by, layer)
            self.finish(container)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _prepare_mounts(
        self,
        specs: list[mounts.MountSpec],
        prepared: mounts.Prepared,
        work: Path,
        workdir: str,
        ins: Instruction,
    ) -> None:
        for n, spec in enumerate(specs):
            target = mounts.absolute(spec.target, workdir) if spec.target else ""
            if spec.type == "tmpfs":
                opts = f"size={spec.size}" if spec.size else ""
                prepared.mounts.append(Mount(target, "", "tmpfs", False, opts))
            elif spec.type == "cache":
                prepared.mounts.append(self._cache_mount(spec, target, prepared, work, n))
            elif spec.type == "secret":
                secret = self.b.opts.secrets.get(spec.id)
                if secret is None:
                    continue
                if spec.env:
                    prepared.env.append(f"{spec.env}={secret.decode(errors='replace')}")
                if not target:
                    continue
                path = work / f"secret-{n}"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                with open(fd, "wb") as f:
                    f.write(secret)
                os.chown(path, spec.uid or 0, spec.gid or 0)
                os.chmod(path, spec.mode if spec.mode is not None else 0o400)
                prepared.mounts.append(Mount(target, str(path), "bind", True))
            else:
                prepared.mounts.append(self._bind_mount(spec, target, work, n, ins))
            if target:
                prepared.targets.append(target)

    def _cache_mount(
        self, spec: mounts.MountSpec, target: str, prepared: mounts.Prepared, work: Path, n: int
    ) -> Mount:
        ident = spec.id or target
        base = mounts.cache_dir(self.b.cache.mounts, ident)
        data = base / "data"
        if not data.exists():
            base.mkdir(parents=True, exist_ok=True)
            tmp = base / f".new-{uuid.uuid4().hex}"
            tmp.mkdir(mode=0o755)
            os.chown(tmp, spec.uid or 0, spec.gid or 0)
            os.chmod(tmp, spec.mode if spec.mode is not None else 0o755)
            try:
                os.rename(tmp, data)
            except OSError:
                tmp.rmdir()
        source = data
        if spec.sharing == "locked":
            prepared.stack.enter_context(mounts._locked(base / ".lock"))
        elif spec.sharing == "private":
            if not prepared.stack.enter_context(mounts._locked(base / ".lock", blocking=False)):
                source = work / f"cache-{n}"
                source.mkdir()
        return Mount(target, str(source), "bind", spec.readonly)

    def _bind_mount(self, spec: mounts.MountSpec, target: str, work: Path, n: int, ins: Instruction) -> Mount:
        if spec.from_:
            image = self.b.from_image(spec.from_, self.stage, ins.line)
            view = self.view(image)
            parts = view.resolve(spec.source or "/")
            found, contribs = view.lookup(parts)
            if found is None:
                raise DockerfileError(f"mount source {spec.source!r} not found in {spec.from_}", ins.line)
            if spec.readonly and (not found.is_dir or len(contribs) == 1):
                return Mount(target, os.fsdecode(found.host), "bind", True)
            copy_to = work / f"bind-{n}"
            mounts.materialize(view, parts, copy_to)
            return Mount(target, str(copy_to), "bind", spec.readonly)
        if self.b.ctx.root is None:
            raise DockerfileError("RUN --mount=type=bind needs a build context", ins.line)
        rel = self.b.ctx.select(spec.source or ".", ins.line)[0]
        host = os.fsdecode(self.b.ctx.host(rel))
        if spec.readonly:
            return Mount(target, host, "bind", True)
        copy_to = work / f"bind-{n}"
        if os.path.isdir(host):
            shutil.copytree(host, copy_to, symlinks=True)
        else:
            shutil.copy2(host, copy_to, follow_symlinks=False)
        return Mount(target, str(copy_to), "bind", False)


def _heredoc_name(word: str) -> str | None:
    if not word.startswith("<<"):
        return None
    name = word[2:].lstrip("-")
    if len(name) > 1 and name[0] in "'\"" and name[-1] == name[0]:
        name = name[1:-1]
    return name or None


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


def _port_specs(spec: str, line: int) -> list[str]:
    """nat.ParsePortSpecs for EXPOSE: ``80``, ``80/udp``, ``8000-8002`` (expanded)."""
    port, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise DockerfileError(f"invalid proto: {proto}", line)
    if ":" in port:
        raise DockerfileError(f"invalid containerPort: {port}", line)
    lo, _, hi = port.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
        raise DockerfileError(f"invalid containerPort: {port}", line)
    start, end = int(lo), int(hi or lo)
    if end < start or end > 65535:
        raise DockerfileError(f"invalid range specified for container port: {port}", line)
    return [f"{p}/{proto}" for p in range(start, end + 1)]
