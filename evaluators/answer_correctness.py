"""answer_correctness: does the answer say what the reference (target) says?

- ``judge-v1`` (when a judge is configured): the judge splits the answer and the reference into
  statements, then sorts them: TP (answer statements the reference supports), FP (answer
  statements it does not), FN (reference statements missing from the answer).
  F1 = TP / (TP + (FP + FN) / 2), 0 when there is nothing to compare. Similarity = cosine of the
  embeddings of answer and reference (offline model by default, or ``embeddings="openai:/..."``).
  Score = 0.75 x F1 + 0.25 x similarity. This is the method ragas uses.
- ``f1sim-v1`` (offline, no judge): token F1 blended with the same similarity
  (``answer_correctness_offline.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from evalkit.evaluators.answer_correctness_offline import OfflineAnswerCorrectness
from evalkit.evaluators.base import NO_OUTPUT
from evalkit.evaluators.embeddings import require_model
from evalkit.evaluators.embeddings import similarity as offline_similarity
from evalkit.evaluators.endpoint_embeddings import endpoint_similarity
from evalkit.evaluators.statements import split_statements

from evalkit.errors import InvalidArgument, JudgeError
from evalkit.evaluation.scoring import (
    EvalRow,
    Judge,
    Score,
    ScoringContext,
    mean_with_denominators,
)

_ITEM = {"type": "object", "properties": {"statement": {"type": "string"}, "reason": {"type": "string"}},
         "required": ["statement", "reason"]}
CLASSIFY_SCHEMA = {
    "type": "object",
    "properties": {"TP": {"type": "array", "items": _ITEM}, "FP": {"type": "array", "items": _ITEM},
                   "FN": {"type": "array", "items": _ITEM}},
    "required": ["TP", "FP", "FN"],
}
_CLASSIFY_INSTRUCTIONS = (
    "You compare an answer with a reference answer to the same question, statement by statement. Put each "
    "answer statement in TP if the reference supports it, or in FP if the reference does not. Put each "
    "reference statement that no answer statement covers in FN. Every statement goes in exactly one list; "
    "give a short reason for each.\n"
    'Reply with JSON only: {"TP": [{"statement": "...", "reason": "..."}], "FP": [...], "FN": [...]}'
)


def _classification(data: Any) -> dict[str, int]:
    counts = {}
    for key in ("TP", "FP", "FN"):
        items = data[key]
        if not isinstance(items, list) or not all(isinstance(i, dict) and "statement" in i for i in items):
            raise ValueError(f'"{key}" must be a list of {{"statement", "reason"}} objects')
        counts[key] = len(items)
    return counts


def f1_from_counts(tp: int, fp: int, fn: int) -> float:
    return tp / (tp + 0.5 * (fp + fn)) if tp else 0.0


class JudgedAnswerCorrectness:
    name = "answer_correctness"
    version = "judge-v1"
    requires = ("targets", "judge")
    metric_prefix = None  # answer_correctness/judge-v1/...
    stage = "score"
    higher_is_better = True

    def __init__(self, weights: tuple[float, float] = (0.75, 0.25), embeddings: str | None = None) -> None:
        if len(weights) != 2 or min(weights) < 0 or sum(weights) <= 0:
            raise InvalidArgument(f"answer_correctness weights must be two non-negative numbers, got {weights!r}")
        total = sum(weights)
        self.weights = (weights[0] / total, weights[1] / total)
        self.embeddings = embeddings
        if embeddings is None:
            require_model("answer_correctness")

    async def _factuality(self, judge: Judge, row: EvalRow) -> tuple[float, str, str] | Score:
        try:
            (answer, answer_raw), (reference, reference_raw) = await asyncio.gather(
                split_statements(judge, row.index, row.input, row.output or ""),
                split_statements(judge, row.index, row.input, row.target or ""),
            )
            reply = await judge.ask_json(row.index, [
                {"role": "system", "content": _CLASSIFY_INSTRUCTIONS},
                {"role": "user", "content": f"Question: {row.input}\n\nAnswer statements:\n"
                                            + "\n".join(f"- {s}" for s in answer)
                                            + "\n\nReference statements:\n" + "\n".join(f"- {s}" for s in reference)},
            ], _classification, CLASSIFY_SCHEMA)
        except JudgeError as exc:
            return Score(None, error=str(exc), raw=exc.raw)
        counts = reply.value
        f1 = f1_from_counts(counts["TP"], counts["FP"], counts["FN"])
        summary = f"TP {counts['TP']}, FP {counts['FP']}, FN {counts['FN']}, F1 {f1:.3f}"
        return f1, summary, "\n---\n".join((answer_raw, reference_raw, reply.raw))

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        if context is None or context.judge is None:
            raise InvalidArgument("the judged answer_correctness needs a judge: pass judge='openai:/...'")
        answered = [row for row in rows if row.output is not None]
        # The similarity does not wait for the judge: both run at once.
        factuality, similarities = await asyncio.gather(
            asyncio.gather(*(self._factuality(context.judge, row) for row in answered)),
            self._similarities([r.output or "" for r in answered], [r.target or "" for r in answered]),
        )
        by_index: dict[int, Score] = {}
        for row, fact, sim in zip(answered, factuality, np.clip(similarities, 0.0, 1.0), strict=True):
            if isinstance(fact, Score):
                by_index[row.index] = fact
                continue
            f1, summary, raw = fact
            value = self.weights[0] * f1 + self.weights[1] * float(sim)
            by_index[row.index] = Score(value, f"{summary}; similarity {float(sim):.3f}", raw=raw,
                                        details={"f1": f1, "similarity": float(sim)})
        return [by_index.get(row.index, NO_OUTPUT) for row in rows]

    async def _similarities(self, outputs: list[str], targets: list[str]) -> np.ndarray:
        if not outputs:
            return np.zeros(0)
        if self.embeddings:
            return await endpoint_similarity(self.embeddings, outputs, targets)
        return await asyncio.to_thread(offline_similarity, outputs, targets)

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return mean_with_denominators(scores)


def AnswerCorrectness(method: str = "auto", judge_available: bool = False,  # noqa: N802 - factory
                      weights: tuple[float, float] = (0.75, 0.25), embeddings: str | None = None) -> Any:
    """``method``: "judge", "offline", or "auto" (the judge when one is configured)."""
    if method not in ("auto", "judge", "offline"):
        raise InvalidArgument(f"answer_correctness method must be 'auto', 'judge' or 'offline', got {method!r}")
    if method == "judge" or (method == "auto" and judge_available):
        return JudgedAnswerCorrectness(tuple(weights), embeddings)  # type: ignore[arg-type]
    return OfflineAnswerCorrectness()
