"""The runner: answers every row with bounded concurrency, within rate and cost budgets.

Each row ends as a ``RowOutcome``: answered, failed after its retries (with the error), or
skipped because the run stopped at ``max_cost_usd``. No row is dropped. Outcomes are handed to
``on_outcome`` as they happen, which is how evaluate() journals them for resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evalkit.cache import CachedResponse, ResponseCache, cache_key
from evalkit.models.base import ModelResponse, PermanentModelError, TransientModelError, Usage
from evalkit.models.callables import BatchCallableModel, CallableModel, RowCall
from evalkit.pricing import PriceTable
from evalkit.runner.progress import RunProgress
from evalkit.runner.ratelimit import RateLimits
from evalkit.runner.records import RowJob, RowOutcome, RowStatus
from evalkit.tokens import count_message_tokens, estimate_usage

DEFAULT_OUTPUT_TOKENS = 256  # assumed answer length for estimates until real answers come in


@dataclass(frozen=True)
class RunnerConfig:
    """How hard to push the model.

    ``max_attempts`` bounds the tries of one row; ``retry_budget`` bounds the retries of the
    whole run (default: one per row, at least 100), so a broken endpoint fails fast instead of
    retrying for days. ``timeout`` is per request.
    """

    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    max_attempts: int = 6
    retry_budget: int | None = None
    timeout: float = 60.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_cost_usd: float | None = None


class BudgetExceeded(Exception):
    """Raised inside the runner when the next request would break max_cost_usd."""


class Runner:
    def __init__(
        self,
        model: Any,
        params: dict[str, Any],
        config: RunnerConfig,
        prices: PriceTable,
        cache: ResponseCache | None = None,
        on_outcome: Callable[[RowOutcome], None] | None = None,
        progress: RunProgress | None = None,
    ) -> None:
        self.model = model
        self.params = params
        self.config = config
        self.prices = prices
        self.cache = cache if _cacheable(model) else None
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.progress = progress
        self.limits = RateLimits(config.rpm, config.tpm)
        self.spent = 0.0
        self._reserved = 0.0
        self._stopped: str | None = None
        self._retries_left = config.retry_budget
        self._output_tokens_seen: list[int] = []
        self.snapshot: str | None = None
        self.estimate: float | None = None  # the pre-run cost estimate, set by the caller
        self.requests_sent = 0

    # ---- estimates ---------------------------------------------------------------------------

    @property
    def pricing_name(self) -> str:
        return self.snapshot or getattr(self.model, "model", None) or self.model.uri

    def expected_output_tokens(self) -> int:
        if isinstance(self.params.get("max_tokens"), int):
            return self.params["max_tokens"]
        if self._output_tokens_seen:
            return int(sum(self._output_tokens_seen) / len(self._output_tokens_seen)) + 1
        return DEFAULT_OUTPUT_TOKENS

    def estimate_cost(self, jobs: list[RowJob]) -> float | None:
        """Pre-run estimate in USD: counted input tokens, and max_tokens (or 256) per answer."""
        name = self.pricing_name
        if self.prices.lookup(name) is None:
            return None
        output = self.expected_output_tokens()
        return sum(self.prices.cost(Usage(count_message_tokens(j.messages, name), output), name) or 0.0 for j in jobs)

    def _job_cost_estimate(self, job: RowJob) -> float:
        name = self.pricing_name
        usage = Usage(count_message_tokens(job.messages, name), self.expected_output_tokens())
        return self.prices.cost(usage, name) or 0.0

    # ---- running -----------------------------------------------------------------------------

    @property
    def stopped_reason(self) -> str | None:
        return self._stopped

    async def run(self, jobs: list[RowJob]) -> dict[int, RowOutcome]:
        """Answer every job; returns the outcome of each, by row index."""
        if self._retries_left is None:
            self._retries_left = max(100, len(jobs))
        outcomes: dict[int, RowOutcome] = {}

        def record(outcome: RowOutcome) -> None:
            outcomes[outcome.index] = outcome
            self.on_outcome(outcome)
            if self.progress is not None:
                self.progress.advance(error=outcome.status is RowStatus.FAILED, cached=outcome.cached,
                                      cost=None if outcome.cached else outcome.cost_usd)

        if isinstance(self.model, BatchCallableModel):
            await self._run_batches(jobs, record)
            return outcomes

        pending = []
        for job in jobs:
            hit = self._cached(job)
            if hit is not None:
                record(hit)
            else:
                pending.append(job)
        if not pending:
            return outcomes
        # A wrong model name, key or parameter fails every row the same way: stop the whole run
        # at the first such answer (none of them is billed) instead of recording it N times.
        semaphore = asyncio.Semaphore(self.config.concurrency)
        queued_at = time.monotonic()
        tasks = [asyncio.ensure_future(self._run_job(job, queued_at, semaphore)) for job in pending]
        try:
            for finished in asyncio.as_completed(tasks):
                outcome = await finished
                if outcome.error_type == "permanent" and not outcomes.get(outcome.index):
                    if not any(o.status is RowStatus.OK for o in outcomes.values()):
                        raise PermanentModelError(outcome.error or "the model refused the request")
                record(outcome)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return outcomes

    def _cached(self, job: RowJob) -> RowOutcome | None:
        if self.cache is None:
            return None
        hit = self.cache.get(self._key(job))
        if hit is None:
            return None
        usage = hit.usage
        return RowOutcome(
            index=job.index, status=RowStatus.OK, output=hit.text, latency_s=hit.latency_s,
            total_latency_s=hit.latency_s, attempts=0, cached=True,
            input_tokens=usage.input_tokens if usage else None, output_tokens=usage.output_tokens if usage else None,
            cached_input_tokens=usage.cached_input_tokens if usage else None,
            usage_estimated=usage.estimated if usage else False, cost_usd=hit.cost_usd, model_snapshot=hit.model_snapshot,
        )

    def _key(self, job: RowJob) -> str:
        return cache_key(self.model.uri, self.model.base_url, self.params, job.messages)

    def _reserve(self, job: RowJob) -> float:
        """Book the job's estimated cost, or stop the run if it would break the budget."""
        if self.config.max_cost_usd is None:
            return 0.0
        estimate = self._job_cost_estimate(job)
        if self._stopped or self.spent + self._reserved + estimate > self.config.max_cost_usd:
            self._stopped = self._stopped or "max_cost_usd"
            raise BudgetExceeded
        self._reserved += estimate
        return estimate

    async def _run_job(self, job: RowJob, queued_at: float, semaphore: asyncio.Semaphore | None = None) -> RowOutcome:
        attempts = 0
        last_error, error_type = "", "transient"
        while True:
            attempts += 1
            try:
                async with semaphore if semaphore is not None else contextlib.nullcontext():
                    # Booked when the request is about to go, so the decision sees every answer so far.
                    reserved = self._reserve(job)
                    try:
                        response, latency = await self._attempt(job)
                    finally:
                        self._reserved -= reserved
                return self._success(job, response, latency, attempts, time.monotonic() - queued_at)
            except BudgetExceeded:
                return RowOutcome(job.index, RowStatus.SKIPPED, error_type="budget", attempts=attempts - 1,
                                  error=f"not sent: the run stopped at max_cost_usd={self.config.max_cost_usd}")
            except TransientModelError as exc:
                last_error = str(exc)
                if exc.retry_after:
                    self.limits.pause(exc.retry_after)
                if attempts >= self.config.max_attempts or not self._take_retry():
                    break
                await asyncio.sleep(self._backoff(attempts, exc.retry_after))
            except PermanentModelError as exc:
                last_error, error_type = str(exc), "permanent"
                break
            except Exception as exc:  # a user's callable raising: that row fails, the run goes on
                last_error, error_type = f"{type(exc).__name__}: {exc}", "exception"
                break
        return RowOutcome(job.index, RowStatus.FAILED, error=last_error, error_type=error_type, attempts=attempts,
                          total_latency_s=time.monotonic() - queued_at)

    async def _attempt(self, job: RowJob) -> tuple[ModelResponse, float]:
        await self.limits.acquire(count_message_tokens(job.messages, self.pricing_name) if self.limits.tokens else 0)
        self.requests_sent += 1
        start = time.monotonic()
        try:
            if isinstance(self.model, CallableModel):
                call = self.model.call(RowCall(job.input, job.contexts, job.row, job.messages))
            else:
                call = self.model.generate(job.messages, self.params)
            response = await asyncio.wait_for(call, self.config.timeout)
        except asyncio.TimeoutError:
            raise TransientModelError(f"no answer within the {self.config.timeout:g} s request timeout") from None
        return response, time.monotonic() - start

    def _take_retry(self) -> bool:
        if not self._retries_left:
            return False
        self._retries_left -= 1
        return True

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # Full jitter spreads retries out, so a burst of 429s does not come back as a burst.
        backoff = random.uniform(0, min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempt - 1)))
        return max(backoff, retry_after + random.uniform(0, 0.1)) if retry_after else backoff

    def _success(self, job: RowJob, response: ModelResponse, latency: float, attempts: int, total: float) -> RowOutcome:
        if response.model_snapshot and self.snapshot is None:
            self.snapshot = response.model_snapshot
        usage = response.usage or estimate_usage(job.messages, response.text, self.pricing_name)
        self._output_tokens_seen.append(usage.output_tokens)
        cost = self.prices.cost(usage, response.model_snapshot or self.pricing_name)
        self.spent += cost or 0.0
        outcome = RowOutcome(
            index=job.index, status=RowStatus.OK, output=response.text, latency_s=latency, total_latency_s=total,
            attempts=attempts, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens, usage_estimated=usage.estimated, cost_usd=cost,
            model_snapshot=response.model_snapshot,
        )
        if self.cache is not None:
            self.cache.put(self._key(job), CachedResponse(response.text, usage, response.model_snapshot, latency, cost, time.time()))
        return outcome

    async def _run_batches(self, jobs: list[RowJob], record: Callable[[RowOutcome], None]) -> None:
        model: BatchCallableModel = self.model
        semaphore = asyncio.Semaphore(self.config.concurrency)

        async def one(chunk: list[RowJob]) -> None:
            async with semaphore:
                start = time.monotonic()
                try:
                    responses = await asyncio.wait_for(model.call_batch([j.input for j in chunk]), self.config.timeout)
                except Exception as exc:  # the whole batch fails: each of its rows is recorded failed
                    error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, asyncio.TimeoutError) else \
                        f"no answer within the {self.config.timeout:g} s timeout"
                    for job in chunk:
                        record(RowOutcome(job.index, RowStatus.FAILED, error=error, error_type="exception", attempts=1))
                    return
                # Every row of a batch waited for the whole batch: that is its latency.
                latency = time.monotonic() - start
                for job, response in zip(chunk, responses, strict=True):
                    record(self._success(job, response, latency, 1, latency))

        size = model.size
        await asyncio.gather(*(one(jobs[i:i + size]) for i in range(0, len(jobs), size)))


def _cacheable(model: Any) -> bool:
    # A function's answers can change with its code, which its name does not capture.
    return not isinstance(model, (CallableModel, BatchCallableModel))
