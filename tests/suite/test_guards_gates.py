"""Guards for the gate verdicts: each test here fails on one small bug planted in the wiring of
correct building blocks (Holm's correction as the suite applies it, the direction of a
lower-is-better metric, operator boundaries, NaN metrics, the failed-rows share), found by
planting such bugs one at a time. They call the public gate functions with hand-made runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evalkit.evaluation.scoring import EvaluatorInfo
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
# What the built-in evaluators declare (and a run records in evaluators.json): which results-table
# column holds a metric's rows, and which way the metric improves.
INFOS = (
    EvaluatorInfo("faithfulness", "v1", "faithfulness/v1"),
    EvaluatorInfo("answer_correctness", "v1", "answer_correctness/v1"),
    EvaluatorInfo("latency", "v1", "latency", stage="post", higher_is_better=False),
    EvaluatorInfo("cost", "v1", "cost", stage="post", higher_is_better=False),
)


def _scores(*args, **kwargs) -> RunScores:  # noqa: ANN002, ANN003
    return RunScores(*args, evaluators=INFOS, **kwargs)



def run(metrics: dict[str, float], table: pd.DataFrame | None = None, digest: str | None = "d1") -> RunScores:
    return _scores("run", metrics, table if table is not None else pd.DataFrame({"inputs": []}), digest)


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
    return (_scores("now", {}, scored(metric_column, now), "d1"),
            _scores("before", {}, scored(metric_column, before), "d1"))


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
    # As compare() makes it: with the metric's direction, as the run's evaluators declare it.
    return GateResult(name, "paired", metric, status, "", observed=0.7, baseline=0.8, delta=delta, p_value=p,
                      n_pairs=ROWS, method="bootstrap", higher_is_better=_scores("r", {}, pd.DataFrame()).higher_is_better(metric))


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
    values, statistic = row_values(table, "latency_total/p95_ms", INFOS)
    assert np.array_equal(np.isnan(values), [False, True, True, False])
    assert values[0] == 100.0 and values[3] == 300.0
    assert float(statistic(np.array([[1.0, 2.0, 3.0]]))[0]) == pytest.approx(np.percentile([1, 2, 3], 95))


def test_error_rate_rows_are_the_failed_rows():
    table = pd.DataFrame({"status": ["ok", "failed", "ok", "failed"], "inputs": list("abcd")})
    values, statistic = row_values(table, "error_rate", INFOS)
    assert list(values) == [0.0, 1.0, 0.0, 1.0]
    assert float(statistic(values[np.newaxis, :])[0]) == 0.5
    assert [r["row"] for r in worst_rows(table.assign(row=range(4)), "error_rate", INFOS)][:2] == [1, 3]


def test_paired_regression_test_direction():
    base = np.linspace(0.5, 0.9, ROWS)
    worse = paired_regression_test(base - 0.1, base, higher_is_better=True)
    better = paired_regression_test(base - 0.1, base, higher_is_better=False)
    assert worse.p_value < 0.01 and better.p_value > 0.99


# ---- what a gate reports ---------------------------------------------------------------------


def test_gate_json_has_no_nan():
    gate = GateResult("g", "threshold", "m", ERROR, "m is nan", observed=math.nan, baseline=1.5, delta=math.inf)
    data = gate.to_json()
    assert data["observed"] is None and data["delta"] is None and data["baseline"] == 1.5
    assert data["name"] == "g" and data["worst_rows"] == []


def test_comparison_names():
    assert Comparison("faithfulness/mean", "paired").name == "faithfulness/mean: no significant regression vs baseline"
    assert Comparison("m", "paired", min_effect=0.02).name == "m: no significant regression vs baseline, by more than 0.02"
    assert Comparison("m", "tolerance", 0.1, relative=True).name == "m: within 10% of baseline"
    assert Comparison("m", "tolerance", 5.0).name == "m: within 5 of baseline"


def test_worst_row_summaries_are_short_single_line_text():
    long_input = "word  \n " * 100
    table = pd.DataFrame({"row": [7, 8], "inputs": [long_input, "short"], "outputs": [math.nan, "x\ty"],
                          "error": [None, "boom"], "faithfulness/score": [0.1, 0.2],
                          "faithfulness/justification": ["because", None]})
    first, second = worst_rows(table, "faithfulness/v1/mean", INFOS)
    assert first["row"] == 7 and first["output"] is None and first["justification"] == "because"
    assert first["input"] == ("word " * 32)[:160] + "…" and len(first["input"]) == 161
    assert second == {"row": 8, "value": 0.2, "input": "short", "output": "x y", "error": "boom",
                      "justification": None}
    exactly = pd.DataFrame({"inputs": ["a" * 160], "faithfulness/score": [0.5]})
    only = worst_rows(exactly, "faithfulness/v1/mean", INFOS)[0]
    assert only["input"] == "a" * 160 and only["row"] == 0 and "baseline" not in only


def test_worst_rows_limit_and_rows_without_a_value():
    table = scored("faithfulness/score", [0.5, np.nan, 0.1, 0.9, 0.3, 0.2, 0.4, 0.8])
    assert [r["row"] for r in worst_rows(table, "faithfulness/v1/mean", INFOS, limit=3)] == [2, 5, 4]
    assert worst_rows(table, "rows/total", INFOS) == []  # no per-row form
    assert worst_rows(table, "answer_correctness/v1/mean", INFOS) == []  # no such column


def test_worst_rows_against_a_baseline_are_the_biggest_drops_only():
    before = scored("faithfulness/score", [0.5, 0.5, 0.5, 0.5, 0.5])
    now = scored("faithfulness/score", [0.4, 0.9, 0.0, np.nan, 0.45])
    pairs = (np.arange(5), np.arange(5))
    rows = worst_rows(now, "faithfulness/v1/mean", INFOS, baseline=before, pairs=pairs)
    assert [(r["row"], r["value"], r["baseline"]) for r in rows] == [(2, 0.0, 0.5), (0, 0.4, 0.5), (4, 0.45, 0.5)]
    assert worst_rows(now, "faithfulness/v1/mean", INFOS, baseline=before.drop(columns="faithfulness/score"),
                      pairs=pairs) == []
    # Latency: the rows that got slower.
    slow_before = scored("latency/score", [100.0, 100.0, 100.0])
    slow_now = scored("latency/score", [150.0, 50.0, 300.0])
    rows = worst_rows(slow_now, "latency/mean_ms", INFOS, baseline=slow_before, pairs=(np.arange(3), np.arange(3)))
    assert [r["row"] for r in rows] == [2, 0]


def test_threshold_against_the_metric_direction_lists_no_worst_rows():
    # "latency at least 500 ms" is odd but legal: the slowest rows would not explain a failure.
    table = scored("latency/score", [100.0, 200.0])
    gate = check_threshold(parse_threshold("latency/mean_ms >= 500"), run({"latency/mean_ms": 150.0}, table))
    assert gate.status == FAILED and gate.worst_rows == []
    assert gate.message == "latency/mean_ms = 150, not >= 500"
    passed = check_threshold(parse_threshold("latency/mean_ms <= 500"), run({"latency/mean_ms": 150.0}, table))
    assert passed.message == "latency/mean_ms = 150, within <= 500" and passed.worst_rows == []


@pytest.mark.parametrize(("metric", "expected"), [
    ("faithfulness/v1/mean", [0.2, 0.4, 0.9]),
    ("faithfulness/v1/p50", [0.2, 0.4, 0.9]),
    ("latency/p99.9_ms", None),
    ("cost/per_query_usd", None),
    ("faithfulness/v1/rows_scored", None),
])
def test_row_values_statistics(metric, expected):
    table = pd.DataFrame({"faithfulness/score": [0.2, "x", 0.4, 0.9], "inputs": list("abcd")})
    found = row_values(table, metric, INFOS)
    if expected is None:
        assert found is None
        return
    values, statistic = found
    assert list(values[~np.isnan(values)]) == expected and np.isnan(values[1])
    sample = np.array([[1.0, 2.0, 10.0]])
    want = 13 / 3 if metric.endswith("mean") else 2.0
    assert float(statistic(sample)[0]) == pytest.approx(want)


def test_row_values_percentiles_and_costs():
    table = pd.DataFrame({"latency/score": [1.0, 2.0, 3.0, 4.0], "cost/score": [0.1, 0.2, 0.3, 0.4], "inputs": list("abcd")})
    sample = np.arange(101, dtype=float)[np.newaxis, :]
    for metric, want in (("latency/p99.9_ms", 99.9), ("latency/p95_ms", 95.0), ("latency/p50", 50.0),
                         ("latency/mean_ms", 50.0), ("cost/per_query_usd", 50.0)):
        _, statistic = row_values(table, metric, INFOS)
        assert float(statistic(sample)[0]) == pytest.approx(want), metric
    assert row_values(table, "latency/p100_ms", INFOS) is None  # two digits at most
    assert row_values(table, "latency/max_ms", INFOS) is None


def test_score_column_is_that_of_the_evaluator_logging_the_metric():
    from evalkit.suite.gates import score_column

    infos = (*INFOS, EvaluatorInfo("ragas/faithfulness", "ragas-0.4.3", "ragas/faithfulness/ragas-0.4.3"))
    table = pd.DataFrame(columns=["inputs", "ragas/faithfulness/score", "faithfulness/score"])
    assert score_column(table, "ragas/faithfulness/ragas-0.4.3/mean", infos) == "ragas/faithfulness/score"
    assert score_column(table, "faithfulness/v1/mean", infos) == "faithfulness/score"
    assert score_column(table, "answer/mean", infos) is None  # no evaluator logs it
    assert score_column(table, "answer_correctness/v1/mean", infos) is None  # its evaluator left no column


def test_paired_gate_errors_and_pairing_by_input():
    current = _scores("now", {"rows/total": 3.0, "faithfulness/v1/mean": 0.5},
                        scored("faithfulness/score", [0.5, 0.5, 0.5]), "d1")
    baseline = _scores("before", {}, scored("faithfulness/score", [0.6, 0.6, 0.6]), "d1")
    no_rows = compare(Comparison("rows/total", "paired"), current, baseline)
    assert no_rows.status == ERROR and "no per-row values to pair" in no_rows.message
    empty = _scores("before", {}, scored("faithfulness/score", [np.nan] * 3), "d1")
    none = compare(Comparison("faithfulness/mean", "paired"), current, empty)
    assert none.status == ERROR and "no row has faithfulness/v1/mean in both runs" in none.message
    missing = compare(Comparison("answer_correctness/mean", "paired"), current, baseline)
    assert missing.status == ERROR and "answer_correctness/mean" in missing.message
    # Other data: rows pair by their input, and the gate says how many found a partner.
    other = _scores("before", {}, scored("faithfulness/score", [0.6, 0.7]).assign(inputs=["q2", "zz"]), "d2")
    gate = compare(Comparison("faithfulness/mean", "paired"), current, other)
    assert gate.n_pairs == 1 and gate.baseline == 0.6 and gate.observed == 0.5
    assert gate.message == "the baseline used other data; 1 of 3 rows paired by input"
    same = compare(Comparison("faithfulness/mean", "paired"), current, baseline)
    assert same.message == "" and same.n_pairs == 3 and same.method == "permutation"
    assert same.delta == pytest.approx(-0.1) and same.p_value == pytest.approx(1 / 8)


def test_align_rows_pairs_by_first_matching_key_and_may_pair_none():
    from evalkit.stats import align_rows

    current, baseline = align_rows(["b", "x", "a", "b"], ["a", "b", "a", "b"])
    assert current.tolist() == [0, 2, 3] and baseline.tolist() == [1, 0, 1]
    none = align_rows(["x"], ["y"])
    assert [a.shape for a in none] == [(0,), (0,)]
    assert all(a.dtype.kind == "i" for a in none)
    values = np.array([1.0, 2.0])
    assert values[none[0]].size == 0 and values[none[1]].size == 0  # usable as indices


def test_tolerance_gate_results_in_full():
    metric = "latency/p95_ms"
    rule = Comparison(metric, "tolerance", 100.0)
    table = scored("latency/score", [900.0, 1500.0, 1200.0])
    slower = compare(rule, run({metric: 1300.0}, table), run({metric: 1000.0}))
    assert slower == GateResult(
        rule.name, "tolerance", metric, FAILED, "latency/p95_ms = 1300 vs baseline 1000: 300 worse, allowed 100 worse",
        observed=1300.0, baseline=1000.0, delta=300.0, worst_rows=worst_rows(table, metric, INFOS),
        higher_is_better=False)
    assert [r["row"] for r in slower.worst_rows] == [1, 2, 0]
    same = compare(rule, run({metric: 1000.0}, table), run({metric: 1000.0}))
    assert same == GateResult(rule.name, "tolerance", metric, PASSED,
                              "latency/p95_ms = 1000 vs baseline 1000: 0 better, allowed 100 worse",
                              observed=1000.0, baseline=1000.0, delta=0.0, higher_is_better=False)
    nan = compare(rule, run({metric: math.nan}), run({metric: 1000.0}))
    assert nan == GateResult(rule.name, "tolerance", metric, ERROR,
                             "latency/p95_ms = nan vs baseline 1000.0: cannot be compared",
                             observed=nan.observed, baseline=1000.0, higher_is_better=False)
    assert math.isnan(nan.observed)
    absent = compare(rule, run({metric: 1.0}), _scores("base-run", {}, pd.DataFrame()))
    assert absent == GateResult(rule.name, "tolerance", metric, ERROR, "the baseline run base-run has no latency/p95_ms")


def test_threshold_results_in_full():
    threshold = parse_threshold("faithfulness/mean >= 0.8")
    table = scored("faithfulness/score", [0.5, 0.9])
    metrics = {"faithfulness/v1/mean": 0.7}
    failed = check_threshold(threshold, run(metrics, table))
    assert failed == GateResult("faithfulness/mean >= 0.8", "threshold", "faithfulness/v1/mean", FAILED,
                                "faithfulness/v1/mean = 0.7, not >= 0.8", observed=0.7,
                                worst_rows=worst_rows(table, "faithfulness/v1/mean", INFOS))
    passed = check_threshold(parse_threshold("faithfulness/mean >= 0.5"), run(metrics, table))
    assert passed == GateResult("faithfulness/mean >= 0.5", "threshold", "faithfulness/v1/mean", PASSED,
                                "faithfulness/v1/mean = 0.7, within >= 0.5", observed=0.7)
    nan = check_threshold(threshold, run({"faithfulness/v1/mean": math.nan}))
    assert (nan.name, nan.kind, nan.metric, nan.status, nan.message) == (
        "faithfulness/mean >= 0.8", "threshold", "faithfulness/v1/mean", ERROR, "faithfulness/v1/mean is nan")
    assert math.isnan(nan.observed)
    unreliable = check_threshold(threshold, run({**metrics, "faithfulness/v1/rows_failed": 3.0,
                                                 "faithfulness/v1/rows_scored": 1.0}))
    assert unreliable == GateResult(
        "faithfulness/mean >= 0.8", "threshold", "faithfulness/v1/mean", ERROR,
        "faithfulness/v1/mean is not reliable: 3 of 4 rows could not be scored (see the faithfulness/v1 errors in "
        "the report)", observed=0.7)
    missing = check_threshold(threshold, run({}))
    assert (missing.name, missing.kind, missing.metric, missing.status) == (
        "faithfulness/mean >= 0.8", "threshold", "faithfulness/mean", ERROR)
    assert missing.message == "no metric 'faithfulness/mean'; the run logged no metrics"


# ---- the report's paired deltas and intervals (evalkit.stats) ---------------------------------


def test_paired_delta_is_the_percentile_bootstrap_of_the_paired_change():
    from evalkit.stats import paired_delta

    rng = np.random.default_rng(5)
    before = rng.uniform(0, 1, ROWS)
    now = before + rng.normal(0.05, 0.2, ROWS)
    delta = paired_delta(now, before)
    assert delta == paired_delta(now, before, seed=0)  # reproducible: seed 0 by default
    indices = np.random.default_rng(0).integers(0, ROWS, size=(1000, ROWS))
    changes = now[indices].mean(axis=1) - before[indices].mean(axis=1)
    low, high = np.quantile(changes, [0.025, 0.975])
    assert (delta.low, delta.high) == pytest.approx((low, high))
    assert (delta.current, delta.baseline, delta.n_pairs) == pytest.approx((now.mean(), before.mean(), ROWS))
    assert delta.delta == pytest.approx(now.mean() - before.mean())
    assert delta.verdict == ("improved" if low > 0 else "no significant change")


def test_paired_delta_verdicts_at_zero_and_with_one_pair():
    from evalkit.stats import paired_delta

    base = np.full(ROWS, 0.5)
    one_up = base.copy()
    one_up[0] = 1.5  # most resamples miss that row: the interval's low end is exactly 0
    up = paired_delta(one_up, base)
    assert up.low == 0.0 and up.high > 0 and up.verdict == "no significant change"
    down = paired_delta(2 * base - one_up, base)
    assert down.high == 0.0 and down.verdict == "no significant change"
    assert paired_delta(base + 0.1, base).verdict == "improved"
    assert paired_delta(base + 0.1, base, higher_is_better=False).verdict == "regressed"
    assert paired_delta(base - 0.1, base).verdict == "regressed"
    single = paired_delta([0.9, np.nan], [0.5, 0.2])
    assert (single.current, single.baseline, single.n_pairs) == (0.9, 0.5, 1)
    assert single.low == single.high == single.delta == pytest.approx(0.4)
    assert single.verdict == "improved"
    two = paired_delta([0.9, 0.8], [0.5, 0.5])
    assert two.n_pairs == 2 and two.low == pytest.approx(0.3) and two.high == pytest.approx(0.4)
    assert paired_delta([np.nan], [1.0]) is None


# ---- survivors of `make mutate`, killed ------------------------------------------------------


def test_compare_error_results_in_full():
    table = scored("faithfulness/score", [0.5, 0.5, 0.5])
    rule = Comparison("faithfulness/mean", "paired")
    unreliable = {"faithfulness/v1/mean": 0.5, "faithfulness/v1/rows_failed": 1.0, "faithfulness/v1/rows_scored": 0.0}
    gate = compare(rule, _scores("now", unreliable, table, "d"), _scores("b", {}, table, "d"))
    assert gate == GateResult(rule.name, "paired", "faithfulness/v1/mean", ERROR,
                              "faithfulness/v1/mean is not reliable: 1 of 1 rows could not be scored "
                              "(see the faithfulness/v1 errors in the report)")
    missing = compare(rule, _scores("now", {}, table, "d"), _scores("b", {}, table, "d"))
    assert missing == GateResult(rule.name, "paired", "faithfulness/mean", ERROR,
                                 "no metric 'faithfulness/mean'; the run logged no metrics")
    metrics = {"faithfulness/v1/mean": 0.5}
    no_column = compare(rule, _scores("now", metrics, table, "d"), _scores("b", {}, table[["inputs"]], "d"))
    assert no_column == GateResult(rule.name, "paired", "faithfulness/v1/mean", ERROR,
                                   "faithfulness/v1/mean has no per-row values to pair; compare it with test: tolerance")
    empty = _scores("b", {}, scored("faithfulness/score", [np.nan] * 3), "d")
    assert compare(rule, _scores("now", metrics, table, "d"), empty) == GateResult(
        rule.name, "paired", "faithfulness/v1/mean", ERROR, "no row has faithfulness/v1/mean in both runs")


@pytest.mark.parametrize(("failed", "scored_rows", "reliable"), [(1.0, 0.0, False), (1.0, None, True), (None, 5.0, True),
                                                                  (0.0, 0.0, True)])
def test_unreliable_needs_both_counts(failed, scored_rows, reliable):
    metrics = {"faithfulness/v1/mean": 0.9}
    if failed is not None:
        metrics["faithfulness/v1/rows_failed"] = failed
    if scored_rows is not None:
        metrics["faithfulness/v1/rows_scored"] = scored_rows
    gate = check_threshold(parse_threshold("faithfulness/mean >= 0.5"), run(metrics))
    assert gate.status == (PASSED if reliable else ERROR), gate.message


def test_paired_compare_is_deterministic_uses_the_statistic_and_pairs_rows_by_input():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, ROWS)
    now = base - rng.uniform(0, 0.1, ROWS)
    current, baseline = paired_runs("faithfulness/score", list(base), list(now))
    current.metrics["faithfulness/v1/p50"] = float(np.median(now))
    rule = Comparison("faithfulness/p50", "paired")
    first, second = compare(rule, current, baseline), compare(rule, current, baseline)
    assert first.p_value == second.p_value and first.method == "bootstrap"
    assert first.observed == pytest.approx(np.median(now)) and first.baseline == pytest.approx(np.median(base))
    # Other data, rows in another order: each row is compared with its own input's baseline row.
    cur = _scores("now", {"faithfulness/v1/mean": 0.0}, scored("faithfulness/score", [0.1, 0.2, 0.3]), "d1")
    other = scored("faithfulness/score", [0.9, 0.5, 0.9]).assign(inputs=["zz", "q0", "q2"])
    gate = compare(Comparison("faithfulness/mean", "paired"), cur, _scores("b", {}, other, "d2"))
    assert gate.n_pairs == 2 and gate.observed == pytest.approx(0.2) and gate.baseline == pytest.approx(0.7)
    rows = worst_rows(cur.table, "faithfulness/v1/mean", INFOS, baseline=other, pairs=(np.array([0, 2]), np.array([1, 2])))
    assert [(r["row"], r["value"], r["baseline"]) for r in rows] == [(2, 0.3, 0.9), (0, 0.1, 0.5)]
    mixed = scored("faithfulness/score", [0.1, 0.6, 0.3])
    rows = worst_rows(mixed, "faithfulness/v1/mean", INFOS, baseline=other, pairs=(np.array([0, 2]), np.array([1, 2])))
    assert [r["row"] for r in rows] == [2, 0]
    # Close to no change: the p-value is in the middle, and the same on every call (seeded).
    noisy = _scores("now", {"faithfulness/v1/mean": 0.5},
                      scored("faithfulness/score", list(base + rng.normal(0, 0.05, ROWS))), "d1")
    rule = Comparison("faithfulness/mean", "paired")
    p_values = {compare(rule, noisy, baseline).p_value for _ in range(3)}
    assert len(p_values) == 1 and 0.05 < p_values.pop() < 0.95


def test_decide_paired_messages_and_drop_in_full():
    noted = paired_gate("noted", 0.01)
    noted.message = "the baseline used other data; 40 of 40 rows paired by input"
    plain = paired_gate("plain", 0.5)
    decide_paired([noted, plain], rules_for(noted, plain), alpha=0.05, correction="none")
    assert noted.message == ("significant regression: faithfulness/v1/mean = 0.7 vs baseline 0.8 on 40 paired rows "
                             "(change -0.1, one-sided bootstrap p = 0.0100, alpha 0.05); the baseline used other data; "
                             "40 of 40 rows paired by input")
    assert plain.message == ("no regression (not significant): faithfulness/v1/mean = 0.7 vs baseline 0.8 on 40 paired "
                             "rows (change -0.1, one-sided bootstrap p = 0.5000, alpha 0.05)")
    bare = paired_gate("bare", 0.01)
    decide_paired([bare], rules_for(bare), alpha=0.05, correction="none")
    assert bare.message.endswith("p = 0.0100, alpha 0.05)")
    quiet = paired_gate("quiet", 0.01)
    quiet.message = "a note"
    decide_paired([quiet], rules_for(quiet), alpha=0.05, correction="holm")
    assert quiet.status == FAILED and quiet.message.endswith("alpha 0.05); a note")
    within = paired_gate("within", 0.01, delta=-0.03)
    within.message = "a note"
    decide_paired([within], {"within": Comparison(within.metric, "paired", min_effect=0.05)}, 0.05, "none")
    assert within.status == PASSED and within.message.endswith("alpha 0.05); a note")
    assert "significant but within min_effect 0.05" in within.message
    unchanged = paired_gate("unchanged", 0.001, metric="latency/mean_ms", delta=0.0)
    decide_paired([unchanged], rules_for(unchanged), alpha=0.05, correction="none")
    assert unchanged.status == PASSED


def test_row_values_of_a_score_ignore_the_latency_column():
    table = scored("faithfulness/score", [0.2, 0.4]).assign(total_latency_ms=[100.0, 200.0])
    values, _ = row_values(table, "faithfulness/v1/mean", INFOS)
    assert list(values) == [0.2, 0.4]


def test_worst_rows_ties_keep_row_order_and_unchanged_rows_are_not_drops():
    levels = np.random.default_rng(0).choice([0.1, 0.2, 0.3], 50)
    ranked = [r["row"] for r in worst_rows(scored("faithfulness/score", list(levels)), "faithfulness/v1/mean", INFOS)]
    assert ranked == [int(i) for i in np.flatnonzero(levels == 0.1)[:5]]
    pairs = (np.arange(50), np.arange(50))
    ranked = [r["row"] for r in worst_rows(scored("faithfulness/score", list(levels)), "faithfulness/v1/mean", INFOS,
                                           baseline=scored("faithfulness/score", [0.5] * 50), pairs=pairs)]
    assert ranked == [int(i) for i in np.flatnonzero(levels == 0.1)[:5]]
    table = scored("faithfulness/score", [0.5] * 100)
    assert [r["row"] for r in worst_rows(table, "faithfulness/v1/mean", INFOS)] == [0, 1, 2, 3, 4]
    before = scored("faithfulness/score", [0.6] * 100)
    pairs = (np.arange(100), np.arange(100))
    assert [r["row"] for r in worst_rows(table, "faithfulness/v1/mean", INFOS, baseline=before, pairs=pairs)] == [0, 1, 2, 3, 4]
    assert worst_rows(table, "faithfulness/v1/mean", INFOS, baseline=table, pairs=pairs) == []
    # A baseline without pairs: rows are ranked by their own value.
    assert [r["row"] for r in worst_rows(table, "faithfulness/v1/mean", INFOS, baseline=before)] == [0, 1, 2, 3, 4]


def test_small_samples_use_the_exact_swap_test_and_its_p_values():
    base = np.linspace(0.5, 0.9, 12)
    worse = base - np.linspace(0.01, 0.12, 12)
    exact = paired_regression_test(worse, base)
    assert (exact.method, exact.resamples, exact.n_pairs) == ("permutation", 4096, 12)
    assert exact.p_value == 1 / 4096  # only the observed pattern is as bad
    eight = paired_regression_test(worse[:8], base[:8])
    assert eight.p_value == 1 / 256 and eight.resamples == 256
    base20 = np.linspace(0.5, 0.9, 20)
    sampled = paired_regression_test(base20 - np.linspace(0.01, 0.2, 20), base20)
    assert (sampled.method, sampled.resamples) == ("permutation", 10_000)
    assert sampled.p_value == 1 / 10_001  # none of 10,000 random swaps is as bad, plus one
    same = paired_regression_test(base20, base20)
    assert same.p_value == 1.0


def test_bootstrap_interval_is_the_seeded_percentile_bootstrap():
    from evalkit.stats import bootstrap_interval

    values = np.random.default_rng(9).uniform(0, 1, ROWS)
    interval = bootstrap_interval(list(values) + [None])  # None is a row without a score
    assert interval == bootstrap_interval(values, seed=0)
    estimates = values[np.random.default_rng(0).integers(0, ROWS, size=(1000, ROWS))].mean(axis=1)
    low, high = np.quantile(estimates, [0.025, 0.975])
    assert (interval.low, interval.high, interval.n) == pytest.approx((low, high, ROWS))
    assert interval.value == pytest.approx(values.mean())
    assert bootstrap_interval([None, np.nan]) is None
    one = bootstrap_interval([0.3])
    assert (one.value, one.low, one.high, one.n) == (0.3, 0.3, 0.3, 1)
    from evalkit.stats import paired_delta

    assert paired_delta([0.9, None], [0.5, 0.4]).n_pairs == 1


def test_pacing_limiter_interval_and_burst():
    import asyncio
    import time

    from evalkit.inference.runner.ratelimit import PacingLimiter

    assert PacingLimiter(600).interval == pytest.approx(0.1 * 1.002)
    assert PacingLimiter(0.5).interval == pytest.approx(120 * 1.002)  # under one a minute is fine
    with pytest.raises(ValueError, match="rate must be positive"):
        PacingLimiter(0)

    async def first_wait(limiter: PacingLimiter) -> float:
        start = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - start

    assert asyncio.run(first_wait(PacingLimiter(60, burst_seconds=1.0))) < 0.5


def _bootstrap_p_by_hand(a: np.ndarray, b: np.ndarray, sign: float, chunk: int) -> float:
    rng, not_worse = np.random.default_rng(0), 0
    for start in range(0, 10_000, chunk):
        indices = rng.integers(0, a.size, size=(min(chunk, 10_000 - start), a.size))
        not_worse += int(np.count_nonzero((a[indices].mean(axis=1) - b[indices].mean(axis=1)) * sign >= -1e-12))
    return (not_worse + 1) / 10_001


@pytest.mark.parametrize("rows", [40, 500])  # 500 rows: the resamples come in two chunks
def test_bootstrap_p_value_is_reproduced_by_hand(rows):
    rng = np.random.default_rng(rows)
    base = rng.uniform(0, 1, rows)
    now = base + rng.normal(-0.01, 0.1, rows)
    chunk = max(1, 4_000_000 // rows)
    for higher, sign in ((True, 1.0), (False, -1.0)):
        result = paired_regression_test(now, base, higher_is_better=higher)
        assert result.p_value == pytest.approx(_bootstrap_p_by_hand(now, base, sign, chunk), abs=1e-12)
        assert result == paired_regression_test(now, base, higher_is_better=higher, seed=0)


def test_exact_swap_p_value_is_reproduced_by_hand():
    import itertools

    rng = np.random.default_rng(4)
    base = rng.uniform(0, 1, 7)
    now = base + rng.normal(-0.05, 0.1, 7)  # some rows better, some worse
    observed = now.mean() - base.mean()
    as_bad = 0
    for pattern in itertools.product([False, True], repeat=7):
        swap = np.array(pattern)
        a, b = np.where(swap, base, now), np.where(swap, now, base)
        as_bad += a.mean() - b.mean() <= observed + 1e-12
    assert paired_regression_test(now, base).p_value == as_bad / 128
    assert 0.05 < as_bad / 128 < 0.95
    # The median, which unlike the mean does not split into a sum over the swapped pairs.
    from evalkit.stats import percentile_statistic

    observed = np.median(now) - np.median(base)
    as_bad = sum(np.median(np.where(s, base, now)) - np.median(np.where(s, now, base)) <= observed + 1e-12
                 for s in map(np.array, itertools.product([False, True], repeat=7)))
    assert paired_regression_test(now, base, statistic=percentile_statistic(50)).p_value == as_bad / 128
