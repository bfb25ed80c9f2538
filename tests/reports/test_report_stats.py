"""Bootstrap intervals and paired comparisons for the report."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.stats import (
    align_rows,
    bootstrap_interval,
    paired_delta,
    percentile_statistic,
)


def test_interval_of_a_mean_covers_it_and_narrows_with_more_rows():
    rng = np.random.default_rng(1)
    small = bootstrap_interval(rng.normal(0.5, 0.1, 50))
    large = bootstrap_interval(rng.normal(0.5, 0.1, 5000))
    assert small.low < small.value < small.high and large.low < 0.5 < large.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    # the usual normal approximation: 1.96 * sd / sqrt(n)
    assert large.high - large.low == pytest.approx(2 * 1.96 * 0.1 / np.sqrt(5000), rel=0.15)


def test_nan_is_left_out_and_edge_sizes():
    assert bootstrap_interval([np.nan, np.nan]) is None
    single = bootstrap_interval([0.7, np.nan])
    assert (single.value, single.low, single.high, single.n) == (0.7, 0.7, 0.7, 1)
    assert bootstrap_interval([1.0, 0.0, np.nan]).n == 2


def test_percentile_statistic():
    interval = bootstrap_interval(np.arange(1, 1001, dtype=float), percentile_statistic(95))
    assert interval.value == pytest.approx(950.05) and interval.low < 950 < interval.high


def test_paired_delta_detects_a_small_consistent_improvement_an_unpaired_view_would_miss():
    rng = np.random.default_rng(2)
    baseline = rng.uniform(0, 1, 400)
    current = np.clip(baseline + 0.02 + rng.normal(0, 0.01, 400), 0, 1)
    delta = paired_delta(current, baseline)
    assert delta.verdict == "improved" and delta.low > 0 and delta.n_pairs == 400
    a, b = bootstrap_interval(current), bootstrap_interval(baseline)
    assert a.low < b.high  # the two separate intervals overlap: only pairing sees the change


def test_verdicts_follow_the_metric_direction():
    baseline = np.linspace(100, 200, 300)
    slower = baseline * 1.2
    assert paired_delta(slower, baseline, higher_is_better=False).verdict == "regressed"
    assert paired_delta(slower, baseline, higher_is_better=True).verdict == "improved"
    noise = np.random.default_rng(3).normal(0, 1, 300)
    assert paired_delta(baseline + noise, baseline + noise[::-1]).verdict == "no significant change"


def test_pairs_only_rows_scored_in_both_runs_and_alignment_by_key():
    delta = paired_delta([1.0, np.nan, 0.0], [0.0, 1.0, np.nan])
    assert delta.n_pairs == 1 and delta.delta == 1.0
    assert paired_delta([np.nan], [1.0]) is None
    current, baseline = align_rows(["q1", "q2", "q3"], ["q3", "q1", "q9", "q1"])
    assert current.tolist() == [0, 2] and baseline.tolist() == [1, 0]


def test_bootstrap_draws_in_blocks_give_the_figures_of_one_draw(monkeypatch):
    from evalkit import stats

    values = np.random.default_rng(3).random(1001)  # an odd number of rows: blocks must not shift the draws
    other = np.random.default_rng(4).random(1001)
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 10**12)  # every resample in one draw
    whole = (bootstrap_interval(values), paired_delta(values, other))
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 5 * 1001)  # four resamples a block
    assert (bootstrap_interval(values), paired_delta(values, other)) == whole
