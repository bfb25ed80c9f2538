"""context_recall, offline (offline-v1): the share of the reference's content tokens that
appear in the retrieved contexts, no judge::

    recall = |{reference content tokens found in the contexts}| / |reference content tokens|

The mirror of faithfulness's K-Precision (``faithfulness_offline.py``): reference tokens are
counted with repetition; the contexts are joined and normalised as SQuAD does
(``evaluators.text``). The justification names the first 10 missing tokens.

Not applicable: a row with no context, with no target, or whose target has no content tokens.
The model's answer is not used. Aggregate: the mean over scored rows, with denominators.
"""

from __future__ import annotations

from evalkit.evaluators.base import RowEvaluator, retrieval_not_applicable
from evalkit.evaluators.text import content_tokens, vocabulary

from evalkit.evaluation.scoring import EvalRow, Score, ScoringContext

_SHOWN_MISSING = 10


class OfflineContextRecall(RowEvaluator):
    name = "context_recall"
    version = "offline-v1"
    requires = ("contexts", "targets")

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        return [self.score_row(row) for row in rows]  # the answer is not used: failed model calls score too

    def score_row(self, row: EvalRow) -> Score:
        if reason := retrieval_not_applicable(row):
            return Score(None, applicable=False, justification=reason)
        expected = content_tokens(row.target or "")
        if not expected:
            return Score(None, applicable=False, justification="the target has no content words")
        words = vocabulary(" ".join(row.contexts))
        missing = [t for t in expected if t not in words]
        found = len(expected) - len(missing)
        justification = f"{found} of {len(expected)} reference content tokens appear in the contexts"
        if missing:
            justification += "; missing: " + ", ".join(list(dict.fromkeys(missing))[:_SHOWN_MISSING])
        return Score(found / len(expected), justification)
