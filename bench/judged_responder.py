"""A fake judge that answers both evalkit's judge prompts and ragas's, with ONE decision rule, so
that evalkit's judged metrics and ragas's can be compared on equal terms (the parity test in
``tests/evaluators/test_ragas.py``) and timed on the same server (``bench/bench_judged.py``).

evalkit's prompts go to ``evalkit.testing.fake_judge.judge_responder`` unchanged. A ragas prompt
(instructor's JSON mode: the first user message ends with ``input: <indented JSON>\\nOutput: ``)
is parsed, rewritten as the evalkit prompt asking the same thing, answered by ``judge_responder``
and its reply translated to ragas's schema. So both tools get the same statements, the same
verdicts and the same TP/FP/FN sorting, by construction rather than by a second copy of the rules:

- statements ``{"question", "answer": str}`` -> ``{"statements": [str]}``
- NLI ``{"context", "statements"}`` -> ``{"statements": [{"statement", "reason", "verdict"}]}``
- classification ``{"question", "answer": [str], "ground_truth": [str]}`` -> ``{"TP", "FP", "FN"}``

- answer relevancy's question generation ``{"response"}`` -> ``{"question", "noncommittal"}``, from
  evalkit's ``{"questions", "noncommittal"}`` (its first question);
- context precision's usefulness check of one context ``{"question", "context", "answer"}`` ->
  ``{"reason", "verdict"}``, from evalkit's verdicts on passages (with that one passage);
- context recall's ``{"question", "context", "answer"}`` -> ``{"classifications": [{"statement",
  "reason", "attributed"}]}``, from evalkit's split of the reference and its verdicts against
  the passages (ragas joins the contexts with newlines; they are split back on them).

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
_QUESTIONS = "You work out what an answer is answering."
_USEFUL = "You grade the passages a search system retrieved."

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


def _useful(question: str, reference: str, context: str) -> int:
    reply = _ask(_USEFUL, f"Question: {question}\n\nReference answer: {reference}\n\nPassages:\n[1] {context}")
    return reply["verdicts"][0]["verdict"]


def ragas_reply(data: dict[str, Any], prompt: str) -> dict[str, Any] | None:
    """The reply to the ragas step whose input is ``data`` (in ``prompt``), or None for a step
    not known here."""
    if "statements" in data and "context" in data:
        return {"statements": _verdicts(data["context"], data["statements"])}
    if "ground_truth" in data:
        return _classify(data["question"], data["answer"], data["ground_truth"])
    if "context" in data and '"classifications"' in prompt:
        statements = _statements(data["answer"])
        verdicts = _verdicts(data["context"], statements) if statements else []
        return {"classifications": [{"statement": v["statement"], "reason": v["reason"], "attributed": v["verdict"]}
                                    for v in verdicts]}
    if "context" in data:
        verdict = _useful(data["question"], data["answer"], data["context"])
        return {"reason": "supports the reference" if verdict else "unrelated to the reference", "verdict": verdict}
    if "answer" in data:
        return {"statements": _statements(data["answer"])}
    if "response" in data:
        reply = _ask(_QUESTIONS, f"Answer: {data['response']}")
        return {"question": reply["questions"][0] if reply["questions"] else data["response"],
                "noncommittal": reply["noncommittal"]}
    return None


def responder(body: dict[str, Any]) -> str:
    """A ``FakeOpenAIServer`` responder for evalkit's and ragas's judge requests alike."""
    user = next((m for m in body.get("messages") or [] if m.get("role") == "user"), {})
    content = user.get("content")
    # instructor re-asks append messages after the first user message, which keeps the prompt.
    match = _RAGAS_INPUT.search(content) if isinstance(content, str) else None
    if match:
        reply = ragas_reply(json.loads(match.group(1)), content)
        if reply is not None:
            return json.dumps(reply)
    return judge_responder(body)
