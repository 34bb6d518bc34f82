"""Progress of transfers as plain events; the CLI renders them (tqdm on a terminal).

Callbacks are called from worker threads: a renderer must be thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# docker's per-layer statuses, in the order a layer goes through them.
PULLING = "Pulling fs layer"
WAITING = "Waiting"
DOWNLOADING = "Downloading"
VERIFYING = "Verifying Checksum"
DOWNLOADED = "Download complete"
EXTRACTING = "Extracting"
PULL_COMPLETE = "Pull complete"
ALREADY_EXISTS = "Already exists"

PREPARING = "Preparing"
COMPRESSING = "Compressing"
PUSHING = "Pushing"
PUSHED = "Pushed"
LAYER_EXISTS = "Layer already exists"
MOUNTED = "Mounted from"  # + " <repository>" in ``detail``
RETRYING = "Retrying"

# Statuses that carry byte counts (a renderer updates a bar rather than printing a line).
MOVING = frozenset({DOWNLOADING, PUSHING, COMPRESSING})
FINAL = frozenset({PULL_COMPLETE, ALREADY_EXISTS, PUSHED, LAYER_EXISTS, MOUNTED})


@dataclass(frozen=True, slots=True)
class Progress:
    """One step of one layer: ``id`` is the short digest docker prints."""

    id: str
    status: str
    current: int = 0
    total: int = 0
    detail: str = ""

    def line(self) -> str:
        """docker's plain line: ``3f4d90098f5b: Pull complete``."""
        text = f"{self.status} {self.detail}" if self.detail else self.status
        return f"{self.id}: {text}"


ProgressFn = Callable[[Progress], None]


def ignore(_: Progress) -> None:
    """A progress callback that drops everything."""
