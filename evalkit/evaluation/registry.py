"""Finding evaluators: the ``evalkit.evaluators`` and ``evalkit.evaluator_families`` entry-point
groups (``evalkit.plugins``), ``@evaluator`` functions registered in this process, or evaluator
objects passed directly."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from evalkit import plugins
from evalkit.errors import InvalidArgument, MissingExtra
from evalkit.evaluation.model_types import DEFAULTS
from evalkit.evaluation.scoring import (
    Evaluator,
    evaluator_info,
    is_evaluator,
    registered_evaluators,
)

_HOW_TO = {
    "targets": "pass targets='<column>' (or a ground_truth column)",
    "contexts": "add a contexts column (or col_mapping={'context': '<column>'})",
    "judge": "pass judge='openai:/gpt-4o-mini' (or another model URI)",
    "model_run": "it measures the model's calls, so it needs model= rather than predictions=",
}


def available_evaluators() -> dict[str, Any]:
    """Every evaluator name usable here, mapped to its factory (or entry point)."""
    found: dict[str, Any] = dict(plugins.find_plugins(plugins.EVALUATORS))
    found.update(registered_evaluators())
    return found


def create_evaluator(name: str, config: dict[str, Any] | None = None, judge_available: bool = False,
                     found: dict[str, Any] | None = None, families: dict[str, Any] | None = None) -> Evaluator:
    """Instantiate the evaluator registered as ``name``; unknown names list the available ones.

    Factories that take ``judge_available`` are told whether a judge is configured, so that
    "auto" evaluators can pick their judged or offline method (and say which in their version).
    ``found`` and ``families`` let a caller creating several evaluators scan the entry points once.
    """
    found = available_evaluators() if found is None else found
    families = _families() if families is None else families
    kwargs = dict(config or {})
    prefix, _, metric = name.partition(":")
    if metric and prefix in families:
        factory = families[prefix].load()
        kwargs["metric"] = metric
    elif name in found:
        factory = found[name]
        factory = factory.load() if hasattr(factory, "load") else factory
    else:
        names = sorted(found) + [f"{family}:<metric>" for family in sorted(families)]
        raise InvalidArgument(f"unknown evaluator {name!r}; available: {', '.join(names) or 'none installed'}")
    try:
        if "judge_available" in inspect.signature(factory).parameters:
            kwargs["judge_available"] = judge_available
    except (TypeError, ValueError):
        pass
    try:
        created = factory(**kwargs)
    except TypeError as exc:
        raise InvalidArgument(f"evaluator_config for {name!r} is not accepted: {exc}") from None
    evaluator_info(created)  # its declarations are checked before any model call
    return created


def _families() -> dict[str, Any]:
    # Families of evaluators named "<family>:<metric>" (e.g. "ragas:faithfulness"): the entry
    # point is a factory called with the metric name and the evaluator's config.
    return dict(plugins.find_plugins(plugins.EVALUATOR_FAMILIES))


def _spec_name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if getattr(spec, "evalkit_evaluator", None):
        return spec.evalkit_evaluator
    if is_evaluator(spec):
        return spec.name
    raise InvalidArgument(f"an evaluator must be a name, an @evaluator function or an evaluator object, got {spec!r}")


def resolve_evaluators(
    evaluators: str | Sequence[Any] | None,
    model_type: str,
    extra_metrics: Sequence[Any] | None,
    evaluator_config: dict[str, dict[str, Any]] | None,
    available_data: set[str],
    skipped: list[str] | None = None,
) -> list[Evaluator]:
    """The evaluators a run uses (``model_type`` is one that EvalConfig accepted: see
    ``evalkit.evaluation.model_types``). ``"default"`` picks the model type's defaults whose data is
    present; an evaluator asked for by name whose data is missing is an error naming both.

    A default whose optional dependencies are not installed (``MissingExtra``) is left out, and
    why (with the extra to install) is appended to ``skipped``; asked for by name, it is an error."""
    if model_type == "retrieval-augmented" and "contexts" not in available_data:
        raise InvalidArgument("model_type='retrieval-augmented' needs contexts: " + _HOW_TO["contexts"])
    config = evaluator_config or {}
    explicit: list[Any] = list(extra_metrics or [])
    defaults: list[str] = []
    if evaluators == "default" or evaluators is None:
        defaults = list(DEFAULTS[model_type])
    elif isinstance(evaluators, str):
        explicit.insert(0, evaluators)
    else:
        explicit[:0] = list(evaluators)
    explicit_names = [_spec_name(spec) for spec in explicit]
    unused = set(config) - set(defaults) - set(explicit_names)
    if unused:
        raise InvalidArgument(f"evaluator_config names evaluators that are not used: {', '.join(sorted(unused))}")

    chosen: dict[str, Evaluator] = {}
    judge = "judge" in available_data
    found, families = available_evaluators(), _families()
    for name in defaults:
        if name in explicit_names or name in chosen:
            continue
        try:
            evaluator = create_evaluator(name, config.get(name), judge, found, families)
        except MissingExtra as exc:
            if skipped is not None:  # evaluate() warns with it, the CLI prints it: never silent
                skipped.append(f"the default evaluator {name} is skipped: {exc}")
            continue
        if all(need in available_data for need in evaluator_info(evaluator).requires):
            chosen[name] = evaluator  # a default that does not fit the data is left out
    for spec, name in zip(explicit, explicit_names, strict=True):
        evaluator = spec if is_evaluator(spec) else create_evaluator(name, config.get(name), judge, found, families)
        missing = [need for need in evaluator_info(evaluator).requires if need not in available_data]
        if missing:
            raise InvalidArgument(
                f"evaluator {name!r} needs {' and '.join(missing)}, which this evaluation does not have: "
                + "; ".join(_HOW_TO.get(m, m) for m in missing)
            )
        chosen[name] = evaluator
    _check_prefixes(list(chosen.values()))
    return list(chosen.values())


def _check_prefixes(chosen: list[Evaluator]) -> None:
    """Two evaluators logging under the same metric prefix would overwrite each other's metrics."""
    seen: dict[str, str] = {}
    for evaluator in chosen:
        info = evaluator_info(evaluator)
        if info.metric_prefix in seen:
            raise InvalidArgument(f"evaluators {seen[info.metric_prefix]!r} and {info.name!r} both log their metrics "
                                  f"under {info.metric_prefix!r}; give one another metric_prefix or version")
        seen[info.metric_prefix] = info.name
