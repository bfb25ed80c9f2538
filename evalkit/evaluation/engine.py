"""``evaluate()``: run a model over a dataset, score it, and log everything as a run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shlex
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit import plugins
from evalkit.entities import Metric, Param, RunStatus
from evalkit.errors import (
    EvaluationFailed,
    EvaluationWarning,
    InvalidArgument,
    InvalidState,
    ModelError,
    PermanentModelError,
)
from evalkit.evaluation.config import EvalConfig, RateLimit
from evalkit.evaluation.config import signature as config_signature
from evalkit.evaluation.data import EvalDataset
from evalkit.evaluation.journal import JournalLocation, read_journal
from evalkit.evaluation.judge import LLMJudge
from evalkit.evaluation.plan import EvaluationPlan
from evalkit.evaluation.plan import plan as plan_evaluation
from evalkit.evaluation.prompts import PromptTemplate
from evalkit.evaluation.results import (
    RESULTS_FILES,
    RESULTS_TABLE,
    ResultsWriter,
    StoredTables,
)
from evalkit.evaluation.row_scoring import (
    EvaluatorScorer,
    eval_row,
    may_score_on_workers,
    score_all,
)
from evalkit.evaluation.run_evaluators import log_evaluators
from evalkit.evaluation.run_metrics import run_metrics
from evalkit.evaluation.score_columns import ScoreColumns
from evalkit.evaluation.scoring import (
    EvalRow,
    Evaluator,
    EvaluatorInfo,
    Score,
    ScoringContext,
    evaluator_info,
)
from evalkit.heap import existing_objects_frozen
from evalkit.inference.cache import CacheMode, ResponseCache
from evalkit.inference.executors.scoring import WorkerScoring
from evalkit.inference.params_check import public_params
from evalkit.inference.pricing import PriceTable
from evalkit.inference.runner.caller import ModelCaller, RetryPolicy
from evalkit.inference.runner.health import most_common_error, outage_reason
from evalkit.inference.runner.progress import RunProgress
from evalkit.inference.runner.ratelimit import RateLimits
from evalkit.inference.runner.records import RowJob, RowOutcome, RowStatus
from evalkit.inference.runner.runner import Runner, RunnerConfig
from evalkit.inference.sync import run_sync
from evalkit.redaction import redact
from evalkit.tracking import fluent, run_tags
from evalkit.tracking.artifacts import ArtifactRepository, join_artifact_uri
from evalkit.tracking.artifacts.local import LocalArtifactRepository
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.clock import now_ms
from evalkit.tracking.provenance import git_commit
from evalkit.tracking.registry import BUNDLE_HASH_PARAM
from evalkit.tracking.uri import default_tracking_uri, parse_tracking_uri

__all__ = ["RESULTS_TABLE", "EvaluationResult", "evaluate", "execute"]

CHUNK_ROWS = 10_000  # rows scored and written to the results table at a time: memory does not grow with the data


@dataclass
class EvaluationResult:
    """What evaluate() returns: the metrics, the per-row table, and where the run is."""

    run_id: str
    metrics: dict[str, float]
    tables: Mapping[str, pd.DataFrame]  # read from the run's artifacts when first asked for
    artifacts: dict[str, str] = field(default_factory=dict)
    estimated_cost_usd: float | None = None
    stopped_reason: str | None = None
    # Evaluators that scored no row although rows failed (metric prefix: why), and other one-line
    # warnings (rows that failed); evaluate() issues both as EvaluationWarning.
    unscored: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    evaluators: list[EvaluatorInfo] = field(default_factory=list)  # what each evaluator declared (see Evaluator)


def evaluate(*args: Any, **kwargs: Any) -> EvaluationResult:
    """Run ``model`` over ``data``, score the answers, and log it all as a run.

    ``model`` is a model URI (``"openai:/gpt-4o"``, ``"openai:/llama3?base_url=http://host:8000/v1"``,
    ``"evalkit:/extractive"``), a Python function (per row, sync or async), ``batch(fn, size)``
    for a function over lists, or None with ``predictions="<column>"`` for answers computed elsewhere.
    ``data`` is a DataFrame, a ``datasets.Dataset`` or a CSV/JSONL/Parquet path with an
    ``inputs`` (or ``question``) column and optionally ``contexts`` and targets.

    Requests run ``concurrency`` at a time within ``rate_limit`` (requests per minute, or
    ``{"rpm": ..., "tpm": ...}``), with retries on 429/5xx/timeouts, through a response cache
    (``cache="on" | "off" | "read-only" | "refresh"``). ``max_cost_usd`` stops sending requests
    before the budget would be exceeded. ``resume=<run_id>`` continues an interrupted run
    without paying again for the rows it already has.

    Evaluators score every answer: ``evaluators="default"`` picks the model type's defaults that
    fit the data, ``extra_metrics`` adds names, ``@evaluator`` functions or evaluator objects, and
    ``evaluator_config={"name": {...}}`` configures them. With ``judge="openai:/gpt-4o-mini"``
    the judged metrics ask that model (temperature 0, JSON replies, cached, its cost kept apart);
    without one they use offline scorers. Each metric's version says which ran.

    Each run logs an HTML report (``report.html``) when a report renderer is installed (the
    ``reports`` package is); ``baseline=<run_id>`` compares this run with that one row by row.

    ``executor="ray"`` answers the rows on a Ray cluster (``pip install 'evalkit[ray]'``);
    ``executor_options`` name its ``address``, ``num_workers``, ``batch_size`` and ``concurrency``
    per worker (see ``evalkit.inference.executors.ray.executor.RayExecutor``). The driver keeps the
    cache, the journal, the budget and the scoring, so the run is logged as a local one;
    ``score_on_workers=True`` lets the workers score the rows they answer with the evaluators that
    need no judge, for evaluations whose scoring is the heavy part.

    Every option is a field of :class:`~evalkit.evaluation.config.EvalConfig`, which documents
    it. Inputs are checked before any request (:func:`~evalkit.evaluation.plan.plan`, then
    :func:`execute`): a wrong column, value or option raises ``InvalidArgument`` naming it. A row whose call still fails after its retries is recorded
    with its error and counted in ``error_count``; it is never dropped.
    """
    return execute(plan_evaluation(EvalConfig.build(**_SIGNATURE.bind(*args, **kwargs).arguments)))


_SIGNATURE = config_signature()
evaluate.__signature__ = _SIGNATURE  # type: ignore[attr-defined]  # its options are EvalConfig's fields


def execute(plan: EvaluationPlan) -> EvaluationResult:
    """Run a planned evaluation: answer the rows, score them and log it all as a run (see evaluate())."""
    with existing_objects_frozen():
        return _run_plan(plan)


def _run_plan(plan: EvaluationPlan) -> EvaluationResult:
    config, dataset, chat_model, judge_model = plan.config, plan.dataset, plan.model, plan.judge
    chosen, infos, data = plan.evaluators, plan.infos, config.data
    concurrency, timeout, max_attempts, max_cost_usd = (config.concurrency, config.timeout, config.max_attempts,
                                                        config.max_cost_usd)
    params, judge_inference, cache_mode = config.inference_params, config.judge_params, config.cache
    rate_limit, judge_rate_limit = config.rate_limit or RateLimit(), config.judge_rate_limit or RateLimit()
    client = TrackingClient()
    run_id, owns_run = _open_run(client, config.resume, config.experiment, config.run_name, config.tags)
    response_cache = ResponseCache(config.cache_path, cache_mode) if cache_mode is not CacheMode.OFF else None
    journal: JournalLocation | None = None
    writer = ResultsWriter()
    try:
        artifacts = client.artifact_repository(run_id)
        journal = JournalLocation(artifacts, run_id)
        run_params = _run_params(dataset, chat_model, plan.template, params, chosen, config.model_type, data,
                                 cache_mode, concurrency, rate_limit, plan.prices)
        run_params.update(plan.bundle_params)
        if chat_model is not None:
            run_params.update(plan.executor.params())
        if judge_model is not None:
            run_params.update(judge_uri=judge_model.uri,
                              judge_params=json.dumps(public_params(judge_inference), sort_keys=True))
        if config.resume:
            # What changes answers must match; how hard to push (concurrency, limits, cache)
            # may differ, and the run keeps the values it started with.
            logged = _check_resume_matches(client, run_id, run_params)
            run_params = {k: v for k, v in run_params.items() if k not in logged}
            client.set_tag(run_id, run_tags.RESUMED_AT, str(now_ms()))
        client.log_batch(run_id, params=[Param(k, v) for k, v in run_params.items()])
        log_evaluators(client, run_id, infos)
        # Rows the executor's workers scored (score_on_workers), by row index, until their chunk is written.
        worker_scores: dict[int, dict[str, Score]] = {}
        on_workers = _offer_worker_scoring(plan, worker_scores) if chat_model is not None else []
        previous = journal.read() if config.resume else {}
        runner = None
        if chat_model is not None:
            runner = Runner(chat_model, params, RunnerConfig(
                concurrency=concurrency, rpm=rate_limit.rpm, tpm=rate_limit.tpm, max_attempts=max_attempts,
                timeout=timeout, max_cost_usd=max_cost_usd), plan.prices, response_cache, executor=plan.executor,
                model_source=config.model)
        judge_client = None
        if judge_model is not None:
            policy = RetryPolicy(max_attempts, max(100, dataset.num_rows), timeout)
            caller = ModelCaller(judge_model, judge_inference, plan.prices,
                                 RateLimits(judge_rate_limit.rpm, judge_rate_limit.tpm), policy, response_cache)
            # One budget for the run: each side books its requests against what the other has spent.
            judge_client = LLMJudge(caller, concurrency, max_cost_usd=max_cost_usd,
                                    spent_elsewhere=(lambda: runner.spent) if runner is not None else None)
            if runner is not None:
                runner.spent_elsewhere = lambda: judge_client.caller.spent
        context = ScoringContext(judge_client, concurrency,
                                 judge_client.cost_by_row if judge_client is not None else {})
        scoring = _ChunkScorer(dataset, chosen, context, writer, keep_outcomes=runner is not None,
                               on_workers=on_workers, worker_scores=worker_scores)
        done = run_sync(_execute(dataset, runner, plan.template, previous, journal, config.progress, scoring,
                                 chat_model, judge_model))
        outcomes = done.outcomes
        if runner is not None and runner.snapshot:
            client.log_batch(run_id, params=[Param("model_snapshot", runner.snapshot)])
        if judge_client is not None and judge_client.model_snapshot:
            client.log_batch(run_id, params=[Param("judge_snapshot", judge_client.model_snapshot)])

        metrics = run_metrics(outcomes) if chat_model is not None else {}
        for evaluator, info in zip(chosen, infos, strict=True):
            aggregates = evaluator.aggregate(done.scores.pop(evaluator.name).scores())
            metrics.update({f"{info.metric_prefix}/{k}": v for k, v in aggregates.items()})
        if judge_client is not None:
            metrics["judge/calls"] = judge_client.calls
            metrics["judge/cache_hits"] = judge_client.cache_hits
        if runner is not None:
            metrics["cost/spent_usd"] = runner.spent + (judge_client.caller.spent if judge_client is not None else 0.0)
            if runner.estimate is not None:
                metrics["cost/estimated_usd"] = runner.estimate
        timestamp = now_ms()
        client.log_batch(run_id, metrics=[Metric(k, float(v), timestamp, 0) for k, v in metrics.items()])
        stopped = ((runner.stopped_reason if runner is not None else None)
                   or (judge_client.stopped_reason if judge_client is not None else None))
        if stopped:
            client.set_tag(run_id, run_tags.STOPPED_REASON, stopped)
        failure = done.judge_failure or (outage_reason(outcomes) if runner is not None else None)
        if failure:
            # Set before the report is rendered, so the report says why the run failed.
            client.set_tag(run_id, run_tags.FAILURE_REASON, failure[:run_tags.REASON_LIMIT])
        writer.log(client, run_id)
        if config.report:
            log_report(client, run_id, config.baseline, status="FAILED" if failure else "FINISHED")
        if failure:
            counts = _counts(outcomes) if runner is not None else {"rows": dataset.num_rows,
                                                                   "answered": dataset.num_rows, "failed": 0, "skipped": 0}
            raise EvaluationFailed(failure, run_id, _endpoint(chat_model), counts,
                                   resume_command(client, run_id, data))
    except KeyboardInterrupt:
        answered = sum(o.status is RowStatus.OK for o in read_journal(journal.path).values()) if journal else 0
        command = resume_command(client, run_id, data)
        if owns_run:
            client.set_terminated(run_id, RunStatus.KILLED, reason=(
                f"interrupted (Ctrl-C) with {answered} of {dataset.num_rows} rows answered; resume with: {command}"))
        print(f"evalkit: interrupted: run {run_id} is {'KILLED' if owns_run else 'left to its caller'} with "
              f"{answered} of {dataset.num_rows} rows answered. Resume with: {command}", file=sys.stderr)
        raise
    except BaseException as exc:
        if owns_run:
            client.set_terminated(run_id, RunStatus.FAILED, reason=failure_text(exc))
        raise
    finally:
        plan.executor.close()
        writer.close()
        if journal is not None:
            journal.publish()
        if response_cache is not None:
            response_cache.close()
    if owns_run:
        client.set_terminated(run_id, RunStatus.FINISHED)
    result = EvaluationResult(
        run_id=run_id,
        metrics=metrics,
        tables=StoredTables(client, run_id),
        artifacts={**{kind: _location(artifacts, name) for kind, name in RESULTS_FILES.items()},
                   **({"report": _location(artifacts, REPORT_FILE)} if artifacts.is_file(REPORT_FILE) else {})},
        estimated_cost_usd=runner.estimate if runner is not None else None,
        stopped_reason=stopped,
        unscored=_unscored(infos, metrics),
        evaluators=infos,
    )
    result.warnings = [*plan.skipped, *_row_failures(outcomes if runner is not None else [])]
    for message in [*result.warnings, *result.unscored.values()]:
        warnings.warn(f"evalkit: {message}", EvaluationWarning, stacklevel=3)  # at the caller of evaluate()
    return result



def failure_text(exc: BaseException) -> str:
    """What a run that ended on ``exc`` records as its failure reason: one line, no secret."""
    if isinstance(exc, EvaluationFailed):
        return exc.reason[:run_tags.REASON_LIMIT]
    return redact(f"{type(exc).__name__}: {exc}")[:run_tags.REASON_LIMIT]


def resume_command(client: TrackingClient, run_id: str, data: Any) -> str:
    """The exact command that continues ``run_id``: the CLI when the data is a file it can find
    again, else the Python call."""
    if not isinstance(data, (str, os.PathLike)):
        return f"evaluate(<the same arguments>, resume={run_id!r})"
    uri = client.tracking_uri
    shown = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else redact(uri)  # a SQLite store is a path
    store = "" if uri == parse_tracking_uri(default_tracking_uri()).uri else f" --tracking-uri {shlex.quote(shown)}"
    return f"evalkit{store} evaluate --resume {run_id}"


def _location(artifacts: ArtifactRepository, name: str) -> str:
    """Where an artifact of the run is: a local path where artifacts are a folder, else its URI."""
    if isinstance(artifacts, LocalArtifactRepository):
        return str(artifacts.root / name)
    return join_artifact_uri(artifacts.artifact_uri, name)


def _endpoint(model: Any) -> str | None:
    if model is None:
        return None
    return getattr(model, "base_url", None) or model.uri


def _counts(outcomes: list[RowOutcome]) -> dict[str, int]:
    return {"rows": len(outcomes), "answered": sum(o.status is RowStatus.OK for o in outcomes),
            "failed": sum(o.status is RowStatus.FAILED for o in outcomes),
            "skipped": sum(o.status is RowStatus.SKIPPED for o in outcomes)}


def _unscored(infos: list[EvaluatorInfo], metrics: dict[str, float]) -> dict[str, str]:
    """Evaluators that scored no row although some rows failed: their metric would be missing."""
    found = {}
    for info in infos:
        prefix = info.metric_prefix
        scored, failed = metrics.get(f"{prefix}/rows_scored"), metrics.get(f"{prefix}/rows_failed", 0)
        if scored == 0 and failed:
            found[prefix] = f"{prefix} scored no row: {int(failed)} failed (see its justification column)"
    return found


def _row_failures(outcomes: list[RowOutcome]) -> list[str]:
    failed = [o for o in outcomes if o.status is RowStatus.FAILED]
    if not failed:
        return []
    return [f"{len(failed)} of {len(outcomes)} rows failed and are recorded with status 'failed' "
            f"({most_common_error(failed)})"]


@dataclass
class _Executed:
    outcomes: list[RowOutcome]  # every row's, in row order, when a model answered (none for given predictions)
    scores: dict[str, ScoreColumns]  # by evaluator name
    judge_failure: str | None = None


CANARY_ROWS = 3  # answered rows the judge is tried on before the model answers the rest


async def _execute(dataset: EvalDataset, runner: Runner | None, template: PromptTemplate,
                   previous: dict[int, RowOutcome], location: JournalLocation, progress: bool | None,
                   scoring: _ChunkScorer, chat_model: Any, judge_model: Any) -> _Executed:
    """Answer, score and write the rows a chunk at a time (``CHUNK_ROWS``), in one event loop
    (the clients belong to it): what a chunk needs lives while it is worked on; what the run's
    metrics need of every row is kept compactly.

    With judged evaluators, the judge is tried on the first few answers before the model answers
    the rest: a judge that cannot work (refused key, unknown model, unreachable, no usable JSON)
    stops the run after a handful of paid model calls, not after all of them."""
    chosen, context = scoring.chosen, scoring.context
    judged = [e for e in chosen if "judge" in evaluator_info(e).requires] if context.judge is not None else []
    try:
        if runner is None:
            if judged:
                scoring.canary = await _judge_canary(judged, _rows_of(dataset, _given(dataset, 0, CANARY_ROWS)),
                                                     context)
            for start in range(0, dataset.num_rows, CHUNK_ROWS):
                await scoring.score(_given(dataset, start, min(start + CHUNK_ROWS, dataset.num_rows)), start, judged)
        else:
            await _answer_and_score(dataset, runner, template, previous, location, progress, judged, context,
                                    chat_model, scoring)
        scoring.writer.drop = {f"{e.name}/raw" for e in chosen if e.name not in scoring.with_raw}
    finally:
        if judge_model is not None:
            await judge_model.aclose()
    return _Executed(scoring.outcomes, scoring.scores, scoring.canary.failure)


async def _answer_and_score(dataset: EvalDataset, runner: Runner, template: PromptTemplate,
                            previous: dict[int, RowOutcome], location: JournalLocation, progress: bool | None,
                            judged: list[Evaluator], context: ScoringContext, chat_model: Any,
                            scoring: _ChunkScorer) -> None:
    """The model answers each chunk's rows that have no answer yet (journalled as they come), and
    the rows are scored while the rest are answered, a slice of consecutive rows (``SCORE_ROWS``)
    as soon as all of its rows are in. The cost estimate adds up every row to send, in row order."""
    kept = {i: o for i, o in previous.items() if o.status is RowStatus.OK}
    pending = dataset.num_rows - len(kept)
    journal = location.open()
    arrivals: _Arrivals | None = None

    def on_outcome(outcome: RowOutcome) -> None:
        journal.append(outcome)
        if arrivals is not None:
            arrivals.add(outcome)

    try:
        with RunProgress(dataset.num_rows, "evaluating", enabled=progress) as bar:
            bar.advance(len(kept))
            runner.on_outcome, runner.progress = on_outcome, bar
            early: dict[int, RowOutcome] = {}  # the canary's rows, answered before the rest
            if judged and pending:
                first = max(0, CANARY_ROWS - len(kept))
                early = await runner.run(_unanswered(dataset, template, kept, 0, dataset.num_rows, first),
                                         total=pending)
                answered = [o for o in [*kept.values(), *early.values()] if o.status is RowStatus.OK]
                scoring.canary = await _judge_canary(judged, _rows_of(dataset, answered[:CANARY_ROWS]), context)
            runner.estimate = runner.estimate_cost([])  # None when the model has no price
            for start in range(0, dataset.num_rows, CHUNK_ROWS):
                stop = min(start + CHUNK_ROWS, dataset.num_rows)
                jobs = _unanswered(dataset, template, kept, start, stop)
                if runner.estimate is not None:
                    for job in jobs:  # one addition per row in row order, as one sum() over the run adds
                        runner.estimate += runner.estimate_cost([job])
                jobs = [job for job in jobs if job.index not in early]
                arrivals = _Arrivals(start, stop, {i: o for i, o in [*kept.items(), *early.items()] if start <= i < stop})
                if scoring.canary.failure:
                    for job in jobs:
                        on_outcome(RowOutcome(job.index, RowStatus.SKIPPED, error_type="judge",
                                              error=f"not sent: {scoring.canary.failure}"))
                    await _score_arrivals(arrivals, scoring, judged, None)
                else:
                    await _score_arrivals(arrivals, scoring, judged, runner.run(jobs, total=pending) if jobs else None,
                                          as_they_come=not (runner.executor.answers_elsewhere or scoring.on_workers))
                del jobs
    except PermanentModelError as exc:
        raise ModelError(f"evaluation stopped before sending more requests: {exc}") from None
    finally:
        journal.close()
        await chat_model.aclose()


SCORE_ROWS = 256  # consecutive answered rows scored at a time, between the event loop's other work


class _Arrivals:
    """The outcomes of a chunk's rows (``start`` to ``stop``) as they arrive, handed out in slices
    of consecutive rows once every row of the slice is in; a scored row's outcome is let go."""

    def __init__(self, start: int, stop: int, ready: dict[int, RowOutcome]) -> None:
        self.next, self.stop = start, stop
        self._frontier = start  # every row before it has arrived
        self._outcomes = ready
        self.ready = asyncio.Event()
        self._advance()

    def add(self, outcome: RowOutcome) -> None:
        self._outcomes[outcome.index] = outcome
        self._advance()

    def _advance(self) -> None:
        while self._frontier in self._outcomes:
            self._frontier += 1
        if self._frontier - self.next >= SCORE_ROWS or self._frontier == self.stop:
            self.ready.set()

    def take(self, everything: bool = False) -> list[RowOutcome]:
        """The next slice whose rows are all in (with ``everything``, the rest: the run is over,
        so every row is in), or an empty list."""
        end = self._frontier if everything else min(self.next + SCORE_ROWS, self.stop)
        if self._frontier < end or end == self.next:
            self.ready.clear()
            return []
        taken = [self._outcomes.pop(i) for i in range(self.next, end)]
        self.next = end
        return taken


async def _score_arrivals(arrivals: _Arrivals, scoring: _ChunkScorer, judged: list[Evaluator],
                          answering: Coroutine[Any, Any, Any] | None, as_they_come: bool = True) -> None:
    """Score ``arrivals`` a slice at a time while ``answering`` (the runner's run) goes on, or
    without ``as_they_come`` once it is over (answers made in other processes, which must be
    journalled as soon as they come; scores made by the executor's workers, which follow their
    answers). A failure on either side stops the other."""
    task = asyncio.ensure_future(answering) if answering is not None else None
    try:
        if task is not None and not as_they_come:
            await asyncio.wait({task})
        while task is not None and not task.done():
            waiter = asyncio.ensure_future(arrivals.ready.wait())
            await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            while rows := arrivals.take():
                await scoring.score(rows, rows[0].index, judged)
                await asyncio.sleep(0)  # the answers that came in meanwhile are read before the next slice
        if task is not None:
            task.result()  # the run's error, if it ended on one
        while rows := arrivals.take(everything=True):
            await scoring.score(rows, rows[0].index, judged)
        if arrivals.next != arrivals.stop:
            raise RuntimeError(f"rows {arrivals.next} to {arrivals.stop - 1} were neither answered nor recorded")
    finally:
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _unanswered(dataset: EvalDataset, template: PromptTemplate, kept: dict[int, RowOutcome], start: int, stop: int,
                limit: int | None = None) -> list[RowJob]:
    """The jobs of rows ``start`` to ``stop`` that have no answer in ``kept`` (the first ``limit`` of them)."""
    found: list[RowJob] = []
    for first in range(start, stop, CHUNK_ROWS):
        found += [job for job in _jobs(dataset, template, first, min(first + CHUNK_ROWS, stop)) if job.index not in kept]
        if limit is not None and len(found) >= limit:
            return found[:limit]
    return found


class _ChunkScorer:
    """Scores chunks of answered rows, writes them to the results table, and keeps what the
    run's aggregates need: each evaluator's scores compactly, and the outcomes without their
    answers (for the run-level metrics; none for given predictions).

    The ``on_workers`` evaluators' scores of the rows the executor's workers scored are in
    ``worker_scores`` (row index: evaluator name: score); the other rows are scored here."""

    def __init__(self, dataset: EvalDataset, chosen: list[Evaluator], context: ScoringContext,
                 writer: ResultsWriter, keep_outcomes: bool, on_workers: list[Evaluator] | None = None,
                 worker_scores: dict[int, dict[str, Score]] | None = None) -> None:
        self.dataset, self.chosen, self.context, self.writer = dataset, chosen, context, writer
        self.keep_outcomes = keep_outcomes
        self.on_workers = on_workers or []
        self.worker_scores = worker_scores if worker_scores is not None else {}
        self.canary = _Canary(set())
        self.scores = {e.name: ScoreColumns() for e in chosen}
        self.with_raw: set[str] = set()  # evaluators that kept a raw reply for some row
        self.outcomes: list[RowOutcome] = []

    async def score(self, chunk: list[RowOutcome], start: int, judged: list[Evaluator]) -> None:
        """Score and write ``chunk``, the outcomes of consecutive rows from ``start``."""
        rows = _eval_rows(self.dataset, chunk, start)
        unjudged = [e for e in self.chosen if e not in judged] if self.canary.failure else self.chosen
        chunk_scores = await score_all([e for e in unjudged if e not in self.on_workers], rows, self.context)
        chunk_scores.update(await self._scored_on_workers(rows))
        for evaluator in self.chosen:
            if evaluator not in unjudged:
                chunk_scores[evaluator.name] = self.canary.keep(evaluator, rows)
        del rows
        table = _results_table(self.dataset, chunk, start)
        for evaluator in self.chosen:
            evaluator_scores = chunk_scores[evaluator.name]
            _add_score_columns(table, evaluator.name, evaluator_scores)
            self.scores[evaluator.name].extend(evaluator_scores)
            if any(s.raw for s in evaluator_scores):
                self.with_raw.add(evaluator.name)
        self.writer.add(table)
        if self.keep_outcomes:
            self.outcomes += [dataclasses.replace(o, output=None) for o in chunk]

    async def _scored_on_workers(self, rows: list[EvalRow]) -> dict[str, list[Score]]:
        """The ``on_workers`` evaluators' scores of ``rows``: the workers' where they scored the
        row, else scored here (rows never sent, or whose worker died before scoring them)."""
        if not self.on_workers:
            return {}
        taken = [self.worker_scores.pop(row.index, None) for row in rows]
        missing = [row for row, scores in zip(rows, taken, strict=True) if scores is None]
        here = await score_all(self.on_workers, missing, self.context) if missing else {}
        left = {name: iter(scores) for name, scores in here.items()}
        return {e.name: [scores[e.name] if scores is not None else next(left[e.name]) for scores in taken]
                for e in self.on_workers}


def _offer_worker_scoring(plan: EvaluationPlan, taken: dict[int, dict[str, Score]]) -> list[Evaluator]:
    """The evaluators the executor's workers score the rows they answer with, each row's scores
    going to ``taken``: those that may (``may_score_on_workers``), if the executor takes the offer."""
    chosen = [e for e in plan.evaluators if may_score_on_workers(e)]
    if not chosen:
        return []
    dataset = plan.dataset
    scoring = WorkerScoring(EvaluatorScorer(chosen, plan.config.concurrency),
                            row_data=lambda jobs: dataset.targets_of([job.index for job in jobs]),
                            take=taken.__setitem__)
    return chosen if plan.executor.score_with(scoring) else []


def _given(dataset: EvalDataset, start: int, stop: int) -> list[RowOutcome]:
    """The given predictions of rows ``start`` to ``stop`` as answered rows."""
    return [RowOutcome(i, RowStatus.OK, output=str(p))
            for i, p in enumerate(dataset.predictions(start, stop), start=start)]


async def _judge_canary(judged: list[Evaluator], rows: list[EvalRow], context: ScoringContext) -> _Canary:
    """The judge tried on ``rows``: it works when it scored one of them (or none of the rows
    applied, which tells nothing). The judge remembers its answers, so the full scoring asks none
    of these requests again; when it cannot work, its scores of these rows (errors and raw replies)
    are what the run keeps for them."""
    canary = _Canary({row.index for row in rows})
    if not rows:
        return canary
    results = await asyncio.gather(*(e.score(rows, context) for e in judged), return_exceptions=True)
    errors: list[str] = []
    for evaluator, result in zip(judged, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            errors.append(f"evaluator {evaluator.name} failed: {type(result).__name__}: {result}")
            continue
        if any(score.scored for score in result):
            return canary
        canary.scores[evaluator.name] = dict(zip((row.index for row in rows), result, strict=True))
        errors += [score.error for score in result if score.error]
    if errors:
        text, count = Counter(errors).most_common(1)[0]
        canary.failure = (f"the judge could not score any of the first {len(rows)} answered rows "
                          f"({count} of {len(errors)} attempts: {redact(text)[:500]})")
    return canary


@dataclass
class _Canary:
    rows: set[int]
    failure: str | None = None
    scores: dict[str, dict[int, Score]] = field(default_factory=dict)  # evaluator: row index: score

    def keep(self, evaluator: Evaluator, rows: list[EvalRow]) -> list[Score]:
        """The evaluator's scores once the judge failed: the canary's own for its rows, "not judged" for the rest."""
        tried = self.scores.get(evaluator.name, {})
        return [tried.get(row.index) or Score(None, error=f"not judged: {self.failure}") for row in rows]


REPORT_FILE = "report.html"


def find_report_renderer() -> Callable[..., str] | None:
    """The HTML report renderer, found through the ``evalkit.reports`` entry-point group."""
    found = plugins.find_plugins(plugins.REPORTS)
    return found["html"].load() if "html" in found else None


def log_report(client: TrackingClient, run_id: str, baseline: str | None, status: str = "FINISHED") -> None:
    """Log the run's HTML report, showing the run as ``status`` (it is rendered before the run
    ends). A report that cannot be rendered is reported, never fatal: the evaluation it
    describes is already paid for and logged."""
    renderer = find_report_renderer()
    if renderer is None:
        return
    try:
        html = renderer(run_id, baseline_run_id=baseline, tracking_uri=client.tracking_uri, status=status)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        text = redact(f"{type(exc).__name__}: {exc}")
        warnings.warn(f"evalkit: could not render the report of run {run_id}: {text}", stacklevel=3)
        client.set_tag(run_id, run_tags.REPORT_ERROR, text[:500])
        return
    client.log_text(run_id, html, REPORT_FILE)


def _open_run(client: TrackingClient, resume: str | None, experiment: str | None, run_name: str | None,
              tags: dict[str, str] | None) -> tuple[str, bool]:
    """The run to log into and whether evaluate() ends it: a resumed run, the caller's active
    run (left open for them), or a new one."""
    if resume:
        run = client.get_run(resume)
        if run.info.lifecycle_stage.value != "active":
            raise InvalidState(f"run {resume} is deleted; restore it before resuming")
        client.update_run(resume, RunStatus.RUNNING)
        return resume, True
    active = fluent.active_run()
    if active is not None and experiment is None:
        return active.info.run_id, False
    experiment_id = (fluent.experiment_named(client, experiment).experiment_id if experiment
                     else fluent.active_experiment_id(client))
    run = client.create_run(experiment_id, run_name=run_name, tags={run_tags.SOURCE: "evaluate", **(tags or {})})
    return run.info.run_id, True


def _run_params(dataset: EvalDataset, model: Any, template: PromptTemplate, params: dict[str, Any],
                chosen: list[Evaluator], model_type: str, data: Any, cache_mode: CacheMode, concurrency: int,
                rate_limit: RateLimit, prices: PriceTable) -> dict[str, str]:
    from evalkit import __version__

    values: dict[str, Any] = {
        "model_uri": model.uri if model is not None else f"predictions:{dataset.prediction_column}",
        "model_type": model_type,
        "inference_params": json.dumps(public_params(params), sort_keys=True),
        "prompt_digest": template.digest,
        "dataset_digest": dataset.digest,
        "dataset_rows": dataset.num_rows,
        "input_column": dataset.input_column,
        "targets_column": dataset.target_column,
        "context_column": dataset.context_column,
        "evaluators": ",".join(f"{e.name}@{e.version}" for e in chosen),
        "evalkit_version": __version__,
        "git_commit": git_commit(),
        "cache_mode": cache_mode.value,
        "concurrency": concurrency,
        "rate_limit_rpm": rate_limit.rpm,
        "rate_limit_tpm": rate_limit.tpm,
        "price_table_version": prices.version,
    }
    if isinstance(data, (str, os.PathLike)):
        values["data_path"] = str(Path(data).resolve())
    return {k: str(v) for k, v in values.items() if v is not None}


# Params that must agree for a resumed run to continue where it stopped.
_RESUME_KEYS = ("model_uri", "inference_params", "prompt_digest", "dataset_digest", BUNDLE_HASH_PARAM)


def _check_resume_matches(client: TrackingClient, run_id: str, run_params: dict[str, str]) -> dict[str, str]:
    """The run's logged params, after checking that the answer-affecting ones match."""
    logged = client.get_run(run_id).data.params
    for key in _RESUME_KEYS:
        if key in logged and logged[key] != run_params.get(key):
            raise InvalidArgument(
                f"cannot resume run {run_id}: its {key} is {logged[key]!r} but this call's is "
                f"{run_params.get(key)!r}; resume with the same model, data, prompt and inference params"
            )
    return logged


def _jobs(dataset: EvalDataset, template: PromptTemplate, start: int, stop: int) -> list[RowJob]:
    inputs, contexts = dataset.inputs(start, stop), dataset.contexts(start, stop)
    records = dataset.frame.iloc[start:stop].to_dict(orient="records")
    return [
        RowJob(start + k, template.render(inputs[k], contexts[k], records[k]), inputs[k], contexts[k], records[k])
        for k in range(stop - start)
    ]


def _eval_rows(dataset: EvalDataset, outcomes: list[RowOutcome], start: int) -> list[EvalRow]:
    """The rows evaluators see, for ``outcomes`` of consecutive rows from ``start``."""
    stop = start + len(outcomes)
    inputs, contexts, targets = dataset.inputs(start, stop), dataset.contexts(start, stop), dataset.targets(start, stop)
    return [eval_row(o, inputs[k], contexts[k], targets[k]) for k, o in enumerate(outcomes)]


def _rows_of(dataset: EvalDataset, outcomes: list[RowOutcome]) -> list[EvalRow]:
    """The rows evaluators see, for outcomes of any rows."""
    return [row for o in outcomes for row in _eval_rows(dataset, [o], o.index)]


def _add_score_columns(table: pd.DataFrame, name: str, scores: list[Score]) -> None:
    """The evaluator's per-row columns (its raw replies' too: the writer drops that column when
    no row of the run has one)."""
    table[f"{name}/score"] = [s.value for s in scores]
    table[f"{name}/justification"] = [s.error or s.justification for s in scores]
    table[f"{name}/status"] = [_score_status(s) for s in scores]
    table[f"{name}/raw"] = [s.raw for s in scores]


def _score_status(score: Score) -> str:
    if not score.applicable:
        return "not_applicable"
    return "scored" if score.scored else "failed"


def _results_table(dataset: EvalDataset, outcomes: list[RowOutcome], start: int) -> pd.DataFrame:
    """One row per input row of ``outcomes`` (consecutive rows from ``start``): the data, the answer, and what it took."""
    stop = start + len(outcomes)
    table = pd.DataFrame({"row": range(start, stop), "inputs": dataset.inputs(start, stop)})
    if dataset.context_column:
        table["contexts"] = dataset.contexts(start, stop)
    if dataset.target_column:
        table["targets"] = dataset.targets(start, stop)
    details = pd.DataFrame.from_records([o.to_json() for o in outcomes]).drop(columns=["index"])
    details = details.rename(columns={"output": "outputs"})
    details["latency_ms"] = pd.to_numeric(details.pop("latency_s")) * 1000
    details["total_latency_ms"] = pd.to_numeric(details.pop("total_latency_s")) * 1000
    return pd.concat([table, details], axis=1)
