"""context_precision: are the retrieved contexts useful for the reference answer, and are the
useful ones ranked first?

- ``judge-v1`` (when a judge is configured): in one request per row the judge gives each
  retrieved context, in retrieval order, a verdict: 1 when it was useful to arrive at the
  reference answer (target), 0 when not. Score = the average precision of the verdicts
  (``evaluators.ranking``), so a useful context ranked low costs. This is the method ragas uses
  (ragas asks once per context).
- ``offline-v1`` (no judge): the same average precision over verdicts from token overlap with
  the reference (``context_precision_offline.py``).

A row with no context, or no target, is not applicable. The model's answer is not used, so a
row whose model call failed is still scored.
"""

from __future__ import annotations

import asyncio
from typing import Any

from evalkit.evaluators.base import retrieval_not_applicable
from evalkit.evaluators.context_precision_offline import OfflineContextPrecision
from evalkit.evaluators.ranking import average_precision
from evalkit.evaluators.statements import (
    numbered_passages,
    verdicts_schema,
    verdicts_validator,
)

from evalkit.errors import InvalidArgument, JudgeError
from evalkit.evaluation.scoring import (
    EvalRow,
    Judge,
    Score,
    ScoringContext,
    mean_with_denominators,
)

USEFULNESS_SCHEMA = verdicts_schema("passage", "integer")

_INSTRUCTIONS = (
    "You grade the passages a search system retrieved for a question whose correct answer is known. For each "
    "numbered passage, on its own, decide whether it was useful to arrive at the reference answer: verdict 1 "
    "when it states facts the reference answer gives or needs, verdict 0 when it does not help. Give a short "
    "reason.\n"
    'Reply with JSON only: {"verdicts": [{"passage": 1, "reason": "...", "verdict": 0 or 1}, ...]} with one '
    "entry per passage, in order."
)


class JudgedContextPrecision:
    name = "context_precision"
    version = "judge-v1"
    requires = ("contexts", "targets", "judge")

    async def _one(self, judge: Judge, row: EvalRow) -> Score:
        if reason := retrieval_not_applicable(row):
            return Score(None, applicable=False, justification=reason)
        try:
            reply = await judge.ask_json(row.index, [
                {"role": "system", "content": _INSTRUCTIONS},
                {"role": "user", "content": f"Question: {row.input}\n\nReference answer: {row.target}\n\n"
                                            f"Passages:\n{numbered_passages(row.contexts)}"},
            ], verdicts_validator(len(row.contexts), "passage"), USEFULNESS_SCHEMA)
        except JudgeError as exc:
            return Score(None, error=str(exc), raw=exc.raw)
        verdicts = [v for v, _ in reply.value]
        useful = [str(rank) for rank, v in enumerate(verdicts, 1) if v]
        justification = (f"useful contexts at ranks {', '.join(useful)} of {len(verdicts)}" if useful
                         else f"none of the {len(verdicts)} contexts is useful for the reference")
        return Score(average_precision(verdicts), justification, raw=reply.raw)

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        if context is None or context.judge is None:
            raise InvalidArgument("the judged context_precision needs a judge: pass judge='openai:/...'")
        return list(await asyncio.gather(*(self._one(context.judge, row) for row in rows)))

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return mean_with_denominators(scores)


def ContextPrecision(method: str = "auto", judge_available: bool = False,  # noqa: N802 - factory
                     threshold: float = 0.5) -> Any:
    """``method``: "judge", "offline", or "auto" (the judge when one is configured).
    ``threshold``: the offline method's share of a reference sentence a context must exceed."""
    if method not in ("auto", "judge", "offline"):
        raise InvalidArgument(f"context_precision method must be 'auto', 'judge' or 'offline', got {method!r}")
    if method == "judge" or (method == "auto" and judge_available):
        return JudgedContextPrecision()
    return OfflineContextPrecision(threshold)
