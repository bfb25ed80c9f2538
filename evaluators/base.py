"""What the built-in evaluators share: the score of a row whose model call failed, and a base
class for evaluators that score each row on its own (see ``evalkit.evaluation.scoring.Evaluator`` for the
protocol every evaluator follows)."""

from __future__ import annotations

from evalkit.evaluation.scoring import (
    EvalRow,
    Score,
    ScoringContext,
    mean_with_denominators,
)

NO_OUTPUT = Score(None, error="no output: the model call failed")


def retrieval_not_applicable(row: EvalRow) -> str | None:
    """Why the retrieval metrics (context precision and recall) cannot score a row (no context,
    no target), or None."""
    if not any(c.strip() for c in row.contexts):
        return "the row has no retrieved context"
    if row.target is None or not row.target.strip():
        return "the row has no target"
    return None


class RowEvaluator:
    """Subclasses set ``name``, ``version``, ``requires`` (and, where the defaults do not fit,
    ``metric_prefix``, ``stage``, ``higher_is_better``: ``evalkit.evaluation.scoring.evaluator_info`` gives
    the defaults) and write ``score_row``; rows whose model call failed are counted as failed
    without reaching it."""

    name: str
    version: str
    requires: tuple[str, ...] = ()

    def score_row(self, row: EvalRow) -> Score:
        raise NotImplementedError

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        return [NO_OUTPUT if row.output is None else self.score_row(row) for row in rows]

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return mean_with_denominators(scores)
