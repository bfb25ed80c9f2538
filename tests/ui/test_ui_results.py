"""The UI's results table (evalkit/ui/results.py) on a run whose table has several row groups:
pages, filters, the text search and a row's detail match the whole table read with pandas, while
the table held in memory has no text column (memory does not grow with the texts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import evalkit as ek
from evalkit.evaluation import engine
from evalkit.evaluation import results as written
from evalkit.tracking.client import TrackingClient
from evalkit.ui import results

ROWS = 23


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run of 23 rows in row groups of 5 rows: every seventh answer missing (a
    failed call, found by its input), every third one wrong, inputs in mixed case."""
    monkeypatch.setattr(engine, "CHUNK_ROWS", 5)
    monkeypatch.setattr(written, "ROW_GROUP_ROWS", 5)
    ek.set_tracking_uri(str(tmp_path / "store.db"))
    frame = pd.DataFrame({
        "inputs": [f"Where is LAMP {i}?" if i % 2 else f"Where is the desk {i}?" for i in range(ROWS)],
        "ground_truth": [f"Aisle {i % 4}" for i in range(ROWS)],
    })
    answers = {q: None if i % 7 == 3 else (f"Aisle {i % 4}" if i % 3 else "Lamp room")
               for i, q in enumerate(frame["inputs"])}

    def model(question: str) -> str:
        if answers[question] is None:
            raise RuntimeError("backend down")
        return answers[question]

    with pytest.warns(ek.EvaluationWarning):
        result = ek.evaluate(model=model, data=frame, targets="ground_truth", progress=False, report=False,
                             evaluators=["exact_match", "token_f1"])
    client = TrackingClient(str(tmp_path / "store.db"))
    assert pq.ParquetFile(result.artifacts["parquet"]).num_row_groups == 5
    return client, result.run_id, result.tables["eval_results_table"]


def rows_of(page: results.ResultsPage) -> list[int]:
    return [r["row"] for r in page.rows]


def test_pages_filters_search_and_detail_match_the_whole_table(run):
    client, run_id, table = run
    shown = results.load_results(client, run_id)
    assert shown.rows == ROWS and not {"inputs", "outputs", "targets", "error"} & set(shown.view.table.columns)

    first, last = results.page(shown, size=10), results.page(shown, number=3, size=10)
    assert rows_of(first) == list(range(10)) and rows_of(last) == list(range(20, ROWS)) and last.pages == 3
    assert [r["input"] for r in first.rows] == list(table["inputs"][:10])

    # Case-insensitive, in the input, output or target; rows without an output are searched too.
    text = [table[c].str.lower().str.contains("lamp", na=False).to_numpy() for c in ("inputs", "outputs", "targets")]
    expected = [int(r) for r in table.loc[np.logical_or.reduce(text), "row"]]
    found = results.page(shown, "lAmP", size=100)
    assert rows_of(found) == expected and found.total == len(expected)
    assert any(r["output"] is None for r in found.rows)
    assert rows_of(results.page(shown, "lamp 1?")) == [1]  # the query is text, not a pattern

    errors = results.page(shown, "", ("errors",), size=100)
    assert rows_of(errors) == [int(r) for r in table.loc[table["status"] != "ok", "row"]] != []
    poor = results.page(shown, "lamp", ("poor",), size=100)
    scores = table[["exact_match/score", "token_f1/score"]].to_numpy(dtype=float)
    low = ((scores < 0.5) & np.isfinite(scores)).any(axis=1)  # a row without scores is not a poor one
    assert rows_of(poor) == [r for r in expected if low[r]] != []

    detail = results.row_detail(shown, 17)
    assert detail is not None and detail["input"] == table["inputs"][17] and detail["target"] == table["targets"][17]
    assert results.row_detail(shown, ROWS) is None


def test_a_search_is_read_once_and_a_finished_run_is_cached(run, monkeypatch):
    client, run_id, _ = run
    shown = results.load_results(client, run_id)
    assert results.load_results(client, run_id) is shown
    searched = []
    contains = results._contains
    monkeypatch.setattr(results, "_contains", lambda column, query: searched.append(query) or contains(column, query))
    first = results.page(shown, "desk", size=5)
    assert first.total == 12 and len(searched) == 5 * 3  # each row group's inputs, outputs and targets
    assert results.page(shown, "desk", number=2, size=5).total == 12 and len(searched) == 15
