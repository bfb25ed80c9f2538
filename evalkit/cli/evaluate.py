"""``evalkit evaluate``: run an evaluation from the command line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from evalkit.cli.output import print_table
from evalkit.errors import NotFound
from evalkit.evaluation.columns import MAPPING_KEYS
from evalkit.evaluation.model_types import DEFAULTS

if TYPE_CHECKING:
    from evalkit.evaluation.config import EvalConfig
    from evalkit.evaluation.plan import EvaluationPlan


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


def _parse_executor_options(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, object]:
    options: dict[str, object] = {}
    for key, raw in _pairs(values, "--executor-option", "num_workers=4").items():
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw  # an address such as ray://head:10001
    return options


def _parse_col_mapping(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str] | None:
    return _pairs(values, "--col-mapping", "inputs=question") or None


def _parse_evaluators(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str | list[str], list[str]]:
    """``default``, names, or ``default`` plus names: (evaluators, extra_metrics) for evaluate()."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("give 'default' or comma-separated evaluator names", param_hint="--evaluators")
    if "default" in names:
        return "default", [name for name in names if name != "default"]
    return names, []


def _load_prompt(_ctx: click.Context, _param: click.Parameter, path: Path | None) -> str | list[Any] | None:
    """A prompt file: JSON or YAML holding a list of {role, content} messages, or any other
    file holding the user message, a jinja2 template. EvalConfig checks the template."""
    import yaml

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
    return prompt


def _option(name: str, *flags: str, **settings: Any) -> click.Option:
    """A click option for EvalConfig's field ``name``: the field's description is its help and the
    field's default its default, unless ``settings`` say otherwise; EvalConfig checks the value."""
    from evalkit.evaluation.config import EvalConfig

    field = EvalConfig.model_fields[name]
    settings.setdefault("help", field.description)
    if "default" not in settings and not settings.get("multiple") and field.default is not None:
        settings.update(default=field.default, show_default=True)
    return click.Option([*flags, name], **settings)


def _options() -> list[click.Parameter]:
    from evalkit.inference.cache import CacheMode

    return [
        _option("model", "--model", "-m", help="Model URI, e.g. openai:/gpt-4o or evalkit:/extractive, or a model bundle: "
                                               "models:/NAME/VERSION, models:/NAME/STAGE, models:/NAME@ALIAS, runs:/RUN_ID/PATH."),
        _option("data", "--data", "-d", type=click.Path(dir_okay=False), help="CSV, JSONL or Parquet file."),
        _option("targets", "--targets", "-t"),
        _option("predictions", "--predictions", help="Column of answers computed elsewhere (instead of --model)."),
        _option("col_mapping", "--col-mapping", multiple=True, callback=_parse_col_mapping, metavar="KEY=COLUMN",
                help=f"Read KEY ({', '.join(MAPPING_KEYS)}) from COLUMN, e.g. inputs=question (repeatable)."),
        _option("prompt", "--prompt", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                callback=_load_prompt,
                help="Prompt file: a jinja2 template of the user message (.txt, .j2, ...), or a .json/.yaml list "
                     "of {role, content} messages (an optional system message, then the user one). "
                     "[default: answer from the numbered passages, or the question alone]"),
        _option("model_type", "--model-type", type=click.Choice(list(DEFAULTS))),
        _option("evaluators", "--evaluators", callback=_parse_evaluators,
                help="Comma-separated evaluator names; 'default' (the model type's defaults that fit the data) "
                     "can be one of them, e.g. default,ragas:faithfulness."),
        _option("judge", "--judge", metavar="URI"),
        _option("experiment", "--experiment", "-e"),
        _option("run_name", "--run-name"),
        _option("inference_params", "--param", "-p", multiple=True, callback=_parse_param,
                help="Inference param KEY=VALUE (repeatable)."),
        _option("concurrency", "--concurrency", "-c", type=int),
        click.Option(["--rpm"], type=float, default=None, help="Requests-per-minute budget."),
        click.Option(["--tpm"], type=float, default=None, help="Tokens-per-minute budget."),
        _option("cache", "--cache", type=click.Choice([mode.value for mode in CacheMode])),
        _option("max_cost_usd", "--max-cost-usd", type=float),
        _option("timeout", "--timeout", type=float),
        _option("baseline", "--baseline", metavar="RUN_ID"),
        _option("executor", "--executor", help="Where rows are answered: local (this process) or ray (a Ray "
                                               "cluster; the 'ray' extra)."),
        _option("executor_options", "--executor-option", multiple=True, callback=_parse_executor_options,
                metavar="KEY=VALUE", help="Executor option, e.g. address=auto, num_workers=4, batch_size=64, "
                                          "concurrency=32 (per worker) (repeatable)."),
        _option("resume", "--resume", metavar="RUN_ID",
                help="Continue an interrupted run; model, data and params default to the run's own "
                     "(pass the same --prompt again if it had one)."),
    ]


# The options whose flag is not the field's name.
_FLAGS = {"inference_params": "--param", "rate_limit": "--rpm/--tpm", "extra_metrics": "--evaluators",
          "executor_options": "--executor-option"}


class _ConfigCommand(click.Command):
    """A command whose options are made from EvalConfig's fields when it is first used, so that
    ``evalkit --help`` does not load pydantic and the evaluation modules."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self.params:
            self.params = _options()
        return super().get_params(ctx)


def _evaluate(rpm: float | None, tpm: float | None, **options: Any) -> None:
    from evalkit.errors import EvaluationWarning
    from evalkit.evaluation.engine import execute

    config = evaluate_config(rpm, tpm, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)  # printed below, once, as one line each
        result = execute(_plan(config))
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


evaluate_command = _ConfigCommand("evaluate", callback=_evaluate,
                                  help="Run a model over a dataset, score it, and log the run.")


def evaluate_config(rpm: float | None, tpm: float | None, **options: Any) -> EvalConfig:
    """The EvalConfig of ``evalkit evaluate``'s options; a bad value is a click error naming its option."""
    from pydantic import ValidationError

    from evalkit.evaluation.config import EvalConfig, problems
    from evalkit.tracking.client import TrackingClient

    if options["resume"]:
        logged = TrackingClient(create=False).get_run(options["resume"]).data.params
        # A bundle's run resumes with the same bundle version, which brings its own prompt and params.
        source = logged.get("model_source")
        options["model"] = options["model"] or source or logged.get("model_uri")
        options["data"] = options["data"] or logged.get("data_path")
        options["targets"] = options["targets"] or logged.get("targets_column")
        if not source:
            options["inference_params"] = options["inference_params"] or json.loads(logged.get("inference_params", "{}"))
    if not options["data"]:
        raise click.UsageError("--data is required (or --resume RUN_ID of a run that recorded its data path)")
    options["evaluators"], options["extra_metrics"] = options["evaluators"]
    options["rate_limit"] = {"rpm": rpm, "tpm": tpm} if (rpm or tpm) else None
    options["executor_options"] = options["executor_options"] or None
    try:
        return EvalConfig(**options)
    except ValidationError as exc:
        problem = problems(exc)[0]
        if not problem.option:
            raise click.UsageError(problem.message) from None
        flag = _FLAGS.get(problem.option, "--" + problem.option.replace("_", "-"))
        raise click.BadParameter(problem.message, param_hint=flag) from None


def _plan(config: EvalConfig) -> EvaluationPlan:
    from evalkit.evaluation.plan import option_of, plan

    try:
        return plan(config)
    except NotFound as exc:
        if option_of(exc) == "baseline":
            raise click.BadParameter(str(exc), param_hint="--baseline") from None
        raise
