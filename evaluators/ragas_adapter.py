"""``ragas:<metric>``: a ragas metric run as an evalkit evaluator, sending through evalkit.

Named like ``ragas:faithfulness`` in ``evaluators=`` (the ``ragas`` family of the
``evalkit.evaluator_families`` entry-point group). Needs ``pip install 'evalkit[ragas]'``
(ragas ``>=0.4.3,<0.5``, its ``ragas.metrics.collections`` classes). Supported: faithfulness,
answer_correctness, answer_relevancy, context_precision (ragas's ContextPrecision, with the
reference) and context_recall.

ragas is given an LLM and an embeddings object that are evalkit's:

- the LLM sends each of ragas's prompts through evalkit's judge (``judge=`` of evaluate(), any
  model URI evalkit supports): the same response cache, rate limits, retries, re-asks of an
  unusable reply, deduplication of identical requests, judge cost per row (in
  ``cost/judge_usd``) and ``max_cost_usd``. The judge's own settings apply (temperature 0, JSON
  through a schema), not ragas's (temperature 0.01, top_p 0.1, max_tokens 1024);
- the embeddings are evalkit's: the offline model by default, or
  ``evaluator_config={"ragas:answer_relevancy": {"embeddings": "openai:/text-embedding-3-small"}}``.

Other keys of the evaluator's config go to the ragas metric (e.g. ``weights``, ``beta``,
``strictness``). ragas makes a row's calls one after another; ``concurrency`` rows run at a time.

Names: the evaluator is ``ragas/<metric>`` with version ``ragas-<version>``, as every evaluator
is ``<name>/<version>``: the table has ``ragas/<metric>/score`` (``/justification``, ``/status``,
``/raw``) and the run ``ragas/<metric>/ragas-0.4.3/mean`` with its denominators.

Per row: a ragas or judge error is that row's error (counted in ``rows_failed``, never NaN); a
NaN score (faithfulness of an answer with no statements, context recall of a reference with none)
is not applicable.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import math
import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from evalkit.evaluators import embeddings as embeddings_module
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

_INSTALL_HINT = "pip install 'evalkit[ragas]'"
# instructor-style errors run to kilobytes; their end says what went wrong.
_ERROR_CHARS = 300


@dataclass(frozen=True)
class _Spec:
    """How to run one ragas metric: its class in ``ragas.metrics.collections``, whether it takes
    embeddings, the data it needs besides the judge, whether it reads the model's answer, and
    its ``ascore`` arguments for a row."""

    class_name: str
    embeddings: bool
    requires: tuple[str, ...]
    needs_output: bool
    inputs: Callable[[EvalRow], dict[str, Any]]


_METRICS = {
    "faithfulness": _Spec("Faithfulness", False, ("contexts",), True, lambda r: {
        "user_input": r.input, "response": r.output, "retrieved_contexts": r.contexts}),
    "answer_correctness": _Spec("AnswerCorrectness", True, ("targets",), True, lambda r: {
        "user_input": r.input, "response": r.output, "reference": r.target}),
    "answer_relevancy": _Spec("AnswerRelevancy", True, (), True, lambda r: {
        "user_input": r.input, "response": r.output}),
    "context_precision": _Spec("ContextPrecision", False, ("contexts", "targets"), False, lambda r: {
        "user_input": r.input, "reference": r.target, "retrieved_contexts": r.contexts}),
    "context_recall": _Spec("ContextRecall", False, ("contexts", "targets"), False, lambda r: {
        "user_input": r.input, "reference": r.target, "retrieved_contexts": r.contexts}),
}


@dataclass
class _RowCalls:
    """The row a ragas call is made for, and the judge's raw replies to keep for audit."""

    index: int
    raws: list[str] = field(default_factory=list)


# Set in each row's task: ragas gives its LLM no row, so the LLM finds it here (tasks ragas
# spawns inherit the value).
_ROW: ContextVar[_RowCalls | None] = ContextVar("evalkit_ragas_row", default=None)


def _ragas_version() -> str:
    try:
        return importlib.metadata.version("ragas")
    except importlib.metadata.PackageNotFoundError:
        raise InvalidArgument(f"the ragas:* evaluators need ragas, which is not installed: {_INSTALL_HINT}") from None


def _import_ragas() -> Any:
    """``ragas.metrics.collections``, with ragas's usage tracking off unless the user decided.

    ragas sends a usage event per LLM and embeddings call (and per evaluation) to its maintainers'
    server unless RAGAS_DO_NOT_TRACK=true; each is a synchronous HTTP POST (1 s timeout) on the
    calling thread, i.e. on our event loop, stalling every row in flight, and it is data leaving
    the user's machine that evalkit's user never asked for. ragas reads the variable once and
    caches it, so it must be set before ragas's first call; a value the user set is respected.
    """
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    try:
        from ragas.metrics import collections
    except ImportError as exc:
        raise InvalidArgument(f"cannot import ragas ({exc}): {_INSTALL_HINT}") from None
    return collections


@functools.cache
def _wrappers() -> tuple[type, type]:
    """ragas's LLM and embeddings interfaces implemented over evalkit's judge and embeddings
    (defined once ragas is imported, which happens only when a ragas metric runs)."""
    from ragas.embeddings.base import BaseRagasEmbedding
    from ragas.llms.base import InstructorBaseRagasLLM

    class JudgeLLM(InstructorBaseRagasLLM):
        def __init__(self, judge: Judge) -> None:
            self.judge = judge

        def generate(self, prompt: str, response_model: type) -> Any:
            raise NotImplementedError("evalkit runs ragas metrics with their async methods only")

        async def agenerate(self, prompt: str, response_model: Any) -> Any:
            row = _ROW.get()
            if row is None:
                raise RuntimeError("a ragas call outside of a row evalkit is scoring")
            reply = await self.judge.ask_json(row.index, [{"role": "user", "content": prompt}],
                                              response_model.model_validate, response_model.model_json_schema())
            row.raws.append(reply.raw)
            return reply.value

    class EvalkitEmbeddings(BaseRagasEmbedding):
        def __init__(self, embedder: Embedder) -> None:
            super().__init__()
            self.embedder = embedder

        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            raise NotImplementedError("evalkit runs ragas metrics with their async methods only")

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return (await self.embedder.embed([text]))[0].tolist()

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return (await self.embedder.embed(texts)).tolist()

    return JudgeLLM, EvalkitEmbeddings


class RagasMetric:
    """A ragas metric as an evalkit evaluator (see the module docstring)."""

    def __init__(self, metric: str, judge_available: bool = False, embeddings: str | None = None,
                 **metric_kwargs: Any) -> None:
        """``embeddings``: for the metrics that use them (answer_correctness, answer_relevancy),
        None for evalkit's offline model or ``"openai:/<model>[?base_url=...]"``.
        ``judge_available`` is what the evaluator registry tells every factory; the judge is
        required either way (``requires``), which evaluate() checks before any call."""
        if metric not in _METRICS:
            raise InvalidArgument(f"unknown ragas metric {metric!r}; supported: {', '.join(_METRICS)}")
        self.spec = _METRICS[metric]
        self.metric = metric
        self.name = f"ragas/{metric}"
        self.version = f"ragas-{_ragas_version()}"
        self.requires = ("judge", *self.spec.requires)
        self.stage = "score"
        self.higher_is_better = True  # every supported ragas metric is a score in [0, 1]
        self.embeddings = embeddings
        if embeddings is not None:
            parse_embeddings_uri(embeddings)  # a bad URI is an error now, before any call
        elif self.spec.embeddings:
            embeddings_module.require_model(f"ragas:{metric}")
        self.metric_kwargs = metric_kwargs

    def _build(self, collections: Any, judge: Judge, embedder: Embedder) -> Any:
        llm_class, embeddings_class = _wrappers()
        kwargs = dict(self.metric_kwargs)
        if self.spec.embeddings:
            kwargs["embeddings"] = embeddings_class(embedder)
        try:
            return getattr(collections, self.spec.class_name)(llm=llm_class(judge), **kwargs)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"evaluator_config for 'ragas:{self.metric}' is not accepted by ragas: {exc}") from None

    def _not_applicable(self, row: EvalRow) -> str | None:
        if "contexts" in self.spec.requires and not row.contexts:
            return "no retrieved context to check against"
        if "targets" in self.spec.requires and not row.target:
            return "no target to compare with"
        return None

    async def _one(self, metric: Any, row: EvalRow, semaphore: asyncio.Semaphore) -> Score:
        if row.output is None and self.spec.needs_output:
            return NO_OUTPUT
        if reason := self._not_applicable(row):
            return Score(None, applicable=False, justification=reason)
        calls = _RowCalls(row.index)
        _ROW.set(calls)  # this row's task only: gather() runs each row in its own context
        async with semaphore:
            try:
                result = await metric.ascore(**self.spec.inputs(row))
            except JudgeError as exc:
                return Score(None, error=str(exc), raw="\n---\n".join([*calls.raws, exc.raw or ""]).strip() or None)
            except Exception as exc:  # noqa: BLE001 - ragas raises per row (bad input, its own checks)
                return _failed(exc, calls)
        raw = "\n---\n".join(calls.raws) or None
        value = result.value
        if not isinstance(value, int | float):
            return Score(None, error=f"ragas returned {value!r}, not a number", raw=raw)
        if math.isnan(value):
            return Score(None, applicable=False, raw=raw,
                         justification="ragas returned NaN (e.g. the answer or reference has no statements)")
        return Score(float(value), result.reason, raw=raw)

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        if context is None or context.judge is None:
            raise InvalidArgument(f"ragas:{self.metric} needs a judge: pass judge='openai:/...'")
        embedder = Embedder(self.embeddings)
        try:
            metric = self._build(_import_ragas(), context.judge, embedder)
            semaphore = asyncio.Semaphore(context.concurrency)
            return list(await asyncio.gather(*(self._one(metric, row, semaphore) for row in rows)))
        finally:
            await embedder.aclose()  # in this loop: its connections belong to it

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return mean_with_denominators(scores)


def _failed(exc: Exception, calls: _RowCalls) -> Score:
    """The row's error: the exception's type and message, shortened to its end; whole in ``raw``."""
    message = str(exc)
    tail = message[-_ERROR_CHARS:]
    shown = message if len(message) <= _ERROR_CHARS else "..." + tail[tail.find("\n") + 1:]
    return Score(None, error=f"ragas: {type(exc).__name__}: {shown}", raw="\n---\n".join([*calls.raws, message]))
