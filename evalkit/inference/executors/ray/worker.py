"""The Ray worker: an actor that answers batches of rows with evalkit's own runner and client.

It never sees the cache, the journal or the tracking store: the driver keeps those. Outcomes
stream back as they finish (whatever finished since the last hand-back, in one message), so a
worker that dies loses only the rows it had in flight. With a scorer (``score_on_workers``), the
batch's rows are then scored here, and their scores follow in one last message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from evalkit.inference.executors.ray.limiter import ClusterRateLimits
from evalkit.inference.executors.scoring import RowScorer
from evalkit.inference.pricing import PriceTable
from evalkit.inference.providers.callables import (
    BatchCallableModel,
    CallableModel,
    batch,
)
from evalkit.inference.providers.resolve import build_model, parse_model_uri
from evalkit.inference.runner.records import RowJob, RowOutcome
from evalkit.inference.runner.runner import Runner, RunnerConfig


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to answer rows as the driver would: the model as the user gave it (a
    URI or a function; keys are read from the worker's own environment), the params, prices and
    limits of the evaluation, and the scorer of the rows it answers (``score_on_workers``), if any."""

    model: Any
    params: dict[str, Any]
    prices: PriceTable
    concurrency: int
    rpm: float | None
    tpm: float | None
    max_attempts: int
    timeout: float
    retry_budget: int
    limiter_block: int
    scorer: RowScorer | None = None


def _build(model: Any, timeout: float, concurrency: int) -> Any:
    if isinstance(model, batch):
        return BatchCallableModel(model)
    if isinstance(model, str):
        return build_model(parse_model_uri(model), timeout=timeout, max_connections=concurrency)
    return CallableModel(model)


class RowWorker:
    """The actor (made remote by the executor). It is built once and ``configure``d for each
    evaluation, so an executor that keeps its workers (``keep_workers``) reuses the processes."""

    def __init__(self) -> None:
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.runner: Runner | None = None
        self.scorer: RowScorer | None = None
        self._queues: dict[int, asyncio.Queue[RowOutcome]] = {}

    async def configure(self, spec: WorkerSpec, limiter: Any) -> tuple[int, str]:
        """Answer the next batches with ``spec``'s model, params and limits and ``limiter``'s budget;
        returns (this process's id, its Ray node's id). A coroutine, so that the client and locks it
        builds belong to the actor's event loop, where the batches are answered."""
        config = RunnerConfig(concurrency=spec.concurrency, max_attempts=spec.max_attempts, timeout=spec.timeout,
                              retry_budget=spec.retry_budget)
        # Its own client in its own process; no cache (the driver's), no budget (the driver books it).
        self.runner = Runner(_build(spec.model, spec.timeout, spec.concurrency), spec.params, config, spec.prices)
        self.runner.caller.limits = ClusterRateLimits(limiter, spec.limiter_block, tokens=bool(spec.tpm), rpm=spec.rpm)
        self.runner.on_outcome = self._route
        self.scorer = spec.scorer  # unpickled once per evaluation, with its evaluators
        self._queues.clear()
        return os.getpid(), self.node

    def pid(self) -> int:
        return os.getpid()

    def _route(self, outcome: RowOutcome) -> None:
        queue = self._queues.pop(outcome.index, None)
        if queue is not None:
            queue.put_nowait(outcome)

    async def answer(self, jobs: list[RowJob], answered_elsewhere: bool, row_data: list[Any] | None = None,
                     ) -> AsyncIterator[tuple[int, list[RowOutcome], dict[int, Any]]]:
        """Answer ``jobs``; yields (this process's id, the outcomes finished since the last yield, {}).
        With a scorer and ``row_data`` (the scorer's data of each job's row), the answered rows are
        then scored, and the last message is (this process's id, [], their scores by row index).

        Raises PermanentModelError when the first answer of the whole evaluation is a refusal
        (a wrong model, key or parameter), like the local runner."""
        if self.runner is None:
            raise RuntimeError("the worker was not configured for an evaluation")
        if answered_elsewhere:
            self.runner.answered_any = True
        queue: asyncio.Queue[RowOutcome] = asyncio.Queue()
        self._queues.update((job.index, queue) for job in jobs)
        task = asyncio.ensure_future(self.runner.run(jobs))
        pid, left = os.getpid(), len(jobs)
        done: list[RowOutcome] = []
        try:
            while left:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    task.result()  # the run ended without the rest: its error goes to the driver
                    continue
                finished = [getter.result()]
                while not queue.empty():
                    finished.append(queue.get_nowait())
                left -= len(finished)
                done += finished
                yield pid, finished, {}
            await task
            if self.scorer is not None and row_data is not None:
                yield pid, [], await _score(self.scorer, jobs, row_data, done)
        finally:
            task.cancel()
            for job in jobs:
                self._queues.pop(job.index, None)


async def _score(scorer: RowScorer, jobs: list[RowJob], row_data: list[Any], outcomes: list[RowOutcome],
                 ) -> dict[int, Any]:
    """``scorer``'s scores of the answered rows of a batch (``jobs`` and ``row_data`` aligned), by row index."""
    position = {job.index: k for k, job in enumerate(jobs)}
    ordered = sorted(outcomes, key=lambda outcome: position[outcome.index])  # in row order, as the driver scores
    at = [position[outcome.index] for outcome in ordered]
    scores = await scorer.score([jobs[k] for k in at], ordered, [row_data[k] for k in at])
    return dict(zip((outcome.index for outcome in ordered), scores, strict=True))
