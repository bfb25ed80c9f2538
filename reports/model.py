"""What a report shows, gathered from the tracking store: the run, its per-row results table,
and optionally a baseline run aligned row by row."""

from __future__ import annotations

import difflib
import functools
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from evalkit import Run, TrackingClient
from evalkit.errors import InvalidArgument, NotFound
from evalkit.evaluation.results import RESULTS_PARQUET, ResultsFile, input_keys
from evalkit.evaluation.run_evaluators import load_evaluators
from evalkit.evaluation.scoring import EvaluatorInfo
from evalkit.stats import (
    Delta,
    Interval,
    align_rows,
    bootstrap_interval,
    paired_delta,
)
from evalkit.suite.expressions import resolve_metric
from evalkit.suite.history import HistoryPoint, metrics_history
from evalkit.suite.tags import DATASET, GATES_FILE, MODEL, SUITE

TEXT_LIMIT = 4000  # characters of one input, output, context or justification embedded per row
RAW_LIMIT = 8000
LOW_SCORE = 0.5
MIN_CHANGE = 0.001  # a mean score change smaller than this is not listed as regressed or improved
HISTORY_RUNS = 30  # the pair's runs a history chart covers
GATE_KINDS = ("threshold", "paired", "tolerance")
PANELS = ("latency", "cost")  # evaluators (by metric prefix) shown in panels of their own, not as score cards


@dataclass
class RunView:
    run: Run
    experiment: str
    table: pd.DataFrame  # every column, or with ``source`` set, the columns the report needs of every row
    evaluators: list[EvaluatorInfo]  # those with per-row scores in the table, in the run's order
    source: Path | None = None  # the whole table as a local Parquet file, when ``table`` has some columns only

    @property
    def params(self) -> dict[str, str]:
        return self.run.data.params

    @property
    def metrics(self) -> dict[str, float]:
        return self.run.data.metrics

    @functools.cached_property
    def records(self) -> list[dict[str, Any]]:
        # One conversion up front (row-by-row .iloc costs ~200 µs a row), through Arrow: pandas'
        # to_dict costs 4x more. Missing values come as None (the record's helpers read NaN and None alike).
        return pa.Table.from_pandas(self.table, preserve_index=False).to_pylist()

    def records_at(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """Every column of the rows at ``positions`` (ascending), read a row group at a time
        from ``source`` when the table in memory has some columns only."""
        if self.source is None:
            return [self.records[p] for p in positions]
        return ResultsFile(self.source).rows_at(positions)

    def column(self, name: str) -> pa.ChunkedArray | None:
        """One column of every row (None when the table has none), read alone from ``source``
        when the table in memory has some columns only."""
        if name in self.table.columns:
            return pa.chunked_array([pa.array(self.table[name], from_pandas=True)])
        return ResultsFile(self.source).column(name) if self.source is not None else None

    def scores(self, name: str) -> np.ndarray:
        """The evaluator's per-row scores, NaN where a row has none (or a non-finite one)."""
        values = pd.to_numeric(self.table[f"{name}/score"], errors="coerce").to_numpy(dtype=float)
        return np.where(np.isfinite(values), values, np.nan)


@dataclass
class MetricCard:
    name: str
    label: str
    interval: Interval | None
    denominators: dict[str, int]
    delta: Delta | None = None
    higher_is_better: bool = True


@dataclass
class History:
    metric: str  # as resolved on this run
    points: list[HistoryPoint]  # oldest first


@dataclass
class SuiteView:
    """What a suite job recorded on one of its pair runs: the gates.json artifact (every field
    optional, so an older or hand-edited file still renders) and the history of the gated metrics."""

    suite: str | None
    dataset: str | None
    model: str | None
    status: str | None
    error: str | None
    baseline_run_id: str | None
    gates: list[dict[str, Any]]
    history: list[History]


@dataclass
class Report:
    current: RunView
    baseline: RunView | None
    cards: list[MetricCard]
    rows: list[dict[str, Any]]
    total_rows: int
    row_cap_note: str | None
    digest_warning: str | None
    changes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    table_path: str | None = None
    suite: SuiteView | None = None


def load_run(client: TrackingClient, run_id: str, folder: Path | None = None) -> RunView:
    """The run and its results table. With ``folder`` (which must outlive the view), the table is
    copied there and only its numeric and status columns are read into memory; ``records_at``
    reads the rest for the rows asked for."""
    run = client.get_run(run_id)
    try:
        if folder is None:
            table, source = client.load_table(run_id, RESULTS_PARQUET), None
        else:
            stored = ResultsFile.download(client, run_id, folder)
            table, source = stored.light(), stored.path
    except NotFound:
        raise NotFound(f"run {run_id} has no {RESULTS_PARQUET}: only runs logged by evaluate() have a report") from None
    experiment = client.get_experiment(run.info.experiment_id).name
    evaluators = [info for info in load_evaluators(client, run) if f"{info.name}/score" in table.columns]
    return RunView(run, experiment, table, evaluators, source)


def _text(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters in the results table]"


def _number(value: Any) -> float | None:
    """A finite float, else None: JSON has no NaN or infinity, and neither can be charted."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def load_suite_view(client: TrackingClient, view: RunView) -> SuiteView | None:
    """The gates and metric history of a run made by ``evalkit.suite.run_suite``; None for any other run."""
    run_id = view.run.info.run_id
    try:
        payload = json.loads(client.load_text(run_id, GATES_FILE))
    except NotFound:
        return None
    except ValueError as exc:  # truncated or hand-edited: say so rather than lose the whole report
        payload = {"status": "error", "error": f"{GATES_FILE} could not be read: {exc}"}
    if not isinstance(payload, dict):
        payload = {"status": "error", "error": f"{GATES_FILE} does not hold a JSON object"}
    listed = payload.get("gates")
    gates = [_gate(g) for g in listed if isinstance(g, dict)] if isinstance(listed, list) else []
    tags = view.run.data.tags
    suite, dataset, model = tags.get(SUITE), tags.get(DATASET), tags.get(MODEL)
    history = _history(client, view, gates, suite, dataset, model) if suite and dataset and model else []
    return SuiteView(suite, dataset, model, _text(payload.get("status")), _text(payload.get("error")),
                     _text(payload.get("baseline_run_id")), gates, history)


def _gate(raw: dict[str, Any]) -> dict[str, Any]:
    gate: dict[str, Any] = {key: _text(raw.get(key)) for key in ("name", "kind", "metric", "status", "message")}
    gate.update({key: _number(raw.get(key)) for key in ("observed", "baseline", "delta", "p_value", "p_adjusted")})
    return gate


def _history(client: TrackingClient, view: RunView, gates: list[dict[str, Any]], suite: str, dataset: str,
             model: str) -> list[History]:
    metrics: list[str] = []
    for gate in gates:
        if gate["kind"] not in GATE_KINDS or not gate["metric"]:
            continue
        try:
            metric = resolve_metric(gate["metric"], view.metrics)
        except InvalidArgument:
            metric = gate["metric"]  # this run lacks it (an error gate); earlier runs may have it
        if metric not in metrics:  # a threshold and a baseline rule often gate the same metric
            metrics.append(metric)
    # Up to this run: a report rendered again later still shows the history as of its night.
    until = view.run.info.start_time
    histories = metrics_history(client, suite, metrics, HISTORY_RUNS, dataset, model, until)
    return [History(m, histories[m]) for m in metrics]


def _contexts(value: Any) -> list[str]:
    if value is None or isinstance(value, float):
        return []
    return [_text(c) or "" for c in list(value)]


def diff_segments(before: str, after: str) -> list[list[str]]:
    """Word-level diff as ``[op, text]`` pairs (op: "=", "-", "+"); the page inserts them as text."""
    a, b = before.split(" "), after.split(" ")
    segments: list[list[str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            segments.append(["=", " ".join(a[i1:i2])])
        else:
            if i2 > i1:
                segments.append(["-", " ".join(a[i1:i2])])
            if j2 > j1:
                segments.append(["+", " ".join(b[j1:j2])])
    return segments


def _cards(current: RunView, baseline: RunView | None, pairs: tuple[np.ndarray, np.ndarray] | None) -> list[MetricCard]:
    cards = []
    for info in score_evaluators(current):
        name, prefix, metrics = info.name, info.metric_prefix, current.metrics
        denominators = {key: int(metrics.get(f"{prefix}/{key}", 0)) for key in ("rows_scored", "rows_failed", "rows_not_applicable")}
        card = MetricCard(name, prefix + "/mean", bootstrap_interval(current.scores(name)), denominators, None,
                          info.higher_is_better)
        if baseline is not None and pairs is not None and f"{name}/score" in baseline.table.columns:
            now, before = current.scores(name)[pairs[0]], baseline.scores(name)[pairs[1]]
            card.delta = paired_delta(now, before, higher_is_better=info.higher_is_better)
        cards.append(card)
    return cards


def row_records(view: RunView, positions: Sequence[int]) -> list[dict[str, Any]]:
    """What the report shows of the rows at ``positions`` (ascending) of ``view``'s table, read
    from its Parquet file a row group at a time when the view holds some columns only."""
    return [_record(view, row) for row in view.records_at(positions)]


def _record(view: RunView, row: dict[str, Any]) -> dict[str, Any]:
    """What the report shows of one row of ``view``'s table (every column of it)."""
    record: dict[str, Any] = {
        "row": int(row["row"]), "status": row.get("status", "ok"), "error": _text(row.get("error")),
        "input": _text(row.get("inputs")), "output": _text(row.get("outputs")), "target": _text(row.get("targets")),
        "contexts": _contexts(row.get("contexts")), "latency_ms": _number(row.get("latency_ms")),
        "cost_usd": _number(row.get("cost_usd")), "cached": bool(row.get("cached", False)),
        "input_tokens": _number(row.get("input_tokens")), "output_tokens": _number(row.get("output_tokens")),
        "scores": {}, "justifications": {}, "raw": {}, "score_status": {},
    }
    for name in (info.name for info in view.evaluators):
        record["scores"][name] = _number(row.get(f"{name}/score"))
        record["justifications"][name] = _text(row.get(f"{name}/justification"))
        record["score_status"][name] = row.get(f"{name}/status", "scored")
        raw = _text(row.get(f"{name}/raw"), RAW_LIMIT)
        if raw:
            record["raw"][name] = raw
    return record


def score_evaluators(view: RunView) -> list[EvaluatorInfo]:
    """The evaluators shown as score cards, distributions and row scores (all but the panels')."""
    return [info for info in view.evaluators if info.metric_prefix not in PANELS]


def build_report(client: TrackingClient, run_id: str, baseline_run_id: str | None = None, row_cap: int = 2000) -> Report:
    with tempfile.TemporaryDirectory(prefix="evalkit-report-") as folder:
        baseline = load_run(client, baseline_run_id, Path(folder)) if baseline_run_id is not None else None
        return _build_report(client, load_run(client, run_id, Path(folder)), baseline, row_cap)


def _build_report(client: TrackingClient, current: RunView, baseline: RunView | None, row_cap: int) -> Report:
    """The report of ``current`` (against ``baseline``), from the views' score and status columns:
    only the rows it embeds (at most ``row_cap``, and the most regressed and improved) are read whole."""
    digest_warning = pairs = None
    if baseline is not None:
        same_data = current.params.get("dataset_digest") == baseline.params.get("dataset_digest")
        if same_data:
            positions = np.arange(min(len(current.table), len(baseline.table)))
            pairs = (positions, positions)
        else:
            pairs = align_rows(_keys(current), _keys(baseline))
            digest_warning = (
                f"The two runs used different data (dataset digest {current.params.get('dataset_digest')} vs "
                f"{baseline.params.get('dataset_digest')}). Rows are paired by identical input: {len(pairs[0])} of "
                f"{len(current.table)} rows have a partner; the comparison covers those only."
            )

    total = len(current.table)
    changed = np.zeros(total, dtype=bool)
    regressed: list[int] = []
    improved: list[int] = []
    if baseline is not None and pairs is not None:
        pair_changed, delta = _paired_changes(current, baseline, pairs)
        changed[pairs[0]] = pair_changed
        # Changed rows ranked by their change, ties in row order (as a stable sort of the rows).
        ranked = [k for k in np.lexsort((pairs[0], delta)) if pair_changed[k]]
        regressed = [k for k in ranked if delta[k] <= -MIN_CHANGE][:20]
        improved = [k for k in reversed(ranked) if delta[k] >= MIN_CHANGE][:20]
    kept = _kept_rows(current, row_cap, changed) if total > row_cap else list(range(total))
    shown = sorted({*kept, *(int(pairs[0][k]) for k in [*regressed, *improved])}) if pairs is not None else kept
    by_position = dict(zip(shown, row_records(current, shown), strict=True))
    if baseline is not None and pairs is not None:
        partner = {int(i): (k, int(j)) for k, (i, j) in enumerate(zip(*pairs, strict=True)) if int(i) in by_position}
        before_rows = dict(zip(sorted({j for _, j in partner.values()}),
                               row_records(baseline, sorted({j for _, j in partner.values()})), strict=True))
        for i, (k, j) in partner.items():
            record, before = by_position[i], before_rows[j]
            record["baseline"] = {"output": before["output"], "scores": before["scores"], "status": before["status"]}
            record["changed"] = bool(pair_changed[k])
            if record["changed"]:
                record["diff"] = diff_segments(before["output"] or "", record["output"] or "")
            record["delta"] = float(delta[k])
    records = [by_position[p] for p in kept]
    changes = {"regressed": [by_position[int(pairs[0][k])] for k in regressed] if pairs is not None else [],
               "improved": [by_position[int(pairs[0][k])] for k in improved] if pairs is not None else []}
    row_cap_note = None
    if total > row_cap:
        row_cap_note = (f"This report embeds {row_cap:,} of {total:,} rows: the failed, changed and lowest-scoring ones. "
                        f"The full table is the run's {RESULTS_PARQUET} artifact.")
    table_path = f"{current.run.info.artifact_uri}/{RESULTS_PARQUET}"
    return Report(current, baseline, _cards(current, baseline, pairs), records, total, row_cap_note, digest_warning,
                  changes, table_path, load_suite_view(client, current))


def _keys(view: RunView) -> list[str]:
    """Each row's input as the text that pairs it with the other run's rows."""
    return input_keys(view.table, ResultsFile(view.source) if view.source is not None else None)


def _paired_changes(current: RunView, baseline: RunView, pairs: tuple[np.ndarray, np.ndarray],
                    ) -> tuple[np.ndarray, np.ndarray]:
    """For each pair of rows: whether its output or a score changed, and the mean change of the
    scores both runs have, each signed so that up is better (0 when none), from whole columns."""
    now, before = pairs

    def outputs(view: RunView, at: np.ndarray) -> pa.Array:
        column = view.column("outputs")
        if column is None:
            return pa.nulls(len(at), pa.large_string())
        return column.cast(pa.large_string()).take(pa.array(at, pa.int64())).combine_chunks()

    a, b = outputs(current, now), outputs(baseline, before)
    same = pc.or_(pc.fill_null(pc.equal(a, b), False), pc.and_(pc.is_null(a), pc.is_null(b)))
    changed = ~same.to_numpy(zero_copy_only=False)
    total, count = np.zeros(len(now)), np.zeros(len(now), dtype=int)
    directions = {info.name: info.higher_is_better for info in current.evaluators}
    for name in (info.name for info in score_evaluators(current)):
        x = current.scores(name)[now]
        y = baseline.scores(name)[before] if f"{name}/score" in baseline.table.columns else np.full(len(now), np.nan)
        changed |= ~((x == y) | (np.isnan(x) & np.isnan(y)))
        both = ~np.isnan(x) & ~np.isnan(y)
        total += np.where(both, (x - y) * (1 if directions[name] else -1), 0.0)
        count += both
    return changed, np.divide(total, count, out=np.zeros(len(now)), where=count > 0)


def _kept_rows(view: RunView, row_cap: int, changed: np.ndarray | None = None) -> list[int]:
    """The positions of the rows ``_priority`` keeps under the cap (failed rows first, then
    ``changed`` ones, each lowest score first), worked out on whole columns; ascending."""
    table = view.table
    failing = (table["status"] != "ok").to_numpy() if "status" in table else np.zeros(len(table), dtype=bool)
    worst = np.full(len(table), np.inf)
    for info in view.evaluators:
        status = table.get(f"{info.name}/status")
        if status is not None:
            failing = failing | (status == "failed").to_numpy()
        worst = np.fmin(worst, view.scores(info.name))
    worst = np.where(np.isfinite(worst), worst, 1.0)
    # lexsort is stable, as sorted() is: ties keep row order
    rank = np.where(failing, 0, np.where(changed, 1, 2) if changed is not None else 2)
    return sorted(np.lexsort((worst, rank))[:row_cap].tolist())
