"""``EvalConfig``: every option of an evaluation, with its type, default, rule and meaning.

It is the one place an option is declared. To add one, add a field here: a type, a default, a
description, and a validator when the type alone does not say what is acceptable. Then
``evaluate()`` takes it (its signature is built from these fields), a suite file takes it as a
top-level key with the same rule (unless ``evalkit.suite.config`` lists it among the options the
suite sets itself), and :func:`evalkit.evaluation.plan.plan` and ``execute`` read it from the
config. ``evalkit evaluate`` shows it as a flag once it has a line in ``evalkit.cli.evaluate``'s
``_options()`` (help and default come from the field).

Validation here needs neither the data nor the network: what does (columns, the prompt against a
row, evaluators against the data, prices, a baseline run) is checked by ``plan``. Each rule
raises a message naming the option and the value at fault; :meth:`EvalConfig.build` turns them
into one ``InvalidArgument``.
"""

from __future__ import annotations

import inspect
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from evalkit.errors import InvalidArgument
from evalkit.evaluation.columns import check_col_mapping
from evalkit.evaluation.model_types import DEFAULTS


@dataclass(frozen=True)
class RateLimit:
    """Requests and tokens per minute; None is no limit."""

    rpm: float | None = None
    tpm: float | None = None


def _rule(check: Callable[[Any], Any]) -> BeforeValidator:
    """A validator from a function that raises InvalidArgument: pydantic reports ValueErrors with
    the field's location, which the suite file turns into a line number."""

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except InvalidArgument as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(validate)


def check_model_uri(uri: Any) -> str:
    """A model URI, parsed to check it (the URI is kept as given; the model is built by plan). A
    model bundle's URI (``models:/...``, ``runs:/...``) is resolved by plan, which reads the store."""
    from evalkit.inference.providers.resolve import parse_model_uri
    from evalkit.models.resolve import is_bundle_uri

    if not is_bundle_uri(uri):
        parse_model_uri(uri)
    return uri


def _model(value: Any) -> Any:
    from evalkit.inference.providers.callables import batch

    if value is None or isinstance(value, batch):
        return value
    if isinstance(value, str):
        return check_model_uri(value)
    if callable(value):
        return value
    raise InvalidArgument(f"model must be a model URI, a callable or batch(fn), got {type(value).__name__}")


def _judge(value: Any) -> str | None:
    return None if value is None else check_model_uri(value)


def _model_type(value: Any) -> str:
    if value not in DEFAULTS:
        raise InvalidArgument(f"unknown model_type {value!r}; use one of {', '.join(DEFAULTS)}")
    return value


def _evaluators(value: Any) -> str | list[Any] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return list(value)
    raise InvalidArgument(f"evaluators must be 'default', a name or a list of evaluators, got {value!r}")


def _extra_metrics(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise InvalidArgument(f"extra_metrics must be a list of evaluators, got {value!r}")


def _evaluator_config(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
        raise InvalidArgument(f"evaluator_config must map evaluator names to dicts of settings, got {value!r}")
    return dict(value)


def _col_mapping(value: Any) -> dict[str, str] | None:
    return check_col_mapping(value) or None


def _inference_params(value: Any) -> dict[str, Any]:
    from evalkit.inference.params_check import check_inference_params

    return check_inference_params(value)


def _prompt(value: Any) -> Any:
    if value is None:
        return None  # the default depends on the data: plan picks it
    from evalkit.evaluation.prompts import resolve_prompt

    return resolve_prompt(value, has_contexts=False)


def _rate_limit(value: Any) -> RateLimit | None:
    if isinstance(value, RateLimit):
        value = {"rpm": value.rpm, "tpm": value.tpm}
    from evalkit.inference.params_check import parse_rate_limit

    rpm, tpm = parse_rate_limit(value)
    return None if rpm is None and tpm is None else RateLimit(rpm, tpm)


def _cache(value: Any) -> Any:
    from evalkit.inference.cache import CacheMode

    return CacheMode.parse(value)


def _max_cost_usd(value: Any) -> float | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0):
        raise InvalidArgument(f"max_cost_usd must be a positive number of US dollars, got {value!r}")
    return value


def _timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise InvalidArgument(f"timeout must be a positive number of seconds per request, got {value!r}")
    return float(value)


def _max_attempts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"max_attempts must be an integer of at least 1 (tries per request), got {value!r}")
    return value


def _prices(value: Any) -> Any:
    if value is not None and not isinstance(value, (dict, str, os.PathLike)):
        raise InvalidArgument(f"prices must be a dict or the path of a JSON file, not {type(value).__name__}")
    return value


# The shared types: a suite file's keys and a model's uri/params/prompt use these too.
ModelUri = Annotated[str, _rule(check_model_uri)]
InferenceParams = Annotated[dict[str, Any], _rule(_inference_params)]
Prompt = Annotated[Any, _rule(_prompt)]
ColMapping = Annotated[dict[str, str] | None, _rule(_col_mapping)]


class EvalConfig(BaseModel):
    """One evaluation, as ``evaluate()`` takes it (see its docstring for the whole story)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, validate_default=True,
                              protected_namespaces=())

    model: Annotated[Any, _rule(_model)] = Field(
        None, description="Model URI (openai:/gpt-4o, evalkit:/extractive), a function, batch(fn, size), "
                          "or None with predictions=")
    data: Any = Field(None, description="A DataFrame, a datasets.Dataset, or a CSV/JSONL/Parquet path")
    targets: str | None = Field(None, description="Column holding the expected answers")
    predictions: str | None = Field(None, description="Column of answers computed elsewhere (instead of a model)")
    model_type: Annotated[str, _rule(_model_type)] = Field(
        "question-answering", description=f"Picks the default evaluators: {', '.join(DEFAULTS)}")
    evaluators: Annotated[str | list[Any] | None, _rule(_evaluators)] = Field(
        "default", description="'default' (the model type's defaults that fit the data), a name, or a list of "
                               "names, @evaluator functions and evaluator objects")
    extra_metrics: Annotated[list[Any], _rule(_extra_metrics)] = Field(
        None, description="Evaluators added to those of evaluators=")
    evaluator_config: Annotated[dict[str, dict[str, Any]], _rule(_evaluator_config)] = Field(
        None, description="Settings by evaluator name: {'name': {...}}")
    col_mapping: ColMapping = Field(
        None, description="Which column holds inputs, context, targets or predictions: {'inputs': 'question'}")
    inference_params: InferenceParams = Field(
        None, description="Generation parameters of the chat API (temperature, max_tokens, ...); a server's own "
                          "in extra_body={...}")
    prompt: Prompt = Field(
        None, description="A jinja2 template of the user message, or a list of {role, content} templates "
                          "[default: answer from the numbered passages, or the question alone]")
    judge: Annotated[str | None, _rule(_judge)] = Field(
        None, description="Model URI of the judge for judged metrics [default: offline scorers]")
    judge_params: InferenceParams = Field(None, description="The judge's inference params")
    judge_rate_limit: Annotated[RateLimit | None, _rule(_rate_limit)] = Field(
        None, description="The judge's requests per minute, or {'rpm': ..., 'tpm': ...}")
    experiment: str | None = Field(None, description="Experiment name [default: the active or default experiment]")
    run_name: str | None = Field(None, description="Name of the run")
    concurrency: int = Field(16, strict=True, ge=1, le=4096, description="Requests in flight at once")
    rate_limit: Annotated[RateLimit | None, _rule(_rate_limit)] = Field(
        None, description="Requests per minute, or {'rpm': ..., 'tpm': ...}")
    cache: Annotated[Any, _rule(_cache)] = Field(
        "on", description="Response cache: 'on', 'off', 'read-only' (replay) or 'refresh' (call, then store)")
    max_cost_usd: Annotated[float | None, _rule(_max_cost_usd)] = Field(
        None, description="Stop sending requests before this spend (US dollars)")
    resume: str | None = Field(None, description="Run id of an interrupted run to continue")
    prices: Annotated[Any, _rule(_prices)] = Field(
        None, description="Price overrides {model: {'input': .., 'output': .., 'cached_input': ..}} (USD per 1M "
                          "tokens) or the path of a JSON price table")
    timeout: Annotated[float, _rule(_timeout)] = Field(60.0, description="Seconds per request")
    max_attempts: Annotated[int, _rule(_max_attempts)] = Field(6, le=20, description="Tries per request")
    progress: bool | None = Field(None, description="Show a progress bar [default: on a terminal]")
    tags: dict[str, str] | None = Field(None, description="Tags of the run")
    cache_path: str | os.PathLike[str] | None = Field(
        None, description="The response cache file [default: $EVALKIT_CACHE_PATH or ~/.cache/evalkit/responses.db]")
    baseline: str | None = Field(None, description="Run id to compare with in the report")
    report: bool = Field(True, description="Log an HTML report with the run")
    executor: Any = Field("local", description=(
        "Where the rows are answered: 'local' (this process), 'ray' (a Ray cluster; pip install 'evalkit[ray]'), "
        "an executor installed under the evalkit.executors entry-point group, or an Executor object"))
    executor_options: dict[str, Any] | None = Field(None, description=(
        "The executor's options; for ray: address, num_workers, batch_size, concurrency (per worker), "
        "cpus_per_worker, forward_env"))

    @model_validator(mode="after")
    def _model_or_predictions(self) -> EvalConfig:
        has_predictions = self.predictions is not None or "predictions" in (self.col_mapping or {})
        if self.model is None and not has_predictions:
            raise ValueError("evaluate() needs a model, or predictions='<column>' holding answers computed elsewhere")
        if self.model is not None and has_predictions:
            raise ValueError("pass either model= or predictions=, not both")
        return self

    @classmethod
    def build(cls, **options: Any) -> EvalConfig:
        """The config of these options; raises InvalidArgument naming every option at fault."""
        try:
            return cls(**options)
        except ValidationError as exc:
            raise InvalidArgument("; ".join(map(str, problems(exc)))) from None



@dataclass(frozen=True)
class Problem:
    """An option at fault ("" for a rule that joins options) and what is wrong with its value."""

    option: str
    message: str

    def __str__(self) -> str:
        return self.message if self.option in self.message else f"{self.option}: {self.message}"


def problems(exc: ValidationError) -> list[Problem]:
    """The problems pydantic found, each with its option; our rules' messages name the value,
    pydantic's own (a wrong type, a number out of range) get it appended."""
    found = []
    for error in exc.errors():
        option = ".".join(str(part) for part in error["loc"])
        if error["type"] == "value_error":
            found.append(Problem(option, error["msg"].removeprefix("Value error, ")))
        else:
            found.append(Problem(option, f"{error['msg']}, got {error['input']!r}"))
    return found


def signature(head: tuple[str, ...] = ("model", "data", "targets")) -> inspect.Signature:
    """``evaluate()``'s signature: the options ``head`` may be passed by position, the rest by keyword.
    An option checked by a rule of its own takes more than its stored type (a rate limit is a number
    or a dict): it is shown without one."""
    parameters = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD if name in head
                          else inspect.Parameter.KEYWORD_ONLY, default=field.default,
                          annotation=(inspect.Parameter.empty if any(isinstance(m, BeforeValidator)
                                                                     for m in field.metadata) else field.annotation))
        for name, field in EvalConfig.model_fields.items()
    ]
    return inspect.Signature(parameters, return_annotation="EvaluationResult")
