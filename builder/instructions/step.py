"""The step interface: an instruction, given its stage's state, returns a ``Plan``.

``StageRun`` (``builder/stage.py``) runs every plan the same way: apply its
config ``change``, look its cache key up, and on a miss call ``make_layer``,
commit the image and record it in the cache.  An instruction never touches
the cache, the image being built or the step's output lines itself.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol

from builder import copier
from builder.commit import NewLayer

if TYPE_CHECKING:
    from builder.cache import BuildCache
    from builder.context import BuildContext
    from builder.options import BuildOptions
    from builder.parser import Instruction
    from builder.rootview import RootView
    from imagefmt.store import Store, StoredImage


class StepState(Protocol):
    """What an instruction sees of its stage (and of the build around it)."""

    image: StoredImage | None  # the image so far: this step's parent (None: FROM scratch)
    args: dict[str, str | None]  # the ARGs in scope (None: declared without a value)
    cmd_set: bool  # a CMD came before in this stage (ENTRYPOINT keeps it)

    @property
    def doc(self) -> dict[str, Any]:
        """The image config document so far (a plan's ``change`` edits it, nothing else)."""

    @property
    def config(self) -> dict[str, Any]:
        """``doc["config"]``: Env, Cmd, WorkingDir …"""

    @property
    def shell(self) -> list[str]:
        """SHELL, or docker's ``/bin/sh -c``."""

    @property
    def escape(self) -> str:
        """The Dockerfile's escape token."""

    @property
    def store(self) -> Store: ...

    @property
    def cache(self) -> BuildCache: ...

    @property
    def context(self) -> BuildContext: ...

    @property
    def options(self) -> BuildOptions: ...

    @property
    def source_date_epoch(self) -> int | None: ...

    def expand(self, text: str, ins: Instruction) -> str:
        """``text`` with the ARG and ENV values substituted; DockerfileError if malformed."""

    def expand_words(self, text: str, ins: Instruction) -> list[str]: ...

    def subst_env(self) -> dict[str, str]:
        """What ``$VAR`` sees: the ARGs in scope with a value, then ENV."""

    def declare_arg(self, name: str, default: str | None) -> str | None:
        """The value of ``ARG name[=default]``: --build-arg, the default, the global value."""

    def build_args_in_effect(self) -> list[str]:
        """``K=V`` of the ARGs with a value that ENV does not override."""

    def proxy_args(self) -> dict[str, str]:
        """Proxy build args: in every RUN's environment, never in history or keys."""

    def view(self, image: StoredImage | None) -> RootView:
        """The read-only file system of ``image``."""

    def from_image(self, ref: str, line: int) -> StoredImage:
        """``--from=ref``: an earlier stage (name or index) or an image."""

    def temp_file(self) -> tuple[Path, IO[bytes]]:
        """A file in the store's tmp/ that the build removes when it ends."""


class LayerJob:
    """What ``make_layer`` gets: the stage, the step's output, its container and cleanups.

    ``stack`` closes after the step was committed (or failed); ``on_commit``
    callbacks get the new image."""

    def __init__(self, state: StepState, write: Callable[[bytes], None], stack: contextlib.ExitStack) -> None:
        self.state = state
        self.write = write
        self.stack = stack
        self.container: str | None = None
        self.committed: list[Callable[[StoredImage], None]] = []

    def start_container(self) -> str:
        """Print docker's `` ---> Running in <id>`` (once) and return the id."""
        if self.container is None:
            self.container = os.urandom(6).hex()
            self.write(f" ---> Running in {self.container}\n".encode())
        return self.container

    def on_commit(self, callback: Callable[[StoredImage], None]) -> None:
        self.committed.append(callback)


class Plan(NamedTuple):
    """One instruction, evaluated against its stage before the cache is consulted.

    The cache key is made of the parent image, the instruction as written,
    ``created_by``, ``key`` and the config after ``change``.  ``make_layer``
    None is a metadata-only step (an empty layer); a ``container`` step
    prints docker's "Running in" and "Removing intermediate container" lines
    (a step without one prints only the new image's ID).  (A NamedTuple, as
    the flags: cheap to define at every build's start.)"""

    created_by: str  # the history line, as docker writes it
    key: Mapping[str, Any]
    change: Callable[[dict[str, Any]], None] | None = None  # edits the config document
    make_layer: Callable[[LayerJob], NewLayer | None] | None = None
    container: bool = True


Planner = Callable[[StepState, "Instruction"], Plan]


def config_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` object of a config document (made if missing)."""
    cfg: dict[str, Any] = doc.setdefault("config", {})
    return cfg


def write_copy_plan(state: StepState, plan: copier.CopyPlan) -> NewLayer:
    """A COPY-style layer: ``plan``'s entries written as a tar in the store's tmp/."""
    path, out = state.temp_file()
    try:
        with out:
            entries = copier.write(plan, out, state.source_date_epoch)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return NewLayer(tar=path, entries=entries)


def mtime_now(state: StepState) -> float:
    """The mtime of a file the build makes: SOURCE_DATE_EPOCH, or now."""
    return float(state.source_date_epoch) if state.source_date_epoch is not None else time.time()
