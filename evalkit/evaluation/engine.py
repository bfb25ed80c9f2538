"""``evaluate()``: run a model over a dataset, score it, and log everything as a run."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import warnings
from collections import Counter
from collections.abc import Callable
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
from evalkit.evaluation.run_evaluators import log_evaluators
from evalkit.evaluation.run_metrics import run_metrics
from evalkit.evaluation.scoring import (
    STAGES,
    EvalRow,
    Evaluator,
    EvaluatorInfo,
    Score,
    ScoringContext,
    evaluator_info,
)
from evalkit.inference.cache import CacheMode, ResponseCache
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

RESULTS_TABLE = "eval_results_table"


@dataclass
class EvaluationResult:
    """What evaluate() returns: the metrics, the per-row table, and where the run is."""

    run_id: str
    metrics: dict[str, float]
    tables: dict[str, pd.DataFrame]
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
    cache, the journal, the budget and the scoring, so the run is logged as a local one.

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
        jobs = [job for job in _jobs(dataset, plan.template) if _needs_answer(previous.get(job.index))] if runner else []
        done = run_sync(_execute(dataset, runner, jobs, previous, journal, config.progress, chosen, context,
                                   chat_model, judge_model))
        outcomes, scores = done.outcomes, done.scores
        if runner is not None and runner.snapshot:
            client.log_batch(run_id, params=[Param("model_snapshot", runner.snapshot)])
        if judge_client is not None and judge_client.model_snapshot:
            client.log_batch(run_id, params=[Param("judge_snapshot", judge_client.model_snapshot)])

        table = _results_table(dataset, outcomes)
        metrics = run_metrics(outcomes) if chat_model is not None else {}
        _add_scores(table, metrics, chosen, infos, scores)
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
        client.log_table(run_id, table, f"{RESULTS_TABLE}.json")
        client.log_table(run_id, table, f"{RESULTS_TABLE}.parquet")
        if config.report:
            log_report(client, run_id, config.baseline, status="FAILED" if failure else "FINISHED")
        if failure:
            raise EvaluationFailed(failure, run_id, _endpoint(chat_model), _counts(outcomes),
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
        if journal is not None:
            journal.publish()
        if response_cache is not None:
            response_cache.close()
    if owns_run:
        client.set_terminated(run_id, RunStatus.FINISHED)
    result = EvaluationResult(
        run_id=run_id,
        metrics=metrics,
        tables={RESULTS_TABLE: table},
        artifacts={**{kind: _location(artifacts, f"{RESULTS_TABLE}.{kind}") for kind in ("json", "parquet")},
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
    outcomes: list[RowOutcome]
    scores: dict[str, list[Score]]
    judge_failure: str | None = None


CANARY_ROWS = 3  # answered rows the judge is tried on before the model answers the rest


async def _execute(dataset: EvalDataset, runner: Runner | None, jobs: list[RowJob], previous: dict[int, RowOutcome],
                   location: JournalLocation, progress: bool | None, chosen: list[Evaluator], context: ScoringContext,
                   chat_model: Any, judge_model: Any) -> _Executed:
    """Answer the rows, then score them, in one event loop (the clients belong to it).

    With judged evaluators, the judge is tried on the first few answers before the model answers
    the rest: a judge that cannot work (refused key, unknown model, unreachable, no usable JSON)
    stops the run after a handful of paid model calls, not after all of them."""
    judged = [e for e in chosen if "judge" in evaluator_info(e).requires] if context.judge is not None else []
    canary = _Canary(set())
    try:
        if runner is not None:
            kept = {i: o for i, o in previous.items() if o.status is RowStatus.OK}
            journal = location.open()
            try:
                with RunProgress(len(jobs) + len(kept), "evaluating", enabled=progress) as bar:
                    bar.advance(len(kept))
                    runner.on_outcome, runner.progress = journal.append, bar
                    runner.estimate = runner.estimate_cost(jobs)
                    new: dict[int, RowOutcome] = {}
                    if judged and jobs:
                        first = max(0, CANARY_ROWS - len(kept))
                        new.update(await runner.run(jobs[:first], total=len(jobs)))
                        answered = [o for o in [*kept.values(), *new.values()] if o.status is RowStatus.OK]
                        canary = await _judge_canary(judged, _eval_rows(dataset, answered[:CANARY_ROWS]), context)
                        jobs = jobs[first:]
                    if canary.failure:
                        for job in jobs:
                            skipped = RowOutcome(job.index, RowStatus.SKIPPED, error_type="judge",
                                                 error=f"not sent: {canary.failure}")
                            new[job.index] = skipped
                            journal.append(skipped)
                    else:
                        new.update(await runner.run(jobs, total=len(jobs) + len(new)))
            except PermanentModelError as exc:
                raise ModelError(f"evaluation stopped before sending more requests: {exc}") from None
            finally:
                journal.close()
                await chat_model.aclose()
            merged = {**kept, **new}
            outcomes = [merged[i] for i in sorted(merged)]
        else:
            outcomes = [RowOutcome(i, RowStatus.OK, output=str(p)) for i, p in
                        enumerate(dataset.frame[dataset.prediction_column])]
            if judged:
                canary = await _judge_canary(judged, _eval_rows(dataset, outcomes[:CANARY_ROWS]), context)
        rows = _eval_rows(dataset, outcomes)
        unjudged = [e for e in chosen if e not in judged] if canary.failure else chosen
        scores = await _score_all(unjudged, rows, context)
        for evaluator in chosen:
            if evaluator not in unjudged:
                scores[evaluator.name] = canary.keep(evaluator, rows)
    finally:
        if judge_model is not None:
            await judge_model.aclose()
    return _Executed(outcomes, scores, canary.failure)


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


def _jobs(dataset: EvalDataset, template: PromptTemplate) -> list[RowJob]:
    inputs, contexts = dataset.inputs(), dataset.contexts()
    records = dataset.frame.to_dict(orient="records")
    return [
        RowJob(i, template.render(inputs[i], contexts[i], records[i]), inputs[i], contexts[i], records[i])
        for i in range(dataset.num_rows)
    ]


def _needs_answer(previous: RowOutcome | None) -> bool:
    return previous is None or previous.status is not RowStatus.OK


def _eval_rows(dataset: EvalDataset, outcomes: list[RowOutcome]) -> list[EvalRow]:
    inputs, contexts, targets = dataset.inputs(), dataset.contexts(), dataset.targets()
    return [
        EvalRow(
            index=o.index, input=inputs[o.index], output=o.output if o.status is RowStatus.OK else None,
            target=targets[o.index], contexts=contexts[o.index], status=o.status.value, latency_s=o.latency_s,
            total_latency_s=o.total_latency_s, cached=o.cached, cost_usd=o.cost_usd, input_tokens=o.input_tokens,
            output_tokens=o.output_tokens,
        )
        for o in outcomes
    ]


async def _score_all(chosen: list[Evaluator], rows: list[EvalRow], context: ScoringContext) -> dict[str, list[Score]]:
    """Score with every evaluator; "post" evaluators (cost) go last, when the judge's cost is known.

    An evaluator that fails as a whole (an unreachable embeddings endpoint, a bug) fails its
    rows, each with the error, and the others still score: the answers are already paid for.
    """
    scores: dict[str, list[Score]] = {}
    infos = {e.name: evaluator_info(e) for e in chosen}
    for stage in STAGES:
        batch = [e for e in chosen if infos[e.name].stage == stage]
        results = await asyncio.gather(*(e.score(rows, context) for e in batch), return_exceptions=True)
        for evaluator, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                error = redact(f"evaluator {evaluator.name} failed: {type(result).__name__}: {result}")
                result = [Score(None, error=error) for _ in rows]
            elif len(result) != len(rows):
                error = f"evaluator {evaluator.name} returned {len(result)} scores for {len(rows)} rows"
                result = [Score(None, error=error) for _ in rows]
            scores[evaluator.name] = result
    return scores


def _add_scores(table: pd.DataFrame, metrics: dict[str, float], chosen: list[Evaluator], infos: list[EvaluatorInfo],
                scores: dict[str, list[Score]]) -> None:
    """Each evaluator's aggregates into ``metrics`` and its per-row columns into ``table``."""
    for evaluator, info in zip(chosen, infos, strict=True):
        evaluator_scores = scores[evaluator.name]
        metrics.update({f"{info.metric_prefix}/{k}": v for k, v in evaluator.aggregate(evaluator_scores).items()})
        table[f"{evaluator.name}/score"] = [s.value for s in evaluator_scores]
        table[f"{evaluator.name}/justification"] = [s.error or s.justification for s in evaluator_scores]
        table[f"{evaluator.name}/status"] = [_score_status(s) for s in evaluator_scores]
        if any(s.raw for s in evaluator_scores):
            table[f"{evaluator.name}/raw"] = [s.raw for s in evaluator_scores]


def _score_status(score: Score) -> str:
    if not score.applicable:
        return "not_applicable"
    return "scored" if score.scored else "failed"


def _results_table(dataset: EvalDataset, outcomes: list[RowOutcome]) -> pd.DataFrame:
    """One row per input row, in input order: the data, the answer, and what it took."""
    table = pd.DataFrame({"row": range(dataset.num_rows), "inputs": dataset.inputs()})
    if dataset.context_column:
        table["contexts"] = dataset.contexts()
    if dataset.target_column:
        table["targets"] = dataset.targets()
    by_index = {o.index: o for o in outcomes}
    records = [by_index[i].to_json() for i in range(dataset.num_rows)]
    details = pd.DataFrame.from_records(records).drop(columns=["index"])
    details = details.rename(columns={"output": "outputs"})
    details["latency_ms"] = pd.to_numeric(details.pop("latency_s")) * 1000
    details["total_latency_ms"] = pd.to_numeric(details.pop("total_latency_s")) * 1000
    return pd.concat([table, details], axis=1)
