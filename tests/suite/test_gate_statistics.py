"""The paired baseline gate's error rates, at small scale and deterministically (the full-size
measurement through the real pipeline is ``bench/bench_gate.py``).

(a) A/A and regression trials on simulated per-row answer_correctness scores, through
    ``evalkit.stats.paired_regression_test`` and ``holm_adjust``: the same row mix and the same
    judge-noise model as the bench (each answer statement's TP/FP class flips with probability
    eps), a regression of exactly 5 points in expectation.
(b) One A/A and one regression scenario through the real pipeline (evaluate with a judge on the
    fake server, runs read back from the store, the nightly job's gate code).
(c) ``holm_adjust`` against hand-computed values.
(d) ``paired_regression_test`` edge cases.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit.evaluation.run_evaluators import higher_is_better
from evalkit.stats import (
    GATE_RESAMPLES,
    holm_adjust,
    paired_regression_test,
)
from evalkit.suite.gates import FAILED, PASSED
from evalkit.testing.fake_openai import FakeOpenAIServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_gate
from bench_gate import (
    CORRECTNESS,
    DEGRADED,
    FAITHFULNESS,
    MODEL,
    GateResponder,
    GateSpec,
    choose_wrong_rows,
    expected_f1,
)

ALPHA = 0.025

# ---- (a) simulated per-row scores ------------------------------------------------------------

# The bench's baseline answers as the judge sorts them without noise: (TP, FP, FN), the embedding
# similarity to the ground truth (as measured by bench_gate's calibration run), and the share of
# rows; and the degraded model's wrong answer (the sister ship's facts).
KINDS = [((2, 0, 0), 0.94, 0.60), ((2, 1, 0), 0.93, 0.20), ((1, 0, 1), 0.80, 0.12), ((1, 1, 1), 0.90, 0.08)]
WRONG = ((0, 2, 2), 0.81)
ROWS = 500
EPS = 0.2  # the bench's noisiest judge: one statement in five misclassified
# Resamples per test. The gate uses GATE_RESAMPLES (10,000); 2,000 keep the 1,000 tests here near
# 5 s, and the p-value's Monte Carlo error at p = 0.025 is sqrt(0.025 x 0.975 / 2000) = 0.0035.
RESAMPLES = 2_000


def _scores(rng: np.random.Generator, counts: np.ndarray, similarity: np.ndarray, eps: float) -> np.ndarray:
    """One noisy judging of every row: answer_correctness = 0.75 x F1 + 0.25 x similarity."""
    tp, fp, fn = counts.T
    tp_seen = rng.binomial(tp, 1 - eps) + rng.binomial(fp, eps)
    fp_seen = tp + fp - tp_seen
    f1 = np.where(tp_seen > 0, tp_seen / np.maximum(tp_seen + 0.5 * (fp_seen + fn), 1e-12), 0.0)
    return 0.75 * f1 + 0.25 * similarity


def _expected(counts: np.ndarray, similarity: np.ndarray, eps: float) -> np.ndarray:
    return np.array([0.75 * expected_f1(*c, eps) for c in counts]) + 0.25 * similarity


class Scenario:
    """500 rows of the bench's mix, and the rows the degraded model gets wrong, chosen so that
    the expected mean drops by 0.05 under judge noise eps."""

    def __init__(self, eps: float, seed: int = 0) -> None:
        self.eps = eps
        self.rng = np.random.default_rng(seed)
        kind = self.rng.choice(len(KINDS), size=ROWS, p=[k[2] for k in KINDS])
        self.counts = np.array([KINDS[k][0] for k in kind])
        self.similarity = np.array([KINDS[k][1] for k in kind])
        self.wrong_counts = np.tile(WRONG[0], (ROWS, 1))
        self.wrong_similarity = np.full(ROWS, WRONG[1])
        right = _expected(self.counts, self.similarity, eps)
        wrong = _expected(self.wrong_counts, self.wrong_similarity, eps)
        rows, self.expected_drop = choose_wrong_rows(right, wrong, 0.05, seed)
        self.wrong = np.zeros(ROWS, dtype=bool)
        self.wrong[rows] = True

    def baseline(self) -> np.ndarray:
        return _scores(self.rng, self.counts, self.similarity, self.eps)

    def degraded(self) -> np.ndarray:
        return np.where(self.wrong, _scores(self.rng, self.wrong_counts, self.wrong_similarity, self.eps), self.baseline())


def _p(current: np.ndarray, baseline: np.ndarray, seed: int) -> float:
    return paired_regression_test(current, baseline, resamples=RESAMPLES, seed=seed).p_value


def test_expected_f1_matches_its_definition():
    # (2, 0, 0) under eps = 0.2: both kept 0.64 -> F1 1; one flipped to FP 0.32 -> 1 / (1 + 0.5) = 2/3.
    assert expected_f1(2, 0, 0, 0.2) == pytest.approx(0.64 + 0.32 * 2 / 3)
    # (0, 2, 2): one FP turned TP 0.32 -> 1 / (1 + 0.5 x 3) = 0.4; both 0.04 -> 2 / (2 + 1) = 2/3.
    assert expected_f1(0, 2, 2, 0.2) == pytest.approx(0.32 * 0.4 + 0.04 * 2 / 3)
    assert expected_f1(1, 1, 1, 0.0) == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    counts = np.tile((2, 1, 0), (200_000, 1))
    simulated = (_scores(rng, counts, np.zeros(len(counts)), 0.2) / 0.75).mean()
    assert simulated == pytest.approx(expected_f1(2, 1, 0, 0.2), abs=0.003)


def test_the_regression_is_five_points_in_expectation():
    scenario = Scenario(EPS)
    assert scenario.expected_drop == pytest.approx(0.05, abs=0.001)
    drops = [scenario.baseline().mean() - scenario.degraded().mean() for _ in range(200)]
    assert np.mean(drops) == pytest.approx(0.05, abs=0.002)


def test_aa_passes_at_least_95_percent_of_the_time():
    # Under A/A the one-sided p-value is about uniform: 2.5% false alarms expected, 10 of 400;
    # 20 (5%) would be 3 standard deviations above that. Seed 1 gives 13.
    scenario = Scenario(EPS, seed=1)
    alarms = sum(_p(scenario.baseline(), scenario.baseline(), seed=i) <= ALPHA for i in range(400))
    assert alarms <= 20, f"{alarms} false alarms in 400 A/A trials"


def test_five_point_drop_on_500_rows_fails_at_least_90_percent_of_the_time():
    # The paired differences have a standard deviation of about 0.28 at eps 0.2 (measured), so the
    # mean drop's standard error is 0.28 / sqrt(500) = 0.0125 and the expected z is 0.05 / 0.0125
    # = 4.0: power = Phi(4.0 - 1.96) = 0.98 by the normal approximation. Seed 2 detects 198 of 200.
    scenario = Scenario(EPS, seed=2)
    detected, spread = 0, []
    for i in range(200):
        baseline, candidate = scenario.baseline(), scenario.degraded()
        spread.append(np.std(candidate - baseline))
        detected += _p(candidate, baseline, seed=i) <= ALPHA
    assert 0.25 < np.mean(spread) < 0.31
    assert detected >= 180, f"{detected} of 200 regressions detected"


def test_two_gates_with_holm_keep_the_family_wise_false_alarms_at_alpha():
    # Two independent metrics, both A/A: without a correction either gate alarms in about
    # 1 - 0.975^2 = 4.9% of trials; Holm keeps the family at or below 2.5% (seed 3: 10 raw alarms
    # in 200 trials, 4 after Holm; 10 would be 2.3 standard deviations above 2.5%).
    scenario = Scenario(EPS, seed=3)
    raw_alarms = holm_alarms = 0
    for i in range(200):
        p = [_p(scenario.baseline(), scenario.baseline(), seed=2 * i + k) for k in (0, 1)]
        raw_alarms += min(p) <= ALPHA
        holm_alarms += min(holm_adjust(p)) <= ALPHA
    assert holm_alarms <= raw_alarms
    assert holm_alarms <= 10, f"{holm_alarms} family-wise false alarms in 200 A/A trials"


# ---- (b) through the real pipeline -----------------------------------------------------------


@pytest.fixture()
def pipeline(monkeypatch):
    """A fake server answering with the bench's model and noisy judge (eps 0.1) on 80 rows, of
    which the degraded model gets every other one wrong (a drop of about 0.35)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rows = 80
    spec = GateSpec(rows=rows, seed=0, eps=0.1, wrong=list(range(0, rows, 2)))
    with FakeOpenAIServer(responder=GateResponder(spec)) as server:
        data = bench_gate.frame(bench_gate.make_rows(rows, spec.seed))
        yield lambda model, noise_seed: bench_gate.load_scores(
            bench_gate.evaluate_run(server.base_url, data, model, noise_seed, concurrency=16))


@pytest.mark.slow
def test_pipeline_aa_with_the_same_judge_noise_passes_and_a_big_drop_fails(pipeline):
    baseline = pipeline(MODEL, 7)
    again = pipeline(MODEL, 7)  # same model, same data, same noise seed: the same scores
    degraded = pipeline(DEGRADED, 8)

    aa = bench_gate.gate(again, baseline, [FAITHFULNESS, CORRECTNESS])
    assert [g.status for g in aa] == [PASSED, PASSED]
    assert [g.p_value for g in aa] == [1.0, 1.0]
    assert [g.delta for g in aa] == [0.0, 0.0]

    faithfulness, correctness = bench_gate.gate(degraded, baseline, [FAITHFULNESS, CORRECTNESS])
    assert correctness.status == FAILED, correctness.message
    assert correctness.n_pairs == 80 and correctness.delta < -0.2
    assert correctness.p_adjusted <= ALPHA
    # The wrong answers copy the sister ship's passage: grounded, so faithfulness does not fall.
    assert faithfulness.status == PASSED, faithfulness.message
    assert correctness.worst_rows and all(r["row"] % 2 == 0 for r in correctness.worst_rows)


def test_noisy_judge_flips_are_seeded_by_the_request_and_the_run():
    rows = bench_gate.make_rows(3)
    noisy = GateResponder(GateSpec(rows=3, eps=0.5))
    exact = GateResponder(GateSpec(rows=3, eps=0.0))
    statements = "\n".join(f"{i}. {s}" for i, s in enumerate(rows[0].ground_truth.split(". "), 1))
    body = {"model": "judge", "messages": [
        {"role": "system", "content": "You check claims against source passages."},
        {"role": "user", "content": "Passages:\n" + "\n\n".join(rows[0].contexts) + f"\n\nStatements:\n{statements}"}]}
    assert '"verdict": 1' in exact({**body, "seed": 1}) and '"verdict": 0' not in exact({**body, "seed": 1})
    replies = {noisy({**body, "seed": seed}) for seed in range(20)}
    assert len(replies) > 1  # other runs, other noise
    assert noisy({**body, "seed": 3}) == noisy({**body, "seed": 3})  # the same run, the same noise


# ---- (c) holm_adjust -------------------------------------------------------------------------


def test_holm_adjust_against_hand_computed_values():
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> raised to 0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.02, 0.02]) == pytest.approx([0.04, 0.04])
    assert holm_adjust([0.3, 0.6]) == pytest.approx([0.6, 0.6])
    assert holm_adjust([0.5, 0.6, 0.01]) == pytest.approx([1.0, 1.0, 0.03])  # capped at 1
    assert holm_adjust([0.012]) == [0.012]
    assert holm_adjust([]) == []


def test_holm_rejects_in_step_down_order():
    # alpha 0.025: 0.006 <= 0.025/3, then 0.012 <= 0.025/2, then 0.03 > 0.025: the last is kept.
    adjusted = holm_adjust([0.012, 0.03, 0.006])
    assert [p <= ALPHA for p in adjusted] == [True, False, True]


# ---- (d) paired_regression_test edge cases ---------------------------------------------------


def test_identical_runs_give_p_one():
    values = np.random.default_rng(0).uniform(size=300)
    result = paired_regression_test(values, values.copy())
    assert result.p_value == 1.0 and result.delta == 0.0 and result.n_pairs == 300
    assert result.resamples == GATE_RESAMPLES
    constant = paired_regression_test([0.7] * 50, [0.7] * 50)
    assert constant.p_value == 1.0


def test_no_row_scored_in_both_runs_gives_none():
    nan = float("nan")
    assert paired_regression_test([nan, nan], [nan, nan]) is None
    assert paired_regression_test([1.0, nan], [nan, 0.5]) is None
    assert paired_regression_test([], []) is None
    partly = paired_regression_test([1.0, nan, 0.0], [1.0, 0.2, nan])
    assert partly.n_pairs == 1 and partly.current == 1.0 and partly.baseline == 1.0


def test_lower_is_better_metrics_regress_upwards():
    rng = np.random.default_rng(4)
    baseline = rng.normal(1000, 100, size=400)  # latency in ms
    slower = baseline + rng.normal(30, 50, size=400)
    assert not higher_is_better("latency_total/mean_ms", []) and not higher_is_better("cost/per_query_usd", [])
    assert higher_is_better("answer_correctness/judge-v1/mean", [])
    assert paired_regression_test(slower, baseline, higher_is_better=False).p_value < 0.001
    # The same change read as a score (higher is better) is an improvement: nowhere near a regression.
    assert paired_regression_test(slower, baseline, higher_is_better=True).p_value > 0.999
    faster = paired_regression_test(baseline - 30, baseline, higher_is_better=False)
    assert faster.p_value == 1.0 and faster.delta == pytest.approx(-30)


def test_p_value_has_the_plus_one_floor_and_the_seed_fixes_it():
    worse = paired_regression_test(np.zeros(100), np.ones(100))
    assert worse.p_value == pytest.approx(1 / (GATE_RESAMPLES + 1))
    values = np.random.default_rng(5).uniform(size=200)
    noisy = values + np.random.default_rng(6).normal(-0.02, 0.2, size=200)
    assert paired_regression_test(noisy, values, seed=3) == paired_regression_test(noisy, values, seed=3)
    assert 0 < paired_regression_test(noisy, values).p_value < 1
    assert not math.isnan(paired_regression_test(noisy, values).delta)



def test_few_pairs_use_an_exact_swap_test_that_cannot_cry_wolf():
    # Three rows that all got worse: the bootstrap would call that certain; swapping each pair's
    # scores shows 1 of the 8 patterns is as bad, so p = 1/8 and the gate holds.
    few = paired_regression_test([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert (few.method, few.p_value, few.resamples) == ("permutation", 1 / 8, 8)
    # A/A on 5 to 29 rows: false alarms at or below alpha (measured: 0 to 2.2% at these sizes).
    rng = np.random.default_rng(7)
    for rows in (5, 20):
        alarms = sum(paired_regression_test(rng.random(rows), rng.random(rows), resamples=RESAMPLES,
                                            seed=trial).p_value <= ALPHA for trial in range(400))
        assert alarms <= 0.035 * 400, (rows, alarms)
    # A real, large drop on 20 rows is still caught.
    base = rng.random(20)
    assert paired_regression_test(base - 0.3, base).p_value <= ALPHA
    assert paired_regression_test(rng.random(30), rng.random(30)).method == "bootstrap"
