"""A suite's metric over its last runs, per (dataset, model) pair, with the model snapshot each
run got, so a change of score can be told from a change of model behind the same name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evalkit.entities import Run, ViewType
from evalkit.errors import InvalidArgument
from evalkit.suite import tags
from evalkit.suite.expressions import resolve_metric
from evalkit.tracking.client import TrackingClient

MAX_RUNS = 5000


@dataclass
class HistoryPoint:
    run_id: str
    start_time: int
    dataset: str
    model: str
    status: str  # the pair's gate status: passed, failed or error
    metric: str | None  # the run's metric the name resolved to, None when it has none
    value: float | None
    git_commit: str | None
    model_snapshot: str | None
    snapshot_changed: bool = False  # differs from the pair's previous run with a known snapshot


def metric_history(client: TrackingClient, suite: str, metric: str, last: int = 30, dataset: str | None = None,
                   model: str | None = None, until: int | None = None) -> list[HistoryPoint]:
    """The last ``last`` runs of each pair of ``suite`` (optionally one dataset or model), oldest
    first, with ``metric`` (a full or short name, see ``evalkit.suite.expressions``).
    ``until`` (a start time in ms) leaves out later runs: the history as it was at that run."""
    return metrics_history(client, suite, [metric], last, dataset, model, until)[metric]


def metrics_history(client: TrackingClient, suite: str, metrics: Sequence[str], last: int = 30,
                    dataset: str | None = None, model: str | None = None,
                    until: int | None = None) -> dict[str, list[HistoryPoint]]:
    """``metric_history`` of several metrics from one search of the store, by metric name."""
    by_pair = _runs_by_pair(client, suite, last, dataset, model, until)
    histories: dict[str, list[HistoryPoint]] = {}
    for metric in metrics:
        points = histories[metric] = []
        for pair in sorted(by_pair):
            previous_snapshot = None
            for run in reversed(by_pair[pair]):
                point = _point(run, pair, metric)
                if point.model_snapshot and previous_snapshot and point.model_snapshot != previous_snapshot:
                    point.snapshot_changed = True
                previous_snapshot = point.model_snapshot or previous_snapshot
                points.append(point)
    return histories


def _runs_by_pair(client: TrackingClient, suite: str, last: int, dataset: str | None, model: str | None,
                  until: int | None) -> dict[tuple[str, str], list[Run]]:
    """The newest ``last`` pair runs of the suite for each (dataset, model), newest first."""
    if last < 1:
        raise InvalidArgument(f"last must be a positive number of runs, got {last}")
    query = f"tags.`{tags.SUITE}` = '{suite}' AND tags.`{tags.ROLE}` = '{tags.PAIR}'"
    if dataset:
        query += f" AND tags.`{tags.DATASET}` = '{dataset}'"
    if model:
        query += f" AND tags.`{tags.MODEL}` = '{model}'"
    if until is not None:
        query += f" AND attributes.start_time <= {int(until)}"
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    runs: list[Run] = []
    token = None
    while experiments and len(runs) < MAX_RUNS:
        page, token = client.search_runs(experiments, query, max_results=1000, page_token=token,
                                         order_by=["attributes.start_time DESC"])
        runs.extend(page)
        if token is None:
            break
    by_pair: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        pair = (run.data.tags[tags.DATASET], run.data.tags[tags.MODEL])
        if len(by_pair.setdefault(pair, [])) < last:
            by_pair[pair].append(run)
    return by_pair


def _point(run: Run, pair: tuple[str, str], metric: str) -> HistoryPoint:
    try:
        name: str | None = resolve_metric(metric, run.data.metrics)
    except InvalidArgument:
        name = None
    run_tags = run.data.tags
    return HistoryPoint(
        run.info.run_id, run.info.start_time, pair[0], pair[1], run_tags.get(tags.STATUS, "unknown"), name,
        run.data.metrics.get(name) if name else None, run_tags.get(tags.GIT_COMMIT),
        run_tags.get(tags.MODEL_SNAPSHOT) or run.data.params.get("model_snapshot"),
    )
