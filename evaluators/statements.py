"""Splitting an answer into standalone statements with the judge, shared by faithfulness and
answer correctness: the same request for the same answer is sent once per run (the judge
deduplicates identical requests), so the two metrics pay for one split."""

from __future__ import annotations

from typing import Any

from evalkit.scoring import Judge

SPLIT_SCHEMA = {
    "type": "object",
    "properties": {"statements": {"type": "array", "items": {"type": "string"}}},
    "required": ["statements"],
}

_SPLIT_INSTRUCTIONS = (
    "You break answers into atomic claims for fact checking. Rewrite the answer below as a list of short, "
    "self-contained statements: each states one fact, names its subject instead of using pronouns, and can be "
    "checked on its own. Keep the answer's meaning; add nothing. An answer that asserts nothing (a refusal, "
    "'I don't know') gives an empty list.\n"
    'Reply with JSON only: {"statements": ["...", "..."]}'
)


def _statements(data: Any) -> list[str]:
    statements = data["statements"]
    if not isinstance(statements, list) or not all(isinstance(s, str) for s in statements):
        raise ValueError('"statements" must be a list of strings')
    return [s.strip() for s in statements if s.strip()]


async def split_statements(judge: Judge, row_index: int, question: str, answer: str) -> tuple[list[str], str]:
    """The answer's statements and the judge's raw reply. Raises JudgeError."""
    messages = [
        {"role": "system", "content": _SPLIT_INSTRUCTIONS},
        {"role": "user", "content": f"Question: {question}\nAnswer: {answer}"},
    ]
    reply = await judge.ask_json(row_index, messages, _statements, SPLIT_SCHEMA)
    return reply.value, reply.raw
