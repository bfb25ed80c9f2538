"""Finding evaluators by name through the ``evalkit.evaluators`` entry-point group."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from evalkit.errors import InvalidArgument
from evalkit.scoring import Evaluator

ENTRY_POINT_GROUP = "evalkit.evaluators"
DEFAULTS = {
    "question-answering": ("exact_match",),
    "text": (),
    "retrieval-augmented": ("exact_match",),
}


def available_evaluators() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def create_evaluator(name: str, config: dict[str, Any] | None = None) -> Evaluator:
    """Instantiate the evaluator registered as ``name``; unknown names list the available ones."""
    found = available_evaluators()
    if name not in found:
        raise InvalidArgument(
            f"unknown evaluator {name!r}; available: {', '.join(sorted(found)) or 'none installed'}"
        )
    factory = found[name].load()
    try:
        return factory(**(config or {}))
    except TypeError as exc:
        raise InvalidArgument(f"evaluator_config for {name!r} is not accepted: {exc}") from None


def resolve_evaluators(
    evaluators: str | Sequence[str] | None,
    model_type: str,
    extra_metrics: Sequence[str] | None,
    evaluator_config: dict[str, dict[str, Any]] | None,
    available_columns: set[str],
) -> list[Evaluator]:
    """The evaluators a run uses. ``"default"`` picks the model type's defaults whose data is
    present; an evaluator asked for by name whose data is missing is an error naming both."""
    if model_type not in DEFAULTS:
        raise InvalidArgument(f"unknown model_type {model_type!r}; use one of {', '.join(DEFAULTS)}")
    config = evaluator_config or {}
    explicit: list[str] = list(extra_metrics or [])
    defaults: list[str] = []
    if evaluators == "default" or evaluators is None:
        defaults = list(DEFAULTS[model_type])
    elif isinstance(evaluators, str):
        explicit.insert(0, evaluators)
    else:
        explicit[:0] = list(evaluators)
    unknown_config = set(config) - set(defaults) - set(explicit)
    if unknown_config:
        raise InvalidArgument(f"evaluator_config names evaluators that are not used: {', '.join(sorted(unknown_config))}")
    chosen: list[Evaluator] = []
    for name in dict.fromkeys(defaults + explicit):
        evaluator = create_evaluator(name, config.get(name))
        missing = [c for c in evaluator.requires if c not in available_columns]
        if missing and name not in explicit:
            continue  # a default that does not apply to this data (e.g. no targets)
        if missing:
            raise InvalidArgument(
                f"evaluator {name!r} needs {' and '.join(missing)}, which the data does not have: "
                + "; ".join(_HOW_TO.get(c, c) for c in missing)
            )
        chosen.append(evaluator)
    return chosen


_HOW_TO = {
    "targets": "pass targets='<column>' (or a ground_truth column)",
    "contexts": "add a contexts column (or col_mapping={'context': '<column>'})",
}
