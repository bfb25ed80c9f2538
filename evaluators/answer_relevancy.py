"""answer_relevancy: does the answer address the question that was asked?

- ``judge-v1`` (when a judge is configured): the judge reads the answer alone (not the question)
  and writes ``questions`` (default 3) questions it would be a direct answer to, plus a
  non-committal flag (an evasive or "I don't know" answer). Score = the mean cosine similarity
  between the real question and each generated one, each clipped to [0, 1], using evalkit's
  embeddings (the offline model, or ``embeddings="openai:/..."``); 0 when the answer is
  non-committal. This is the method ragas uses (ragas asks once per question, evalkit asks for
  all of them in one request).
- ``offline-v1`` (no judge): the similarity of question and answer themselves, 0 when the answer
  is non-committal by its wording (``answer_relevancy_offline.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from evalkit.evaluators import embeddings as embeddings_module
from evalkit.evaluators.answer_relevancy_offline import OfflineAnswerRelevancy
from evalkit.evaluators.base import NO_OUTPUT
from evalkit.evaluators.embedder import Embedder
from evalkit.evaluators.endpoint_embeddings import parse_embeddings_uri

from evalkit.errors import InvalidArgument, JudgeError
from evalkit.evaluation.scoring import (
    EvalRow,
    Judge,
    Score,
    ScoringContext,
    mean_with_denominators,
)

QUESTIONS_SCHEMA = {
    "type": "object",
    "properties": {"questions": {"type": "array", "items": {"type": "string"}},
                   "noncommittal": {"type": "integer", "enum": [0, 1]}},
    "required": ["questions", "noncommittal"],
}


def _instructions(count: int) -> str:
    return (
        "You work out what an answer is answering. You are shown an answer without its question. Write "
        f"{count} different questions, each one that this answer would reply to directly and completely, "
        "using the answer's own subject and terms. Also flag whether the answer is non-committal: noncommittal "
        "1 when it evades, hedges or declines (\"I don't know\", \"it depends\", \"the documents do not say\"), "
        "0 when it commits to an answer.\n"
        'Reply with JSON only: {"questions": ["...", ...], "noncommittal": 0 or 1}'
    )


def _questions(data: Any) -> tuple[list[str], bool]:
    questions, flag = data["questions"], data["noncommittal"]
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        raise ValueError('"questions" must be a list of strings')
    if flag not in (0, 1):
        raise ValueError('"noncommittal" must be 0 or 1')
    questions = [q.strip() for q in questions if q.strip()]
    if not questions and not flag:
        raise ValueError("give at least one question, or noncommittal 1")
    return questions, bool(flag)


class JudgedAnswerRelevancy:
    name = "answer_relevancy"
    version = "judge-v1"
    requires = ("judge",)

    def __init__(self, questions: int = 3, embeddings: str | None = None) -> None:
        if not isinstance(questions, int) or isinstance(questions, bool) or not 1 <= questions <= 10:
            raise InvalidArgument(f"answer_relevancy questions must be an integer from 1 to 10, got {questions!r}")
        self.questions = questions
        self.embeddings = embeddings
        if embeddings is not None:
            parse_embeddings_uri(embeddings)  # a bad URI is an error now, before any call
        else:
            embeddings_module.require_model("answer_relevancy")

    async def _generate(self, judge: Judge, row: EvalRow) -> tuple[list[str], bool, str] | Score:
        try:
            reply = await judge.ask_json(row.index, [
                {"role": "system", "content": _instructions(self.questions)},
                {"role": "user", "content": f"Answer: {row.output}"},
            ], _questions, QUESTIONS_SCHEMA)
        except JudgeError as exc:
            return Score(None, error=str(exc), raw=exc.raw)
        questions, noncommittal = reply.value
        return questions[:self.questions], noncommittal, reply.raw

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        if context is None or context.judge is None:
            raise InvalidArgument("the judged answer_relevancy needs a judge: pass judge='openai:/...'")
        answered = [row for row in rows if row.output is not None]
        embedder = Embedder(self.embeddings)
        try:
            # The real questions are embedded while the judge writes the generated ones.
            asked = asyncio.ensure_future(embedder.embed([row.input for row in answered]))
            generated = await asyncio.gather(*(self._generate(context.judge, row) for row in answered))
            texts = [q for g in generated if not isinstance(g, Score) and not g[1] for q in g[0]]
            asked_vectors, generated_vectors = await asyncio.gather(asked, embedder.embed(texts))
        finally:
            await embedder.aclose()
        by_index: dict[int, Score] = {}
        position = 0
        for row, question_vector, reply in zip(answered, asked_vectors, generated, strict=True):
            if isinstance(reply, Score):
                by_index[row.index] = reply
                continue
            questions, noncommittal, raw = reply
            if noncommittal:
                by_index[row.index] = Score(0.0, "the judge found the answer non-committal", raw=raw)
                continue
            vectors = generated_vectors[position:position + len(questions)]
            position += len(questions)
            similarities = np.clip(vectors @ question_vector, 0.0, 1.0)
            shown = "; ".join(f"{q!r} ({s:.3f})" for q, s in zip(questions, similarities, strict=True))
            by_index[row.index] = Score(float(similarities.mean()), f"questions the answer answers: {shown}", raw=raw)
        return [by_index.get(row.index, NO_OUTPUT) for row in rows]

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return mean_with_denominators(scores)


def AnswerRelevancy(method: str = "auto", judge_available: bool = False,  # noqa: N802 - factory
                    questions: int = 3, embeddings: str | None = None) -> Any:
    """``method``: "judge", "offline", or "auto" (the judge when one is configured).
    ``questions``: how many questions the judge writes; ``embeddings``: None for the offline
    model, or ``"openai:/<model>[?base_url=...]"`` (the offline method always uses the offline model)."""
    if method not in ("auto", "judge", "offline"):
        raise InvalidArgument(f"answer_relevancy method must be 'auto', 'judge' or 'offline', got {method!r}")
    if method == "judge" or (method == "auto" and judge_available):
        return JudgedAnswerRelevancy(questions, embeddings)
    return OfflineAnswerRelevancy()
