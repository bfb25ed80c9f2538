"""context_recall: do the retrieved contexts hold what the reference answer says?

- ``judge-v1`` (when a judge is configured): the judge splits the reference (target) into
  standalone statements, then gives each a 0/1 verdict against the contexts. Score = attributed
  statements / statements. The two steps are faithfulness's, applied to the reference instead
  of the answer (``evaluators.statements``): answer correctness splits the same reference with
  the same request, so a run with both pays for one split. ragas does both steps in one request.
- ``offline-v1`` (no judge): the share of the reference's content tokens found in the contexts
  (``context_recall_offline.py``).

A row with no context, or no target, is not applicable; so is a reference with no statements.
The model's answer is not used, so a row whose model call failed is still scored.
"""

from __future__ import annotations

import asyncio
from typing import Any

from evalkit.evaluators.base import retrieval_not_applicable
from evalkit.evaluators.context_recall_offline import OfflineContextRecall
from evalkit.evaluators.statements import share_supported

from evalkit.errors import InvalidArgument
from evalkit.evaluation.scoring import (
    EvalRow,
    Judge,
    Score,
    ScoringContext,
    mean_with_denominators,
)


class JudgedContextRecall:
    name = "context_recall"
    version = "judge-v1"
    requires = ("contexts", "targets", "judge")

    async def _one(self, judge: Judge, row: EvalRow) -> Score:
        if reason := retrieval_not_applicable(row):
            return Score(None, applicable=False, justification=reason)
        return await share_supported(judge, row.index, row.input, row.target or "", row.contexts,
                                     no_claim="the reference makes no checkable claim",
                                     counted="reference statements found in the contexts", lacking="missing")

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        if context is None or context.judge is None:
            raise InvalidArgument("the judged context_recall needs a judge: pass judge='openai:/...'")
        return list(await asyncio.gather(*(self._one(context.judge, row) for row in rows)))

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return mean_with_denominators(scores)


def ContextRecall(method: str = "auto", judge_available: bool = False) -> Any:  # noqa: N802 - factory
    """``method``: "judge", "offline", or "auto" (the judge when one is configured)."""
    if method not in ("auto", "judge", "offline"):
        raise InvalidArgument(f"context_recall method must be 'auto', 'judge' or 'offline', got {method!r}")
    if method == "judge" or (method == "auto" and judge_available):
        return JudgedContextRecall()
    return OfflineContextRecall()
