"""A fake judge that answers both evalkit's judge prompts and ragas's, with ONE decision rule, so
that evalkit's judged metrics and ragas's can be compared on equal terms (the parity test in
``tests/test_ragas.py``) and timed on the same server (``bench/bench_judged.py``).

evalkit's prompts go to ``evalkit.testing.fake_judge.judge_responder`` unchanged. A ragas prompt
(instructor's JSON mode: the first user message ends with ``input: <indented JSON>\\nOutput: ``)
is parsed, rewritten as the evalkit prompt asking the same thing, answered by ``judge_responder``
and its reply translated to ragas's schema. So both tools get the same statements, the same
verdicts and the same TP/FP/FN sorting, by construction rather than by a second copy of the rules:

- statements ``{"question", "answer": str}`` -> ``{"statements": [str]}``
- NLI ``{"context", "statements"}`` -> ``{"statements": [{"statement", "reason", "verdict"}]}``
- classification ``{"question", "answer": [str], "ground_truth": [str]}`` -> ``{"TP", "FP", "FN"}``

Two more ragas steps are answered from the same rules, for smoke tests of the other metrics the
adapter supports (no evalkit counterpart to compare with):

- answer_relevancy's question generation ``{"response"}`` -> ``{"question": <the response's first
  statement>, "noncommittal": 1 if it has none}``
- context_precision's usefulness check ``{"question", "context", "answer": str}`` -> verdict 1 when
  the context supports one of the answer's statements.

Importable as ``judged_responder`` with ``bench/`` on ``sys.path``, e.g. for the fake server's
command line: ``--responder judged_responder:responder``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from evalkit.testing.fake_judge import judge_responder

# fake_judge recognises evalkit's three judge prompts by these phrases of their instructions.
_SPLIT = "You break answers into atomic claims."
_VERIFY = "You check claims against source passages."
_CLASSIFY = "You compare an answer with a reference answer."

# JSON strings escape newlines, so a line starting "input: {" can only be the final input block.
_RAGAS_INPUT = re.compile(r"(?:^|\n)input: (\{.*\})\s*Output:\s*$", re.DOTALL)


def _ask(system: str, user: str) -> dict[str, Any]:
    body = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
    return json.loads(judge_responder(body))


def _statements(answer: str) -> list[str]:
    return _ask(_SPLIT, f"Question: \nAnswer: {answer}")["statements"]


def _verdicts(context: str, statements: list[str]) -> list[dict[str, Any]]:
    # ragas joins the contexts with newlines; number them as evalkit does ("[1] ...") so that
    # even the passage markers, which the word-overlap rule sees, are the same on both sides.
    passages = "\n\n".join(f"[{i}] {c}" for i, c in enumerate(context.split("\n"), 1))
    numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(statements, 1))
    return _ask(_VERIFY, f"Passages:\n{passages}\n\nStatements:\n{numbered}")["verdicts"]


def _classify(question: str, answer: list[str], reference: list[str]) -> dict[str, Any]:
    return _ask(_CLASSIFY, f"Question: {question}\n\nAnswer statements:\n" + "\n".join(f"- {s}" for s in answer)
                + "\n\nReference statements:\n" + "\n".join(f"- {s}" for s in reference))


def ragas_reply(data: dict[str, Any]) -> dict[str, Any] | None:
    """The reply to the ragas step whose input is ``data``, or None for a step not known here."""
    if "statements" in data and "context" in data:
        return {"statements": _verdicts(data["context"], data["statements"])}
    if "ground_truth" in data:
        return _classify(data["question"], data["answer"], data["ground_truth"])
    if "context" in data:
        supported = any(v["verdict"] for v in _verdicts(data["context"], _statements(data["answer"])))
        return {"reason": "supports the answer" if supported else "unrelated to the answer", "verdict": int(supported)}
    if "answer" in data:
        return {"statements": _statements(data["answer"])}
    if "response" in data:
        statements = _statements(data["response"])
        return {"question": statements[0] if statements else data["response"], "noncommittal": int(not statements)}
    return None


def responder(body: dict[str, Any]) -> str:
    """A ``FakeOpenAIServer`` responder for evalkit's and ragas's judge requests alike."""
    user = next((m for m in body.get("messages") or [] if m.get("role") == "user"), {})
    content = user.get("content")
    # instructor re-asks append messages after the first user message, which keeps the prompt.
    match = _RAGAS_INPUT.search(content) if isinstance(content, str) else None
    if match:
        reply = ragas_reply(json.loads(match.group(1)))
        if reply is not None:
            return json.dumps(reply)
    return judge_responder(body)
