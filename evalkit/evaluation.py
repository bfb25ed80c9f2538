"""``evaluate()``: run a model over a dataset, score it, and log everything as a run."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.cache import CacheMode, ResponseCache
from evalkit.data import EvalDataset, load_dataset
from evalkit.entities import Metric, Param, RunStatus
from evalkit.errors import InvalidArgument, InvalidState
from evalkit.evaluator_registry import resolve_evaluators
from evalkit.journal import JOURNAL_FILE, Journal, read_journal
from evalkit.judge import LLMJudge
from evalkit.models.base import ModelError, PermanentModelError
from evalkit.models.callables import BatchCallableModel, CallableModel, batch
from evalkit.models.resolve import build_model, parse_model_uri
from evalkit.params_check import check_inference_params, parse_rate_limit
from evalkit.pricing import PriceTable
from evalkit.prompts import PromptTemplate, resolve_prompt
from evalkit.provenance import git_commit
from evalkit.run_metrics import run_metrics
from evalkit.runner.caller import ModelCaller, RetryPolicy
from evalkit.runner.progress import RunProgress
from evalkit.runner.ratelimit import RateLimits
from evalkit.runner.records import RowJob, RowOutcome, RowStatus
from evalkit.runner.runner import Runner, RunnerConfig
from evalkit.scoring import EvalRow, Evaluator, Score, ScoringContext
from evalkit.tracking import fluent
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.sql.store import now_ms

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


def evaluate(
    model: str | Callable[..., Any] | batch | None = None,
    data: Any = None,
    targets: str | None = None,
    *,
    predictions: str | None = None,
    model_type: str = "question-answering",
    evaluators: str | Sequence[str] | None = "default",
    extra_metrics: Sequence[str] | None = None,
    evaluator_config: dict[str, dict[str, Any]] | None = None,
    col_mapping: dict[str, str] | None = None,
    inference_params: dict[str, Any] | None = None,
    prompt: str | PromptTemplate | list[dict[str, str]] | None = None,
    judge: str | None = None,
    judge_params: dict[str, Any] | None = None,
    judge_rate_limit: float | dict[str, float] | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    concurrency: int = 16,
    rate_limit: float | dict[str, float] | None = None,
    cache: str | bool | None = "on",
    max_cost_usd: float | None = None,
    resume: str | None = None,
    prices: dict[str, dict[str, float]] | str | None = None,
    timeout: float = 60.0,
    max_attempts: int = 6,
    progress: bool | None = None,
    tags: dict[str, str] | None = None,
    cache_path: str | os.PathLike[str] | None = None,
    baseline: str | None = None,
    report: bool = True,
) -> EvaluationResult:
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

    Inputs are checked before any request: a wrong column, value or option raises
    ``InvalidArgument`` naming it. A row whose call still fails after its retries is recorded
    with its error and counted in ``error_count``; it is never dropped.
    """
    dataset = load_dataset(data, targets=targets, predictions=predictions, col_mapping=col_mapping)
    if model is None and dataset.prediction_column is None:
        raise InvalidArgument("evaluate() needs a model, or predictions='<column>' holding answers computed elsewhere")
    if model is not None and dataset.prediction_column is not None:
        raise InvalidArgument("pass either model= or predictions=, not both")
    params = check_inference_params(inference_params)
    rpm, tpm = parse_rate_limit(rate_limit)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgument(f"concurrency must be a positive integer, got {concurrency!r}")
    if max_cost_usd is not None and (not isinstance(max_cost_usd, (int, float)) or max_cost_usd <= 0):
        raise InvalidArgument(f"max_cost_usd must be a positive number of US dollars, got {max_cost_usd!r}")
    cache_mode = CacheMode.parse(cache)
    template = resolve_prompt(prompt, has_contexts=dataset.context_column is not None)
    template.check(_row_dict(dataset, 0))
    judge_inference = check_inference_params(judge_params)
    judge_rpm, judge_tpm = parse_rate_limit(judge_rate_limit)
    available = {name for name, present in (("targets", dataset.target_column), ("contexts", dataset.context_column),
                                            ("judge", judge), ("model_run", model is not None)) if present}
    chosen = resolve_evaluators(evaluators, model_type, extra_metrics, evaluator_config, available)
    price_table = PriceTable.load(prices)
    chat_model = _build_model(model, timeout, concurrency) if model is not None else None
    judge_model = build_model(parse_model_uri(judge), timeout=timeout, max_connections=concurrency) if judge else None
    if max_cost_usd is not None and chat_model is not None:
        name = getattr(chat_model, "model", None) or chat_model.uri
        if price_table.lookup(name) is None:
            raise InvalidArgument(
                f"max_cost_usd needs a price for {name!r}, which the price table lacks: pass prices={{{name!r}: "
                "{'input': ..., 'output': ..., 'cached_input': ...}} (USD per 1M tokens)"
            )

    client = TrackingClient()
    if baseline is not None:
        client.get_run(baseline)  # an unknown baseline fails now, before any request
    run_id, owns_run = _open_run(client, resume, experiment, run_name, tags)
    response_cache = ResponseCache(cache_path, cache_mode) if cache_mode is not CacheMode.OFF else None
    try:
        run_params = _run_params(dataset, chat_model, template, params, chosen, model_type, data, cache_mode,
                                 concurrency, rpm, tpm, price_table)
        if judge_model is not None:
            run_params.update(judge_uri=judge_model.uri, judge_params=json.dumps(judge_inference, sort_keys=True))
        if resume:
            # What changes answers must match; how hard to push (concurrency, limits, cache)
            # may differ, and the run keeps the values it started with.
            logged = _check_resume_matches(client, run_id, run_params)
            run_params = {k: v for k, v in run_params.items() if k not in logged}
            client.set_tag(run_id, "evalkit.resumed_at", str(now_ms()))
        client.log_batch(run_id, params=[Param(k, v) for k, v in run_params.items()])
        artifact_dir = Path(client.get_run(run_id).info.artifact_uri)
        previous = read_journal(artifact_dir / JOURNAL_FILE) if resume else {}
        runner = None
        if chat_model is not None:
            jobs = [job for job in _jobs(dataset, template) if _needs_answer(previous.get(job.index))]
            runner, outcomes = _answer(
                chat_model, jobs, params, price_table, previous, artifact_dir, response_cache, progress,
                RunnerConfig(concurrency=concurrency, rpm=rpm, tpm=tpm, max_attempts=max_attempts, timeout=timeout,
                             max_cost_usd=max_cost_usd),
            )
            if runner.snapshot:
                client.log_batch(run_id, params=[Param("model_snapshot", runner.snapshot)])
        else:
            outcomes = [RowOutcome(i, RowStatus.OK, output=str(p)) for i, p in
                        enumerate(dataset.frame[dataset.prediction_column])]
        rows = _eval_rows(dataset, outcomes)
        judge_client = None
        if judge_model is not None:
            policy = RetryPolicy(max_attempts, max(100, len(rows)), timeout)
            caller = ModelCaller(judge_model, judge_inference, price_table, RateLimits(judge_rpm, judge_tpm), policy,
                                 response_cache)
            judge_client = LLMJudge(caller, concurrency, max_cost_usd=max_cost_usd,
                                    spent_before=runner.spent if runner is not None else 0.0)
        context = ScoringContext(judge_client, concurrency,
                                 judge_client.cost_by_row if judge_client is not None else {})
        scores = _run_async(_score_all(chosen, rows, context, judge_model))
        if judge_client is not None and judge_client.model_snapshot:
            client.log_batch(run_id, params=[Param("judge_snapshot", judge_client.model_snapshot)])

        table = _results_table(dataset, outcomes)
        metrics = run_metrics(outcomes) if chat_model is not None else {}
        _add_scores(table, metrics, chosen, scores)
        if judge_client is not None:
            metrics["judge/calls"] = judge_client.calls
            metrics["judge/cache_hits"] = judge_client.cache_hits
        if runner is not None:
            metrics["cost/spent_usd"] = runner.spent + (judge_client.caller.spent if judge_client is not None else 0.0)
            if runner.estimate is not None:
                metrics["cost/estimated_usd"] = runner.estimate
        timestamp = now_ms()
        client.log_batch(run_id, metrics=[Metric(k, float(v), timestamp, 0) for k, v in metrics.items()])
        if runner is not None and runner.stopped_reason:
            client.set_tag(run_id, "evalkit.stopped_reason", runner.stopped_reason)
        client.log_table(run_id, table, f"{RESULTS_TABLE}.json")
        client.log_table(run_id, table, f"{RESULTS_TABLE}.parquet")
        if report:
            log_report(client, run_id, baseline)
    except KeyboardInterrupt:
        if owns_run:
            client.set_terminated(run_id, RunStatus.KILLED)
        raise
    except BaseException:
        if owns_run:
            client.set_terminated(run_id, RunStatus.FAILED)
        raise
    finally:
        if response_cache is not None:
            response_cache.close()
    if owns_run:
        client.set_terminated(run_id, RunStatus.FINISHED)
    return EvaluationResult(
        run_id=run_id,
        metrics=metrics,
        tables={RESULTS_TABLE: table},
        artifacts={**{name: str(artifact_dir / f"{RESULTS_TABLE}.{name}") for name in ("json", "parquet")},
                   **({"report": str(artifact_dir / REPORT_FILE)} if (artifact_dir / REPORT_FILE).exists() else {})},
        estimated_cost_usd=runner.estimate if runner is not None else None,
        stopped_reason=runner.stopped_reason if runner is not None else None,
    )


REPORT_ENTRY_POINTS = "evalkit.reports"
REPORT_FILE = "report.html"


def find_report_renderer() -> Callable[..., str] | None:
    """The HTML report renderer, found through the ``evalkit.reports`` entry-point group."""
    found = {ep.name: ep for ep in entry_points(group=REPORT_ENTRY_POINTS)}
    return found["html"].load() if "html" in found else None


def log_report(client: TrackingClient, run_id: str, baseline: str | None) -> None:
    """Log the run's HTML report. A report that cannot be rendered is reported, never fatal:
    the evaluation it describes is already paid for and logged."""
    renderer = find_report_renderer()
    if renderer is None:
        return
    try:
        html = renderer(run_id, baseline_run_id=baseline, tracking_uri=client.tracking_uri, status="FINISHED")
    except Exception as exc:  # noqa: BLE001 - see the docstring
        warnings.warn(f"evalkit: could not render the report of run {run_id}: {exc}", stacklevel=3)
        client.set_tag(run_id, "evalkit.report_error", f"{type(exc).__name__}: {exc}"[:500])
        return
    client.log_text(run_id, html, REPORT_FILE)


def _build_model(model: Any, timeout: float, concurrency: int) -> Any:
    if isinstance(model, batch):
        return BatchCallableModel(model)
    if isinstance(model, str):
        return build_model(parse_model_uri(model), timeout=timeout, max_connections=concurrency)
    if callable(model):
        return CallableModel(model)
    raise InvalidArgument(f"model must be a model URI, a callable or batch(fn), got {type(model).__name__}")


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
    experiment_id = (fluent.set_experiment(experiment).experiment_id if experiment
                     else fluent.active_experiment_id(client))
    run = client.create_run(experiment_id, run_name=run_name, tags={"evalkit.source": "evaluate", **(tags or {})})
    return run.info.run_id, True


def _run_params(dataset: EvalDataset, model: Any, template: PromptTemplate, params: dict[str, Any],
                chosen: list[Evaluator], model_type: str, data: Any, cache_mode: CacheMode, concurrency: int,
                rpm: float | None, tpm: float | None, prices: PriceTable) -> dict[str, str]:
    from evalkit import __version__

    values: dict[str, Any] = {
        "model_uri": model.uri if model is not None else f"predictions:{dataset.prediction_column}",
        "model_type": model_type,
        "inference_params": json.dumps(params, sort_keys=True),
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
        "rate_limit_rpm": rpm,
        "rate_limit_tpm": tpm,
        "price_table_version": prices.version,
    }
    if isinstance(data, (str, os.PathLike)):
        values["data_path"] = str(Path(data).resolve())
    return {k: str(v) for k, v in values.items() if v is not None}


# Params that must agree for a resumed run to continue where it stopped.
_RESUME_KEYS = ("model_uri", "inference_params", "prompt_digest", "dataset_digest")


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


def _row_dict(dataset: EvalDataset, index: int) -> dict[str, Any]:
    return {str(k): v for k, v in dataset.frame.iloc[index].to_dict().items()}


def _jobs(dataset: EvalDataset, template: PromptTemplate) -> list[RowJob]:
    inputs, contexts = dataset.inputs(), dataset.contexts()
    records = dataset.frame.to_dict(orient="records")
    return [
        RowJob(i, template.render(inputs[i], contexts[i], records[i]), inputs[i], contexts[i], records[i])
        for i in range(dataset.num_rows)
    ]


def _needs_answer(previous: RowOutcome | None) -> bool:
    return previous is None or previous.status is not RowStatus.OK


def _answer(model: Any, jobs: list[RowJob], params: dict[str, Any], prices: PriceTable,
            previous: dict[int, RowOutcome], artifact_dir: Path, response_cache: ResponseCache | None,
            progress: bool | None, config: RunnerConfig) -> tuple[Runner, list[RowOutcome]]:
    kept = {i: o for i, o in previous.items() if o.status is RowStatus.OK}
    journal = Journal(artifact_dir / JOURNAL_FILE)
    total = len(jobs) + len(kept)
    try:
        with RunProgress(total, "evaluating", enabled=progress) as bar:
            bar.advance(len(kept))
            runner = Runner(model, params, config, prices, response_cache, on_outcome=journal.append, progress=bar)
            runner.estimate = runner.estimate_cost(jobs)
            new = _run_async(_run_and_close(runner, model, jobs))
    except PermanentModelError as exc:
        raise ModelError(f"evaluation stopped before sending more requests: {exc}") from None
    finally:
        journal.close()
    merged = {**kept, **new}
    return runner, [merged[i] for i in sorted(merged)]


async def _run_and_close(runner: Runner, model: Any, jobs: list[RowJob]) -> dict[int, RowOutcome]:
    try:
        return await runner.run(jobs)
    finally:
        await model.aclose()


def _run_async(coroutine: Any) -> Any:
    """Run a coroutine to completion, also from inside a running event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_in_new_loop(coroutine)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = _run_in_new_loop(coroutine)
        except BaseException as exc:  # handed back to the caller's thread below
            result["error"] = exc

    thread = threading.Thread(target=target, name="evalkit-evaluate")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _run_in_new_loop(coroutine: Any) -> Any:
    # uvloop's event loop costs far less CPU per request than asyncio's, which is what limits
    # throughput at high concurrency; a Runner with a loop factory leaves the global policy alone.
    try:
        import uvloop
    except ImportError:  # not built for this platform (Windows): asyncio's own loop works too
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


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


async def _score_all(chosen: list[Evaluator], rows: list[EvalRow], context: ScoringContext,
                     judge_model: Any) -> dict[str, list[Score]]:
    """Score with every evaluator; "post" evaluators (cost) go last, when the judge's cost is known.

    An evaluator that fails as a whole (an unreachable embeddings endpoint, a bug) fails its
    rows, each with the error, and the others still score: the answers are already paid for.
    """
    scores: dict[str, list[Score]] = {}
    try:
        for stage in ("score", "post"):
            batch = [e for e in chosen if getattr(e, "stage", "score") == stage]
            results = await asyncio.gather(*(e.score(rows, context) for e in batch), return_exceptions=True)
            for evaluator, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, Exception):
                        raise result
                    error = f"evaluator {evaluator.name} failed: {type(result).__name__}: {result}"
                    result = [Score(None, error=error) for _ in rows]
                elif len(result) != len(rows):
                    error = f"evaluator {evaluator.name} returned {len(result)} scores for {len(rows)} rows"
                    result = [Score(None, error=error) for _ in rows]
                scores[evaluator.name] = result
    finally:
        if judge_model is not None:
            await judge_model.aclose()
    return scores


def _add_scores(table: pd.DataFrame, metrics: dict[str, float], chosen: list[Evaluator],
                scores: dict[str, list[Score]]) -> None:
    """Each evaluator's aggregates into ``metrics`` and its per-row columns into ``table``."""
    for evaluator in chosen:
        evaluator_scores = scores[evaluator.name]
        prefix = getattr(evaluator, "metric_prefix", None) or f"{evaluator.name}/{evaluator.version}"
        metrics.update({f"{prefix}/{k}": v for k, v in evaluator.aggregate(evaluator_scores).items()})
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
