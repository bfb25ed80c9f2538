"""exact_match v1: 1 when the answer equals the target after normalisation, else 0.

Normalisation (as in SQuAD's evaluation, ``evaluators.text.normalize_answer``): lower case,
drop punctuation and the articles a/an/the, collapse white space. Aggregate: the mean over
scored rows, with denominators.
"""

from __future__ import annotations

from evalkit.scoring import EvalRow, Score, ScoringContext, mean_with_denominators
from evaluators.text import normalize_answer


class ExactMatch:
    name = "exact_match"
    version = "v1"
    requires = ("targets",)

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        scores = []
        for row in rows:
            if row.output is None:
                scores.append(Score(None, error="no output: the model call failed"))
                continue
            match = normalize_answer(row.output) == normalize_answer(row.target or "")
            scores.append(Score(1.0 if match else 0.0, "normalised answer equals the target" if match else
                                "normalised answer differs from the target"))
        return scores

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return mean_with_denominators(scores)
