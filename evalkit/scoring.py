"""Public types evaluators work with: the rows they score and the scores they return.

Evaluators live outside the core (the ``evaluators`` package and third-party plugins) and are
found through the ``evalkit.evaluators`` entry-point group; they depend on these types only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class EvalRow:
    """One row as an evaluator sees it. ``output`` is None when the model call failed."""

    index: int
    input: str
    output: str | None
    target: str | None = None
    contexts: list[str] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """One row's score. A row is scored (``value`` set), failed (``error`` set) or not
    applicable (``applicable=False``, e.g. faithfulness of a row with no context)."""

    value: float | None
    justification: str | None = None
    error: str | None = None
    applicable: bool = True


@runtime_checkable
class Evaluator(Protocol):
    """What evaluate() needs from an evaluator.

    ``requires`` names the data it needs among ``"targets"`` and ``"contexts"``; evaluate()
    checks them before any model call. Metrics are logged as ``<name>/<version>/<aggregate>``.
    """

    name: str
    version: str
    requires: tuple[str, ...]

    async def score(self, rows: list[EvalRow]) -> list[Score]: ...

    def aggregate(self, scores: list[Score]) -> dict[str, float]: ...


def mean_with_denominators(scores: list[Score]) -> dict[str, float]:
    """The usual aggregate: the mean over scored rows, and how many rows were scored, failed
    or not applicable, so that a mean is never read without its denominator."""
    values = [s.value for s in scores if s.applicable and s.error is None and s.value is not None]
    aggregates = {
        "rows_scored": float(len(values)),
        "rows_failed": float(sum(s.applicable and (s.error is not None or s.value is None) for s in scores)),
        "rows_not_applicable": float(sum(not s.applicable for s in scores)),
    }
    if values:
        aggregates["mean"] = sum(values) / len(values)
    return aggregates
