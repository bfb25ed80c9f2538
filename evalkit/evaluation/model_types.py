"""The model types ``evaluate(model_type=...)`` takes, and the evaluators each uses by default
(those the data allows: see ``evaluator_registry.resolve_evaluators``). A module of its own, with
no imports, so that the command line can offer the choices without loading the evaluators."""

from __future__ import annotations

_QA = ("exact_match", "token_f1", "answer_correctness", "faithfulness", "toxicity", "latency", "cost")
# The retrieval metrics need contexts and targets; answer_relevancy only the answers.
_RAG = (*_QA[:4], "answer_relevancy", "context_precision", "context_recall", *_QA[4:])
DEFAULTS: dict[str, tuple[str, ...]] = {
    "question-answering": _QA,
    "retrieval-augmented": _RAG,
    "text": ("toxicity", "latency", "cost"),
}
