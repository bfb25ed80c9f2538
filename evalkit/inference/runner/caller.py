"""One model call done properly: cache lookup, rate limits, timeout, retries with backoff,
usage (estimated where the endpoint reports none) and cost. Shared by the runner, which calls
the evaluated model once per row, and by judges."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

from evalkit.errors import RetriesExhausted, TransientModelError
from evalkit.inference.cache import CachedResponse, ResponseCache, cache_key
from evalkit.inference.own_calls import own_call
from evalkit.inference.params_check import public_params
from evalkit.inference.pricing import PriceTable
from evalkit.inference.providers.base import Message, ModelResponse, Usage
from evalkit.inference.providers.callables import (
    BatchCallableModel,
    CallableModel,
    RowCall,
)
from evalkit.inference.runner.ratelimit import RateLimits
from evalkit.inference.tokens import count_message_tokens, estimate_usage


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` bounds the tries of one call; ``retry_budget`` the retries of the whole
    run (None: one per row on average, at least 100), so a broken endpoint fails fast."""

    max_attempts: int = 6
    retry_budget: int | None = None
    timeout: float = 60.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0


@dataclass(frozen=True)
class CallResult:
    """A successful call. A cached result keeps the original call's latency and cost."""

    text: str
    usage: Usage
    cost_usd: float | None
    latency_s: float
    attempts: int
    cached: bool
    model_snapshot: str | None


class ModelCaller:
    def __init__(
        self,
        model: Any,
        params: dict[str, Any],
        prices: PriceTable,
        limits: RateLimits | None = None,
        policy: RetryPolicy | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.model = model
        self.params = params
        self.prices = prices
        self.limits = limits or RateLimits()
        self.policy = policy or RetryPolicy()
        # A function's answers can change with its code, which its name does not capture.
        self.cache = None if isinstance(model, (CallableModel, BatchCallableModel)) else cache
        self.retries_left = self.policy.retry_budget
        self.snapshot: str | None = None
        self.spent = 0.0
        self.requests_sent = 0
        # Answers' output tokens so far, as a sum and a count: the mean is asked before every request.
        self._output_tokens_total = 0
        self._answers_seen = 0

    @property
    def pricing_name(self) -> str:
        return self.snapshot or getattr(self.model, "model", None) or self.model.uri

    def expected_output_tokens(self, default: int = 256) -> int:
        """max_tokens when set, else the mean answer length so far, else ``default``."""
        if isinstance(self.params.get("max_tokens"), int):
            return self.params["max_tokens"]
        if self._answers_seen:
            return int(self._output_tokens_total / self._answers_seen) + 1
        return default

    def estimate_cost(self, messages: list[Message]) -> float | None:
        name = self.pricing_name
        return self.prices.cost(Usage(count_message_tokens(messages, name), self.expected_output_tokens()), name)

    def key(self, messages: list[Message], params: dict[str, Any]) -> str:
        # Extra headers carry credentials, not generation settings: rotating a key keeps the cache.
        return cache_key(self.model.uri, self.model.base_url, public_params(params), messages)

    def cached(self, messages: list[Message], params: dict[str, Any] | None = None,
               key: str | None = None) -> CallResult | None:
        """The cached answer, if any; ``key`` is the call's cache key when the caller has it already."""
        if self.cache is None:
            return None
        hit = self.cache.get(key or self.key(messages, self.params if params is None else params))
        return None if hit is None else cached_result(hit)

    async def call(self, messages: list[Message], params: dict[str, Any] | None = None,
                   request: RowCall | None = None, use_cache: bool = True, key: str | None = None) -> CallResult:
        """Answer ``messages``, retrying transient failures. Raises RetriesExhausted,
        PermanentModelError, or whatever a user's callable raised. ``key`` is the call's cache key
        when the caller has computed it already (it is computed once per call)."""
        params = self.params if params is None else params
        if key is None and self.cache is not None:
            key = self.key(messages, params)
        if use_cache:
            hit = self.cached(messages, params, key)
            if hit is not None:
                return hit
        attempts = 0
        while True:
            attempts += 1
            try:
                response, latency = await self._attempt(messages, params, request)
            except TransientModelError as exc:
                if exc.retry_after:
                    self.limits.pause(exc.retry_after)
                if attempts >= self.policy.max_attempts or not self._take_retry():
                    raise RetriesExhausted(exc, attempts) from None
                await asyncio.sleep(self._backoff(attempts, exc.retry_after))
                continue
            return self.record(messages, params, response, latency, attempts, key)

    async def _attempt(self, messages: list[Message], params: dict[str, Any], request: RowCall | None) -> tuple[ModelResponse, float]:
        await self.limits.acquire(count_message_tokens(messages, self.pricing_name) if self.limits.tokens else 0)
        self.requests_sent += 1
        start = time.monotonic()
        # asyncio.timeout, not wait_for: the call runs in this task instead of a new one per request.
        try:
            if isinstance(self.model, CallableModel):
                # the user's function: its own API calls are the user's, and autologging counts them
                async with asyncio.timeout(self.policy.timeout):
                    response = await self.model.call(request or RowCall(messages[-1]["content"], [], {}, messages))
            else:
                with own_call():
                    async with asyncio.timeout(self.policy.timeout):
                        response = await self.model.generate(messages, params)
        except TimeoutError:
            raise TransientModelError(f"no answer within the {self.policy.timeout:g} s request timeout") from None
        return response, time.monotonic() - start

    def record(self, messages: list[Message], params: dict[str, Any], response: ModelResponse, latency: float,
               attempts: int, key: str | None = None) -> CallResult:
        """Price a fresh answer, remember it in the cache (under ``key``, computed here when not
        given), and count its spend."""
        if response.model_snapshot and self.snapshot is None:
            self.snapshot = response.model_snapshot
        usage = response.usage or estimate_usage(messages, response.text, self.pricing_name)
        self._output_tokens_total += usage.output_tokens
        self._answers_seen += 1
        cost = self.prices.cost(usage, response.model_snapshot or self.pricing_name)
        self.spent += cost or 0.0
        if self.cache is not None:
            self.cache.put(key or self.key(messages, params),
                           CachedResponse(response.text, usage, response.model_snapshot, latency, cost, time.time()))
        return CallResult(response.text, usage, cost, latency, attempts, False, response.model_snapshot)

    def _take_retry(self) -> bool:
        if self.retries_left is None:
            return True
        if self.retries_left <= 0:
            return False
        self.retries_left -= 1
        return True

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # Full jitter spreads retries out, so a burst of 429s does not come back as a burst.
        backoff = random.uniform(0, min(self.policy.backoff_max, self.policy.backoff_base * 2 ** (attempt - 1)))
        return max(backoff, retry_after + random.uniform(0, 0.1)) if retry_after else backoff


def cached_result(hit: CachedResponse) -> CallResult:
    """A cached answer as a call's result: the original call's latency and cost, no attempt."""
    return CallResult(hit.text, hit.usage or Usage(0, 0, estimated=True), hit.cost_usd, hit.latency_s, 0, True,
                      hit.model_snapshot)
