"""Public types evaluators work with: the rows they score, the scores they return, the judge
they may ask, and the ``@evaluator`` decorator for writing one as a plain function.

Evaluators live outside the core (the ``evaluators`` package and third-party plugins, found
through the ``evalkit.evaluators`` entry-point group, or registered in-process with
``@evaluator``); they depend on these types only.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from evalkit.errors import EvalkitError, InvalidArgument

T = TypeVar("T")
Message = dict[str, str]


@dataclass(frozen=True)
class EvalRow:
    """One row as an evaluator sees it. ``output`` is None when the model call failed.

    The runner's data is there too, for evaluators over latency and cost: ``latency_s`` of the
    successful call, ``cached``, ``cost_usd`` and the token counts (None where not known).
    """

    index: int
    input: str
    output: str | None
    target: str | None = None
    contexts: list[str] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    latency_s: float | None = None
    total_latency_s: float | None = None
    cached: bool = False
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Score:
    """One row's score.

    A row is scored (``value`` set), failed (``error`` set: counted, never silently dropped) or
    not applicable (``applicable=False``, e.g. faithfulness of a row with no context).
    ``justification`` says why in words; ``raw`` keeps the judge's raw output for audit;
    ``details`` holds named parts of the score (e.g. ``{"f1": 0.5, "similarity": 0.9}``).
    """

    value: float | None
    justification: str | None = None
    error: str | None = None
    applicable: bool = True
    raw: str | None = None
    details: dict[str, float] = field(default_factory=dict)

    @property
    def scored(self) -> bool:
        return self.applicable and self.error is None and self.value is not None


class JudgeError(EvalkitError):
    """A judge call that gave no usable answer (garbage after re-asks, refusal, timeout)."""

    def __init__(self, message: str, raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True)
class JudgeReply(Generic[T]):
    """A parsed judge answer and the raw text(s) it came from."""

    value: T
    raw: str


@runtime_checkable
class Judge(Protocol):
    """A judge model evaluators can ask. Calls go through evaluate()'s runner: rate limits,
    retries, the response cache, and judge cost accounting per row."""

    uri: str

    async def ask_json(
        self,
        row_index: int,
        messages: list[Message],
        validate: Callable[[Any], T],
        schema: dict[str, Any] | None = None,
    ) -> JudgeReply[T]:
        """Ask for a JSON answer; ``validate`` turns the parsed JSON into the value or raises
        ValueError, which triggers a bounded re-ask. Raises JudgeError when no usable answer comes."""
        ...


@dataclass
class ScoringContext:
    """What evaluators get besides the rows."""

    judge: Judge | None = None
    concurrency: int = 16
    judge_cost_by_row: dict[int, float] = field(default_factory=dict)


@runtime_checkable
class Evaluator(Protocol):
    """What evaluate() needs from an evaluator.

    ``requires`` names the data it needs among ``"targets"``, ``"contexts"``, ``"judge"`` and
    ``"model_run"`` (the runner's latency and cost); evaluate() checks them before any model
    call. Metrics are logged as ``<metric_prefix>/<aggregate>``, where the prefix is
    ``<name>/<version>`` unless the evaluator sets ``metric_prefix``. Evaluators with
    ``stage = "post"`` run after the others and see the judge's cost per row.
    """

    name: str
    version: str
    requires: tuple[str, ...]

    async def score(self, rows: list[EvalRow], context: ScoringContext) -> list[Score]: ...

    def aggregate(self, scores: list[Score]) -> dict[str, float]: ...


def mean_with_denominators(scores: Sequence[Score]) -> dict[str, float]:
    """The usual aggregate: the mean over scored rows, and how many rows were scored, failed
    or not applicable, so that a mean is never read without its denominator."""
    values = [s.value for s in scores if s.scored]
    aggregates = {
        "rows_scored": float(len(values)),
        "rows_failed": float(sum(s.applicable and not s.scored for s in scores)),
        "rows_not_applicable": float(sum(not s.applicable for s in scores)),
    }
    if values:
        aggregates["mean"] = sum(values) / len(values)  # type: ignore[arg-type]
    return aggregates


# ---- @evaluator: an evaluator as a ten-line function ------------------------------------------

RowFunction = Callable[[EvalRow], Any] | Callable[[EvalRow], Awaitable[Any]]
_registered: dict[str, Callable[[], Evaluator]] = {}


class FunctionEvaluator:
    """An evaluator made from a per-row function returning a number, a bool, a Score or None
    (not applicable). Exceptions become that row's error; the other rows go on."""

    def __init__(self, fn: RowFunction, name: str, version: str, requires: tuple[str, ...],
                 aggregate: Callable[[list[Score]], dict[str, float]] | None) -> None:
        self.fn = fn
        self.name = name
        self.version = version
        self.requires = requires
        self._aggregate = aggregate or mean_with_denominators
        self._is_async = inspect.iscoroutinefunction(fn)

    async def _one(self, row: EvalRow) -> Score:
        if row.output is None:
            return Score(None, error="no output: the model call failed")
        try:
            value = await self.fn(row) if self._is_async else self.fn(row)
        except Exception as exc:  # noqa: BLE001 - a user function failing on one row fails that row only
            return Score(None, error=f"{type(exc).__name__}: {exc}")
        if isinstance(value, Score):
            return value
        if value is None:
            return Score(None, applicable=False)
        if isinstance(value, bool):
            return Score(float(value))
        try:
            return Score(float(value))
        except (TypeError, ValueError):
            return Score(None, error=f"{self.name} returned {type(value).__name__}, not a number")

    async def score(self, rows: list[EvalRow], context: ScoringContext) -> list[Score]:
        return list(await asyncio.gather(*(self._one(row) for row in rows)))

    def aggregate(self, scores: list[Score]) -> dict[str, float]:
        return self._aggregate(scores)


def evaluator(
    fn: RowFunction | None = None,
    *,
    name: str | None = None,
    version: str = "v1",
    requires: Sequence[str] = (),
    aggregate: Callable[[list[Score]], dict[str, float]] | None = None,
) -> Any:
    """Register a per-row function as an evaluator, usable by name in ``evaluators=`` or
    ``extra_metrics=`` (or pass the function itself)::

        @ek.evaluator(requires=["targets"])
        def mentions_target(row: ek.EvalRow) -> bool:
            return row.target.lower() in row.output.lower()

        ek.evaluate(..., extra_metrics=["mentions_target"])
    """

    def wrap(function: RowFunction) -> RowFunction:
        evaluator_name = name or function.__name__
        unknown = set(requires) - {"targets", "contexts", "judge", "model_run"}
        if unknown:
            raise InvalidArgument(f"evaluator {evaluator_name!r} requires unknown data {sorted(unknown)}")
        _registered[evaluator_name] = lambda: FunctionEvaluator(function, evaluator_name, version, tuple(requires), aggregate)
        function.evalkit_evaluator = evaluator_name  # type: ignore[attr-defined]
        return function

    return wrap(fn) if fn is not None else wrap


def registered_evaluators() -> dict[str, Callable[[], Evaluator]]:
    """Evaluators registered in this process with ``@evaluator``, by name."""
    return dict(_registered)
