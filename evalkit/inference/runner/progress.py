"""A progress line on the terminal: rows done, errors, cache hits, spend so far."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunProgress:
    """Shown only when stderr is a terminal (or ``enabled=True``); otherwise does nothing."""

    def __init__(self, total: int, description: str, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.errors = self.cache_hits = 0
        self.spend = 0.0
        self._progress: Progress | None = None
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("errors {task.fields[errors]}  cached {task.fields[cached]}  ${task.fields[spend]:.4f}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
            )
            self._task = self._progress.add_task(description, total=total, errors=0, cached=0, spend=0.0)

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, done: int = 1, error: bool = False, cached: bool = False, cost: float | None = None) -> None:
        self.errors += error
        self.cache_hits += cached
        self.spend += cost or 0.0
        if self._progress is not None:
            self._progress.update(self._task, advance=done, errors=self.errors, cached=self.cache_hits, spend=self.spend)
