"""An evaluation run's results table, paged on the server with the report's filters: failed calls,
any error, poor scores, and a text search.

Memory does not grow with the texts: a finished run's table is copied once to a local Parquet file
(kept in a small cache with its filter masks), only its status and score columns are read into
memory, a search reads the inputs, outputs and targets a row group at a time, and a page reads only
the row groups of its rows. A 100,000-row table of 1 KB texts costs tens of MB, not GBs
(``bench/bench_results_page.py``)."""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evalkit.entities import RunStatus
from evalkit.evaluation.results import row_groups
from evalkit.reports.model import (
    LOW_SCORE,
    RunView,
    load_run,
    row_records,
    score_evaluators,
)
from evalkit.tracking.client import TrackingClient

PAGE_SIZE = 50
CACHED_TABLES = 8
CACHED_SEARCHES = 16  # per table: paging through a search's hits reads the texts once
FILTERS = ("failed", "errors", "poor")
_SEARCHED = ("inputs", "outputs", "targets")


@dataclass
class ResultsTable:
    view: RunView  # the status and score columns in memory; every column in ``view.source``
    folder: tempfile.TemporaryDirectory[str]  # holds ``view.source``; removed once no request holds the table
    failed: np.ndarray
    errors: np.ndarray
    poor: np.ndarray
    score_names: list[str]
    searches: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def rows(self) -> int:
        return len(self.failed)


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


def _build(view: RunView, folder: tempfile.TemporaryDirectory[str]) -> ResultsTable:
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
    return ResultsTable(view, folder, status == "failed", (status != "ok") | score_failed, poor,
                        [info.name for info in scored])


def _contains(column: pa.ChunkedArray, query: str) -> np.ndarray:
    """Which values of ``column`` contain ``query``, ignoring case (a missing value contains nothing)."""
    if pa.types.is_dictionary(column.type) and pa.types.is_string(column.type.value_type):
        column = column.cast(pa.string())
    elif not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        # Lists, structs or numbers (inputs given as dicts, say): searched as the text they show.
        column = pa.chunked_array([pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())])
    found = pc.match_substring(column, query, ignore_case=True)
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)


def _search(results: ResultsTable, query: str) -> np.ndarray:
    """Which rows contain ``query`` (case-insensitive) in their input, output or target."""
    with results.lock:
        hits = results.searches.get(query)
        if hits is not None:
            results.searches.move_to_end(query)
            return hits
    parquet = pq.ParquetFile(results.view.source)
    columns = [name for name in _SEARCHED if name in parquet.schema_arrow.names]
    pieces = []
    for group, _, _ in row_groups(parquet):  # one row group's texts in memory at a time
        texts = parquet.read_row_group(group, columns=columns)
        found = np.zeros(texts.num_rows, dtype=bool)
        for name in columns:
            found |= _contains(texts.column(name), query)
        pieces.append(found)
    hits = np.concatenate(pieces) if pieces else np.zeros(results.rows, dtype=bool)
    with results.lock:
        results.searches[query] = hits
        while len(results.searches) > CACHED_SEARCHES:
            results.searches.popitem(last=False)
    return hits


def load_results(client: TrackingClient, run_id: str) -> ResultsTable:
    """The run's results table with its filter masks; cached once the run has ended (a RUNNING
    run's table may still be rewritten)."""
    with _lock:
        cached = _cache.get(run_id)
        if cached is not None:
            _cache.move_to_end(run_id)
            return cached
    folder = tempfile.TemporaryDirectory(prefix="evalkit-results-")
    results = _build(load_run(client, run_id, Path(folder.name)), folder)
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
    mask = np.ones(results.rows, dtype=bool)
    for name in filters:
        mask &= getattr(results, name)
    if query:
        mask &= _search(results, query)
    positions = np.flatnonzero(mask)
    total = len(positions)
    pages = max(1, -(-total // size))
    number = min(max(1, number), pages)
    rows = row_records(results.view, positions[(number - 1) * size:number * size].tolist())
    directions = {info.name: info.higher_is_better for info in results.view.evaluators}
    poor = {}
    for row in rows:
        for name in results.score_names:
            value = row["scores"].get(name)
            poor[(row["row"], name)] = bool(value is not None and _is_poor(np.array([value]), directions[name])[0])
    return ResultsPage(rows, total, results.rows, number, pages, results.score_names, poor)


def row_detail(results: ResultsTable, row: int) -> dict[str, Any] | None:
    """Every field of the row numbered ``row`` (the table's ``row`` column), or None."""
    table = results.view.table
    matches = np.flatnonzero(table["row"].to_numpy() == row) if "row" in table else np.array([row])
    if not len(matches) or not 0 <= matches[0] < results.rows:
        return None
    return row_records(results.view, [int(matches[0])])[0]
