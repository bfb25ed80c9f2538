"""Table previews of a run's artifacts (evalkit/ui/artifact_views.py): a Parquet table is paged a
row group at a time and its pages hold the same cells as the whole table read with pandas; CSV
and log_table JSON are paged from the whole table."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalkit.tracking.artifacts.local import LocalArtifactRepository
from evalkit.ui import artifact_views

ROWS = 23


@pytest.fixture
def repository(tmp_path):
    frame = pd.DataFrame({"row": range(ROWS), "text": [f"answer {i}" if i % 5 else None for i in range(ROWS)],
                          "score": [i / 10 for i in range(ROWS)]})
    root = tmp_path / "artifacts"
    root.mkdir()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / "table.parquet", row_group_size=4)
    pq.write_table(pa.Table.from_pandas(frame.iloc[:0], preserve_index=False), root / "empty.parquet")
    frame.to_csv(root / "table.csv", index=False)
    (root / "logged.json").write_text(json.dumps({"columns": list(frame.columns),
                                                  "data": frame.astype(object).where(frame.notna(), None).values.tolist()}))
    return LocalArtifactRepository(str(root)), frame


@pytest.mark.parametrize("path", ["table.parquet", "table.csv", "logged.json"])
def test_every_page_holds_the_cells_of_the_whole_table(repository, path):
    repo, frame = repository
    table = artifact_views.load_table(repo, path, f"run-{path}")
    assert isinstance(table, artifact_views.ParquetTable) == path.endswith(".parquet")
    assert table.columns == ["row", "text", "score"] and table.rows == ROWS
    pages = [artifact_views.table_page(table, number, size=5) for number in range(1, 6)]
    assert [page.pages for page in pages] == [5] * 5 and [page.total for page in pages] == [ROWS] * 5
    shown = [row for page in pages for row in page.rows]
    whole = [[artifact_views._cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    assert shown == whole
    # A page past the last is the last; one before the first is the first.
    assert artifact_views.table_page(table, 9, size=5).rows == pages[-1].rows
    assert artifact_views.table_page(table, 0, size=5).rows == pages[0].rows


def test_a_parquet_page_reads_only_its_row_groups_and_an_empty_table_has_one_empty_page(repository, monkeypatch):
    repo, _ = repository
    table = artifact_views.load_table(repo, "table.parquet", "run-groups")
    read: list[int] = []
    original = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda self, i, *a, **k: read.append(i) or original(self, i, *a, **k))
    assert [row[0] for row in artifact_views.table_page(table, 3, size=5).rows] == ["10", "11", "12", "13", "14"]
    assert read == [2, 3]  # rows 8-11 and 12-15 of the groups of 4
    empty = artifact_views.table_page(artifact_views.load_table(repo, "empty.parquet", "run-empty"), 1)
    assert empty.rows == [] and empty.total == 0 and empty.pages == 1 and empty.columns == ["row", "text", "score"]
