"""Run-level metrics computed from the runner's per-row outcomes: rows, errors, cache, latency,
tokens and cost. Names are stable and documented in the README (section "Metrics")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalkit.runner.records import RowOutcome, RowStatus

PERCENTILES = (50, 90, 95, 99)


def _latency_metrics(prefix: str, seconds: Sequence[float]) -> dict[str, float]:
    if not seconds:
        return {}
    values = np.asarray(seconds) * 1000
    metrics = {f"{prefix}/p{p}_ms": float(np.percentile(values, p)) for p in PERCENTILES}
    metrics[f"{prefix}/mean_ms"] = float(values.mean())
    metrics[f"{prefix}/max_ms"] = float(values.max())
    return metrics


def run_metrics(outcomes: Sequence[RowOutcome], judge_cost_usd: float = 0.0) -> dict[str, float]:
    """Counts, latency percentiles (fresh calls only: cached rows keep their original latency
    in the table but are left out here), tokens and cost of a set of rows."""
    total = len(outcomes)
    ok = [o for o in outcomes if o.status is RowStatus.OK]
    failed = sum(o.status is RowStatus.FAILED for o in outcomes)
    skipped = sum(o.status is RowStatus.SKIPPED for o in outcomes)
    fresh = [o for o in ok if not o.cached]
    metrics: dict[str, float] = {
        "rows/total": total,
        "rows/answered": len(ok),
        "rows/skipped": skipped,
        "error_count": failed,
        "error_rate": failed / total if total else 0.0,
        "cache/hits": sum(o.cached for o in ok),
        "cache/misses": len(fresh),
        "retries": sum(max(0, o.attempts - 1) for o in outcomes),
    }
    metrics.update(_latency_metrics("latency", [o.latency_s for o in fresh if o.latency_s is not None]))
    metrics.update(_latency_metrics("latency_total", [o.total_latency_s for o in fresh if o.total_latency_s is not None]))

    with_usage = [o for o in ok if o.input_tokens is not None]
    metrics["tokens/input"] = sum(o.input_tokens or 0 for o in with_usage)
    metrics["tokens/output"] = sum(o.output_tokens or 0 for o in with_usage)
    metrics["tokens/cached_input"] = sum(o.cached_input_tokens or 0 for o in with_usage)
    metrics["tokens/estimated_rows"] = sum(o.usage_estimated for o in with_usage)

    priced = [o for o in ok if o.cost_usd is not None]
    metrics["cost/unpriced_rows"] = len(ok) - len(priced)
    if priced:
        model_cost = sum(o.cost_usd or 0.0 for o in priced)
        metrics["cost/model_usd"] = model_cost
        metrics["cost/spent_usd"] = sum(o.cost_usd or 0.0 for o in priced if not o.cached)
        metrics["cost/judge_usd"] = judge_cost_usd
        metrics["cost/total_usd"] = model_cost + judge_cost_usd
        metrics["cost/per_query_usd"] = (model_cost + judge_cost_usd) / len(priced)
        metrics["cost/per_1k_queries_usd"] = 1000 * metrics["cost/per_query_usd"]
    return metrics
