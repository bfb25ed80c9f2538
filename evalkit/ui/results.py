"""An evaluation run's results table, paged on the server with the report's filters: failed calls,
any error, poor scores, and a text search. The table is read once per finished run and kept in a
small cache, so paging 10,000 rows costs a slice, not a parquet read."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evalkit.entities import RunStatus
from evalkit.reports.model import (
    LOW_SCORE,
    RunView,
    _row_record,
    load_run,
    score_evaluators,
)
from evalkit.tracking.client import TrackingClient

PAGE_SIZE = 50
CACHED_TABLES = 8
FILTERS = ("failed", "errors", "poor")
_SEARCHED = ("inputs", "outputs", "targets")


@dataclass
class ResultsTable:
    view: RunView
    haystack: pd.Series  # lower-cased input, output and target of each row, for the search
    failed: np.ndarray
    errors: np.ndarray
    poor: np.ndarray
    score_names: list[str]


@dataclass
class ResultsPage:
    rows: list[dict[str, Any]]
    total: int  # rows matching the filters
    all_rows: int
    page: int
    pages: int
    score_names: list[str]
    poor: dict[tuple[int, str], bool]  # (row, evaluator) -> shown as a poor score


_cache: OrderedDict[str, ResultsTable] = OrderedDict()
_lock = threading.Lock()


def _is_poor(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    # "Poor" follows the metric's direction, as in the report: a low faithfulness, a high toxicity.
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(values < LOW_SCORE if higher_is_better else values >= LOW_SCORE, nan=False).astype(bool) \
            & np.isfinite(values)


def _build(view: RunView) -> ResultsTable:
    table = view.table
    n = len(table)
    status = table["status"].astype(str).to_numpy() if "status" in table else np.full(n, "ok")
    scored = score_evaluators(view)
    score_failed = np.zeros(n, dtype=bool)
    poor = np.zeros(n, dtype=bool)
    for info in scored:
        column = f"{info.name}/status"
        if column in table:
            score_failed |= table[column].astype(str).to_numpy() == "failed"
        poor |= _is_poor(view.scores(info.name), info.higher_is_better)
    text = pd.Series([""] * n, index=table.index)
    for column in _SEARCHED:
        if column in table:
            text = text + "\n" + table[column].astype(str)
    return ResultsTable(view, text.str.lower(), status == "failed", (status != "ok") | score_failed, poor,
                        [info.name for info in scored])


def load_results(client: TrackingClient, run_id: str) -> ResultsTable:
    """The run's results table with its filter masks; cached once the run has ended (a RUNNING
    run's table may still be rewritten)."""
    with _lock:
        cached = _cache.get(run_id)
        if cached is not None:
            _cache.move_to_end(run_id)
            return cached
    results = _build(load_run(client, run_id))
    if results.view.run.info.status is not RunStatus.RUNNING:
        with _lock:
            _cache[run_id] = results
            while len(_cache) > CACHED_TABLES:
                _cache.popitem(last=False)
    return results


def page(results: ResultsTable, query: str = "", filters: tuple[str, ...] = (), number: int = 1,
         size: int = PAGE_SIZE) -> ResultsPage:
    """Page ``number`` (from 1) of the rows matching every filter in ``filters`` and containing
    ``query`` (case-insensitive) in their input, output or target."""
    mask = np.ones(len(results.haystack), dtype=bool)
    for name in filters:
        mask &= getattr(results, name)
    if query:
        mask &= results.haystack.str.contains(query.lower(), regex=False).to_numpy()
    positions = np.flatnonzero(mask)
    total = len(positions)
    pages = max(1, -(-total // size))
    number = min(max(1, number), pages)
    chosen = positions[(number - 1) * size:number * size]
    rows = [_row_record(results.view, int(p)) for p in chosen]
    directions = {info.name: info.higher_is_better for info in results.view.evaluators}
    poor = {}
    for row in rows:
        for name in results.score_names:
            value = row["scores"].get(name)
            poor[(row["row"], name)] = bool(value is not None and _is_poor(np.array([value]), directions[name])[0])
    return ResultsPage(rows, total, len(results.haystack), number, pages, results.score_names, poor)


def row_detail(results: ResultsTable, row: int) -> dict[str, Any] | None:
    """Every field of the row numbered ``row`` (the table's ``row`` column), or None."""
    table = results.view.table
    matches = np.flatnonzero(table["row"].to_numpy() == row) if "row" in table else np.array([row])
    if not len(matches) or matches[0] >= len(table):
        return None
    return _row_record(results.view, int(matches[0]))
