"""The row journal that makes an evaluation resumable.

Every finished row is appended as one JSON line and flushed to the OS before the event loop
turns to anything else (at once outside an event loop), so a process killed with SIGKILL (or
Ctrl-C) loses only the rows that were in flight: the runner frees a row's slot after journalling
it, and the row that takes the slot is only sent once the flush has run. The rows that finish in
one turn of the loop share one write. ``evaluate(resume=...)`` reads it back and sends only the
rows that have no answer yet.

Where artifacts are a local folder, the journal is written in place (``journal/rows.jsonl``).
An object store cannot append, and a request per row would cost more than the row: there the
journal is written to a local spool file and uploaded when the evaluation ends, however it ends
(finished, failed, Ctrl-C). A resume on the same machine reads the spool, even after SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from evalkit.inference.cache import default_cache_path
from evalkit.inference.runner.records import RowOutcome, RowStatus
from evalkit.tracking.artifacts import ArtifactRepository
from evalkit.tracking.artifacts.local import LocalArtifactRepository

JOURNAL_FILE = "journal/rows.jsonl"


class Journal:
    """Appends outcomes to ``path``. With ``publish``, also calls it at most every
    ``publish_every`` seconds (after an append), so that a spooled journal reaches the artifact
    store during a long run too: a run killed on one machine resumes on another with all but the
    last interval's rows."""

    def __init__(self, path: Path, publish: Callable[[], None] | None = None, publish_every: float = 30.0) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("a", encoding="utf-8")
        self._publish = publish
        self._publish_every = publish_every
        self._published_at = time.monotonic()
        self._flush_scheduled = False

    def append(self, outcome: RowOutcome) -> None:
        self._handle.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
        if not self._flush_scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._handle.flush()
            else:
                # Runs before the callbacks scheduled after it, among them the wake-up of the
                # row that takes this row's slot: see the module docstring.
                self._flush_scheduled = True
                loop.call_soon(self._flush)
        if self._publish is not None and time.monotonic() - self._published_at >= self._publish_every:
            # One upload of the whole file per interval (on the event loop: a short pause for the
            # rows in flight), never a request per row.
            self._published_at = time.monotonic()
            self._handle.flush()
            self._publish()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._handle.closed:
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def read_journal(path: Path) -> dict[int, RowOutcome]:
    """The latest outcome of each row. A torn last line (the process died mid-write) is ignored."""
    outcomes: dict[int, RowOutcome] = {}
    if not path.exists():
        return outcomes
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            outcome = RowOutcome.from_json(json.loads(line))
        except (ValueError, TypeError, KeyError):
            continue
        previous = outcomes.get(outcome.index)
        if previous is None or previous.status is not RowStatus.OK:
            outcomes[outcome.index] = outcome
    return outcomes


class JournalLocation:
    """Where one run's journal lives while it runs, and how it reaches the run's artifacts."""

    def __init__(self, repository: ArtifactRepository, run_id: str) -> None:
        if isinstance(repository, LocalArtifactRepository):
            self.path, self.remote = repository.root / JOURNAL_FILE, None
        else:
            self.path, self.remote = default_cache_path().parent / "journals" / f"{run_id}.jsonl", repository

    def read(self) -> dict[int, RowOutcome]:
        """The journalled outcomes: the local file, or the uploaded journal when there is none here."""
        if not self.path.exists() and self.remote is not None and self.remote.is_file(JOURNAL_FILE):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.remote.download_file(JOURNAL_FILE, self.path)
        return read_journal(self.path)

    def publish(self) -> None:
        """Upload the spooled journal to the run's artifacts (a no-op where it was written in place)."""
        if self.remote is not None and self.path.exists():
            self.remote.upload_file(self.path, JOURNAL_FILE)

    def open(self) -> Journal:
        """A journal to append to, which publishes itself now and then where it is spooled."""
        return Journal(self.path, publish=self.publish if self.remote is not None else None)
