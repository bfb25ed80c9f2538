"""A metric history thinned for a chart: at most ``max_points`` values, spikes kept.

One algorithm serves the server's ``/metrics/history/downsampled`` endpoint and the web UI's
charts: :func:`downsample` keeps, for each bucket of consecutive values, its lowest and highest
value (:func:`downsample_metric_history` feeds it a history read page by page from any
``TrackingStore``). When the buckets outgrow ``max_points / 2``, neighbouring buckets are merged, so memory stays O(``max_points``)
whatever the history's length, and the history is read once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from evalkit.entities import Metric
from evalkit.errors import InvalidArgument
from evalkit.tracking.store import HISTORY_PAGE_MAX, TrackingStore

DOWNSAMPLE_MAX_POINTS = 10_000

_Point = tuple[int, Metric]  # position in the history, value


@dataclass
class _Bucket:
    """Consecutive values: how many, and the lowest and highest (NaN only when every value is NaN)."""

    count: int
    low: _Point
    high: _Point

    def add(self, point: _Point, count: int = 1) -> None:
        self.count += count
        value = point[1].value
        if math.isnan(value):
            return
        if math.isnan(self.low[1].value) or value < self.low[1].value:
            self.low = point
        if math.isnan(self.high[1].value) or value > self.high[1].value:
            self.high = point

    def merge(self, later: _Bucket) -> None:
        self.add(later.low, later.count)
        self.add(later.high, 0)

    def points(self) -> list[_Point]:
        return sorted({self.low[0]: self.low, self.high[0]: self.high}.values(), key=lambda p: p[0])


def downsample(history: Iterable[Metric], max_points: int = 1000) -> tuple[list[Metric], int]:
    """At most ``max_points`` values of ``history`` (in history order) and how many it held. A
    short history comes back whole; a longer one keeps the minimum and maximum of each bucket of
    consecutive values, so no spike is lost. ``history`` is read once, in O(``max_points``) memory.

    ``InvalidArgument`` for ``max_points`` outside 2..``DOWNSAMPLE_MAX_POINTS``."""
    if isinstance(max_points, bool) or not isinstance(max_points, int) or not 2 <= max_points <= DOWNSAMPLE_MAX_POINTS:
        raise InvalidArgument(f"max_points must be an integer from 2 to {DOWNSAMPLE_MAX_POINTS}, got {max_points!r}")
    max_buckets = max_points // 2
    width = 1  # values per bucket; doubles each time the buckets outgrow max_buckets
    buckets: list[_Bucket] = []
    whole: list[Metric] | None = []  # every value, while there are at most max_points
    total = 0
    for metric in history:
        point = (total, metric)
        total += 1
        if whole is not None:
            whole.append(metric)
            if len(whole) > max_points:
                whole = None
        if buckets and buckets[-1].count < width:
            buckets[-1].add(point)
            continue
        buckets.append(_Bucket(1, point, point))
        if len(buckets) > max_buckets:
            width *= 2
            merged = buckets[::2]
            for first, later in zip(buckets[::2], buckets[1::2], strict=False):
                first.merge(later)
            buckets = merged
    if whole is not None:
        return whole, total
    return [metric for bucket in buckets for _, metric in bucket.points()], total


def downsample_metric_history(
    store: TrackingStore, run_id: str, key: str, max_points: int = 1000
) -> tuple[list[Metric], int]:
    """:func:`downsample` of the metric ``key`` of ``run_id``, read from ``store`` page by page so
    a history of millions of values is never held whole. ``NotFound`` for an unknown run."""
    return downsample(_history_pages(store, run_id, key), max_points)


def _history_pages(store: TrackingStore, run_id: str, key: str) -> Iterator[Metric]:
    token: str | None = None
    while True:
        page, token = store.get_metric_history_page(run_id, key, HISTORY_PAGE_MAX, token)
        yield from page
        if token is None:
            return
