"""cost v1: what each answer cost, the model's and the judge's kept apart.

Per row: model cost (from the API's usage and the price table; a cached row keeps its original
cost) plus the judge's cost for that row. Rows whose model cost is unknown (no price, or a Python
function) are counted in ``unpriced_rows``, never taken as free. Aggregates (metric names
``cost/...``): ``judge_usd`` over all rows; ``model_usd``, ``total_usd``, ``per_query_usd`` and
``per_1k_queries_usd`` over priced rows; ``unpriced_rows``; and denominators.
"""

from __future__ import annotations

from evalkit.evaluation.scoring import EvalRow, Score, ScoringContext


class Cost:
    name = "cost"
    version = "v1"
    requires = ("model_run",)
    metric_prefix = "cost"
    stage = "post"  # after the judge has run: it adds the judge's cost per row
    higher_is_better = False

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        judge_costs = context.judge_cost_by_row if context is not None else {}
        scores = []
        for row in rows:
            judge = judge_costs.get(row.index, 0.0)
            if row.status != "ok":
                scores.append(Score(None, applicable=False, justification=f"no answer ({row.status})",
                                    details={"judge_usd": judge}))
            elif row.cost_usd is None:
                scores.append(Score(None, error="model cost unknown: no price for this model (or a Python function)",
                                    details={"judge_usd": judge}))
            else:
                scores.append(Score(row.cost_usd + judge, f"model ${row.cost_usd:.6f} + judge ${judge:.6f}",
                                    details={"model_usd": row.cost_usd, "judge_usd": judge}))
        return scores

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        priced = [s for s in scores if s.scored]
        model = float(sum(s.details["model_usd"] for s in priced))
        judge = float(sum(s.details.get("judge_usd", 0.0) for s in scores))
        total = model + judge
        aggregates = {
            "rows_scored": float(len(priced)),
            "unpriced_rows": float(sum(s.applicable and not s.scored for s in scores)),
            "rows_not_applicable": float(sum(not s.applicable for s in scores)),
            "judge_usd": judge,
        }
        if priced:
            aggregates.update({
                "model_usd": model,
                "total_usd": total,
                "per_query_usd": total / len(priced),
                "per_1k_queries_usd": 1000 * total / len(priced),
            })
        return aggregates
