"""A responder for ``FakeOpenAIServer`` that answers evalkit's judge prompts deterministically,
so judged metrics can be tested and benchmarked offline with known scores.

- splitting an answer: one statement per sentence ("I don't know" gives none);
- verdicts: a statement is supported when 80% of its content words appear in the passages;
- classification: an answer statement is TP when 80% of its content words appear in one reference
  statement, else FP; reference statements no answer statement covers are FN.
Anything else gets the server's default answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from evalkit.testing.fake_openai import default_answer

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


_STOPWORDS = {"a", "an", "the", "is", "are", "was", "in", "on", "of", "to", "and", "it", "its", "for", "with"}


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower())) - _STOPWORDS


def _covered(statement: str, source: str, share: float = 0.8) -> bool:
    words = _words(statement)
    return bool(words) and len(words & _words(source)) / len(words) >= share


def _after(label: str, text: str) -> str:
    return text.split(label, 1)[1] if label in text else ""


def _lines(block: str, marker: str) -> list[str]:
    return [line.split(marker, 1)[1].strip() for line in block.splitlines() if marker in line]


def judge_responder(body: dict[str, Any]) -> str:
    """Answer one chat request body as a consistent, rule-following judge would."""
    messages = body.get("messages") or []
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    user = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
    if "atomic claims" in system:
        answer = _after("Answer:", user).strip()
        if not answer or "don't know" in answer.lower():
            return json.dumps({"statements": []})
        return json.dumps({"statements": [s for s in _SENTENCE.split(answer) if s.strip()]})
    if "check claims against source passages" in system:
        passages = _after("Passages:", user).split("Statements:")[0]
        statements = [re.sub(r"^\d+\.\s*", "", line) for line in _after("Statements:", user).strip().splitlines()]
        return json.dumps({"verdicts": [
            {"statement": s, "reason": "stated in the passages" if _covered(s, passages) else "not in the passages",
             "verdict": int(_covered(s, passages))} for s in statements if s.strip()
        ]})
    if "compare an answer with a reference answer" in system:
        answer = _lines(_after("Answer statements:", user).split("Reference statements:")[0], "- ")
        reference = _lines(_after("Reference statements:", user), "- ")
        tp = [s for s in answer if any(_covered(s, r) for r in reference)]
        fp = [s for s in answer if s not in tp]
        fn = [r for r in reference if not any(_covered(s, r) or _covered(r, s) for s in answer)]
        item = lambda s, why: {"statement": s, "reason": why}  # noqa: E731
        return json.dumps({"TP": [item(s, "in the reference") for s in tp], "FP": [item(s, "not in the reference") for s in fp],
                           "FN": [item(s, "missing from the answer") for s in fn]})
    return default_answer(body)
