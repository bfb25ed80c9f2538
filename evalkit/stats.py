"""Confidence intervals for run metrics, and paired comparisons with a baseline run.

The report draws these intervals and verdicts; the nightly gate (``evalkit.suite``) tests for a
regression with the same paired bootstrap, so a gate fails exactly when the report's interval
says "regressed" at the same level. Resampling is vectorised (a ``(resamples, rows)`` index
matrix, in chunks), so a 10,000-row run costs milliseconds. Comparisons are paired: the same
rows in both runs, resampled together, which is far more sensitive than comparing two
independent intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000  # plenty for a 95% percentile interval; cost grows with resamples x rows
CONFIDENCE = 0.95

Statistic = Callable[[np.ndarray], np.ndarray]  # (resamples, rows) -> (resamples,)


def mean_statistic(samples: np.ndarray) -> np.ndarray:
    return samples.mean(axis=-1)


def percentile_statistic(q: float) -> Statistic:
    return lambda samples: np.percentile(samples, q, axis=-1)


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Delta:
    """``current - baseline`` on the paired rows, with its bootstrap interval and a verdict."""

    current: float
    baseline: float
    delta: float
    low: float
    high: float
    n_pairs: int
    verdict: str  # "improved", "regressed" or "no significant change"


def _clean(values: np.ndarray | list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[~np.isnan(array)]


def _scored_in_both(current: np.ndarray | list[float], baseline: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(current, dtype=float), np.asarray(baseline, dtype=float)
    both = ~np.isnan(a) & ~np.isnan(b)
    return a[both], b[both]


def _value(statistic: Statistic, values: np.ndarray) -> float:
    return float(statistic(values[np.newaxis, :])[0])


def _resampled(statistics: Callable[[np.ndarray], np.ndarray], size: int, resamples: int,
               rng: np.random.Generator) -> np.ndarray:
    """``statistics(indices)`` over ``resamples`` bootstrap draws of ``size`` row positions, drawn
    a block of resamples at a time so that memory stays bounded (about 32 MB of indices) however
    many rows there are. A block has an even number of resamples: the generator then hands out
    the same positions as one draw of every resample would (it draws 32-bit values in pairs and
    drops an unpaired one at the end of each call), so the figures do not depend on the block."""
    block = max(2, _CHUNK_CELLS // size // 2 * 2)
    return np.concatenate([statistics(rng.integers(0, size, size=(min(block, resamples - start), size)))
                           for start in range(0, resamples, block)])


def bootstrap_interval(values: np.ndarray | list[float], statistic: Statistic = mean_statistic,
                       resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0) -> Interval | None:
    """Percentile bootstrap interval of ``statistic`` over the non-NaN values; None when empty."""
    clean = _clean(values)
    if clean.size == 0:
        return None
    value = _value(statistic, clean)
    if clean.size == 1:
        return Interval(value, value, value, 1)
    estimates = _resampled(lambda indices: statistic(clean[indices]), clean.size, resamples,
                           np.random.default_rng(seed))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(estimates, [alpha, 1 - alpha])
    return Interval(value, float(low), float(high), int(clean.size))


def paired_delta(current: np.ndarray | list[float], baseline: np.ndarray | list[float], higher_is_better: bool = True,
                 statistic: Statistic = mean_statistic, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                 seed: int = 0) -> Delta | None:
    """The change of ``statistic`` from baseline to current over rows scored in both (aligned by
    position). The verdict is "improved" or "regressed" when the interval excludes zero."""
    a, b = _scored_in_both(current, baseline)
    if a.size == 0:
        return None
    now, before = _value(statistic, a), _value(statistic, b)
    if a.size == 1:
        low = high = now - before
    else:
        deltas = _resampled(lambda indices: statistic(a[indices]) - statistic(b[indices]), a.size, resamples,
                            np.random.default_rng(seed))
        alpha = (1 - confidence) / 2
        low, high = (float(x) for x in np.quantile(deltas, [alpha, 1 - alpha]))
    if low > 0 or high < 0:
        better = (low > 0) == higher_is_better
        verdict = "improved" if better else "regressed"
    else:
        verdict = "no significant change"
    return Delta(now, before, now - before, low, high, int(a.size), verdict)


def align_rows(current_keys: list[str], baseline_keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Row positions pairing the two runs by key (e.g. the input text): the first baseline row
    with the same key pairs with each current row; rows without a partner are left out."""
    first: dict[str, int] = {}
    for position, key in enumerate(baseline_keys):
        first.setdefault(key, position)
    pairs = [(i, first[key]) for i, key in enumerate(current_keys) if key in first]
    if not pairs:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    current, baseline = zip(*pairs, strict=True)
    return np.asarray(current), np.asarray(baseline)


@dataclass(frozen=True)
class RegressionTest:
    """A one-sided paired test of "current is worse than baseline".

    ``method`` is "bootstrap" (the report's paired bootstrap: ``p_value`` is the share of
    resampled changes that are not a regression, zero counting as not worse, with the usual +1
    correction) or, below ``MIN_BOOTSTRAP_PAIRS`` rows, "permutation": a few rows give the
    bootstrap too little spread (three rows that all got worse would look certain), so small
    samples swap each pair's two scores at random instead, which is exact at any size.
    ``delta`` is ``current - baseline`` on the paired rows.
    """

    current: float
    baseline: float
    delta: float
    p_value: float
    n_pairs: int
    resamples: int
    method: str = "bootstrap"


GATE_RESAMPLES = 10_000  # resolution 1e-4 for p-values, which Holm's correction divides
MIN_BOOTSTRAP_PAIRS = 30  # measured: fewer pairs push the bootstrap's A/A false alarms above alpha
_EXACT_PAIRS = 12  # up to 2**12 swap patterns are enumerated rather than sampled
_CHUNK_CELLS = 4_000_000  # resamples x rows per chunk: about 32 MB of indices
_FLOAT_NOISE = 1e-12  # a resample of identical rows must count as "no change"


def paired_regression_test(current: np.ndarray | list[float], baseline: np.ndarray | list[float],
                           higher_is_better: bool = True, statistic: Statistic = mean_statistic,
                           resamples: int = GATE_RESAMPLES, seed: int = 0) -> RegressionTest | None:
    """Test whether ``statistic`` got worse from baseline to current over rows scored in both
    (aligned by position); None when no row is scored in both."""
    a, b = _scored_in_both(current, baseline)
    if a.size == 0:
        return None
    now, before = _value(statistic, a), _value(statistic, b)
    sign = 1.0 if higher_is_better else -1.0
    rng = np.random.default_rng(seed)
    if a.size < MIN_BOOTSTRAP_PAIRS:
        p_value, draws = _swap_p_value(a, b, sign, statistic, resamples, rng)
        return RegressionTest(now, before, now - before, p_value, int(a.size), draws, "permutation")
    not_worse = 0
    chunk = max(1, _CHUNK_CELLS // a.size)
    for start in range(0, resamples, chunk):
        indices = rng.integers(0, a.size, size=(min(chunk, resamples - start), a.size))
        change = (statistic(a[indices]) - statistic(b[indices])) * sign
        not_worse += int(np.count_nonzero(change >= -_FLOAT_NOISE))
    p_value = (not_worse + 1) / (resamples + 1)
    return RegressionTest(now, before, now - before, p_value, int(a.size), resamples)


def _swap_p_value(a: np.ndarray, b: np.ndarray, sign: float, statistic: Statistic, resamples: int,
                  rng: np.random.Generator) -> tuple[float, int]:
    """The share of within-pair swaps whose change is as bad as the observed one: if the two runs
    are alike, each pair's scores could as well have come the other way round."""
    observed = (_value(statistic, a) - _value(statistic, b)) * sign
    if a.size <= _EXACT_PAIRS:
        swaps = ((np.arange(2 ** a.size)[:, np.newaxis] >> np.arange(a.size)) & 1).astype(bool)
    else:
        swaps = rng.random((resamples, a.size)) < 0.5
    change = (statistic(np.where(swaps, b, a)) - statistic(np.where(swaps, a, b))) * sign
    as_bad = int(np.count_nonzero(change <= observed + _FLOAT_NOISE))
    if a.size <= _EXACT_PAIRS:
        return as_bad / len(swaps), len(swaps)  # the identity is among the patterns: exact
    return (as_bad + 1) / (resamples + 1), resamples


def holm_adjust(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given): compare each with alpha to keep
    the chance of any false alarm across all the tests at or below alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
