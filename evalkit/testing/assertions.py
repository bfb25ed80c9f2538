"""``assert_eval``: the thresholds of an evaluation suite, as an assertion in a pytest test.

    import evalkit
    from evalkit.testing import assert_eval

    def test_rag_answers_stay_grounded():
        result = evalkit.evaluate(model="evalkit:/extractive", data="datasets/rag_qa.jsonl",
                                  targets="ground_truth")
        assert_eval(result, "faithfulness/v1/mean >= 0.8", "latency/p95 <= 2000")

Expressions are written as in a suite (``evalkit.suite.expressions``: short metric names such as
``faithfulness/mean`` or ``latency/p95`` work) and judged by the suite's own threshold gate, so a
test and ``evalkit run`` never disagree about the same run. A failure lists every expression
that failed with the run's worst rows for it; the pytest plugin's ``evalkit_tracking`` fixture
keeps the runs a test makes out of the project's store.
"""

from __future__ import annotations

import pandas as pd

from evalkit.errors import InvalidArgument, NotFound
from evalkit.evaluation.engine import RESULTS_TABLE, EvaluationResult
from evalkit.evaluation.run_evaluators import load_evaluators
from evalkit.suite.expressions import parse_threshold
from evalkit.suite.gates import (
    FAILED,
    PASSED,
    WORST_ROWS,
    GateResult,
    RunScores,
    check_threshold,
    worst_rows,
)
from evalkit.tracking.client import TrackingClient

_WIDTH = 100  # characters of an input, output or justification per line: one terminal line each


def assert_eval(result: EvaluationResult | str, *expressions: str, worst: int = 5) -> None:
    """Assert that every threshold expression holds for an evaluation run.

    ``result`` is what ``evalkit.evaluate`` returned, or a run id (read from the current
    tracking store). Each expression is ``"<metric> <op> <number>[%]"``, e.g.
    ``"faithfulness/mean >= 0.85"`` or ``"error_rate <= 2%"``. All of them are checked; if any
    fails, or cannot be judged (unknown metric, too few rows scored), AssertionError lists each
    such expression with the observed value, its rows scored and failed, the run id and up to
    ``worst`` of the rows that pulled the metric the wrong way.

    A malformed expression raises ``InvalidArgument`` before the run is read.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this function's
    if not expressions:
        raise InvalidArgument("assert_eval needs at least one expression, e.g. 'faithfulness/mean >= 0.85'")
    if not isinstance(worst, int) or worst < 0:
        raise InvalidArgument(f"worst must be a non-negative integer, got {worst!r}")
    thresholds = [parse_threshold(text) for text in expressions]
    run = _run_scores(result)
    gates = [check_threshold(threshold, run) for threshold in thresholds]
    bad = [gate for gate in gates if gate.status != PASSED]
    if not bad:
        return
    plural = "s" if len(gates) > 1 else ""
    lines = [f"{len(bad)} of {len(gates)} evalkit expression{plural} failed for run {run.run_id}:"]
    for gate in bad:
        lines += _describe(gate, run, worst)
    raise AssertionError("\n".join(lines))


def _run_scores(result: EvaluationResult | str) -> RunScores:
    if isinstance(result, EvaluationResult):
        return RunScores(result.run_id, result.metrics, result.tables[RESULTS_TABLE], evaluators=result.evaluators)
    if isinstance(result, str):
        client = TrackingClient()
        run = client.get_run(result)  # NotFound for an unknown run id
        try:
            table = client.load_table(result, f"{RESULTS_TABLE}.parquet")
        except NotFound:  # a run logged by hand: thresholds still apply, there are just no rows to show
            table = pd.DataFrame()
        return RunScores(result, run.data.metrics, table, evaluators=load_evaluators(client, run))
    raise InvalidArgument(f"assert_eval takes an EvaluationResult or a run id, got {type(result).__name__}")


def _describe(gate: GateResult, run: RunScores, worst: int) -> list[str]:
    lines = [f"- {gate.name}", f"    {gate.message}{_denominators(gate.metric, run.metrics)}"]
    rows = gate.worst_rows
    if gate.status == FAILED and rows and worst > WORST_ROWS:
        rows = worst_rows(run.table, gate.metric, run.evaluators, limit=worst)  # the gate keeps only WORST_ROWS
    rows = rows[:worst]
    if rows:
        lines.append(f"    worst rows for {gate.metric}:")
    for row in rows:
        lines.append(f"      row {row['row']}, score {row['value']:.4g}, input: {_clip(row['input'])}")
        if row.get("error"):
            lines.append(f"        error: {_clip(row['error'])}")
        else:
            lines.append(f"        output: {_clip(row['output'])}")
        if row.get("justification"):
            lines.append(f"        why: {_clip(row['justification'])}")
    return lines


def _denominators(metric: str, metrics: dict[str, float]) -> str:
    """``(rows: 6 scored, 1 failed)``: how much of the data the value stands on."""
    prefix = metric.rsplit("/", 1)[0]
    scored, failed = metrics.get(f"{prefix}/rows_scored"), metrics.get(f"{prefix}/rows_failed")
    if scored is None:
        return ""
    return f" (rows: {int(scored)} scored" + (f", {int(failed)} failed)" if failed is not None else ")")


def _clip(text: str | None) -> str:
    if text is None:
        return "-"
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"
