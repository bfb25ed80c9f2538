"""Gates: absolute thresholds on a run's metrics, and comparisons with a baseline run.

A gate ends ``passed``, ``failed`` (the model is worse than allowed), ``error`` (it could not be
judged: the metric is missing, or too few rows were scored to trust it) or ``skipped`` (no
baseline yet). Only ``failed`` means a regression; ``error`` is an outage or a broken setup.

A paired gate fails when the regression is statistically significant on the same rows (the
one-sided paired bootstrap of ``evalkit.stats``; with ``correction: holm`` the p-values of all
paired gates of a suite run are adjusted together, so a suite with many gates does not cry
wolf more often than one with a single gate) and larger than its ``min_effect``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evalkit.errors import InvalidArgument
from evalkit.evaluation.results import ResultsFile, input_keys
from evalkit.evaluation.run_evaluators import higher_is_better, owner
from evalkit.evaluation.scoring import EvaluatorInfo
from evalkit.stats import (
    Statistic,
    align_rows,
    holm_adjust,
    mean_statistic,
    paired_regression_test,
    percentile_statistic,
)
from evalkit.suite.expressions import Threshold, resolve_metric
from evalkit.tracking.suite_tags import PASSED

FAILED, ERROR, SKIPPED = "failed", "error", "skipped"  # and PASSED, which the evidence check reads too
MAX_FAILED_SHARE = 0.5  # more of a metric's rows failing than this is an outage, not a score
WORST_ROWS = 5
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)(?:_ms)?$")
_MEAN_STATS = ("mean", "mean_ms", "per_query_usd")
_TEXT = 160  # characters of an input or output quoted in a failure


@dataclass
class RunScores:
    """What gates read from a run: its metrics, its per-row results table, its data digest and
    its evaluators' metadata (``evalkit.evaluation.run_evaluators.load_evaluators``), which says which
    results-table column holds a metric's rows and which way the metric improves."""

    run_id: str
    metrics: dict[str, float]
    table: pd.DataFrame  # every column, or with ``stored``, the columns without texts
    dataset_digest: str | None = None
    evaluators: Sequence[EvaluatorInfo] = ()
    stored: ResultsFile | None = None  # the whole table, for the texts of the rows a gate quotes

    def higher_is_better(self, metric: str) -> bool:
        return higher_is_better(metric, self.evaluators)

    def inputs(self) -> list[str]:
        """Each row's input, as the text that pairs it with another run's rows."""
        return input_keys(self.table, self.stored)

    def rows_at(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """Every column of the rows at ``positions``, in that order."""
        if self.stored is None:
            return self.table.iloc[list(positions)].to_dict(orient="records")
        ordered = sorted(set(positions))
        found = dict(zip(ordered, self.stored.rows_at(ordered), strict=True))
        return [found[p] for p in positions]


@dataclass
class GateResult:
    """One gate's outcome; ``name`` is the gate as written, ``metric`` the run's metric it read."""

    name: str
    kind: str  # "threshold", "paired" or "tolerance"
    metric: str
    status: str
    message: str
    observed: float | None = None
    baseline: float | None = None
    delta: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    n_pairs: int | None = None
    method: str | None = None  # of a paired test: "bootstrap", or "permutation" below 30 pairs
    higher_is_better: bool | None = None  # the metric's direction, as the run's evaluators declare it
    worst_rows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


# ---- per-row values ------------------------------------------------------------------------


def row_values(table: pd.DataFrame, metric: str,
               evaluators: Sequence[EvaluatorInfo]) -> tuple[np.ndarray, Statistic] | None:
    """The per-row values behind an aggregate metric and the statistic that aggregates them,
    or None when the metric has no per-row form (a count, a total)."""
    stat = metric.rsplit("/", 1)[-1]
    statistic: Statistic | None = None
    if stat in _MEAN_STATS:
        statistic = mean_statistic
    elif match := _PERCENTILE.match(stat):
        statistic = percentile_statistic(float(match.group(1)))
    if metric == "error_rate" and "status" in table:
        return (table["status"] == "failed").to_numpy(dtype=float), mean_statistic
    if statistic is None:
        return None
    if metric.startswith("latency_total/") and "total_latency_ms" in table:
        fresh = (table["status"] == "ok") & ~table["cached"].astype(bool)
        values = pd.to_numeric(table["total_latency_ms"], errors="coerce").to_numpy(dtype=float)
        return np.where(fresh.to_numpy(), values, np.nan), statistic
    column = score_column(table, metric, evaluators)
    if column is None:
        return None
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(values), values, np.nan), statistic


def score_column(table: pd.DataFrame, metric: str, evaluators: Sequence[EvaluatorInfo]) -> str | None:
    """The results-table column of per-row scores behind ``metric``: that of the evaluator logging
    it (``faithfulness/score`` for ``faithfulness/judge-v1/mean``, ``ragas:faithfulness/score``
    for ``ragas/faithfulness/<version>/mean``), if the table has it."""
    info = owner(metric, evaluators)
    column = f"{info.name}/score" if info is not None else None
    return column if column is not None and column in table.columns else None


def worst_rows(table: pd.DataFrame, metric: str, evaluators: Sequence[EvaluatorInfo], limit: int = WORST_ROWS,
               baseline: pd.DataFrame | None = None, pairs: tuple[np.ndarray, np.ndarray] | None = None,
               read_rows: Callable[[list[int]], list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """The rows that pulled ``metric`` the wrong way: the lowest scores (highest for latency,
    cost and the like), or with a baseline the biggest drops; failed rows first for error_rate.
    ``read_rows`` reads every column of the chosen rows (``RunScores.rows_at``) when ``table``
    holds no texts."""
    found = row_values(table, metric, evaluators)
    if found is None:
        return []
    values, _ = found
    sign = 1.0 if higher_is_better(metric, evaluators) else -1.0
    if baseline is not None and pairs is not None:
        base = row_values(baseline, metric, evaluators)
        if base is None:
            return []
        change = (values[pairs[0]] - base[0][pairs[1]]) * sign
        order = [int(pairs[0][i]) for i in np.argsort(np.where(np.isnan(change), np.inf, change), kind="stable")
                 if not np.isnan(change[i]) and change[i] < 0][:limit]
        before = {int(i): float(base[0][j]) for i, j in zip(*pairs, strict=True)}
    else:
        ranked = np.argsort(np.where(np.isnan(values), np.inf, values * sign), kind="stable")
        order = [int(i) for i in ranked if not np.isnan(values[i])][:limit]
        before = {}
    # Only the chosen rows: converting the whole table costs ~200 ms per 10,000 rows, per gate.
    records = (read_rows(order) if read_rows is not None else table.iloc[order].to_dict(orient="records")) if order else []
    column = score_column(table, metric, evaluators)
    return [_row_summary(record, values[i], before.get(i), column) for record, i in zip(records, order, strict=True)]


def _row_summary(record: dict[str, Any], value: float, before: float | None, column: str | None) -> dict[str, Any]:
    def short(key: str) -> str | None:
        text = record.get(key)
        if text is None or (isinstance(text, float) and math.isnan(text)):
            return None
        text = " ".join(str(text).split())
        return text if len(text) <= _TEXT else text[:_TEXT] + "…"

    summary = {"row": int(record.get("row", 0)), "value": float(value), "input": short("inputs"),
               "output": short("outputs"), "error": short("error")}
    if before is not None:
        summary["baseline"] = before
    if column is not None:
        summary["justification"] = short(column.replace("/score", "/justification"))
    return summary


# ---- thresholds ----------------------------------------------------------------------------


def check_threshold(threshold: Threshold, run: RunScores) -> GateResult:
    """Compare the run's metric with the threshold."""
    try:
        metric = resolve_metric(threshold.metric, run.metrics)
    except InvalidArgument as exc:
        return GateResult(threshold.text, "threshold", threshold.metric, ERROR, str(exc))
    observed = run.metrics[metric]
    if unreliable := _unreliable(run.metrics, metric):
        return GateResult(threshold.text, "threshold", metric, ERROR, unreliable, observed=observed)
    if not math.isfinite(observed):
        return GateResult(threshold.text, "threshold", metric, ERROR, f"{metric} is {observed}", observed=observed)
    if threshold.holds(observed):
        return GateResult(threshold.text, "threshold", metric, PASSED,
                          f"{metric} = {observed:.6g}, within {threshold.op} {threshold.value:g}", observed=observed)
    pulls_down = threshold.higher_is_better == run.higher_is_better(metric)  # a floor on a score, a ceiling on a cost
    worst = worst_rows(run.table, metric, run.evaluators, read_rows=run.rows_at) if pulls_down else []
    return GateResult(threshold.text, "threshold", metric, FAILED,
                      f"{metric} = {observed:.6g}, not {threshold.op} {threshold.value:g}", observed=observed,
                      worst_rows=worst)


def _unreliable(metrics: dict[str, float], metric: str) -> str | None:
    """Why a score aggregate cannot be trusted, when most of its rows could not be scored (a
    judge that was down, say): that is an outage to fix, not a result to gate on."""
    prefix = metric.rsplit("/", 1)[0]
    failed, scored = metrics.get(f"{prefix}/rows_failed"), metrics.get(f"{prefix}/rows_scored")
    if failed is None or scored is None or failed + scored == 0:
        return None
    if failed / (failed + scored) > MAX_FAILED_SHARE:
        return (f"{metric} is not reliable: {int(failed)} of {int(failed + scored)} rows could not be scored "
                f"(see the {prefix} errors in the report)")
    return None


# ---- baseline comparisons ------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """A baseline rule as the job applies it (see ``evalkit.suite.config.BaselineRule``)."""

    metric: str
    test: str  # "paired" or "tolerance"
    tolerance: float = 0.0
    relative: bool = False
    min_effect: float = 0.0

    @property
    def name(self) -> str:
        if self.test == "paired":
            effect = f", by more than {self.min_effect:g}" if self.min_effect else ""
            return f"{self.metric}: no significant regression vs baseline{effect}"
        amount = f"{self.tolerance * 100:g}%" if self.relative else f"{self.tolerance:g}"
        return f"{self.metric}: within {amount} of baseline"


def pair_rows(current: RunScores, baseline: RunScores) -> tuple[tuple[np.ndarray, np.ndarray], str | None]:
    """Row positions pairing the runs: by position on the same data, else by identical input
    (with a note saying how many rows found a partner)."""
    if current.dataset_digest and current.dataset_digest == baseline.dataset_digest:
        positions = np.arange(min(len(current.table), len(baseline.table)))
        return (positions, positions), None
    pairs = align_rows(current.inputs(), baseline.inputs())
    return pairs, (f"the baseline used other data; {len(pairs[0])} of {len(current.table)} rows paired by input")


def compare(rule: Comparison, current: RunScores, baseline: RunScores, seed: int = 0) -> GateResult:
    """One rule against the baseline. A paired result carries its raw p-value; the verdict
    (which may depend on the other gates' p-values) is given by ``decide_paired``."""
    try:
        metric = resolve_metric(rule.metric, current.metrics)
    except InvalidArgument as exc:
        return GateResult(rule.name, rule.test, rule.metric, ERROR, str(exc))
    if unreliable := _unreliable(current.metrics, metric):
        return GateResult(rule.name, rule.test, metric, ERROR, unreliable)
    better = current.higher_is_better(metric)
    if rule.test == "tolerance":
        return _tolerance(rule, metric, current, baseline, better)
    # The baseline's column is found through the current run's evaluators: the same evaluator may
    # have logged under another version there (judge-v1 vs kprecision-v1).
    now = row_values(current.table, metric, current.evaluators)
    before = row_values(baseline.table, metric, current.evaluators)
    if now is None or before is None:
        return GateResult(rule.name, "paired", metric, ERROR,
                          f"{metric} has no per-row values to pair; compare it with test: tolerance")
    pairs, note = pair_rows(current, baseline)
    result = paired_regression_test(now[0][pairs[0]], before[0][pairs[1]], better, now[1], seed=seed)
    if result is None:
        return GateResult(rule.name, "paired", metric, ERROR, f"no row has {metric} in both runs")
    gate = GateResult(rule.name, "paired", metric, PASSED, note or "", observed=result.current,
                      baseline=result.baseline, delta=result.delta, p_value=result.p_value, n_pairs=result.n_pairs,
                      method=result.method, higher_is_better=better)
    gate.worst_rows = worst_rows(current.table, metric, current.evaluators, baseline=baseline.table, pairs=pairs,
                                 read_rows=current.rows_at)
    return gate


def _tolerance(rule: Comparison, metric: str, current: RunScores, baseline: RunScores, better: bool) -> GateResult:
    if metric not in baseline.metrics:
        return GateResult(rule.name, "tolerance", metric, ERROR, f"the baseline run {baseline.run_id} has no {metric}")
    now, before = current.metrics[metric], baseline.metrics[metric]
    if not (math.isfinite(now) and math.isfinite(before)):
        # NaN compares false with everything: left alone, it would pass the gate (e.g. the latency
        # of a run served from the cache).
        return GateResult(rule.name, "tolerance", metric, ERROR,
                          f"{metric} = {now} vs baseline {before}: cannot be compared", observed=now, baseline=before,
                          higher_is_better=better)
    allowed = rule.tolerance * abs(before) if rule.relative else rule.tolerance
    worse_by = (before - now) if better else (now - before)
    status = FAILED if worse_by > allowed + 1e-12 else PASSED
    verb = "worse" if worse_by > 0 else "better"
    message = f"{metric} = {now:.6g} vs baseline {before:.6g}: {abs(worse_by):.6g} {verb}, allowed {allowed:.6g} worse"
    gate = GateResult(rule.name, "tolerance", metric, status, message, observed=now, baseline=before, delta=now - before,
                      higher_is_better=better)
    if status == FAILED:
        gate.worst_rows = worst_rows(current.table, metric, current.evaluators, read_rows=current.rows_at)
    return gate


def decide_paired(gates: Sequence[GateResult], rules: dict[str, Comparison], alpha: float, correction: str) -> None:
    """Set the verdict of every paired gate from its p-value, adjusted across all of them (Holm)
    unless ``correction`` is "none". ``rules`` maps a gate's name to its rule."""
    tested = [g for g in gates if g.kind == "paired" and g.p_value is not None and g.status == PASSED]
    raw = [g.p_value for g in tested]
    adjusted = holm_adjust(raw) if correction == "holm" else raw
    for gate, p in zip(tested, adjusted, strict=True):
        gate.p_adjusted = p
        rule = rules[gate.name]
        better = gate.higher_is_better is not False  # compare() sets it on every paired gate
        drop = (gate.delta or 0.0) * (-1 if better else 1)
        significant = p <= alpha
        summary = (f"{gate.metric} = {gate.observed:.6g} vs baseline {gate.baseline:.6g} on {gate.n_pairs} paired rows "
                   f"(change {gate.delta:+.4g}, one-sided {gate.method} p = {gate.p_value:.4f}"
                   f"{f', Holm-adjusted {p:.4f}' if correction == 'holm' and len(tested) > 1 else ''}, alpha {alpha:g})")
        if significant and drop > rule.min_effect:
            gate.status = FAILED
            gate.message = f"significant regression: {summary}" + (f"; {gate.message}" if gate.message else "")
        else:
            reason = ("not significant" if not significant
                      else f"significant but within min_effect {rule.min_effect:g}")
            gate.message = f"no regression ({reason}): {summary}" + (f"; {gate.message}" if gate.message else "")
            gate.worst_rows = []
