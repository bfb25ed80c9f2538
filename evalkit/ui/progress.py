"""Live progress of a RUNNING evaluation, read from its row journal (``evalkit.evaluation.journal``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from evalkit.evaluation.journal import JOURNAL_FILE
from evalkit.tracking.artifacts import ArtifactRepository


@dataclass
class Progress:
    done: int
    failed: int
    spent_usd: float
    total: int | None  # the dataset's rows, when the run logged them

    @property
    def percent(self) -> int | None:
        return None if not self.total else min(100, round(100 * self.done / self.total))


def read_progress(repository: ArtifactRepository, total: int | None) -> Progress:
    """Rows finished (the latest outcome of each), failed, and what they cost, from the journal.
    A torn last line (written while we read) is skipped, as the journal's own reader does."""
    if not repository.is_file(JOURNAL_FILE):
        return Progress(0, 0, 0.0, total)
    latest: dict[int, dict] = {}
    spent = 0.0
    for line in repository.read_bytes(JOURNAL_FILE).decode("utf-8", errors="replace").splitlines():
        try:
            outcome = json.loads(line)
            index = int(outcome["index"])
        except (ValueError, KeyError, TypeError):
            continue
        spent += float(outcome.get("cost_usd") or 0.0) if not outcome.get("cached") else 0.0
        if latest.get(index, {}).get("status") != "ok":
            latest[index] = outcome
    failed = sum(1 for o in latest.values() if o.get("status") == "failed")
    return Progress(len(latest), failed, spent, total)
