"""``evalkit evaluate``: run an evaluation from the command line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from evalkit.cli.output import print_table
from evalkit.errors import InvalidArgument, NotFound
from evalkit.evaluation.columns import MAPPING_KEYS
from evalkit.evaluation.model_types import DEFAULTS

if TYPE_CHECKING:
    from evalkit.evaluation.prompts import PromptTemplate


def _pairs(values: tuple[str, ...], option: str, example: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: use KEY=VALUE, e.g. {example}", param_hint=option)
        pairs[key.strip()] = value
    return pairs


def _parse_param(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, object]:
    params: dict[str, object] = {}
    for key, raw in _pairs(values, "--param", "temperature=0").items():
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def _parse_col_mapping(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str] | None:
    mapping = _pairs(values, "--col-mapping", "inputs=question")
    unknown = [key for key in mapping if key not in MAPPING_KEYS]
    if unknown:
        raise click.BadParameter(f"unknown key(s) {', '.join(map(repr, unknown))}; use {', '.join(MAPPING_KEYS)}",
                                 param_hint="--col-mapping")
    empty = [key for key, column in mapping.items() if not column.strip()]
    if empty:
        raise click.BadParameter(f"no column given for {', '.join(map(repr, empty))}", param_hint="--col-mapping")
    return mapping or None


def _parse_evaluators(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str | list[str], list[str]]:
    """``default``, names, or ``default`` plus names: (evaluators, extra_metrics) for evaluate()."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("give 'default' or comma-separated evaluator names", param_hint="--evaluators")
    if "default" in names:
        return "default", [name for name in names if name != "default"]
    return names, []


def _check_judge(_ctx: click.Context, _param: click.Parameter, uri: str | None) -> str | None:
    if uri is not None:
        from evalkit.inference.providers.resolve import parse_model_uri

        try:
            parse_model_uri(uri)
        except InvalidArgument as exc:
            raise click.BadParameter(str(exc), param_hint="--judge") from None
    return uri


def _load_prompt(_ctx: click.Context, _param: click.Parameter, path: Path | None) -> PromptTemplate | None:
    import yaml

    from evalkit.evaluation.prompts import resolve_prompt
    """A prompt file: JSON or YAML holding a list of {role, content} messages, or any other
    file holding the user message, a jinja2 template."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--prompt") from None
    prompt: Any = text
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        try:
            prompt = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise click.BadParameter(f"{path} is not valid {path.suffix[1:].upper()}: {exc}",
                                     param_hint="--prompt") from None
        if not isinstance(prompt, list):
            raise click.BadParameter(
                f"{path} must hold a list of {{role, content}} messages (a template alone goes in a .txt or .j2 "
                f"file), got {type(prompt).__name__}", param_hint="--prompt")
    try:
        return resolve_prompt(prompt, has_contexts=False)
    except InvalidArgument as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--prompt") from None


@click.command("evaluate")
@click.option("--model", "-m", help="Model URI, e.g. openai:/gpt-4o or evalkit:/extractive, or a model bundle: "
                                   "models:/NAME/VERSION, models:/NAME/STAGE, models:/NAME@ALIAS, runs:/RUN_ID/PATH.")
@click.option("--data", "-d", type=click.Path(dir_okay=False), help="CSV, JSONL or Parquet file.")
@click.option("--targets", "-t", default=None, help="Column holding the expected answers.")
@click.option("--predictions", default=None, help="Column of answers computed elsewhere (instead of --model).")
@click.option("--col-mapping", "col_mapping", multiple=True, callback=_parse_col_mapping, metavar="KEY=COLUMN",
              help=f"Read KEY ({', '.join(MAPPING_KEYS)}) from COLUMN, e.g. inputs=question (repeatable).")
@click.option("--prompt", type=click.Path(exists=True, dir_okay=False, path_type=Path), callback=_load_prompt,
              help="Prompt file: a jinja2 template of the user message (.txt, .j2, ...), or a .json/.yaml list "
                   "of {role, content} messages (an optional system message, then the user one). "
                   "[default: answer from the numbered passages, or the question alone]")
@click.option("--model-type", type=click.Choice(list(DEFAULTS)), default="question-answering", show_default=True,
              help="Picks the default evaluators.")
@click.option("--evaluators", default="default", show_default=True, callback=_parse_evaluators,
              help="Comma-separated evaluator names; 'default' (the model type's defaults that fit the data) "
                   "can be one of them, e.g. default,ragas:faithfulness.")
@click.option("--judge", default=None, metavar="URI", callback=_check_judge,
              help="Model URI of the judge for judged metrics, e.g. openai:/gpt-4o-mini [default: offline scorers].")
@click.option("--experiment", "-e", default=None, help="Experiment name [default: the default experiment].")
@click.option("--run-name", default=None)
@click.option("--param", "-p", "params", multiple=True, callback=_parse_param, help="Inference param KEY=VALUE (repeatable).")
@click.option("--concurrency", "-c", default=16, show_default=True, type=click.IntRange(1, 4096))
@click.option("--rpm", type=float, default=None, help="Requests-per-minute budget.")
@click.option("--tpm", type=float, default=None, help="Tokens-per-minute budget.")
@click.option("--cache", type=click.Choice(["on", "off", "read-only", "refresh"]), default="on", show_default=True)
@click.option("--max-cost-usd", type=float, default=None, help="Stop sending requests before this spend.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per request.")
@click.option("--baseline", default=None, metavar="RUN_ID", help="Compare with this run in the report.")
@click.option("--resume", default=None, metavar="RUN_ID",
              help="Continue an interrupted run; model, data and params default to the run's own "
                   "(pass the same --prompt again if it had one).")
def evaluate_command(model: str | None, data: str | None, targets: str | None, predictions: str | None,
                     col_mapping: dict[str, str] | None, prompt: PromptTemplate | None, model_type: str,
                     evaluators: tuple[str | list[str], list[str]], judge: str | None, experiment: str | None,
                     run_name: str | None, params: dict[str, object], concurrency: int, rpm: float | None,
                     tpm: float | None, cache: str, max_cost_usd: float | None, timeout: float,
                     baseline: str | None, resume: str | None) -> None:
    """Run a model over a dataset, score it, and log the run."""
    from evalkit.evaluation.engine import EvaluationWarning, evaluate
    from evalkit.tracking.client import TrackingClient

    if resume:
        logged = TrackingClient(create=False).get_run(resume).data.params
        # A bundle's run resumes with the same bundle version, which brings its own prompt and params.
        source = logged.get("model_source")
        model = model or source or logged.get("model_uri")
        data = data or logged.get("data_path")
        targets = targets or logged.get("targets_column")
        if not source:
            params = params or json.loads(logged.get("inference_params", "{}"))
    if not data:
        raise click.UsageError("--data is required (or --resume RUN_ID of a run that recorded its data path)")
    if not model and not predictions:
        raise click.UsageError("--model is required (or --predictions COLUMN)")
    if baseline:
        try:
            TrackingClient(create=False).get_run(baseline)
        except NotFound:
            raise click.BadParameter(f"no run with id {baseline!r} in this tracking store",
                                     param_hint="--baseline") from None
    rate_limit = {"rpm": rpm, "tpm": tpm} if (rpm or tpm) else None
    chosen, extra_metrics = evaluators
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)  # printed below, once, as one line each
        result = evaluate(
            model=model, data=data, targets=targets, predictions=predictions, col_mapping=col_mapping, prompt=prompt,
            model_type=model_type, evaluators=chosen, extra_metrics=extra_metrics, judge=judge,
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
