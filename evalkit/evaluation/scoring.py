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
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from evalkit.errors import InvalidArgument
from evalkit.tracking.validation import validate_key

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


Stage = Literal["score", "post"]
STAGES: tuple[str, ...] = ("score", "post")
REQUIREMENTS = ("targets", "contexts", "judge", "model_run")


class Evaluator(Protocol):
    """What evaluate() needs from an evaluator.

    Required: ``name``, ``version``, ``async score(rows, context)`` and ``aggregate(scores)``.
    evaluate() scores a run's rows a chunk at a time (``score`` may be called several times) and
    calls ``aggregate`` once with every row's score, each carrying its value, error, applicability
    and details (justifications and raw replies are in the results table only).
    Metadata an evaluator may declare (``evaluator_info`` gives the default of each one left out):

    - ``requires`` (default none): the data it needs among ``"targets"``, ``"contexts"``,
      ``"judge"`` and ``"model_run"`` (the runner's latency and cost); evaluate() checks them
      before any model call;
    - ``metric_prefix`` (default ``<name>/<version>``): metrics are logged as
      ``<metric_prefix>/<aggregate>``;
    - ``stage`` (default ``"score"``): ``"post"`` evaluators run after the others and see the
      judge's cost per row;
    - ``higher_is_better`` (default True): which way its metrics improve, for the report's
      verdicts and the suite's baseline gates (False for latency, cost, toxicity).
    """

    name: str
    version: str
    requires: tuple[str, ...]
    metric_prefix: str | None
    stage: Stage
    higher_is_better: bool

    async def score(self, rows: list[EvalRow], context: ScoringContext) -> list[Score]: ...

    def aggregate(self, scores: list[Score]) -> dict[str, float]: ...


def is_evaluator(candidate: object) -> bool:
    """Whether ``candidate`` has what an evaluator must have (the metadata is optional)."""
    return (isinstance(getattr(candidate, "name", None), str) and isinstance(getattr(candidate, "version", None), str)
            and callable(getattr(candidate, "score", None)) and callable(getattr(candidate, "aggregate", None)))


@dataclass(frozen=True)
class EvaluatorInfo:
    """An evaluator's effective metadata (see ``Evaluator``): what evaluate() uses to run it and
    name its metrics, and what it records with the run (``evaluators.json``) for the report and
    the gates, which only have the stored run."""

    name: str
    version: str
    metric_prefix: str
    stage: str = "score"
    higher_is_better: bool = True
    requires: tuple[str, ...] = ()

    def owns(self, metric: str) -> bool:
        """Whether ``metric`` is one of this evaluator's aggregates."""
        return metric.startswith(self.metric_prefix + "/")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "metric_prefix": self.metric_prefix, "stage": self.stage,
                "higher_is_better": self.higher_is_better, "requires": list(self.requires)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvaluatorInfo:
        return cls(str(data["name"]), str(data["version"]), str(data["metric_prefix"]), str(data.get("stage", "score")),
                   bool(data.get("higher_is_better", True)), tuple(data.get("requires", ())))


def evaluator_info(evaluator: Any) -> EvaluatorInfo:
    """The metadata of ``evaluator``, with the defaults for what it does not declare.

    Raises InvalidArgument naming the evaluator when a declaration is unusable (a ``stage`` other
    than "score"/"post", unknown ``requires``, a metric prefix that is not a valid metric key),
    so that evaluate() and a suite's preflight refuse it before any model call.
    """
    if not is_evaluator(evaluator):
        raise InvalidArgument(f"{evaluator!r} is not an evaluator: it needs a name, a version, "
                              "async score(rows, context) and aggregate(scores)")
    name, version = evaluator.name, evaluator.version
    prefix = getattr(evaluator, "metric_prefix", None) or f"{name}/{version}"
    stage = getattr(evaluator, "stage", "score")
    better = getattr(evaluator, "higher_is_better", True)
    requires = getattr(evaluator, "requires", None) or ()
    if not isinstance(requires, (list, tuple, set, frozenset)) or not all(isinstance(need, str) for need in requires):
        raise InvalidArgument(f"evaluator {name!r}: requires must be a sequence of names, got {requires!r}")
    if unknown := sorted(set(requires) - set(REQUIREMENTS)):
        raise InvalidArgument(f"evaluator {name!r} requires unknown data {unknown}; "
                              f"known: {', '.join(REQUIREMENTS)}")
    if stage not in STAGES:
        raise InvalidArgument(f"evaluator {name!r} has stage {stage!r}; use one of {', '.join(STAGES)}")
    if not isinstance(better, bool):
        raise InvalidArgument(f"evaluator {name!r}: higher_is_better must be True or False, got {better!r}")
    if not isinstance(prefix, str):
        raise InvalidArgument(f"evaluator {name!r}: metric_prefix must be a string, got {prefix!r}")
    try:
        validate_key("metric", f"{prefix}/mean")
    except InvalidArgument as exc:
        hint = "" if getattr(evaluator, "metric_prefix", None) else " (set metric_prefix to name them otherwise)"
        raise InvalidArgument(f"evaluator {name!r} would log its metrics as {prefix}/<aggregate>, "
                              f"which is not a valid metric key{hint}: {exc}") from None
    ordered = sorted(requires) if isinstance(requires, (set, frozenset)) else requires
    return EvaluatorInfo(name, version, prefix, stage, better, tuple(ordered))


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

    stage = "score"

    def __init__(self, fn: RowFunction, name: str, version: str, requires: tuple[str, ...],
                 aggregate: Callable[[list[Score]], dict[str, float]] | None, higher_is_better: bool = True,
                 metric_prefix: str | None = None) -> None:
        self.fn = fn
        self.name = name
        self.version = version
        self.requires = requires
        self.higher_is_better = higher_is_better
        self.metric_prefix = metric_prefix
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
    higher_is_better: bool = True,
    metric_prefix: str | None = None,
) -> Any:
    """Register a per-row function as an evaluator, usable by name in ``evaluators=`` or
    ``extra_metrics=`` (or pass the function itself)::

        @ek.evaluator(requires=["targets"])
        def mentions_target(row: ek.EvalRow) -> bool:
            return row.target.lower() in row.output.lower()

        ek.evaluate(..., extra_metrics=["mentions_target"])

    ``higher_is_better=False`` says lower scores are better (a length, a count of mistakes);
    ``metric_prefix`` replaces ``<name>/<version>`` in the metric names.
    """

    def wrap(function: RowFunction) -> RowFunction:
        evaluator_name = name or function.__name__

        def create() -> FunctionEvaluator:
            return FunctionEvaluator(function, evaluator_name, version, tuple(requires), aggregate, higher_is_better,
                                     metric_prefix)

        evaluator_info(create())  # a bad declaration fails here, where it is written
        _registered[evaluator_name] = create
        function.evalkit_evaluator = evaluator_name  # type: ignore[attr-defined]
        return function

    return wrap(fn) if fn is not None else wrap


def registered_evaluators() -> dict[str, Callable[[], Evaluator]]:
    """Evaluators registered in this process with ``@evaluator``, by name."""
    return dict(_registered)
