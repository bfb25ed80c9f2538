"""The two judge steps that several evaluators share, so that the same request for the same text
is sent once per run (the judge deduplicates identical requests):

- ``split_statements``: a text (an answer, or a reference) rewritten as standalone statements.
  faithfulness and answer correctness split the answer; answer correctness and context recall
  split the reference, and pay for one split.
- ``verify_statements``: a 0/1 verdict for each statement against the retrieved passages.
  faithfulness verifies the answer's statements, context recall the reference's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from evalkit.errors import JudgeError
from evalkit.evaluation.scoring import Judge, Score

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

def verdicts_schema(per: str, per_type: str = "string") -> dict[str, Any]:
    """The JSON schema of a list of 0/1 verdicts, one per ``per`` (a statement, a passage number)."""
    item = {"type": "object",
            "properties": {per: {"type": per_type}, "reason": {"type": "string"},
                           "verdict": {"type": "integer", "enum": [0, 1]}},
            "required": [per, "reason", "verdict"]}
    return {"type": "object", "properties": {"verdicts": {"type": "array", "items": item}}, "required": ["verdicts"]}


VERDICT_SCHEMA = verdicts_schema("statement")

_VERDICT_INSTRUCTIONS = (
    "You check claims against source passages. For each numbered statement, decide whether the passages "
    "support it: verdict 1 when the passages state it or it follows directly from them, verdict 0 when they "
    "contradict it or do not say it. Judge only by the passages, not by what you know. Give a short reason.\n"
    'Reply with JSON only: {"verdicts": [{"statement": "...", "reason": "...", "verdict": 0 or 1}, ...]} with '
    "one entry per statement, in order."
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


def verdicts_validator(count: int, per: str = "statement") -> Callable[[Any], list[tuple[int, str]]]:
    """Checks a verdicts reply: ``count`` entries (one ``per`` item judged), each 0 or 1; gives
    (verdict, reason) pairs."""

    def validate(data: Any) -> list[tuple[int, str]]:
        verdicts = data["verdicts"]
        if not isinstance(verdicts, list) or len(verdicts) != count:
            raise ValueError(f"expected {count} verdicts, one per {per}")
        checked = []
        for item in verdicts:
            verdict = item["verdict"]
            if verdict not in (0, 1) or isinstance(verdict, bool):
                raise ValueError("each verdict must be 0 or 1")
            checked.append((int(verdict), str(item.get("reason", ""))))
        return checked

    return validate


def numbered_passages(contexts: Sequence[str]) -> str:
    """The retrieved contexts as the judge sees them: ``[1] ...`` blocks, in retrieval order."""
    return "\n\n".join(f"[{i}] {c}" for i, c in enumerate(contexts, 1))


async def verify_statements(judge: Judge, row_index: int, contexts: Sequence[str],
                            statements: Sequence[str]) -> tuple[list[tuple[int, str]], str]:
    """A (verdict, reason) per statement, 1 when the contexts support it, and the raw reply.
    Raises JudgeError."""
    numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(statements, 1))
    reply = await judge.ask_json(row_index, [
        {"role": "system", "content": _VERDICT_INSTRUCTIONS},
        {"role": "user", "content": f"Passages:\n{numbered_passages(contexts)}\n\nStatements:\n{numbered}"},
    ], verdicts_validator(len(statements)), VERDICT_SCHEMA)
    return reply.value, reply.raw


async def share_supported(judge: Judge, row_index: int, question: str, text: str, contexts: Sequence[str], *,
                          no_claim: str, counted: str, lacking: str) -> Score:
    """Split ``text`` into statements and check each against ``contexts``; the score is the share
    supported (faithfulness: of the answer's statements; context recall: of the reference's).
    ``no_claim`` justifies a text without statements (not applicable), ``counted`` names what the
    share counts and ``lacking`` the statements that were not supported."""
    try:
        statements, split_raw = await split_statements(judge, row_index, question, text)
        if not statements:
            return Score(None, applicable=False, justification=no_claim, raw=split_raw)
        verdicts, verify_raw = await verify_statements(judge, row_index, contexts, statements)
    except JudgeError as exc:
        return Score(None, error=str(exc), raw=exc.raw)
    supported = sum(v for v, _ in verdicts)
    unsupported = [f"{s!r} ({reason})" for s, (v, reason) in zip(statements, verdicts, strict=True) if not v]
    justification = f"{supported} of {len(statements)} {counted}"
    if unsupported:
        justification += f"; {lacking}: " + "; ".join(unsupported)
    return Score(supported / len(statements), justification, raw=f"{split_raw}\n---\n{verify_raw}")
