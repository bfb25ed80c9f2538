"""The first half of an evaluation: everything that can be checked and resolved before the first
paid call. ``plan(config)`` reads the data, picks the prompt and the evaluators, loads the price
table and builds the model and the judge (clients only: no request is sent); ``execute(plan)``
(``evalkit.evaluation.engine``) then runs, scores and logs. The suite's preflight plans every
(dataset, model) pair this way, so a suite file and ``evaluate()`` refuse the same things with the
same words.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from evalkit.errors import EvalkitError, InvalidArgument
from evalkit.evaluation.config import EvalConfig
from evalkit.evaluation.data import EvalDataset, load_dataset
from evalkit.evaluation.prompts import PromptTemplate, resolve_prompt
from evalkit.evaluation.registry import resolve_evaluators
from evalkit.evaluation.scoring import Evaluator, EvaluatorInfo, evaluator_info
from evalkit.inference.executors import Executor, get_executor
from evalkit.inference.pricing import PriceTable
from evalkit.inference.providers.base import ChatModel
from evalkit.inference.providers.callables import (
    BatchCallableModel,
    CallableModel,
    batch,
)
from evalkit.inference.providers.resolve import build_model, parse_model_uri
from evalkit.models.evaluation import open_bundle
from evalkit.models.resolve import is_bundle_uri


@dataclass
class EvaluationPlan:
    """An evaluation checked and resolved, ready to run: what ``execute`` needs besides the store."""

    config: EvalConfig
    dataset: EvalDataset
    template: PromptTemplate
    evaluators: list[Evaluator]
    infos: list[EvaluatorInfo]  # what each evaluator declared, in the same order
    prices: PriceTable
    model: ChatModel | None  # None: the answers are the dataset's predictions column
    judge: ChatModel | None
    executor: Executor  # answers the rows that need a request (see evalkit.inference.executors)
    skipped: list[str]  # default evaluators left out (an extra is missing), and why: warned about
    bundle_params: dict[str, str]  # for a model bundle (models:/, runs:/): its source, version and hash


def plan(config: EvalConfig) -> EvaluationPlan:
    """Check and resolve ``config`` without sending any request to a model or a judge.

    Raises InvalidArgument naming the value at fault (NotFound for an unknown baseline run);
    :func:`option_of` says which option of the config the error came from.
    """
    bundle_params: dict[str, str] = {}
    if is_bundle_uri(config.model):
        with _option("model"):
            bundle = open_bundle(config.model, config.prompt, config.inference_params)
        # The run evaluates the bundle's own model, prompt and params (checked by EvalConfig's rules).
        config = EvalConfig.build(**{**dict(config), "model": bundle.model, "prompt": bundle.prompt,
                                     "inference_params": bundle.inference_params})
        bundle_params = bundle.run_params
    with _option("data"):
        dataset = load_dataset(config.data, targets=config.targets, predictions=config.predictions,
                               col_mapping=config.col_mapping)
    with _option("prompt"):
        template = resolve_prompt(config.prompt, has_contexts=dataset.context_column is not None)
        template.check({str(k): v for k, v in dataset.frame.iloc[0].to_dict().items()})
    available = {name for name, present in (("targets", dataset.target_column), ("contexts", dataset.context_column),
                                            ("judge", config.judge), ("model_run", config.model is not None)) if present}
    skipped: list[str] = []
    with _option("evaluators"):
        chosen = resolve_evaluators(config.evaluators, config.model_type, config.extra_metrics,
                                    config.evaluator_config, available, skipped)
    with _option("prices"):
        prices = PriceTable.load(config.prices)
    with _option("model"):
        model = _build_model(config.model, config.timeout, config.concurrency) if config.model is not None else None
    with _option("judge"):
        judge = (build_model(parse_model_uri(config.judge), timeout=config.timeout, max_connections=config.concurrency)
                 if config.judge else None)
    if config.max_cost_usd is not None and model is not None:
        name = getattr(model, "model", None) or model.uri
        if prices.lookup(name) is None:
            with _option("max_cost_usd"):
                raise InvalidArgument(
                    f"max_cost_usd needs a price for {name!r}, which the price table lacks: pass prices={{{name!r}: "
                    "{'input': ..., 'output': ..., 'cached_input': ...}} (USD per 1M tokens)"
                )
    with _option("executor"):
        try:
            executor = get_executor(config.executor, config.executor_options)
        except TypeError as exc:  # an option the executor does not take
            raise InvalidArgument(f"executor_options for {config.executor!r}: {exc}") from None
    if config.baseline is not None:
        from evalkit.tracking.client import TrackingClient

        with _option("baseline"):
            TrackingClient().get_run(config.baseline)  # an unknown baseline fails now, before any request
    return EvaluationPlan(config, dataset, template, chosen, [evaluator_info(e) for e in chosen], prices, model, judge,
                          executor, skipped, bundle_params)


def option_of(exc: BaseException) -> str | None:
    """The config option a planning error came from, if it came from one."""
    return getattr(exc, "evalkit_option", None)


@contextmanager
def _option(name: str) -> Iterator[None]:
    # The error keeps its class and words; a suite file maps the option to its line.
    try:
        yield
    except EvalkitError as exc:
        exc.evalkit_option = name  # type: ignore[attr-defined]
        raise


def _build_model(model: Any, timeout: float, concurrency: int) -> ChatModel:
    if isinstance(model, batch):
        return BatchCallableModel(model)
    if isinstance(model, str):
        return build_model(parse_model_uri(model), timeout=timeout, max_connections=concurrency)
    return CallableModel(model)
