"""Writes waiting to be flushed to the store in one transaction.

Buffering is what makes a loop of ``log_metric`` calls fast: values are checked when logged and
written in batches. A batch is flushed when it reaches ``max_items``, when its oldest entry is
``max_age`` seconds old, before any read, when a run ends, and when the process exits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple


class MetricRow(NamedTuple):
    run_id: str
    key: str
    value: float | None  # None when is_nan
    is_nan: bool
    step: int
    timestamp: int


@dataclass
class PendingWrites:
    metrics: list[MetricRow] = field(default_factory=list)
    params: dict[tuple[str, str], str] = field(default_factory=dict)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    first_added: float | None = None

    def __len__(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)

    def touch(self) -> None:
        if self.first_added is None:
            self.first_added = time.monotonic()

    def age(self) -> float:
        return 0.0 if self.first_added is None else time.monotonic() - self.first_added

    def run_ids(self) -> set[str]:
        ids = {row.run_id for row in self.metrics}
        ids.update(run_id for run_id, _ in self.params)
        ids.update(run_id for run_id, _ in self.tags)
        return ids

    def split_off(self, run_ids: set[str]) -> PendingWrites:
        """Remove and return the writes that belong to ``run_ids``."""
        taken = PendingWrites(
            metrics=[row for row in self.metrics if row.run_id in run_ids],
            params={k: v for k, v in self.params.items() if k[0] in run_ids},
            tags={k: v for k, v in self.tags.items() if k[0] in run_ids},
        )
        self.metrics = [row for row in self.metrics if row.run_id not in run_ids]
        self.params = {k: v for k, v in self.params.items() if k[0] not in run_ids}
        self.tags = {k: v for k, v in self.tags.items() if k[0] not in run_ids}
        if not len(self):
            self.first_added = None
        return taken
