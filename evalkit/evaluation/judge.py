"""LLM judges: a model asked for JSON verdicts, through the same machinery as the evaluated model
(rate limits, retries, the response cache, pricing), with the judge's cost kept per row.

- Temperature 0, or none where the endpoint refuses a temperature (some reasoning models do).
- JSON requested with a schema (structured outputs) where the endpoint takes one, else JSON mode,
  else plain instructions; the judge falls back once and remembers.
- Replies are parsed tolerantly (code fences, text around the object); a reply that still cannot
  be used is re-asked with the reason, at most ``max_reasks`` times, then the row gets an error.
- Identical requests in one run are sent once: faithfulness and answer correctness share the
  split of an answer into statements, answer correctness and context recall that of a reference.
- With ``max_cost_usd``, each fresh request books its estimated cost before it is sent, on top
  of what the rest of the run has spent; a request that would break the budget is not sent and
  its row gets an error (a cached reply costs nothing and is always used).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from evalkit.errors import JudgeError, PermanentModelError, RetriesExhausted
from evalkit.evaluation.scoring import JudgeReply, Message
from evalkit.inference.runner.caller import CallResult, ModelCaller

T = TypeVar("T")
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_json_loose(text: str) -> Any:
    """The JSON object in ``text``: whole, inside a code fence, or the outermost ``{...}``."""
    stripped = _FENCE.sub("", text.strip())
    try:
        return json.loads(stripped)
    except ValueError:
        start, end = stripped.find("{"), stripped.rfind("}")
        if start == -1 or end <= start:
            raise ValueError("the reply holds no JSON object") from None
        return json.loads(stripped[start:end + 1])


class LLMJudge:
    """The ``Judge`` evaluators get in ``ScoringContext.judge``."""

    def __init__(self, caller: ModelCaller, concurrency: int = 16, max_reasks: int = 2,
                 max_cost_usd: float | None = None, spent_elsewhere: Callable[[], float] | None = None) -> None:
        """``max_cost_usd``: the run's budget; ``spent_elsewhere``: what the rest of the run (the
        evaluated model's answers) has spent so far."""
        self.caller = caller
        self.uri: str = caller.model.uri
        self.max_reasks = max_reasks
        self.cost_by_row: dict[int, float] = defaultdict(float)
        self.calls = 0
        self.cache_hits = 0
        self._semaphore = asyncio.Semaphore(concurrency)
        self._params: dict[str, Any] = {"temperature": 0, **caller.params}
        self._format = "json_schema"  # then "json_object", then "none" if the endpoint refuses
        self._in_flight: dict[str, asyncio.Future[CallResult]] = {}
        self.max_cost_usd = max_cost_usd
        self.spent_elsewhere = spent_elsewhere or (lambda: 0.0)
        self.stopped_reason: str | None = None
        self._reserved = 0.0

    @property
    def model_snapshot(self) -> str | None:
        return self.caller.snapshot

    async def ask_json(
        self,
        row_index: int,
        messages: list[Message],
        validate: Callable[[Any], T],
        schema: dict[str, Any] | None = None,
    ) -> JudgeReply[T]:
        conversation = list(messages)
        raws: list[str] = []
        problem = ""
        for _ in range(1 + self.max_reasks):
            result = await self._call(row_index, conversation, schema, raws)
            raws.append(result.text)
            try:
                return JudgeReply(validate(parse_json_loose(result.text)), "\n---\n".join(raws))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                problem = str(exc) or type(exc).__name__
            conversation = [*conversation, {"role": "assistant", "content": result.text}, {
                "role": "user",
                "content": f"That reply could not be used: {problem}. Answer again with only the JSON object asked for.",
            }]
        raise JudgeError(f"the judge gave no usable JSON in {1 + self.max_reasks} tries: {problem}", "\n---\n".join(raws))

    async def _call(self, row_index: int, messages: list[Message], schema: dict[str, Any] | None,
                    raws: list[str]) -> CallResult:
        while True:
            params = self._request_params(schema)
            try:
                return await self._deduplicated(row_index, messages, params)
            except RetriesExhausted as exc:
                raise JudgeError(f"the judge call failed after {exc.attempts} attempts: {exc}", "\n---\n".join(raws) or None) from None
            except PermanentModelError as exc:
                if self._adapt_to(str(exc)):
                    continue
                raise JudgeError(f"the judge refused the request: {exc}", "\n---\n".join(raws) or None) from None

    async def _deduplicated(self, row_index: int, messages: list[Message], params: dict[str, Any]) -> CallResult:
        key = self.caller.key(messages, params)
        future = self._in_flight.get(key)
        if future is None:
            future = self._in_flight[key] = asyncio.ensure_future(self._send(row_index, messages, params))
        try:
            return await asyncio.shield(future)
        except BaseException:
            self._in_flight.pop(key, None)  # a failed call may be asked again
            raise

    async def _send(self, row_index: int, messages: list[Message], params: dict[str, Any]) -> CallResult:
        """The one place a judge call is made, so a shared call is counted and billed once."""
        async with self._semaphore:
            result = self.caller.cached(messages, params)
            if result is None:
                reserved = self._reserve(messages)
                try:
                    result = await self.caller.call(messages, params, use_cache=False)
                finally:
                    self._reserved -= reserved
        self.calls += 1
        self.cache_hits += result.cached
        self.cost_by_row[row_index] += result.cost_usd or 0.0
        return result

    def _reserve(self, messages: list[Message]) -> float:
        """Book a fresh request's estimated cost, or refuse it if it would break the budget."""
        if self.max_cost_usd is None:
            return 0.0
        estimate = self.caller.estimate_cost(messages) or 0.0
        if self.stopped_reason or self.spent_elsewhere() + self.caller.spent + self._reserved + estimate > self.max_cost_usd:
            self.stopped_reason = "max_cost_usd"
            raise JudgeError(f"judge request not sent: the run stopped at max_cost_usd={self.max_cost_usd}")
        self._reserved += estimate
        return estimate

    def _request_params(self, schema: dict[str, Any] | None) -> dict[str, Any]:
        params = dict(self._params)
        if self._format == "json_schema" and schema is not None:
            params["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "verdict", "schema": schema, "strict": False}}
        elif self._format in ("json_schema", "json_object"):
            params["response_format"] = {"type": "json_object"}
        return params

    def _adapt_to(self, error: str) -> bool:
        """Step down to what the endpoint accepts; False when there is nothing left to drop."""
        text = error.lower()
        if "temperature" in text and "temperature" in self._params:
            del self._params["temperature"]
            return True
        if "response_format" in text or "json_schema" in text:
            if self._format == "json_schema":
                self._format = "json_object"
                return True
            if self._format == "json_object":
                self._format = "none"
                return True
        return False
