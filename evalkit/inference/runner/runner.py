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
from typing import TYPE_CHECKING, Any

from evalkit.errors import BudgetExceeded, PermanentModelError, RetriesExhausted
from evalkit.inference.cache import ResponseCache
from evalkit.inference.executors.local import LocalExecutor
from evalkit.inference.pricing import PriceTable
from evalkit.inference.providers.base import ModelResponse
from evalkit.inference.providers.callables import BatchCallableModel, RowCall
from evalkit.inference.runner.caller import CallResult, ModelCaller, RetryPolicy
from evalkit.inference.runner.progress import RunProgress
from evalkit.inference.runner.ratelimit import RateLimits
from evalkit.inference.runner.records import RowJob, RowOutcome, RowStatus

if TYPE_CHECKING:
    from evalkit.inference.executors.base import Executor


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
        executor: Executor | None = None,
        model_source: Any = None,
    ) -> None:
        self.model = model
        # What the model was built from (a URI or a function): executors rebuild it elsewhere.
        self.model_source = model_source
        self.config = config
        # Where the rows that missed the cache are answered: in this process, or on a cluster.
        self.executor: Executor = executor or LocalExecutor()
        self._slots: asyncio.Semaphore | None = None  # the concurrency, shared by every run() call
        self.caller = ModelCaller(model, params, prices, RateLimits(config.rpm, config.tpm), config.policy(0), cache)
        self.cache = self.caller.cache
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.progress = progress
        self.estimate: float | None = None  # the pre-run cost estimate, set by the caller
        self._reserved = 0.0
        self._stopped: str | None = None
        # Cache keys of the rows that missed the cache, by row index: computed once for the
        # lookup, used again to store the answer.
        self._keys: dict[int, str] = {}
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

        pending = []
        for job in jobs:
            key = None if self.cache is None else self.caller.key(job.messages, self.caller.params)
            hit = None if key is None else self.caller.cached(job.messages, key=key)
            if hit is not None:
                record(_outcome(job, hit, hit.latency_s))
            else:
                if key is not None:
                    self._keys[job.index] = key
                pending.append(job)
        if pending:
            await self.executor.answer(self, pending, record)
        return outcomes

    async def answer_here(self, jobs: list[RowJob], record: Callable[[RowOutcome], None]) -> None:
        """Answer ``jobs`` in this process, ``concurrency`` at a time (what the local executor does)."""
        if isinstance(self.model, BatchCallableModel):
            await self._run_batches(jobs, record)
            return
        # A wrong model name, key or parameter fails every row the same way: stop the whole run
        # at the first such answer (none of them is billed) instead of recording it N times.
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.concurrency)
        semaphore = self._slots
        queued_at = time.monotonic()
        refused = False  # a refusal came while no row was answered: rows not sent yet wait for the verdict
        rescued = asyncio.Event()  # a row was answered after all: that refusal was its row's failure

        async def answer(job: RowJob) -> tuple[RowOutcome, bool]:
            nonlocal refused
            async with semaphore:
                if refused and not self._answered_any:
                    await rescued.wait()  # cancelled when the run stops on the refusal
                outcome = await self._run_job(job, queued_at)
                # Recorded (journalled) before the slot goes to the next row: at a Ctrl-C, no
                # answered row is left unjournalled while more than `concurrency` were asked for.
                if outcome.error_type == "permanent" and not self._answered_any:
                    refused = True
                    return outcome, False
                record(outcome)
                return outcome, True

        tasks = [asyncio.ensure_future(answer(job)) for job in jobs]
        try:
            for finished in asyncio.as_completed(tasks):
                outcome, recorded = await finished
                if recorded:
                    continue
                if not self._answered_any:
                    raise PermanentModelError(outcome.error or "the model refused the request")
                record(outcome)  # another row was answered meanwhile: this one is a row's failure
                rescued.set()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def answered_any(self) -> bool:
        """Whether a row was answered: from then on, a refusal is that row's failure, not the run's."""
        return self._answered_any

    @answered_any.setter
    def answered_any(self, value: bool) -> None:
        self._answered_any = value

    def book(self, estimate: float) -> bool:
        """Book ``estimate`` USD against max_cost_usd before sending; False (and the run stops)
        when it would break the budget. Give it back with ``release`` once the answer is in."""
        if self.config.max_cost_usd is None:
            return True
        if self._stopped or self.spent + self.spent_elsewhere() + self._reserved + estimate > self.config.max_cost_usd:
            self._stopped = self._stopped or "max_cost_usd"
            return False
        self._reserved += estimate
        return True

    def release(self, estimate: float) -> None:
        self._reserved -= estimate

    def skipped_for_budget(self, job: RowJob) -> RowOutcome:
        return RowOutcome(job.index, RowStatus.SKIPPED, error_type="budget",
                          error=f"not sent: the run stopped at max_cost_usd={self.config.max_cost_usd}")

    def absorb(self, job: RowJob, outcome: RowOutcome) -> RowOutcome:
        """An outcome answered elsewhere (a cluster worker), taken in as if answered here: priced
        and counted in ``spent``, its answer put in this process's cache, the snapshot noted."""
        if outcome.status is not RowStatus.OK or outcome.cached:
            return outcome
        response = ModelResponse(outcome.output or "", outcome.usage, outcome.model_snapshot)
        result = self.caller.record(job.messages, self.caller.params, response, outcome.latency_s or 0.0,
                                    outcome.attempts, self._keys.pop(job.index, None))
        return _outcome(job, result, outcome.total_latency_s or 0.0)

    def _reserve(self, job: RowJob) -> float:
        """Book the job's estimated cost, or stop the run if it would break the budget."""
        if self.config.max_cost_usd is None:
            return 0.0
        estimate = self.caller.estimate_cost(job.messages) or 0.0
        if not self.book(estimate):
            raise BudgetExceeded
        return estimate

    async def _run_job(self, job: RowJob, queued_at: float) -> RowOutcome:
        key = self._keys.pop(job.index, None)
        try:
            # Booked when the request is about to go, so the decision sees every answer so far.
            reserved = self._reserve(job)
            try:
                result = await self.caller.call(job.messages, request=RowCall(job.input, job.contexts, job.row, job.messages),
                                                use_cache=False, key=key)
            finally:
                self._reserved -= reserved
        except BudgetExceeded:
            return self.skipped_for_budget(job)
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
