"""A responder for ``FakeOpenAIServer`` that answers evalkit's judge prompts deterministically,
so judged metrics can be tested and benchmarked offline with known scores.

- splitting an answer: one statement per sentence ("I don't know" gives none);
- verdicts: a statement is supported when 80% of its content words appear in the passages;
- classification: an answer statement is TP when 80% of its content words appear in one reference
  statement, else FP; reference statements no answer statement covers are FN;
- questions an answer answers: its first statement, or none and non-committal when it has none;
- usefulness of retrieved passages: a passage is useful when it supports (as above) one of the
  reference's statements.
Anything else gets the server's default answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from evalkit.testing.fake_openai import default_answer

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PASSAGE = re.compile(r"(?:^|\n)\[\d+\] ")


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


def _split(answer: str) -> list[str]:
    if not answer or "don't know" in answer.lower():
        return []
    return [s for s in _SENTENCE.split(answer) if s.strip()]


def _passages(block: str) -> list[str]:
    return [p.strip() for p in _PASSAGE.split(block)[1:]]


def judge_responder(body: dict[str, Any]) -> str:
    """Answer one chat request body as a consistent, rule-following judge would."""
    messages = body.get("messages") or []
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    user = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
    if "atomic claims" in system:
        return json.dumps({"statements": _split(_after("Answer:", user).strip())})
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
    if "work out what an answer is answering" in system:
        statements = _split(_after("Answer:", user).strip())
        return json.dumps({"questions": statements[:1], "noncommittal": int(not statements)})
    if "grade the passages a search system retrieved" in system:
        reference = _split(_after("Reference answer:", user).split("Passages:")[0].strip())
        return json.dumps({"verdicts": [
            {"passage": i, "reason": "supports the reference" if useful else "unrelated to the reference", "verdict": useful}
            for i, passage in enumerate(_passages(_after("Passages:", user)), 1)
            for useful in [int(any(_covered(s, passage) for s in reference))]
        ]})
    return default_answer(body)
