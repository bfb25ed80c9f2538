"""Everything about a suite that can be checked before its first paid call: each dataset reads
and has the columns asked for, each model URI, param and prompt is valid, the evaluators exist
for the data, and every gate names a metric the run will log (and, for a paired gate, one with
per-row values). A problem raises SuiteConfigError with the line and key of the suite file."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from evalkit.errors import InvalidArgument, NotFound
from evalkit.evaluation.data import EvalDataset, load_dataset, read_frame
from evalkit.evaluation.prompts import resolve_prompt
from evalkit.evaluation.registry import resolve_evaluators
from evalkit.evaluation.run_metrics import run_metrics
from evalkit.evaluation.scoring import Evaluator, Score, evaluator_info
from evalkit.inference.params_check import check_inference_params, parse_rate_limit
from evalkit.inference.providers.resolve import parse_model_uri
from evalkit.inference.runner.records import RowOutcome, RowStatus
from evalkit.models.evaluation import open_bundle
from evalkit.models.resolve import is_bundle_uri
from evalkit.suite.config import Suite, problem
from evalkit.suite.expressions import resolve_metric
from evalkit.suite.gates import row_values

# Metrics evaluate() logs besides the runner's and the evaluators' own.
_EVALUATE_METRICS = ("cost/spent_usd", "cost/estimated_usd", "judge/calls", "judge/cache_hits")


@dataclass
class Prepared:
    """A dataset read and checked, ready to evaluate."""

    frame: pd.DataFrame
    dataset: EvalDataset


def preflight(suite: Suite) -> dict[str, Prepared]:
    """Check the suite (see the module doc) and return each dataset, read, by name."""
    spec = suite.spec
    prepared: dict[str, Prepared] = {}
    for i, item in enumerate(spec.datasets):
        try:
            frame = read_frame(suite.dataset_path(item))
            if item.limit:
                frame = frame.head(item.limit).reset_index(drop=True)
            dataset = load_dataset(frame, targets=item.targets, col_mapping=item.col_mapping)
        except InvalidArgument as exc:
            raise problem(suite, ("datasets", i), str(exc)) from None
        prepared[item.name] = Prepared(frame, dataset)
    _check(suite, ("judge",), lambda: spec.judge and parse_model_uri(spec.judge))
    _check(suite, ("judge_params",), lambda: check_inference_params(spec.judge_params))
    _check(suite, ("rate_limit",), lambda: parse_rate_limit(spec.rate_limit))
    _check(suite, ("judge_rate_limit",), lambda: parse_rate_limit(spec.judge_rate_limit))
    for i, model in enumerate(spec.models):
        prompt = model.prompt
        if is_bundle_uri(model.uri):
            try:
                prompt = open_bundle(model.uri, model.prompt, model.params).prompt
            except (InvalidArgument, NotFound) as exc:
                raise problem(suite, ("models", i, "uri"), str(exc)) from None
        else:
            _check(suite, ("models", i, "uri"), lambda m=model: parse_model_uri(m.uri))
        _check(suite, ("models", i, "params"), lambda m=model: check_inference_params(m.params))
        for name, item in prepared.items():
            has_contexts = item.dataset.context_column is not None
            _check(suite, ("models", i, "prompt"),
                   lambda p=prompt, d=item, c=has_contexts: resolve_prompt(p, c).check(_first_row(d)),
                   f" (dataset {name})")

    for i, item in enumerate(spec.datasets):
        dataset = prepared[item.name].dataset
        available = {name for name, present in (("targets", dataset.target_column), ("contexts", dataset.context_column),
                                                ("judge", spec.judge), ("model_run", True)) if present}
        try:
            chosen = resolve_evaluators(spec.evaluators, spec.model_type, spec.extra_metrics, spec.evaluator_config,
                                        available)
        except InvalidArgument as exc:
            raise problem(suite, ("evaluators",), f"{exc} (dataset {item.name})") from None
        _check_gate_metrics(suite, chosen, item.name)
    return prepared


def _first_row(item: Prepared) -> dict[str, object]:
    return {str(k): v for k, v in item.frame.iloc[0].to_dict().items()}


def _check(suite: Suite, location: tuple[str | int, ...], check: object, suffix: str = "") -> None:
    try:
        check()  # type: ignore[operator]
    except InvalidArgument as exc:
        raise problem(suite, location, f"{exc}{suffix}") from None


def expected_metrics(chosen: list[Evaluator]) -> tuple[set[str], set[str]]:
    """The metric names a run with these evaluators logs, and the prefixes of evaluators whose
    names could not be worked out (any metric under them is accepted).

    Names come from the code that produces them: the runner's metrics of a one-row run, and each
    evaluator's aggregate of one scored row."""
    one_row = RowOutcome(0, RowStatus.OK, output="", latency_s=0.1, total_latency_s=0.1, input_tokens=1,
                         output_tokens=1)
    names = set(run_metrics([one_row])) | set(_EVALUATE_METRICS)
    open_prefixes = set()
    for evaluator in chosen:
        prefix = evaluator_info(evaluator).metric_prefix
        try:
            keys = evaluator.aggregate([Score(0.0, details={"model_usd": 0.0, "judge_usd": 0.0})])
        except Exception:  # noqa: BLE001 - a plugin's aggregate may need real scores; accept its metrics
            open_prefixes.add(prefix)
            continue
        names.update(f"{prefix}/{key}" for key in keys)
    return names, open_prefixes


def _check_gate_metrics(suite: Suite, chosen: list[Evaluator], dataset: str) -> None:
    names, open_prefixes = expected_metrics(chosen)
    infos = [evaluator_info(e) for e in chosen]
    columns = pd.DataFrame(columns=["row", "inputs", "status", "cached", "total_latency_ms",
                                    *(f"{e.name}/score" for e in chosen)])
    wanted: list[tuple[tuple[str | int, ...], str, bool]] = [
        (("thresholds", i), threshold.metric, False) for i, threshold in enumerate(suite.thresholds)
    ]
    if suite.spec.baseline is not None:
        wanted += [(("baseline", "rules", i, "metric"), rule.metric, rule.test == "paired")
                   for i, rule in enumerate(suite.spec.baseline.rules)]
    for location, metric, paired in wanted:
        if any(metric.split("/", 1)[0] == prefix.split("/", 1)[0] for prefix in open_prefixes):
            continue
        try:
            resolved = resolve_metric(metric, names)
        except InvalidArgument as exc:
            raise problem(suite, location, f"{exc} (with the evaluators used on dataset {dataset})") from None
        if paired and row_values(columns, resolved, infos) is None:
            raise problem(suite, location, f"{resolved} has no per-row values to pair; compare it with "
                                           "test: tolerance (e.g. tolerance: '10%')")
