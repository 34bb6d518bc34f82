"""Transfer progress as docker shows it: tqdm bars on a terminal, plain step lines
elsewhere.  tqdm is the command line's alone (the libraries report through callbacks)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from imagefmt.records import TYPE_CHECKING
from registry.client import progress as pg

if TYPE_CHECKING:
    from typing import Any


def screen() -> dict[str, int]:
    """tqdm's ``ncols`` and ``nrows`` for stderr's terminal; 80x24 for what it does not
    report (a pty nobody sized is 0x0, where tqdm draws nothing at all)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
        cols, rows = size.columns, size.lines
    except OSError:
        cols = rows = 0
    with contextlib.suppress(ValueError):
        cols = int(os.environ.get("COLUMNS") or 0) or cols
    return {"ncols": cols or 80, "nrows": rows or 24}


def progress_bar(total: int | None, desc: str) -> Any:
    """A tqdm bar on a terminal; otherwise None (callers print plain step lines)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # only for a terminal: tqdm takes ~60 ms to import

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False, **screen())


class LayerProgress:
    """Renders transfer progress as docker does: a tqdm bar per layer on a
    terminal, else one plain line per status change.  Thread-safe."""

    def __init__(self, enabled: bool = True, tty: bool | None = None, lines: Any = None) -> None:
        self.lines = lines  # where the plain lines go: stdout when None
        self.enabled = enabled
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self._bars: dict[str, Any] = {}
        self._last: dict[str, str] = {}

    def __call__(self, ev: pg.Progress) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self.tty:
                self._bar(ev)
            elif (
                ev.status not in pg.MOVING
                and ev.status != pg.EXTRACTING
                and self._last.get(ev.id) != ev.status
            ):
                print(ev.line(), file=self.lines or sys.stdout, flush=True)
            self._last[ev.id] = ev.status

    def _bar(self, ev: pg.Progress) -> None:
        from tqdm import tqdm  # only for a terminal: tqdm takes ~60 ms to import

        bar = self._bars.get(ev.id)
        if bar is None:
            bar = tqdm(
                total=ev.total or None,
                desc=f"{ev.id}: {ev.status}",
                unit="B",
                unit_scale=True,
                unit_divisor=1000,
                position=len(self._bars),
                leave=True,
                file=sys.stderr,
                **screen(),
                bar_format="{desc:<32} {bar:30} {n_fmt}/{total_fmt}",
            )
            self._bars[ev.id] = bar
        if ev.status in pg.MOVING and self._last.get(ev.id) == ev.status:
            if ev.current > bar.n:
                bar.update(ev.current - bar.n)  # tqdm redraws at most every mininterval
            return
        bar.set_description_str(f"{ev.id}: {ev.status} {ev.detail}".strip(), refresh=False)
        if ev.status in pg.FINAL or ev.status in (pg.VERIFYING, pg.DOWNLOADED):
            bar.n = bar.total or ev.current
        elif ev.status in pg.MOVING:
            bar.n = ev.current
        bar.refresh()

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
