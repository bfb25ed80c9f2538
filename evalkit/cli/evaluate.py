"""``evalkit evaluate``: run an evaluation from the command line."""

from __future__ import annotations

import json
import warnings

import click

from evalkit.cli.output import print_table
from evalkit.tracking.client import TrackingClient


def _parse_param(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, object]:
    params: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: use KEY=VALUE, e.g. temperature=0", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@click.command("evaluate")
@click.option("--model", "-m", help="Model URI, e.g. openai:/gpt-4o or evalkit:/extractive.")
@click.option("--data", "-d", type=click.Path(dir_okay=False), help="CSV, JSONL or Parquet file.")
@click.option("--targets", "-t", default=None, help="Column holding the expected answers.")
@click.option("--predictions", default=None, help="Column of answers computed elsewhere (instead of --model).")
@click.option("--experiment", "-e", default=None, help="Experiment name [default: the default experiment].")
@click.option("--run-name", default=None)
@click.option("--evaluators", default="default", show_default=True, help="Comma-separated evaluator names, or 'default'.")
@click.option("--param", "-p", "params", multiple=True, callback=_parse_param, help="Inference param KEY=VALUE (repeatable).")
@click.option("--concurrency", "-c", default=16, show_default=True, type=click.IntRange(1, 4096))
@click.option("--rpm", type=float, default=None, help="Requests-per-minute budget.")
@click.option("--tpm", type=float, default=None, help="Tokens-per-minute budget.")
@click.option("--cache", type=click.Choice(["on", "off", "read-only", "refresh"]), default="on", show_default=True)
@click.option("--max-cost-usd", type=float, default=None, help="Stop sending requests before this spend.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per request.")
@click.option("--baseline", default=None, metavar="RUN_ID", help="Compare with this run in the report.")
@click.option("--resume", default=None, metavar="RUN_ID",
              help="Continue an interrupted run; model, data and params default to the run's own.")
def evaluate_command(model: str | None, data: str | None, targets: str | None, predictions: str | None,
                     experiment: str | None, run_name: str | None, evaluators: str, params: dict[str, object],
                     concurrency: int, rpm: float | None, tpm: float | None, cache: str, max_cost_usd: float | None,
                     timeout: float, baseline: str | None, resume: str | None) -> None:
    """Run a model over a dataset, score it, and log the run."""
    from evalkit.evaluation import EvaluationWarning, evaluate

    if resume:
        logged = TrackingClient().get_run(resume).data.params
        model = model or logged.get("model_uri")
        data = data or logged.get("data_path")
        targets = targets or logged.get("targets_column")
        params = params or json.loads(logged.get("inference_params", "{}"))
    if not data:
        raise click.UsageError("--data is required (or --resume RUN_ID of a run that recorded its data path)")
    if not model and not predictions:
        raise click.UsageError("--model is required (or --predictions COLUMN)")
    rate_limit = {"rpm": rpm, "tpm": tpm} if (rpm or tpm) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)  # printed below, once, as one line each
        result = evaluate(
            model=model, data=data, targets=targets, predictions=predictions,
            evaluators="default" if evaluators == "default" else [e.strip() for e in evaluators.split(",") if e.strip()],
            inference_params=params, experiment=experiment, run_name=run_name, concurrency=concurrency,
            rate_limit=rate_limit, cache=cache, max_cost_usd=max_cost_usd, resume=resume, timeout=timeout,
            baseline=baseline,
        )
    rows = sorted(result.metrics.items())
    print_table(f"run {result.run_id}", ["metric", "value"], rows)
    if result.stopped_reason:
        click.echo(f"stopped early: {result.stopped_reason}; continue with --resume {result.run_id}", err=True)
    if "report" in result.artifacts:
        click.echo(f"report: {result.artifacts['report']}")
    click.echo(f"run_id: {result.run_id}")
    for line in result.warnings:
        click.echo(f"warning: {line}", err=True)
    # A metric that could not be measured is not a result: say so, and exit like any error.
    for message in result.unscored.values():
        click.echo(f"error: {message}", err=True)
    if result.unscored:
        raise SystemExit(2)
