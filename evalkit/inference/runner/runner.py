"""The runner: answers every row with bounded concurrency, within rate and cost budgets.

Each row ends as a ``RowOutcome``: answered, failed after its retries (with the error), or
skipped because the run stopped at ``max_cost_usd``. No row is dropped. Outcomes are handed to
``on_outcome`` as they happen, which is how evaluate() journals them for resume.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evalkit.errors import BudgetExceeded, PermanentModelError, RetriesExhausted
from evalkit.inference.cache import ResponseCache
from evalkit.inference.pricing import PriceTable
from evalkit.inference.providers.callables import BatchCallableModel, RowCall
from evalkit.inference.runner.caller import CallResult, ModelCaller, RetryPolicy
from evalkit.inference.runner.progress import RunProgress
from evalkit.inference.runner.ratelimit import RateLimits
from evalkit.inference.runner.records import RowJob, RowOutcome, RowStatus


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

    def policy(self, rows: int) -> RetryPolicy:
        budget = self.retry_budget if self.retry_budget is not None else max(100, rows)
        return RetryPolicy(self.max_attempts, budget, self.timeout, self.backoff_base, self.backoff_max)


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
        self.config = config
        self.caller = ModelCaller(model, params, prices, RateLimits(config.rpm, config.tpm), config.policy(0), cache)
        self.cache = self.caller.cache
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.progress = progress
        self.estimate: float | None = None  # the pre-run cost estimate, set by the caller
        self._reserved = 0.0
        self._stopped: str | None = None
        self._started = False
        self._answered_any = False
        # What the rest of the run (its judge) has spent: the budget covers both.
        self.spent_elsewhere: Callable[[], float] = lambda: 0.0

    @property
    def snapshot(self) -> str | None:
        return self.caller.snapshot

    @property
    def spent(self) -> float:
        return self.caller.spent

    @property
    def requests_sent(self) -> int:
        return self.caller.requests_sent

    @property
    def stopped_reason(self) -> str | None:
        return self._stopped

    def estimate_cost(self, jobs: list[RowJob]) -> float | None:
        """Pre-run estimate in USD: counted input tokens, and max_tokens (or 256) per answer."""
        if self.caller.prices.lookup(self.caller.pricing_name) is None:
            return None
        return sum(self.caller.estimate_cost(job.messages) or 0.0 for job in jobs)

    # ---- running -----------------------------------------------------------------------------

    async def run(self, jobs: list[RowJob], total: int | None = None) -> dict[int, RowOutcome]:
        """Answer every job; returns the outcome of each, by row index.

        A run may be answered in several calls (a few rows first, then the rest): ``total`` is the
        number of rows of the whole run, which sizes its retry budget, set by the first call."""
        if not self._started:
            self._started = True
            self.caller.policy = self.config.policy(total if total is not None else len(jobs))
            self.caller.retries_left = self.caller.policy.retry_budget
        outcomes: dict[int, RowOutcome] = {}

        def record(outcome: RowOutcome) -> None:
            outcomes[outcome.index] = outcome
            self._answered_any = self._answered_any or outcome.status is RowStatus.OK
            self.on_outcome(outcome)
            if self.progress is not None:
                self.progress.advance(error=outcome.status is RowStatus.FAILED, cached=outcome.cached,
                                      cost=None if outcome.cached else outcome.cost_usd)

        if isinstance(self.model, BatchCallableModel):
            await self._run_batches(jobs, record)
            return outcomes

        pending = []
        for job in jobs:
            hit = self.caller.cached(job.messages)
            if hit is not None:
                record(_outcome(job, hit, hit.latency_s))
            else:
                pending.append(job)
        # A wrong model name, key or parameter fails every row the same way: stop the whole run
        # at the first such answer (none of them is billed) instead of recording it N times.
        semaphore = asyncio.Semaphore(self.config.concurrency)
        queued_at = time.monotonic()

        async def answer(job: RowJob) -> tuple[RowOutcome, bool]:
            async with semaphore:
                outcome = await self._run_job(job, queued_at)
                # Recorded (journalled) before the slot goes to the next row: at a Ctrl-C, no
                # answered row is left unjournalled while more than `concurrency` were asked for.
                if outcome.error_type == "permanent" and not self._answered_any:
                    return outcome, False
                record(outcome)
                return outcome, True

        tasks = [asyncio.ensure_future(answer(job)) for job in pending]
        try:
            for finished in asyncio.as_completed(tasks):
                outcome, recorded = await finished
                if recorded:
                    continue
                if not self._answered_any:
                    raise PermanentModelError(outcome.error or "the model refused the request")
                record(outcome)  # another row was answered meanwhile: this one is a row's failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return outcomes

    def _reserve(self, job: RowJob) -> float:
        """Book the job's estimated cost, or stop the run if it would break the budget."""
        if self.config.max_cost_usd is None:
            return 0.0
        estimate = self.caller.estimate_cost(job.messages) or 0.0
        if self._stopped or self.spent + self.spent_elsewhere() + self._reserved + estimate > self.config.max_cost_usd:
            self._stopped = self._stopped or "max_cost_usd"
            raise BudgetExceeded
        self._reserved += estimate
        return estimate

    async def _run_job(self, job: RowJob, queued_at: float) -> RowOutcome:
        try:
            # Booked when the request is about to go, so the decision sees every answer so far.
            reserved = self._reserve(job)
            try:
                result = await self.caller.call(job.messages, request=RowCall(job.input, job.contexts, job.row, job.messages),
                                                use_cache=False)
            finally:
                self._reserved -= reserved
        except BudgetExceeded:
            return RowOutcome(job.index, RowStatus.SKIPPED, error_type="budget",
                              error=f"not sent: the run stopped at max_cost_usd={self.config.max_cost_usd}")
        except RetriesExhausted as exc:
            return self._failed(job, queued_at, str(exc), "transient", exc.attempts)
        except PermanentModelError as exc:
            return self._failed(job, queued_at, str(exc), "permanent", 1)
        except Exception as exc:  # a user's callable raising: that row fails, the run goes on
            return self._failed(job, queued_at, f"{type(exc).__name__}: {exc}", "exception", 1)
        return _outcome(job, result, time.monotonic() - queued_at)

    @staticmethod
    def _failed(job: RowJob, queued_at: float, error: str, error_type: str, attempts: int) -> RowOutcome:
        return RowOutcome(job.index, RowStatus.FAILED, error=error, error_type=error_type, attempts=attempts,
                          total_latency_s=time.monotonic() - queued_at)

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
                    result = self.caller.record(job.messages, self.caller.params, response, latency, 1)
                    record(_outcome(job, result, latency))

        size = model.size
        await asyncio.gather(*(one(jobs[i:i + size]) for i in range(0, len(jobs), size)))


def _outcome(job: RowJob, result: CallResult, total_latency: float) -> RowOutcome:
    usage = result.usage
    return RowOutcome(
        index=job.index, status=RowStatus.OK, output=result.text, latency_s=result.latency_s,
        total_latency_s=total_latency, attempts=result.attempts, cached=result.cached,
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens, usage_estimated=usage.estimated,
        cost_usd=result.cost_usd, model_snapshot=result.model_snapshot,
    )
