"""latency v1: how long the model took per row, from the runner's own measurements.

Per row: the successful call's latency in milliseconds (retries, backoff and queueing excluded;
the runner reports those as ``latency_total/...``). Cached rows keep their original latency in
the results table but are not applicable here: they were not called in this run.
Aggregates (metric names ``latency/...``): p50, p90, p95, p99, mean and max, and denominators;
the figures are NaN when no row was called in this run (all cached, or all failed).
"""

from __future__ import annotations

import numpy as np

from evalkit.evaluation.scoring import EvalRow, Score, ScoringContext

PERCENTILES = (50, 90, 95, 99)


class Latency:
    name = "latency"
    version = "v1"
    requires = ("model_run",)
    metric_prefix = "latency"
    stage = "post"
    higher_is_better = False

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        scores = []
        for row in rows:
            if row.status == "failed":
                scores.append(Score(None, error="no latency: the model call failed"))
            elif row.status != "ok" or row.latency_s is None:
                scores.append(Score(None, applicable=False, justification="not sent"))
            elif row.cached:
                scores.append(Score(None, applicable=False, justification="answered from the cache"))
            else:
                total = row.total_latency_s if row.total_latency_s is not None else row.latency_s
                scores.append(Score(row.latency_s * 1000, f"call {row.latency_s * 1000:.0f} ms, "
                                                          f"with retries and queueing {total * 1000:.0f} ms"))
        return scores

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        values = np.asarray([s.value for s in scores if s.scored], dtype=float)
        aggregates = {
            "rows_scored": float(values.size),
            "rows_failed": float(sum(s.applicable and not s.scored for s in scores)),
            "rows_not_applicable": float(sum(not s.applicable for s in scores)),
        }
        # With no fresh call (every row from the cache, or every call failed) the figures are NaN,
        # never missing: result.metrics["latency/p95_ms"] always exists, and a gate on it is an
        # error ("cannot be judged") rather than a pass. rows_scored says how many calls it covers.
        nan = float("nan")
        aggregates.update({f"p{p}_ms": float(np.percentile(values, p)) if values.size else nan for p in PERCENTILES})
        aggregates["mean_ms"] = float(values.mean()) if values.size else nan
        aggregates["max_ms"] = float(values.max()) if values.size else nan
        return aggregates
