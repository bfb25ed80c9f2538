"""answer_relevancy, offline (offline-v1): how close in meaning the answer is to the question,
with no judge::

    score = clip(cos(e(question), e(answer)), 0, 1), or 0 when the answer is non-committal

``e`` is the offline WordLlama embedding (``evaluators.embeddings``); all questions and answers
of a run are embedded in one batched call. An answer is non-committal when it is empty or uses
one of the hedging or refusal phrases in ``NONCOMMITTAL`` ("I don't know", "I'm not sure", "the
context does not say", "cannot answer", ...); its score is 0 and the justification quotes the
phrase. (A short answer is not taken as non-committal: "No." answers a yes/no question.) This is a proxy, not the judged method: it measures that the
answer talks about what was asked, not that it would be a reply to the question. Aggregate: the
mean over scored rows, with denominators.
"""

from __future__ import annotations

import asyncio
import re

from evalkit.evaluators.base import NO_OUTPUT
from evalkit.evaluators.embeddings import require_model, similarity
from evalkit.evaluators.text import tokens

from evalkit.evaluation.scoring import (
    EvalRow,
    Score,
    ScoringContext,
    mean_with_denominators,
)

NONCOMMITTAL = re.compile(
    r"\b(?:"
    r"i (?:do not|don'?t|can ?not|can'?t|am unable to|am not able to) (?:know|say|tell|answer|help|find|determine)"
    r"|i(?:'m| am) (?:not sure|unsure|not certain|unable to)|not sure|no idea"
    r"|(?:no|not enough|insufficient) information"
    r"|(?:can ?not|can'?t|unable to) (?:be )?(?:answer|determine|determined|tell|say|find)"
    r"|(?:does|do) not (?:say|mention|specify|state|contain|provide)"
    r"|(?:doesn'?t|don'?t) (?:say|mention|specify|state|contain|provide)"
    r"|not (?:mentioned|specified|stated|provided) in"
    r"|i have no (?:idea|information|knowledge)"
    r"|it depends|hard to say|no way to know"
    r")\b",
    re.IGNORECASE,
)


def noncommittal_reason(answer: str) -> str | None:
    """Why the answer is non-committal (the phrase, or that it has no content words), or None."""
    match = NONCOMMITTAL.search(answer.replace("\u2019", "'"))
    if match:
        return f"non-committal answer ({match.group(0)!r})"
    if not tokens(answer):
        return "non-committal answer (empty)"
    return None


class OfflineAnswerRelevancy:
    name = "answer_relevancy"
    version = "offline-v1"
    requires: tuple[str, ...] = ()

    def __init__(self) -> None:
        require_model("answer_relevancy")

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        answered = [row for row in rows if row.output is not None]
        reasons = [noncommittal_reason(row.output or "") for row in answered]
        committed = [row for row, reason in zip(answered, reasons, strict=True) if reason is None]
        values = iter(())
        if committed:  # with nothing to compare, the embedding model is not even loaded
            values = iter((await asyncio.to_thread(
                similarity, [row.input for row in committed], [row.output or "" for row in committed])).tolist())
        by_index: dict[int, Score] = {}
        for row, reason in zip(answered, reasons, strict=True):
            if reason is not None:
                by_index[row.index] = Score(0.0, reason)
            else:
                value = next(values)
                by_index[row.index] = Score(value, f"question-answer similarity {value:.3f}")
        return [by_index.get(row.index, NO_OUTPUT) for row in rows]

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return mean_with_denominators(scores)
