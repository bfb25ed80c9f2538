"""Thin a metric's history for a chart: a browser needs a few hundred points, not a million."""

from __future__ import annotations

import math
from collections.abc import Sequence

from evalkit.entities import Metric


def downsample(history: Sequence[Metric], max_points: int = 500) -> list[Metric]:
    """At most about ``max_points`` of ``history`` (ordered by step), keeping its shape.

    The steps are cut into ``max_points // 2`` buckets of equal length and each bucket keeps its
    lowest and highest value, in step order, so spikes and dips survive; the first and last points
    are always kept. A history of ``max_points`` or fewer is returned as is. NaN values are kept
    where they fall only if their bucket has nothing else (a chart shows them as gaps).
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if len(history) <= max_points:
        return list(history)
    buckets = max(1, (max_points - 2) // 2)
    inner = history[1:-1]
    size = len(inner) / buckets
    kept: list[Metric] = [history[0]]
    for b in range(buckets):
        chunk = inner[int(b * size):int((b + 1) * size)]
        finite = [m for m in chunk if not math.isnan(m.value)]
        if not finite:
            kept.extend(chunk[:1])
            continue
        low = min(finite, key=lambda m: m.value)
        high = max(finite, key=lambda m: m.value)
        kept.extend(sorted({id(low): low, id(high): high}.values(), key=lambda m: (m.step, m.timestamp)))
    kept.append(history[-1])
    return kept
