"""Guards for the gate verdicts: each test here fails on one small bug planted in the wiring of
correct building blocks (Holm's correction as the suite applies it, the direction of a
lower-is-better metric, operator boundaries, NaN metrics, the failed-rows share), found by
planting such bugs one at a time. They call the public gate functions with hand-made runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evalkit.stats import holm_adjust, paired_regression_test
from evalkit.suite.expressions import parse_threshold
from evalkit.suite.gates import (
    ERROR,
    FAILED,
    PASSED,
    Comparison,
    GateResult,
    RunScores,
    check_threshold,
    compare,
    decide_paired,
    row_values,
    worst_rows,
)

ROWS = 40


def run(metrics: dict[str, float], table: pd.DataFrame | None = None, digest: str | None = "d1") -> RunScores:
    return RunScores("run", metrics, table if table is not None else pd.DataFrame({"inputs": []}), digest)


def scored(column: str, values: list[float], **extra: list) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({"row": range(n), "inputs": [f"q{i}" for i in range(n)], "outputs": [f"a{i}" for i in range(n)],
                         "status": ["ok"] * n, "cached": [False] * n, column: values, **extra})


# ---- thresholds: operator boundaries ---------------------------------------------------------


@pytest.mark.parametrize(("expression", "observed", "status"), [
    ("faithfulness/mean >= 0.85", 0.85, PASSED),
    ("faithfulness/mean > 0.85", 0.85, FAILED),
    ("faithfulness/mean >= 0.85", 0.8499, FAILED),
    ("faithfulness/mean > 0.85", 0.8501, PASSED),
    ("latency/p95_ms <= 2000", 2000.0, PASSED),
    ("latency/p95_ms < 2000", 2000.0, FAILED),
    ("latency/p95_ms <= 2000", 2000.5, FAILED),
    ("latency/p95_ms < 2000", 1999.5, PASSED),
    ("error_rate <= 2%", 0.02, PASSED),
    ("error_rate < 2%", 0.02, FAILED),
    ("rows/total == 40", 40.0, PASSED),
    ("rows/total == 40", 41.0, FAILED),
])
def test_threshold_operators_at_their_boundary(expression, observed, status):
    threshold = parse_threshold(expression)
    gate = check_threshold(threshold, run({threshold.metric: observed}))
    assert gate.status == status, gate.message
    assert gate.observed == observed and gate.metric == threshold.metric


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_nan_or_infinite_metric_is_an_error_not_a_failure(value):
    for expression in ("faithfulness/mean >= 0.5", "faithfulness/mean <= 0.5", "faithfulness/mean == 0.5"):
        gate = check_threshold(parse_threshold(expression), run({"faithfulness/mean": value}))
        assert gate.status == ERROR, (expression, gate.status)
        assert "faithfulness/mean is" in gate.message


def test_a_missing_metric_is_an_error_naming_it():
    gate = check_threshold(parse_threshold("faithfulness/mean >= 0.5"), run({"latency/p95_ms": 1.0}))
    assert gate.status == ERROR and "faithfulness/mean" in gate.message


@pytest.mark.parametrize(("failed", "scored_rows", "status"), [(20, 20, PASSED), (21, 19, ERROR), (0, 40, PASSED)])
def test_a_metric_with_more_than_half_its_rows_unscored_is_an_error(failed, scored_rows, status):
    metrics = {"faithfulness/v1/mean": 0.9, "faithfulness/v1/rows_failed": failed,
               "faithfulness/v1/rows_scored": scored_rows}
    gate = check_threshold(parse_threshold("faithfulness/mean >= 0.5"), run(metrics))
    assert gate.status == status, gate.message
    if status == ERROR:
        assert f"{failed} of 40 rows could not be scored" in gate.message
    # The same rule keeps a baseline comparison from judging an outage.
    rule = Comparison("faithfulness/mean", "tolerance", 0.5)
    baseline = run({"faithfulness/v1/mean": 0.9})
    assert compare(rule, run(metrics), baseline).status == status


def test_a_failed_threshold_lists_the_worst_rows_lowest_score_first():
    table = scored("faithfulness/score", [0.9, 0.1, 0.5, np.nan, 0.3, 0.8, 0.7, 0.95])
    gate = check_threshold(parse_threshold("faithfulness/mean >= 0.9"), run({"faithfulness/v1/mean": 0.6}, table))
    assert gate.status == FAILED and "not >= 0.9" in gate.message
    assert [r["row"] for r in gate.worst_rows] == [1, 4, 2, 6, 5]
    assert gate.worst_rows[0] == {"row": 1, "value": 0.1, "input": "q1", "output": "a1", "error": None,
                                  "justification": None}


def test_latency_worst_rows_are_the_slowest():
    table = scored("latency/score", [100.0, 900.0, 300.0, 50.0])
    gate = check_threshold(parse_threshold("latency/p95_ms <= 200"), run({"latency/p95_ms": 800.0}, table))
    assert gate.status == FAILED
    assert [r["row"] for r in gate.worst_rows] == [1, 2, 0, 3]


# ---- direction of lower-is-better metrics in baseline comparisons ----------------------------


@pytest.mark.parametrize(("metric", "before", "now", "status"), [
    ("latency/p95_ms", 1000.0, 1200.0, FAILED),  # slower by 200, 100 allowed
    ("latency/p95_ms", 1000.0, 800.0, PASSED),  # faster
    ("cost/per_query_usd", 0.010, 0.013, FAILED),
    ("cost/per_query_usd", 0.010, 0.007, PASSED),
    ("faithfulness/mean", 0.90, 0.70, FAILED),  # higher is better: a drop is the regression
    ("faithfulness/mean", 0.70, 0.90, PASSED),
])
def test_tolerance_gate_knows_which_way_is_worse(metric, before, now, status):
    tolerance = {"latency/p95_ms": 100.0, "cost/per_query_usd": 0.001, "faithfulness/mean": 0.05}[metric]
    gate = compare(Comparison(metric, "tolerance", tolerance), run({metric: now}), run({metric: before}))
    assert gate.status == status, gate.message
    assert gate.delta == pytest.approx(now - before)
    assert (" worse, allowed" in gate.message) == (status == FAILED), gate.message


def test_tolerance_gate_boundary_and_relative_tolerance():
    metric = "latency/p95_ms"
    exactly = compare(Comparison(metric, "tolerance", 100.0), run({metric: 1100.0}), run({metric: 1000.0}))
    assert exactly.status == PASSED, exactly.message  # worse by exactly the tolerance: allowed
    over = compare(Comparison(metric, "tolerance", 100.0), run({metric: 1100.001}), run({metric: 1000.0}))
    assert over.status == FAILED
    relative = Comparison(metric, "tolerance", 0.10, relative=True)  # 10% of 1000 = 100 ms
    assert compare(relative, run({metric: 1099.0}), run({metric: 1000.0})).status == PASSED
    assert compare(relative, run({metric: 1101.0}), run({metric: 1000.0})).status == FAILED
    # Relative to the size of the baseline even when it is negative.
    score = "faithfulness/mean"
    negative = compare(Comparison(score, "tolerance", 0.10, relative=True), run({score: -1.05}), run({score: -1.0}))
    assert negative.status == PASSED, negative.message


def test_tolerance_gate_without_the_metric_in_the_baseline_is_an_error():
    gate = compare(Comparison("latency/p95_ms", "tolerance", 1.0), run({"latency/p95_ms": 5.0}), run({}))
    assert gate.status == ERROR and "has no latency/p95_ms" in gate.message


@pytest.mark.parametrize("side", ["current", "baseline"])
def test_a_nan_metric_in_a_tolerance_gate_is_an_error_not_a_pass(side):
    metric = "latency/p95_ms"
    now, before = (math.nan, 1000.0) if side == "current" else (1000.0, math.nan)
    gate = compare(Comparison(metric, "tolerance", 100.0), run({metric: now}), run({metric: before}))
    assert gate.status == ERROR, gate.message


def paired_runs(metric_column: str, before: list[float], now: list[float]) -> tuple[RunScores, RunScores]:
    return (RunScores("now", {}, scored(metric_column, now), "d1"),
            RunScores("before", {}, scored(metric_column, before), "d1"))


def test_paired_gate_fails_a_slower_run_and_passes_a_faster_one():
    rng = np.random.default_rng(1)
    base = list(rng.uniform(200, 400, ROWS))
    slower = [v + 150 for v in base]
    faster = [v - 150 for v in base]
    rule = Comparison("latency/mean_ms", "paired")
    rules = {rule.name: rule}
    for now, expected in ((slower, FAILED), (faster, PASSED)):
        current, baseline = paired_runs("latency/score", base, now)
        current.metrics["latency/mean_ms"] = float(np.mean(now))
        gate = compare(rule, current, baseline)
        decide_paired([gate], rules, alpha=0.05, correction="holm")
        assert gate.status == expected, gate.message
    # A faster run is not a regression whatever the min_effect.
    assert "no regression (not significant)" in gate.message


def test_paired_gate_on_a_score_fails_the_drop_and_lists_the_biggest_drops():
    base = [0.8] * ROWS
    now = [0.8] * ROWS
    for i in (3, 7, 11, 19, 23, 29, 31, 37):
        now[i] = 0.2 if i != 7 else 0.0
    rule = Comparison("faithfulness/mean", "paired")
    current, baseline = paired_runs("faithfulness/score", base, now)
    current.metrics["faithfulness/v1/mean"] = float(np.mean(now))
    gate = compare(rule, current, baseline)
    decide_paired([gate], {rule.name: rule}, alpha=0.05, correction="holm")
    assert gate.status == FAILED and gate.message.startswith("significant regression")
    assert gate.worst_rows[0]["row"] == 7 and gate.worst_rows[0]["baseline"] == 0.8
    assert len(gate.worst_rows) == 5 and all(r["value"] < 0.8 for r in gate.worst_rows)


def test_paired_gate_respects_min_effect_in_the_metric_direction():
    base = [300.0 + i for i in range(ROWS)]
    now = [v + 50 for v in base]  # 50 ms slower on every row: significant
    current, baseline = paired_runs("latency/score", base, now)
    current.metrics["latency/mean_ms"] = float(np.mean(now))
    for min_effect, expected in ((49.0, FAILED), (50.0, PASSED), (60.0, PASSED)):
        rule = Comparison("latency/mean_ms", "paired", min_effect=min_effect)
        gate = compare(rule, current, baseline)
        decide_paired([gate], {rule.name: rule}, alpha=0.05, correction="none")
        assert gate.status == expected, (min_effect, gate.message)
        if expected == PASSED:
            assert "significant but within min_effect" in gate.message and gate.worst_rows == []


# ---- Holm's correction as the suite applies it -----------------------------------------------


def paired_gate(name: str, p: float, metric: str = "faithfulness/v1/mean", delta: float = -0.1,
                status: str = PASSED) -> GateResult:
    return GateResult(name, "paired", metric, status, "", observed=0.7, baseline=0.8, delta=delta, p_value=p,
                      n_pairs=ROWS, method="bootstrap")


def rules_for(*gates: GateResult) -> dict[str, Comparison]:
    return {g.name: Comparison(g.metric, "paired") for g in gates}


def test_holm_adjusts_the_p_values_of_all_paired_gates_together():
    gates = [paired_gate("a", 0.03), paired_gate("b", 0.04)]
    decide_paired(gates, rules_for(*gates), alpha=0.05, correction="holm")
    # Holm: 2 x 0.03 = 0.06 and max(0.06, 1 x 0.04) = 0.06: neither is significant at 0.05.
    assert [g.p_adjusted for g in gates] == pytest.approx([0.06, 0.06])
    assert [g.status for g in gates] == [PASSED, PASSED]
    assert all("Holm-adjusted 0.0600" in g.message for g in gates)

    unadjusted = [paired_gate("a", 0.03), paired_gate("b", 0.04)]
    decide_paired(unadjusted, rules_for(*unadjusted), alpha=0.05, correction="none")
    assert [g.p_adjusted for g in unadjusted] == [0.03, 0.04]
    assert [g.status for g in unadjusted] == [FAILED, FAILED]
    assert all("Holm" not in g.message for g in unadjusted)


def test_holm_is_step_down_not_bonferroni():
    # Bonferroni would multiply both by 3 (0.03 and 0.105); Holm gives 0.03, 0.04, 0.04.
    gates = [paired_gate("a", 0.01), paired_gate("b", 0.02), paired_gate("c", 0.035)]
    decide_paired(gates, rules_for(*gates), alpha=0.05, correction="holm")
    assert [g.p_adjusted for g in gates] == pytest.approx([0.03, 0.04, 0.04])
    assert [g.status for g in gates] == [FAILED, FAILED, FAILED]


def test_holm_family_is_the_paired_gates_that_were_tested():
    # Errors, skips and tolerance gates are not in the family: one real test keeps its raw p.
    broken = paired_gate("broken", 0.001, status=ERROR)
    tolerance = GateResult("tol", "tolerance", "latency/p95_ms", PASSED, "", p_value=None)
    untested = GateResult("untested", "paired", "faithfulness/v1/mean", PASSED, "", p_value=None)
    tested = paired_gate("tested", 0.04)
    gates = [broken, tolerance, untested, tested]
    decide_paired(gates, {**rules_for(broken, tested), "untested": Comparison("faithfulness/mean", "paired")},
                  alpha=0.05, correction="holm")
    assert tested.p_adjusted == pytest.approx(0.04) and tested.status == FAILED
    assert "Holm-adjusted" not in tested.message  # a family of one is not adjusted
    assert broken.status == ERROR and broken.p_adjusted is None
    assert tolerance.status == PASSED and untested.status == PASSED and untested.p_adjusted is None


def test_p_equal_to_alpha_is_significant():
    gate = paired_gate("a", 0.05)
    decide_paired([gate], rules_for(gate), alpha=0.05, correction="holm")
    assert gate.status == FAILED


def test_an_improvement_with_a_small_p_is_not_a_regression():
    # decide_paired reads the direction from the metric: a latency drop is an improvement.
    faster = paired_gate("faster", 0.001, metric="latency/mean_ms", delta=-50.0)
    slower = paired_gate("slower", 0.001, metric="latency/p95_ms", delta=+50.0)
    better = paired_gate("better", 0.001, metric="faithfulness/v1/mean", delta=+0.1)
    gates = [faster, slower, better]
    decide_paired(gates, rules_for(*gates), alpha=0.05, correction="none")
    assert [g.status for g in gates] == [PASSED, FAILED, PASSED]


def test_holm_adjust_matches_the_textbook():
    assert holm_adjust([]) == []
    assert holm_adjust([0.5]) == [0.5]
    assert holm_adjust([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm_adjust([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


# ---- per-row values behind aggregates --------------------------------------------------------


def test_latency_total_rows_leave_cached_and_failed_rows_out():
    table = pd.DataFrame({"status": ["ok", "ok", "failed", "ok"], "cached": [False, True, False, False],
                          "total_latency_ms": [100.0, 5.0, 900.0, 300.0], "inputs": ["a", "b", "c", "d"]})
    values, statistic = row_values(table, "latency_total/p95_ms")
    assert np.array_equal(np.isnan(values), [False, True, True, False])
    assert values[0] == 100.0 and values[3] == 300.0
    assert float(statistic(np.array([[1.0, 2.0, 3.0]]))[0]) == pytest.approx(np.percentile([1, 2, 3], 95))


def test_error_rate_rows_are_the_failed_rows():
    table = pd.DataFrame({"status": ["ok", "failed", "ok", "failed"], "inputs": list("abcd")})
    values, statistic = row_values(table, "error_rate")
    assert list(values) == [0.0, 1.0, 0.0, 1.0]
    assert float(statistic(values[np.newaxis, :])[0]) == 0.5
    assert [r["row"] for r in worst_rows(table.assign(row=range(4)), "error_rate")][:2] == [1, 3]


def test_paired_regression_test_direction():
    base = np.linspace(0.5, 0.9, ROWS)
    worse = paired_regression_test(base - 0.1, base, higher_is_better=True)
    better = paired_regression_test(base - 0.1, base, higher_is_better=False)
    assert worse.p_value < 0.01 < 0.99 < better.p_value
