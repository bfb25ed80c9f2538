"""The calls an autolog records: one row per API call in a table artifact, and a handful of
aggregate metrics per run, both written in batches.

A run's rows go to ``<prefix>/calls/<part>.json`` files (``TrackingClient.log_table``'s JSON
layout), one part per batch, so a long run never rewrites what it already wrote;
:func:`load_calls` reads them back as one DataFrame. The aggregates
(``<prefix>/calls``, ``errors``, tokens, ``cost_usd``, latency percentiles...) are logged with
each batch, at the step of the number of calls so far: their keys stay the same however many
calls a run makes. A batch is written when ``batch_size`` rows are waiting, when the oldest is
``max_age`` seconds old (checked on the next call), before the run ends, and at exit.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit.entities import Metric
from evalkit.tracking.clock import now_ms

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.tracking.artifacts import ArtifactRepository
    from evalkit.tracking.client import TrackingClient

_log = logging.getLogger(__name__)


@dataclass
class CallRecord:
    """One API call. Tokens are None when the response reported no usage; ``cost_usd`` is None
    when the tokens or the model's price are unknown (never a guess)."""

    endpoint: str
    requested_model: str | None
    model: str | None
    stream: bool
    status: str
    """"ok" or "error"."""
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    cost_usd: float | None
    latency_s: float
    started_at_ms: int
    input: str | None = None
    output: str | None = None


COLUMNS = list(CallRecord.__dataclass_fields__)


@dataclass
class _RunCalls:
    """What one run has recorded: rows not yet written, and the running totals."""

    pending: list[CallRecord] = field(default_factory=list)
    first_pending: float = 0.0
    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0
    latencies: list[float] = field(default_factory=list)
    parts: int = 0

    def add(self, record: CallRecord) -> None:
        if not self.pending:
            self.first_pending = time.monotonic()
        self.pending.append(record)
        self.calls += 1
        self.errors += record.status != "ok"
        self.prompt_tokens += record.prompt_tokens or 0
        self.completion_tokens += record.completion_tokens or 0
        self.cached_tokens += record.cached_tokens or 0
        if record.cost_usd is None:
            self.unpriced += record.status == "ok"
        else:
            self.cost_usd += record.cost_usd
        self.latencies.append(record.latency_s)

    def aggregates(self, prefix: str) -> dict[str, float]:
        p50, p95 = np.percentile(self.latencies, [50, 95]) if self.latencies else (0.0, 0.0)
        return {
            f"{prefix}/calls": self.calls,
            f"{prefix}/errors": self.errors,
            f"{prefix}/prompt_tokens": self.prompt_tokens,
            f"{prefix}/completion_tokens": self.completion_tokens,
            f"{prefix}/cached_tokens": self.cached_tokens,
            f"{prefix}/cost_usd": self.cost_usd,
            f"{prefix}/unpriced_calls": self.unpriced,
            f"{prefix}/latency_p50_s": float(p50),
            f"{prefix}/latency_p95_s": float(p95),
        }


@dataclass
class _Batch:
    run_id: str
    rows: list[CallRecord]
    part: int
    metrics: dict[str, float]
    step: int


class CallLog:
    """Thread-safe recorder of calls into runs; see the module docstring for when it writes."""

    def __init__(self, prefix: str, batch_size: int = 200, max_age: float = 10.0) -> None:
        self.prefix = prefix
        self.batch_size = batch_size
        self.max_age = max_age
        self._runs: dict[str, _RunCalls] = {}
        self._lock = threading.Lock()
        # Serialises writes, so a run's parts land in order and a run-end flush waits for a
        # batch another thread is writing.
        self._write_lock = threading.Lock()
        self._repositories: dict[str, ArtifactRepository] = {}

    def add(self, run_id: str, record: CallRecord) -> None:
        """Record a call; writes a batch when one is due."""
        with self._lock:
            calls = self._runs.get(run_id)
            if calls is None:
                calls = self._runs[run_id] = _RunCalls()
            calls.add(record)
            due = len(calls.pending) >= self.batch_size or time.monotonic() - calls.first_pending >= self.max_age
            batch = self._take(run_id, calls) if due else None
        if batch is not None:
            self._write(batch)

    def flush(self, run_id: str | None = None, forget: bool = False) -> None:
        """Write the waiting rows of one run (every run when None); ``forget`` drops the run's
        totals afterwards (the run is ending)."""
        with self._lock:
            ids = list(self._runs) if run_id is None else [run_id] if run_id in self._runs else []
            batches = [self._take(i, self._runs[i]) for i in ids]
            if forget:
                for i in ids:
                    del self._runs[i]
        for batch in batches:
            if batch is not None:
                self._write(batch)
        if forget:
            with self._write_lock:
                for i in ids:
                    self._repositories.pop(i, None)

    def _take(self, run_id: str, calls: _RunCalls) -> _Batch | None:
        if not calls.pending:
            return None
        rows, calls.pending = calls.pending, []
        calls.parts += 1
        return _Batch(run_id, rows, calls.parts, calls.aggregates(self.prefix), calls.calls)

    def _write(self, batch: _Batch) -> None:
        # Never raises: this runs inside the user's API call or while their run ends.
        from evalkit.tracking.client import TrackingClient

        try:
            with self._write_lock:
                client = TrackingClient()
                client.store.check_writable(batch.run_id)
                repository = self._repositories.get(batch.run_id)
                if repository is None:  # looked up once per run: it costs a read of the run
                    repository = self._repositories[batch.run_id] = client.artifact_repository(batch.run_id)
                path = f"{self.prefix}/calls/{_part_name(batch.part)}.json"
                repository.write_bytes(path, _table_json(batch.rows).encode("utf-8"))
                timestamp = now_ms()
                client.log_batch(
                    batch.run_id,
                    metrics=[Metric(k, float(v), timestamp, batch.step) for k, v in batch.metrics.items()],
                )
        except Exception:  # noqa: BLE001 - see above; the warning says what was lost
            _log.warning(
                "evalkit autolog: could not write %d call rows to run %s", len(batch.rows), batch.run_id, exc_info=True
            )


def _part_name(part: int) -> str:
    # The time first: a run reopened later starts counting parts again, and must not overwrite.
    return f"{now_ms():013d}-{part:05d}"


def _table_json(rows: list[CallRecord]) -> str:
    """The rows in ``log_table``'s JSON layout (``load_table`` reads it), written without pandas:
    this runs inside the user's API call once per batch."""
    data = [[getattr(row, column) for column in COLUMNS] for row in rows]
    return json.dumps({"columns": COLUMNS, "data": data}, ensure_ascii=False)


def load_calls(run_id: str, prefix: str = "openai", client: TrackingClient | None = None) -> pd.DataFrame:
    """Every call row an autolog recorded in ``run_id``, in call order, as one DataFrame."""
    import pandas as pd

    from evalkit.tracking.client import TrackingClient

    client = client or TrackingClient()
    folder = f"{prefix}/calls"
    parts = sorted(info.path for info in client.list_artifacts(run_id, folder) if info.path.endswith(".json"))
    frames: list[Any] = [client.load_table(run_id, path) for path in parts]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)
