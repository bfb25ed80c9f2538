"""faithfulness: is the answer supported by the retrieved contexts?

- ``judge-v1`` (when a judge is configured): the judge splits the answer into standalone
  statements, then gives each a verdict (1 supported by the contexts, 0 not) in one call.
  Score = supported statements / statements. This is the method ragas uses.
- ``kprecision-v1`` (offline, no judge): K-Precision, the share of the answer's content tokens
  found in the contexts (``faithfulness_offline.py``).

A row with no context is not applicable; so is an answer with no statements (it claims nothing).
"""

from __future__ import annotations

import asyncio
from typing import Any

from evalkit.evaluators.base import NO_OUTPUT
from evalkit.evaluators.faithfulness_offline import OfflineFaithfulness
from evalkit.evaluators.statements import share_supported

from evalkit.errors import InvalidArgument
from evalkit.evaluation.scoring import (
    EvalRow,
    Judge,
    Score,
    ScoringContext,
    mean_with_denominators,
)


class JudgedFaithfulness:
    name = "faithfulness"
    version = "judge-v1"
    requires = ("contexts", "judge")
    metric_prefix = None  # faithfulness/judge-v1/...
    stage = "score"
    higher_is_better = True

    async def _one(self, judge: Judge, row: EvalRow) -> Score:
        if row.output is None:
            return NO_OUTPUT
        if not row.contexts:
            return Score(None, applicable=False, justification="no retrieved context to check against")
        return await share_supported(judge, row.index, row.input, row.output, row.contexts,
                                     no_claim="the answer makes no checkable claim",
                                     counted="statements supported by the contexts", lacking="unsupported")

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        if context is None or context.judge is None:
            raise InvalidArgument("the judged faithfulness needs a judge: pass judge='openai:/...'")
        return list(await asyncio.gather(*(self._one(context.judge, row) for row in rows)))

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return mean_with_denominators(scores)


def Faithfulness(method: str = "auto", judge_available: bool = False) -> Any:  # noqa: N802 - a factory named like the class it picks
    """``method``: "judge", "offline", or "auto" (the judge when one is configured)."""
    if method not in ("auto", "judge", "offline"):
        raise InvalidArgument(f"faithfulness method must be 'auto', 'judge' or 'offline', got {method!r}")
    if method == "judge" or (method == "auto" and judge_available):
        return JudgedFaithfulness()
    return OfflineFaithfulness()
