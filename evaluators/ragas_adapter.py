"""``ragas:<metric>``: a ragas metric run as an evalkit evaluator, with evalkit's judge.

Named like ``ragas:faithfulness`` in ``evaluators=`` (the ``ragas`` family of the
``evalkit.evaluator_families`` entry-point group); configured with
``evaluator_config={"ragas:answer_correctness": {"embeddings": "text-embedding-3-small", ...}}``,
where keys other than ``embeddings`` go to the ragas metric (e.g. ``weights``, ``beta``,
``strictness``). Needs ``pip install 'evalkit[ragas]'``.

Supported: faithfulness, answer_correctness, answer_relevancy, context_precision (ragas's
``ragas.metrics.collections`` classes). ragas calls the judge given to evaluate()
(``openai:/<model>?base_url=...``, key from ``OPENAI_API_KEY``) through its own client, so
evalkit's judge machinery does not apply to its calls: no response cache, no rate limits, no
deduplication, ragas's own sampling parameters and retries. Each ``ragas:*`` evaluator runs
``concurrency`` rows at a time (ragas makes a row's calls one after another), so two of them may
have twice that many requests in flight.

Per row: a ragas exception is that row's error (counted in ``rows_failed``, never NaN); a NaN
score (faithfulness of an answer with no statements) is not applicable.

Judge cost: evalkit's ``cost`` evaluator only sees what evalkit's own judge spent. This adapter
reads the ``usage`` of every response ragas gets (chat and embeddings, retries included), prices
it with evalkit's shipped price table, and reports it per row in ``Score.details["judge_usd"]``
and as the aggregate ``judge_usd``; calls to a model the table lacks are counted in
``judge_unpriced_calls``, never taken as free.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import math
import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx
import openai

from evalkit.errors import InvalidArgument
from evalkit.pricing import PriceTable
from evalkit.scoring import EvalRow, Score, ScoringContext, mean_with_denominators
from evaluators.base import NO_OUTPUT

_INSTALL_HINT = "pip install 'evalkit[ragas]'"
# instructor's retry errors run to kilobytes (every failed completion); their end says what went wrong.
_ERROR_CHARS = 300
# evaluate()'s default request timeout: the scoring context does not carry the one it was given.
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class _Spec:
    """How to run one ragas metric: its class in ``ragas.metrics.collections``, whether it takes
    embeddings, the data it needs besides the judge, and its ``ascore`` arguments for a row."""

    class_name: str
    embeddings: bool
    requires: tuple[str, ...]
    inputs: Callable[[EvalRow], dict[str, Any]]


_METRICS = {
    "faithfulness": _Spec("Faithfulness", False, ("contexts",), lambda r: {
        "user_input": r.input, "response": r.output, "retrieved_contexts": r.contexts}),
    "answer_correctness": _Spec("AnswerCorrectness", True, ("targets",), lambda r: {
        "user_input": r.input, "response": r.output, "reference": r.target}),
    "answer_relevancy": _Spec("AnswerRelevancy", True, (), lambda r: {
        "user_input": r.input, "response": r.output}),
    "context_precision": _Spec("ContextPrecision", False, ("contexts", "targets"), lambda r: {
        "user_input": r.input, "reference": r.target, "retrieved_contexts": r.contexts}),
}


@dataclass
class _Spend:
    """What the judge calls made for one row cost."""

    usd: float = 0.0
    unpriced_calls: int = 0


# Set in each row's task: ragas gives no hook per call, so the HTTP client's response hook finds
# the row it is working for here (tasks ragas spawns inherit the value).
_ROW_SPEND: ContextVar[_Spend | None] = ContextVar("evalkit_ragas_row_spend", default=None)


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


def _judge_endpoint(uri: str) -> tuple[str, str | None]:
    """The model and base URL of a canonical judge URI ``openai:/<model>[?base_url=...]``."""
    scheme, _, rest = uri.partition(":")
    model, _, query = rest.lstrip("/").partition("?")
    if scheme != "openai" or not model:
        raise InvalidArgument(f"the ragas:* evaluators need an OpenAI-compatible judge ('openai:/<model>'), got {uri!r}")
    return model, dict(parse_qsl(query)).get("base_url")


def _api_key(base_url: str | None) -> str:
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if base_url is None:
        raise InvalidArgument("OPENAI_API_KEY is not set: the ragas:* evaluators call the judge with it")
    return "not-needed"  # as evalkit's own judge does: local OpenAI-compatible servers take any key


def _usage_hook(prices: PriceTable) -> Callable[[httpx.Response], Any]:
    """An httpx response hook adding each priced response's cost to the current row's spend."""

    async def record(response: httpx.Response) -> None:
        spend = _ROW_SPEND.get()
        if spend is None or response.status_code != 200:
            return
        await response.aread()  # the openai client reads the body again from httpx's buffer
        try:
            body = response.json()
        except ValueError:
            return
        usage, model = (body.get("usage"), body.get("model")) if isinstance(body, dict) else (None, None)
        if not isinstance(usage, dict) or not isinstance(model, str):
            return
        price = prices.lookup(model)
        if price is None:
            spend.unpriced_calls += 1
            return
        input_tokens = int(usage.get("prompt_tokens") or 0)
        cached = min(int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0), input_tokens)
        output_tokens = int(usage.get("completion_tokens") or 0)
        spend.usd += ((input_tokens - cached) * price.input + cached * price.cached_input
                      + output_tokens * price.output) / 1e6

    return record


class RagasMetric:
    """A ragas metric as an evalkit evaluator (see the module docstring)."""

    def __init__(self, metric: str, judge_available: bool = False, embeddings: str = "text-embedding-3-small",
                 **metric_kwargs: Any) -> None:
        """``embeddings``: the embeddings model, on the judge's endpoint, of the metrics that use one
        (answer_correctness, answer_relevancy). ``judge_available`` is what the evaluator registry
        tells every factory; the judge is required either way (``requires``), which evaluate()
        checks before any call."""
        if metric not in _METRICS:
            raise InvalidArgument(f"unknown ragas metric {metric!r}; supported: {', '.join(_METRICS)}")
        self.spec = _METRICS[metric]
        self.name = f"ragas:{metric}"
        self.version = f"ragas-{_ragas_version()}"
        # Metric keys may not hold ':': logged as ragas/<metric>/<version>/<aggregate>.
        self.metric_prefix = f"ragas/{metric}/{self.version}"
        self.requires = ("judge", *self.spec.requires)
        self.stage = "score"
        self.higher_is_better = True  # every supported ragas metric is a score in [0, 1]
        self.embeddings = embeddings
        self.metric_kwargs = metric_kwargs

    def _build(self, collections: Any, client: openai.AsyncOpenAI, model: str) -> Any:
        from ragas.embeddings import OpenAIEmbeddings
        from ragas.llms import llm_factory

        kwargs = dict(self.metric_kwargs)
        if self.spec.embeddings:
            kwargs["embeddings"] = OpenAIEmbeddings(client=client, model=self.embeddings)
        try:
            return getattr(collections, self.spec.class_name)(llm=llm_factory(model, client=client), **kwargs)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"evaluator_config for {self.name!r} is not accepted by ragas: {exc}") from None

    def _not_applicable(self, row: EvalRow) -> str | None:
        if "contexts" in self.spec.requires and not row.contexts:
            return "no retrieved context to check against"
        if "targets" in self.spec.requires and not row.target:
            return "no target to compare with"
        return None

    async def _one(self, metric: Any, row: EvalRow, semaphore: asyncio.Semaphore) -> Score:
        if row.output is None:
            return NO_OUTPUT
        if reason := self._not_applicable(row):
            return Score(None, applicable=False, justification=reason)
        spend = _Spend()
        _ROW_SPEND.set(spend)  # this row's task only: gather() runs each row in its own context
        async with semaphore:
            try:
                result = await metric.ascore(**self.spec.inputs(row))
            except Exception as exc:  # noqa: BLE001 - ragas raises per row (judge garbage, bad input)
                return _failed(exc, spend)
        value = result.value
        if not isinstance(value, int | float):
            return Score(None, error=f"ragas returned {value!r}, not a number", details=_details(spend))
        if math.isnan(value):
            return Score(None, applicable=False, justification="ragas returned NaN (e.g. the answer has no statements)",
                         details=_details(spend))
        return Score(float(value), result.reason, details=_details(spend))

    async def score(self, rows: list[EvalRow], context: ScoringContext | None = None) -> list[Score]:
        if context is None or context.judge is None:
            raise InvalidArgument(f"{self.name} needs a judge: pass judge='openai:/...'")
        model, base_url = _judge_endpoint(context.judge.uri)
        collections = _import_ragas()
        # aiohttp underneath, as evalkit's own clients: httpx's default connection pool spends CPU
        # quadratic in the requests in flight, which caps throughput well below 64 at a time.
        http_client = openai.DefaultAioHttpClient(event_hooks={"response": [_usage_hook(PriceTable.load())]})
        client = openai.AsyncOpenAI(base_url=base_url, api_key=_api_key(base_url), timeout=_TIMEOUT_S,
                                    http_client=http_client)
        try:
            metric = self._build(collections, client, model)
            semaphore = asyncio.Semaphore(context.concurrency)
            return list(await asyncio.gather(*(self._one(metric, row, semaphore) for row in rows)))
        finally:
            await client.close()  # in this loop: its connections belong to it

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        aggregates = mean_with_denominators(scores)
        aggregates["judge_usd"] = float(sum(s.details.get("judge_usd", 0.0) for s in scores))
        aggregates["judge_unpriced_calls"] = float(sum(s.details.get("judge_unpriced_calls", 0.0) for s in scores))
        return aggregates


def _failed(exc: Exception, spend: _Spend) -> Score:
    """The row's error: the exception's type and message, shortened to its end; whole in ``raw``."""
    message = str(exc)
    tail = message[-_ERROR_CHARS:]
    shown = message if len(message) <= _ERROR_CHARS else "..." + tail[tail.find("\n") + 1:]
    return Score(None, error=f"ragas: {type(exc).__name__}: {shown}", raw=message, details=_details(spend))


def _details(spend: _Spend) -> dict[str, float]:
    return {"judge_usd": spend.usd, "judge_unpriced_calls": float(spend.unpriced_calls)}
