"""Everything about a suite that can be checked before its first paid call. The file's keys were
checked when it loaded, with evaluate()'s own rules (``EvalConfig``); here each dataset is read
and every (dataset, model) pair is planned as evaluate() plans it (columns, prompt, evaluators,
models built: see ``evalkit.evaluation.plan``), and every gate must name a metric the run will
log (for a paired gate, one with per-row values). A problem raises SuiteConfigError with the line
and key of the suite file."""

from __future__ import annotations

import pandas as pd
from pydantic import ValidationError

from evalkit.errors import InvalidArgument, NotFound
from evalkit.evaluation.config import EvalConfig, problems
from evalkit.evaluation.data import read_frame
from evalkit.evaluation.plan import EvaluationPlan, option_of, plan
from evalkit.evaluation.run_metrics import run_metrics
from evalkit.evaluation.scoring import Evaluator, Score, evaluator_info
from evalkit.inference.runner.records import RowOutcome, RowStatus
from evalkit.suite.config import SUITE_OPTIONS, DatasetSpec, ModelSpec, Suite, problem
from evalkit.suite.expressions import resolve_metric
from evalkit.suite.gates import row_values

# Metrics evaluate() logs besides the runner's and the evaluators' own.
_EVALUATE_METRICS = ("cost/spent_usd", "cost/estimated_usd", "judge/calls", "judge/cache_hits")

Pair = tuple[str, str]  # (dataset name, model name)


def preflight(suite: Suite, progress: bool | None = None) -> dict[Pair, EvaluationPlan]:
    """Check the suite (see the module doc) and return the plan of each (dataset, model) pair;
    each plan's budget is the suite's ``budget_usd``."""
    spec = suite.spec
    plans: dict[Pair, EvaluationPlan] = {}
    for i, item in enumerate(spec.datasets):
        try:
            frame = read_frame(suite.dataset_path(item))
        except InvalidArgument as exc:
            raise problem(suite, ("datasets", i), str(exc)) from None
        if item.limit:
            frame = frame.head(item.limit).reset_index(drop=True)
        for j, model in enumerate(spec.models):
            config = pair_config(suite, item, model, frame, progress)
            try:
                plans[item.name, model.name] = plan(config)
            except (InvalidArgument, NotFound) as exc:
                option = option_of(exc) or ""
                # A problem that the data shows (a prompt's variable, an evaluator's column) names the dataset.
                shown_by_data = option not in (*_DATASET_OPTIONS, "model", "inference_params", "executor", "executor_options")
                raise problem(suite, _location(option, i, j),
                              f"{exc} (dataset {item.name})" if shown_by_data else str(exc)) from None
        _check_gate_metrics(suite, plans[item.name, spec.models[0].name].evaluators, item.name)
    return plans


def pair_config(suite: Suite, dataset: DatasetSpec, model: ModelSpec, frame: pd.DataFrame,
                progress: bool | None = None) -> EvalConfig:
    """The EvalConfig of one (dataset, model) pair: the suite's options, the dataset's and the model's.
    Its reports are logged by the job, once the gates are known."""
    spec = suite.spec
    options = {name: getattr(spec, name) for name in SUITE_OPTIONS}
    try:
        return EvalConfig(**options, model=model.uri, inference_params=model.params, prompt=model.prompt, data=frame,
                          targets=dataset.targets, col_mapping=dataset.col_mapping, max_cost_usd=spec.budget_usd,
                          progress=progress, report=False)
    except ValidationError as exc:  # the file's keys were checked on loading; what is left joins options
        raise problem(suite, (), "; ".join(map(str, problems(exc)))) from None


# Where a suite file sets each option that is not one of its top-level keys.
_DATASET_OPTIONS = ("data", "targets", "col_mapping")
_MODEL_OPTIONS = {"model": "uri", "inference_params": "params", "prompt": "prompt"}


def _location(option: str, dataset: int, model: int) -> tuple[str | int, ...]:
    if option in _DATASET_OPTIONS:
        return ("datasets", dataset)
    if option in _MODEL_OPTIONS:
        return ("models", model, _MODEL_OPTIONS[option])
    if option == "max_cost_usd":
        return ("budget_usd",)
    return (option,) if option else ()


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
