"""exact_match v1: 1 when the answer equals the target after normalisation, else 0.

Normalisation (as in SQuAD's evaluation, ``evaluators.text.normalize_answer``): lower case,
drop punctuation and the articles a/an/the, collapse white space. Aggregate: the mean over
scored rows, with denominators.
"""

from __future__ import annotations

from evalkit.evaluators.base import RowEvaluator
from evalkit.evaluators.text import normalize_answer

from evalkit.evaluation.scoring import EvalRow, Score


class ExactMatch(RowEvaluator):
    name = "exact_match"
    version = "v1"
    requires = ("targets",)
    metric_prefix = None  # exact_match/v1/...
    stage = "score"
    higher_is_better = True

    def score_row(self, row: EvalRow) -> Score:
        match = normalize_answer(row.output or "") == normalize_answer(row.target or "")
        return Score(1.0 if match else 0.0,
                     "normalised answer equals the target" if match else "normalised answer differs from the target")
