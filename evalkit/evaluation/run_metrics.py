"""Run-level metrics the runner alone knows: row counts, errors, cache use, retries, latency with
retries and queueing, and tokens. Call latency and cost come from the ``latency`` and ``cost``
evaluators. Names are stable and documented in the README (section "Metrics")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalkit.inference.runner.records import RowOutcome, RowStatus

PERCENTILES = (50, 90, 95, 99)


def run_metrics(outcomes: Sequence[RowOutcome]) -> dict[str, float]:
    total = len(outcomes)
    ok = [o for o in outcomes if o.status is RowStatus.OK]
    failed = sum(o.status is RowStatus.FAILED for o in outcomes)
    fresh = [o for o in ok if not o.cached]
    metrics: dict[str, float] = {
        "rows/total": total,
        "rows/answered": len(ok),
        "rows/skipped": sum(o.status is RowStatus.SKIPPED for o in outcomes),
        "error_count": failed,
        "error_rate": failed / total if total else 0.0,
        "cache/hits": sum(o.cached for o in ok),
        "cache/misses": len(fresh),
        "retries": sum(max(0, o.attempts - 1) for o in outcomes),
    }
    # Cached rows were not waited for in this run, so they are left out here too; with no fresh
    # row the figures are NaN (present, like the latency evaluator's, but no number).
    totals = np.asarray([o.total_latency_s for o in fresh if o.total_latency_s is not None]) * 1000
    nan = float("nan")
    metrics.update({f"latency_total/p{p}_ms": float(np.percentile(totals, p)) if totals.size else nan
                    for p in PERCENTILES})
    metrics["latency_total/mean_ms"] = float(totals.mean()) if totals.size else nan
    metrics["latency_total/max_ms"] = float(totals.max()) if totals.size else nan
    with_usage = [o for o in ok if o.input_tokens is not None]
    metrics["tokens/input"] = sum(o.input_tokens or 0 for o in with_usage)
    metrics["tokens/output"] = sum(o.output_tokens or 0 for o in with_usage)
    metrics["tokens/cached_input"] = sum(o.cached_input_tokens or 0 for o in with_usage)
    metrics["tokens/estimated_rows"] = sum(o.usage_estimated for o in with_usage)
    return metrics


# Which way the run-level metrics (the runner's and evaluate()'s own) improve: these are better
# low; the rest are counts with no better direction. Evaluators declare their own direction
# (``evalkit.evaluation.scoring.Evaluator.higher_is_better``), which wins for the metrics they log.
LOWER_IS_BETTER = ("error_count", "error_rate", "retries", "latency_total/", "latency/", "tokens/", "cost/")


def run_metric_higher_is_better(metric: str) -> bool:
    """Whether a higher value of the run-level ``metric`` is better (see ``LOWER_IS_BETTER``)."""
    return not any(metric == name or (name.endswith("/") and metric.startswith(name)) for name in LOWER_IS_BETTER)
