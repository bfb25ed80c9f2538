"""token_f1 v1: SQuAD token-level F1 between the answer and the target.

Both texts are normalised and split into words (``evaluators.text.tokens``); with
``common`` the size of their multiset overlap, precision = common / |answer words|,
recall = common / |target words| and F1 = 2PR / (P + R). Two empty texts score 1, one empty
text scores 0. A row without a target is not applicable. Aggregate: the mean F1 over scored
rows, with denominators.
"""

from __future__ import annotations

from evalkit.evaluators.base import RowEvaluator
from evalkit.evaluators.text import token_f1

from evalkit.evaluation.scoring import EvalRow, Score


class TokenF1(RowEvaluator):
    name = "token_f1"
    version = "v1"
    requires = ("targets",)
    metric_prefix = None  # token_f1/v1/...
    stage = "score"
    higher_is_better = True

    def score_row(self, row: EvalRow) -> Score:
        if row.target is None:
            return Score(None, applicable=False, justification="the row has no target")
        precision, recall, f1 = token_f1(row.output or "", row.target)
        return Score(f1, f"token precision {precision:.3f}, recall {recall:.3f}")
