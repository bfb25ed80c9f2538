"""Scoring answered rows with a set of evaluators, in the driver or in an executor's workers: the
row an evaluator sees (``eval_row``, the one rule), scoring with several evaluators (``score_all``),
and the scorer the Ray executor's workers run (``EvaluatorScorer``, ``score_on_workers``)."""

from __future__ import annotations

import asyncio
from typing import Any

from evalkit.evaluation.scoring import (
    STAGES,
    EvalRow,
    Evaluator,
    Score,
    ScoringContext,
    evaluator_info,
)
from evalkit.inference.executors.scoring import RowScorer
from evalkit.inference.runner.records import RowJob, RowOutcome, RowStatus
from evalkit.redaction import redact


def eval_row(outcome: RowOutcome, input: str, contexts: list[str], target: str | None) -> EvalRow:
    """The row evaluators see: the row's input, contexts and target, and what answering it gave."""
    return EvalRow(
        index=outcome.index, input=input, output=outcome.output if outcome.status is RowStatus.OK else None,
        target=target, contexts=contexts, status=outcome.status.value, latency_s=outcome.latency_s,
        total_latency_s=outcome.total_latency_s, cached=outcome.cached, cost_usd=outcome.cost_usd,
        input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens,
    )


def may_score_on_workers(evaluator: Evaluator) -> bool:
    """Whether an executor's workers may score with ``evaluator``: it asks no judge (the judge's
    client, limits and budget are the driver's) and is not a "post" evaluator (those see the
    judge's cost per row, known in the driver only)."""
    info = evaluator_info(evaluator)
    return info.stage == "score" and "judge" not in info.requires


async def score_all(chosen: list[Evaluator], rows: list[EvalRow], context: ScoringContext) -> dict[str, list[Score]]:
    """Score with every evaluator; "post" evaluators (cost) go last, when the judge's cost is known.

    An evaluator that fails as a whole (an unreachable embeddings endpoint, a bug) fails its
    rows, each with the error, and the others still score: the answers are already paid for.
    """
    scores: dict[str, list[Score]] = {}
    infos = {e.name: evaluator_info(e) for e in chosen}
    for stage in STAGES:
        batch = [e for e in chosen if infos[e.name].stage == stage]
        results = await asyncio.gather(*(e.score(rows, context) for e in batch), return_exceptions=True)
        for evaluator, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                error = redact(f"evaluator {evaluator.name} failed: {type(result).__name__}: {result}")
                result = [Score(None, error=error) for _ in rows]
            elif len(result) != len(rows):
                error = f"evaluator {evaluator.name} returned {len(result)} scores for {len(rows)} rows"
                result = [Score(None, error=error) for _ in rows]
            scores[evaluator.name] = result
    return scores


class EvaluatorScorer(RowScorer):
    """Scores a worker's answered rows with ``evaluators`` (each ``may_score_on_workers``); the data
    it needs of a row besides its job (input, contexts) is the row's target. A row's scores are
    ``{evaluator name: Score}``."""

    def __init__(self, evaluators: list[Evaluator], concurrency: int) -> None:
        self.evaluators = evaluators
        self.concurrency = concurrency

    async def score(self, jobs: list[RowJob], outcomes: list[RowOutcome], row_data: list[Any]) -> list[Any]:
        rows = [eval_row(outcome, job.input, job.contexts, target)
                for job, outcome, target in zip(jobs, outcomes, row_data, strict=True)]
        scores = await score_all(self.evaluators, rows, ScoringContext(None, self.concurrency))
        return [{name: column[k] for name, column in scores.items()} for k in range(len(rows))]
