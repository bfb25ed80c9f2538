"""context_precision, offline (offline-v1): the average precision of the retrieved contexts,
with each context's usefulness decided from token overlap with the reference, no judge.

A context counts as useful when it holds more than ``threshold`` (default 0.5, i.e. more than
half) of the distinct content tokens of some sentence of the reference (the target): it states
at least part of what the reference says, beyond the subject a sentence shares with its
neighbours (a context naming the same product but another fact of it holds half of a short
sentence, not more). Score = the average precision of those 0/1 verdicts in retrieval order
(``evaluators.ranking``), as the judged method computes it. Tokens are normalised as SQuAD does
and content tokens leave out stopwords (``evaluators.text``); sentences end at ``.``, ``!``,
``?`` or a line break.

Not applicable: a row with no context, with no target, or whose target has no content tokens.
The model's answer is not used. Aggregate: the mean over scored rows, with denominators.
"""

from __future__ import annotations

import re

from evalkit.evaluators.base import RowEvaluator, retrieval_not_applicable
from evalkit.evaluators.ranking import average_precision
from evalkit.evaluators.text import content_tokens, vocabulary

from evalkit.errors import InvalidArgument
from evalkit.evaluation.scoring import EvalRow, Score, ScoringContext

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def reference_sentences(reference: str) -> list[set[str]]:
    """The distinct content tokens of each sentence of the reference that has some."""
    sentences = (set(content_tokens(s)) for s in _SENTENCE_END.split(reference))
    return [s for s in sentences if s]


class OfflineContextPrecision(RowEvaluator):
    name = "context_precision"
    version = "offline-v1"
    requires = ("contexts", "targets")

    def __init__(self, threshold: float = 0.5) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < 1:
            raise InvalidArgument(f"context_precision threshold must be a number in [0, 1), got {threshold!r}")
        self.threshold = float(threshold)

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        return [self.score_row(row) for row in rows]  # the answer is not used: failed model calls score too

    def score_row(self, row: EvalRow) -> Score:
        if reason := retrieval_not_applicable(row):
            return Score(None, applicable=False, justification=reason)
        sentences = reference_sentences(row.target or "")
        if not sentences:
            return Score(None, applicable=False, justification="the target has no content words")
        verdicts = []
        for passage in row.contexts:
            words = vocabulary(passage)
            verdicts.append(int(any(len(s & words) > self.threshold * len(s) for s in sentences)))
        useful = [str(rank) for rank, v in enumerate(verdicts, 1) if v]
        justification = (f"contexts at ranks {', '.join(useful)} of {len(verdicts)} hold part of the reference"
                         if useful else f"none of the {len(verdicts)} contexts holds part of the reference")
        return Score(average_precision(verdicts), justification)
