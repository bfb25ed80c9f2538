"""The driver side of the Ray executor.

The runner in the driver has already answered what the cache holds; the rest is split here into
batches (plain lists of rows: no Ray Data, whose pandas-3 splitting crashes) and fed to a pool of
worker actors, each running evalkit's runner with its own client. Outcomes stream back and are
recorded by the driver as they arrive: journalled, put in the driver's cache and priced there, so
the run is logged exactly as a local one. The budget (max_cost_usd) is booked by the driver before
a batch leaves, so it holds across workers; the rate limit is one limiter actor for all of them.

Workers are started with the first batch of an evaluation and killed when it ends, unless the
executor keeps them (``keep_workers``): then the next evaluation on the same executor object
reconfigures the running actors instead of paying for new processes.

With ``score_on_workers``, each worker also scores the rows of its batch, once they are answered,
with the evaluators that need no judge (``evalkit.inference.executors.scoring``): their scores come
back after the batch's outcomes, so a worker that dies while scoring loses no answer (the driver
scores those rows itself).

A worker that dies loses only its rows in flight: they go back to the queue for the others, and a
row whose batch died ``max_worker_failures`` times is recorded failed. When the driver dies, Ray
stops its actors within moments; the journal has every row it received, so a resume sends only the
others. What a worker answers between the driver's death and its own is paid and lost, which is
bounded by the batch it held: a resume asks again at most ``num_workers`` x ``batch_size`` rows.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalkit import plugins
from evalkit.errors import InvalidArgument, PermanentModelError
from evalkit.inference.executors.base import Executor
from evalkit.inference.executors.scoring import WorkerScoring
from evalkit.inference.runner.records import RowJob, RowOutcome, RowStatus
from evalkit.redaction import redact_url

if TYPE_CHECKING:
    from evalkit.inference.runner.runner import Runner


@dataclass
class _Batch:
    jobs: list[RowJob]
    tries: int = 0


@dataclass
class RayStats:
    """What the executor did in its last evaluation, for tests and benchmarks: which worker process
    answered (and scored) each row and on which Ray node it runs, the batches sent, the workers
    started and lost."""

    answered_by: dict[int, int] = field(default_factory=dict)  # row index: worker process id
    scored_by: dict[int, int] = field(default_factory=dict)  # row index: worker process id (score_on_workers)
    nodes: dict[int, str] = field(default_factory=dict)  # worker process id: Ray node id
    workers_started: int = 0
    batches: int = 0
    workers_lost: int = 0


class RayExecutor(Executor):
    """Answers rows on a pool of Ray actors.

    ``address``: the cluster (``"auto"``, ``"ray://host:10001"``; default: the cluster this process
    is connected to, else ``$RAY_ADDRESS``, else a local one started here). ``num_workers``: actors
    (default: one per ``cpus_per_worker`` CPUs of the cluster). ``batch_size``: rows per batch sent to
    a worker. ``concurrency``: requests in flight per worker (default: evaluate's ``concurrency``).
    ``limiter_block``: request slots a worker takes from the shared limiter at a time.
    ``forward_env``: names of environment variables (e.g. ``["OPENAI_API_KEY"]``) to send to the
    workers through Ray's runtime environment, for a cluster whose machines do not have them;
    anyone who can inspect the cluster's jobs can read them there.
    ``keep_workers``: keep the worker actors alive when an evaluation ends, so the next evaluation
    on this executor object (a second ``evaluate()`` in a notebook) skips their start-up; they hold
    their CPUs on the cluster until ``shutdown()`` (or the end of a ``with`` block, or of this
    process). Given by name (``executor="ray"``), an executor lives for one evaluation, so this
    only helps with an executor object.
    ``score_on_workers``: each worker also scores the rows it answers with the evaluators that need
    no judge (the offline ones: exact match, token F1, the offline embeddings and classifiers...),
    instead of the driver scoring every row; for evaluations whose scoring costs more CPU than their
    requests (long texts). Judged and "post" evaluators (latency, cost) are still scored by the
    driver, and so are rows that were never sent (cached, journalled). The evaluators are pickled
    to the workers, once per evaluation, with what they hold (e.g. toxicity's moderation key).
    """

    name = "ray"
    answers_elsewhere = True

    def __init__(self, address: str | None = None, num_workers: int | None = None, batch_size: int = 32,
                 concurrency: int | None = None, cpus_per_worker: float = 1.0, limiter_block: int = 8,
                 max_worker_failures: int = 2, forward_env: list[str] | tuple[str, ...] = (),
                 keep_workers: bool = False, score_on_workers: bool = False) -> None:
        plugins.require_extra("ray", "ray", "executor='ray'")
        for option, value, low in (("num_workers", num_workers, 1), ("batch_size", batch_size, 1),
                                   ("concurrency", concurrency, 1), ("limiter_block", limiter_block, 1),
                                   ("max_worker_failures", max_worker_failures, 1)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise InvalidArgument(f"executor_options[{option!r}] must be an integer of at least {low}, got {value!r}")
        if not isinstance(cpus_per_worker, (int, float)) or cpus_per_worker <= 0:
            raise InvalidArgument(f"executor_options['cpus_per_worker'] must be positive, got {cpus_per_worker!r}")
        for option, flag in (("keep_workers", keep_workers), ("score_on_workers", score_on_workers)):
            if not isinstance(flag, bool):
                raise InvalidArgument(f"executor_options[{option!r}] must be true or false, got {flag!r}")
        missing = [name for name in forward_env if name not in os.environ]
        if missing:
            raise InvalidArgument(f"executor_options['forward_env'] names variables that are not set: {', '.join(missing)}")
        self.address = address
        self.num_workers = num_workers
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.cpus_per_worker = cpus_per_worker
        self.limiter_block = limiter_block
        self.max_worker_failures = max_worker_failures
        self.forward_env = tuple(forward_env)
        self.keep_workers = keep_workers
        self.score_on_workers = score_on_workers
        self.stats = RayStats()
        self._workers: list[Any] = []
        self._limiter: Any = None
        self._spec: Any = None  # the running evaluation's WorkerSpec
        self._scoring: WorkerScoring | None = None  # the running evaluation's, with score_on_workers
        self._configured: set[int] = set()  # id() of the workers configured with it

    def params(self) -> dict[str, str]:
        shown = {"executor": self.name, "executor_batch_size": str(self.batch_size)}
        if self.address:
            shown["executor_address"] = redact_url(self.address)
        if self._workers:
            shown["executor_workers"] = str(len(self._workers))
        if self.score_on_workers:
            shown["executor_score_on_workers"] = "true"
        return shown

    def score_with(self, scoring: WorkerScoring) -> bool:
        if not self.score_on_workers:
            return False
        from ray import cloudpickle

        try:  # refused here, before any request, rather than by the first worker
            cloudpickle.dumps(scoring.scorer)
        except Exception as exc:
            raise InvalidArgument("executor_options['score_on_workers']: the evaluators cannot be sent to the Ray "
                                  f"workers ({type(exc).__name__}: {exc}); leave score_on_workers off to score "
                                  "them in this process") from None
        self._scoring = scoring
        return True

    # ---- the pool ----------------------------------------------------------------------------

    def _connect(self) -> Any:
        import ray

        if not ray.is_initialized():
            runtime_env = {"env_vars": {name: os.environ[name] for name in self.forward_env}} if self.forward_env else None
            ray.init(address=self.address, include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)
        return ray

    def _start(self, runner: Runner) -> Any:
        """The limiter of a new evaluation, workers enough for it (the kept ones first), and the
        spec they are configured with."""
        from evalkit.inference.executors.ray.limiter import ClusterLimiter
        from evalkit.inference.executors.ray.worker import RowWorker, WorkerSpec

        ray = self._connect()
        if runner.model_source is None:
            raise InvalidArgument("executor='ray' needs the model as a URI or a function, to build it on the workers")
        count = self.num_workers or max(1, int(ray.cluster_resources().get("CPU", 1) // self.cpus_per_worker))
        config = runner.config
        tag = uuid.uuid4().hex[:12]
        self.stats = RayStats()
        if self._limiter is not None:  # kept with the workers: started afresh
            ray.get(self._limiter.reset.remote(config.rpm, config.tpm))
        else:
            self._limiter = ray.remote(ClusterLimiter).options(name=f"evalkit-limiter-{tag}", num_cpus=0).remote(
                config.rpm, config.tpm)
        actor = ray.remote(RowWorker)
        missing = max(0, count - len(self._workers))
        self._workers += [actor.options(name=f"evalkit-worker-{tag}-{i}", num_cpus=self.cpus_per_worker,
                                        scheduling_strategy="SPREAD", max_restarts=0).remote()
                          for i in range(missing)]
        self.stats.workers_started = missing
        self._configured = set()
        return WorkerSpec(
            model=runner.model_source, params=runner.caller.params, prices=runner.caller.prices,
            concurrency=self.concurrency or config.concurrency, rpm=config.rpm, tpm=config.tpm,
            max_attempts=config.max_attempts, timeout=config.timeout,
            # the run's retry budget (one retry per row on average), shared out among the workers
            retry_budget=runner.caller.policy.retry_budget // len(self._workers) + 1
            if runner.caller.policy.retry_budget else 100,
            limiter_block=self.limiter_block,
            scorer=self._scoring.scorer if self._scoring is not None else None,
        )

    def close(self) -> None:
        """End the evaluation: its workers and limiter go, unless ``keep_workers``."""
        self._spec, self._scoring = None, None
        if not self.keep_workers:
            self.shutdown()

    def shutdown(self) -> None:
        """Kill the worker actors and the limiter (kept workers included)."""
        self._kill([*self._workers, self._limiter])
        self._workers, self._limiter = [], None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    @staticmethod
    def _kill(handles: list[Any]) -> None:
        handles = [handle for handle in handles if handle is not None]
        if not handles:
            return
        import ray

        for handle in handles:
            ray.kill(handle)

    @property
    def workers(self) -> list[Any]:
        """The worker actors (empty before the first batch, and after close unless ``keep_workers``)."""
        return list(self._workers)

    @property
    def limiter(self) -> Any:
        return self._limiter

    # ---- answering ---------------------------------------------------------------------------

    async def answer(self, runner: Runner, jobs: list[RowJob], record: Callable[[RowOutcome], None]) -> None:
        if self._spec is None:
            self._spec = self._start(runner)
        import ray.exceptions

        queue = deque(_Batch(jobs[i:i + self.batch_size]) for i in range(0, len(jobs), self.batch_size))
        changed = asyncio.Condition()
        in_flight = 0
        refusal: list[PermanentModelError] = []

        def give_up(batch: _Batch, reason: str) -> None:
            for job in batch.jobs:
                record(RowOutcome(job.index, RowStatus.FAILED, error=reason, error_type="transient", attempts=batch.tries))

        async def next_batch() -> _Batch | None:
            nonlocal in_flight
            async with changed:
                await changed.wait_for(lambda: queue or not in_flight or refusal)
                if not queue or refusal:
                    return None
                in_flight += 1  # taken under the lock: no loop ends while a batch may come back
                return queue.popleft()

        async def drive(worker: Any) -> None:
            nonlocal in_flight
            try:  # once per evaluation; meanwhile the other workers already answer
                if id(worker) not in self._configured:
                    pid, node = await worker.configure.remote(self._spec, self._limiter)
                    self._configured.add(id(worker))
                    self.stats.nodes[pid] = node
            except ray.exceptions.RayActorError:
                self.stats.workers_lost += 1
                self._workers.remove(worker)
                async with changed:
                    changed.notify_all()
                return
            while (batch := await next_batch()) is not None:
                sendable, booked = self._book(runner, batch, record)
                received: set[int] = set()
                try:
                    if not sendable:
                        continue
                    self.stats.batches += 1
                    row_data = scoring.row_data(sendable) if scoring is not None else None
                    stream = worker.answer.options(num_returns="streaming").remote(sendable, runner.answered_any,
                                                                                  row_data)
                    async for ref in stream:
                        pid, outcomes, scores = await ref
                        for outcome in outcomes:
                            received.add(outcome.index)
                            runner.release(booked.pop(outcome.index, 0.0))
                            self.stats.answered_by[outcome.index] = pid
                            record(runner.absorb(jobs_by_index[outcome.index], outcome))
                        for index, row_scores in scores.items():
                            self.stats.scored_by[index] = pid
                            scoring.take(index, row_scores)
                except ray.exceptions.RayActorError as exc:
                    # The worker is gone: its unanswered rows go to the others (or fail, after
                    # max_worker_failures), and this driver loop ends with it.
                    self.stats.workers_lost += 1
                    self._workers.remove(worker)
                    rest = _Batch([j for j in sendable if j.index not in received], batch.tries + 1)
                    if rest.jobs and rest.tries >= self.max_worker_failures:
                        give_up(rest, f"its Ray worker died {rest.tries} times: {type(exc).__name__}")
                    elif rest.jobs:
                        queue.append(rest)
                    return
                except Exception as exc:
                    cause = getattr(exc, "cause", exc)
                    if not isinstance(cause, PermanentModelError):
                        raise
                    if runner.answered_any:  # answered meanwhile elsewhere: these rows go again as failures
                        queue.append(_Batch([j for j in sendable if j.index not in received], batch.tries))
                    else:
                        refusal.append(cause)
                finally:
                    for estimate in booked.values():
                        runner.release(estimate)
                    in_flight -= 1
                    async with changed:
                        changed.notify_all()

        jobs_by_index = {job.index: job for job in jobs}
        scoring = self._scoring
        await asyncio.gather(*(drive(worker) for worker in list(self._workers)))
        if refusal:
            raise PermanentModelError(str(refusal[0]))
        while queue:  # every worker died
            give_up(queue.popleft(), "no Ray worker was left to answer it")

    def _book(self, runner: Runner, batch: _Batch, record: Callable[[RowOutcome], None]) -> tuple[list[RowJob], dict[int, float]]:
        """The rows of ``batch`` that fit the budget, booked; the others are recorded skipped."""
        if runner.config.max_cost_usd is None:
            return batch.jobs, {}
        sendable, booked = [], {}
        for job in batch.jobs:
            estimate = runner.caller.estimate_cost(job.messages) or 0.0
            if runner.book(estimate):
                sendable.append(job)
                booked[job.index] = estimate
            else:
                record(runner.skipped_for_budget(job))
        return sendable, booked
