"""One build stage: FROM, then each instruction as a cached step.

Every step ends as an image in the store (as Docker's classic builder does),
so its ID can be printed and a rebuild can reuse it: metadata steps with an
empty layer, RUN with its upperdir, COPY/ADD with a tar of what they add.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from builder import copier, history
from builder.cache import step_key
from builder.commit import NewLayer, base_doc, commit
from builder.errors import BuildFailed, DockerfileError
from builder.flags import CopyFlags, HealthcheckFlags
from builder.lexer import SubstitutionError, expand, expand_raw, expand_words, split_words
from builder.parser import Instruction, Stage, heredoc_name, parse_line
from builder.rootview import RootView
from imagefmt.changes import command_form, set_env
from imagefmt.config import rfc3339
from imagefmt.errors import Invalid
from imagefmt.store import StoredImage
from runtime.spec import DEFAULT_PATH

if TYPE_CHECKING:
    from builder.build import Build

DEFAULT_SHELL = ["/bin/sh", "-c"]
_SIGNALS = {
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
    "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF",
    "WINCH", "IO", "POLL", "PWR", "SYS",
}  # fmt: skip


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
        self.commit_metadata(ins, descriptor, created_by)

    def commit_metadata(self, ins: Instruction, descriptor: dict[str, Any], created_by: str) -> None:
        """Reuse the cached image for a metadata-only step, or commit an empty layer, as
        docker's classic builder prints it (" ---> Running in …")."""
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
        self.commit_metadata(ins, descriptor, created_by)

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
        flags = ins.flags_as(HealthcheckFlags)
        flags.check("healthcheck", ins.line)
        kind, _, command = ins.args.partition(" ")
        hc: dict[str, Any]
        if kind.upper() == "NONE":
            hc = {"Test": ["NONE"]}
        elif kind.upper() != "CMD" or not command.strip():
            raise DockerfileError("HEALTHCHECK: HEALTHCHECK needs CMD <command> or NONE", ins.line)
        else:
            command = command.strip()
            form = command_form(command, shell=[])
            hc = flags.config(["CMD", *form] if form != [command] else ["CMD-SHELL", command])
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
        flags = ins.flags_as(CopyFlags)
        from_flag, chown, chmod, link = flags.from_, flags.chown, flags.chmod, flags.link
        flags.check("parents", ins.line)
        view = self.view(self.image)
        owner = copier.parse_chown(self.expand(chown, ins), view, ins.line) if chown else None
        chmod_fn = copier.chmod_function(self.expand(chmod, ins), ins.line) if chmod else None
        from_id = ""
        sources: list[copier.Source] = []
        for s in srcs:
            name = heredoc_name(s)
            if name is not None and name in heredocs:
                doc = heredocs[name]
                data = expand_raw(doc.content, self.subst_env()) if doc.expand else doc.content
                sources.append(copier.data_source(name, data.encode(), 0o644, self._mtime()))
        plain = [self.expand(s, ins) for s in srcs if heredoc_name(s) not in heredocs]
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
            if flags.exclude:
                sources = _exclude(sources, list(flags.exclude))
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
        from builder import runstep

        runstep.run(self, ins)


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
