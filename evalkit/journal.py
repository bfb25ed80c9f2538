"""The row journal that makes an evaluation resumable.

Every finished row is appended as one JSON line and flushed to the OS at once, so a process
killed with SIGKILL (or Ctrl-C) loses only the rows that were in flight. ``evaluate(resume=...)``
reads it back and sends only the rows that have no answer yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

from evalkit.runner.records import RowOutcome, RowStatus

JOURNAL_FILE = "journal/rows.jsonl"


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("a", encoding="utf-8")

    def append(self, outcome: RowOutcome) -> None:
        self._handle.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
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
