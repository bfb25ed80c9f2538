"""answer_correctness, offline (f1sim-v1): how close the answer is to the target, from word
overlap and meaning, with no judge::

    score = 0.75 * token_F1(answer, target) + 0.25 * similarity(answer, target)

token_F1 is SQuAD's token-level F1 (``evaluators.text.token_f1``); similarity is the cosine of
the two texts' WordLlama embeddings clipped to [0, 1] (``evaluators.embeddings``), an offline
model that ships in its wheel. The weights follow Ragas' answer correctness (0.75 factual,
0.25 semantic), with token F1 standing in for the judge's claim-level F1. All answers and
targets of a run are embedded in one batched call. A row without a target is not applicable.
Aggregate: the mean over scored rows, with denominators.

This is the scorer used when no judge is configured; the public name is the same as the
judge's, ``answer_correctness``, and the version tells the two apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from evalkit.evaluators.base import NO_OUTPUT
from evalkit.evaluators.embeddings import require_model, similarity
from evalkit.evaluators.text import token_f1

from evalkit.evaluation.scoring import (
    EvalRow,
    Score,
    ScoringContext,
    mean_with_denominators,
)

F1_WEIGHT = 0.75
SIMILARITY_WEIGHT = 0.25


class OfflineAnswerCorrectness:
    name = "answer_correctness"
    version = "f1sim-v1"
    requires = ("targets",)
    metric_prefix = None  # answer_correctness/f1sim-v1/...
    stage = "score"
    higher_is_better = True

    def __init__(self) -> None:
        require_model("answer_correctness")

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        pairs = [(row.output, row.target) for row in rows if row.output is not None and row.target is not None]
        values: Iterator[tuple[float, float]] = iter(())
        if pairs:  # with nothing to compare, the embedding model is not even loaded
            outputs, targets = [p[0] for p in pairs], [p[1] for p in pairs]
            # Embedding (mostly the tokenizer, which releases the GIL) runs in a worker thread
            # while this one computes the F1s; the event loop is free again while it waits.
            embedding = asyncio.get_running_loop().run_in_executor(None, similarity, outputs, targets)
            f1s = [token_f1(output, target)[2] for output, target in pairs]
            values = zip(f1s, (await embedding).tolist(), strict=True)
        return [self._one(row, values) for row in rows]

    @staticmethod
    def _one(row: EvalRow, values: Iterator[tuple[float, float]]) -> Score:
        if row.output is None:
            return NO_OUTPUT
        if row.target is None:
            return Score(None, applicable=False, justification="the row has no target")
        f1, sim = next(values)
        value = F1_WEIGHT * f1 + SIMILARITY_WEIGHT * sim
        return Score(value, f"token F1 {f1:.3f}, semantic similarity {sim:.3f}")

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return mean_with_denominators(scores)
