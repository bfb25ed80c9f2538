"""Threshold expressions (``faithfulness/mean >= 0.85``, ``error_rate <= 2%``) and how a metric
name written in one finds the run's metric.

Metric names are written as the run logs them (``faithfulness/judge-v1/mean``,
``latency/p95_ms``), or shorter, which keeps a suite valid whichever method scored it:

- the version may be left out (``faithfulness/mean``) or given by its number alone
  (``faithfulness/v1/mean`` matches ``judge-v1`` and ``kprecision-v1``);
- a unit suffix may be left out (``latency/p95`` is ``latency/p95_ms``).

A short name that matches two metrics is an error, never a guess.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from evalkit.errors import InvalidArgument

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
}
_EXPRESSION = re.compile(
    r"^\s*(?P<metric>[A-Za-z0-9_.\-/]+)\s*(?P<op>>=|<=|==|>|<)\s*"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<percent>%)?\s*$"
)
_UNITS = ("_ms", "_usd")


@dataclass(frozen=True)
class Threshold:
    """``metric op value``, e.g. ``latency/p95 <= 2000``; ``text`` is as written."""

    metric: str
    op: str
    value: float
    text: str

    def holds(self, observed: float) -> bool:
        return _OPERATORS[self.op](observed, self.value)

    @property
    def higher_is_better(self) -> bool:
        return self.op in (">=", ">")


def parse_threshold(text: str) -> Threshold:
    """Parse ``"<metric> <op> <number>[%]"`` with op one of ``>= <= > < ==``; ``2%`` is 0.02."""
    if not isinstance(text, str):
        raise InvalidArgument(f"a threshold is a string such as 'faithfulness/mean >= 0.85', got {text!r}")
    match = _EXPRESSION.match(text)
    if match is None:
        raise InvalidArgument(
            f"cannot read threshold {text!r}: write '<metric> <op> <number>', with op one of >= <= > < ==, "
            "e.g. 'faithfulness/mean >= 0.85' or 'error_rate <= 2%'"
        )
    value = float(match.group("value")) / (100 if match.group("percent") else 1)
    return Threshold(match.group("metric"), match.group("op"), value, text.strip())


def _component_matches(written: str, actual: str, last: bool) -> bool:
    if written == actual:
        return True
    if last:
        return any(actual == written + unit for unit in _UNITS)
    return actual.endswith("-" + written)  # a version's number: v1 for judge-v1


def metric_matches(written: str, actual: str) -> bool:
    """Whether the metric name ``written`` (perhaps short, see the module doc) names ``actual``."""
    w, a = written.split("/"), actual.split("/")
    if len(w) == len(a):
        return all(_component_matches(x, y, i == len(w) - 1) for i, (x, y) in enumerate(zip(w, a, strict=True)))
    if len(a) == 3 and len(w) == 2:  # the version left out
        return w[0] == a[0] and _component_matches(w[1], a[2], last=True)
    return False


def resolve_metric(written: str, available: Iterable[str]) -> str:
    """The one metric among ``available`` that ``written`` names; InvalidArgument if none or several."""
    names = sorted(set(available))
    if written in names:
        return written
    found = [name for name in names if metric_matches(written, name)]
    if len(found) == 1:
        return found[0]
    if found:
        raise InvalidArgument(f"metric {written!r} is ambiguous: it could be {', '.join(found)}; write one in full")
    raise InvalidArgument(f"no metric {written!r}; {_suggest(written, names)}")


def _suggest(written: str, names: list[str]) -> str:
    head = written.split("/", 1)[0]
    related = [name for name in names if name.split("/", 1)[0] == head]
    shown = related or names
    if not shown:
        return "the run logged no metrics"
    more = f" (and {len(shown) - 25} more)" if len(shown) > 25 else ""
    return f"{'metrics of ' + head if related else 'metrics'}: {', '.join(shown[:25])}{more}"
