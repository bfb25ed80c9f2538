"""The run's per-row results table, written chunk by chunk so that its size never sits in memory.

evaluate() hands each chunk of rows to a :class:`ResultsWriter` as a small DataFrame. A chunk's
column types depend on its own values (a chunk whose rows all lack a token count has a column
of None, another a column of integers), so chunks are spooled as they come and, at the end,
cast to the types the whole table has (``pyarrow.unify_schemas``, permissive: None joins any
type, integers join floats) and written as one Parquet file (row groups of ``ROW_GROUP_ROWS``) and one
JSON file (``{"columns": [...], "data": [[...], ...]}``, what ``TrackingClient.log_table``
writes): the same files whatever the chunk size.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.tracking.client import TrackingClient

RESULTS_TABLE = "eval_results_table"  # the key of result.tables, and the name of its files
RESULTS_PARQUET = f"{RESULTS_TABLE}.parquet"
RESULTS_JSON = f"{RESULTS_TABLE}.json"
RESULTS_FILES = {"json": RESULTS_JSON, "parquet": RESULTS_PARQUET}
# Rows per row group of the Parquet file: chunks come in slices of a few hundred rows; a reader
# (the report) holds a row group at a time.
ROW_GROUP_ROWS = 10_000
# Columns of texts: readers of a big table (the report, the UI, the suite's gates) keep them on
# disk and read them for the rows they show.
TEXT_COLUMNS = ("inputs", "outputs", "targets", "contexts", "error")
TEXT_SUFFIXES = ("/justification", "/raw")


class ResultsWriter:
    """Collects the results table chunk by chunk in a spool folder; :meth:`log` writes its files
    into a run's artifacts, without the columns named in ``drop`` (which every chunk has: whether
    a column is wanted may be known only once every chunk is in)."""

    def __init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="evalkit-results-"))
        self._chunks: list[Path] = []
        self._columns: list[str] | None = None
        self.drop: set[str] = set()
        self.rows = 0

    def add(self, chunk: pd.DataFrame) -> None:
        """Spool ``chunk``, whose columns are those of every chunk, in the same order."""
        columns = list(chunk.columns)
        if self._columns is None:
            self._columns = columns
        elif columns != self._columns:
            raise ValueError(f"results chunk has columns {columns}, the first chunk had {self._columns}")
        path = self._folder / f"chunk-{len(self._chunks):06d}.parquet"
        pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), path)
        self._chunks.append(path)
        self.rows += len(chunk)

    def log(self, client: TrackingClient, run_id: str) -> None:
        """Write the table as ``eval_results_table.parquet`` and ``.json`` into the run's artifacts."""
        out = self._folder / "out"
        out.mkdir(exist_ok=True)
        columns = [name for name in self._columns or [] if name not in self.drop]
        schemas = [pq.read_schema(path).remove_metadata() for path in self._chunks]
        unified = pa.unify_schemas(schemas, promote_options="permissive")
        schema = pa.schema([_as_whole(unified.field(name), schemas) for name in columns])
        with pq.ParquetWriter(out / RESULTS_PARQUET, schema) as parquet, \
                (out / RESULTS_JSON).open("w", encoding="utf-8") as text:
            text.write('{"columns":' + json.dumps(columns, ensure_ascii=False, separators=(",", ":")) + ',"data":[')
            first, group, grouped = True, [], 0
            for path in self._chunks:
                table = pq.read_table(path, columns=columns).cast(schema)
                group.append(table)
                grouped += table.num_rows
                if grouped >= ROW_GROUP_ROWS:
                    parquet.write_table(pa.concat_tables(group))
                    group, grouped = [], 0
                rows = _json_rows(table.to_pandas())
                if rows:
                    text.write(rows if first else "," + rows)
                    first = False
            if group:
                parquet.write_table(pa.concat_tables(group))
            text.write("]}")
        for name in (RESULTS_PARQUET, RESULTS_JSON):
            client.log_artifact(run_id, out / name)

    def close(self) -> None:
        """Remove the spool folder."""
        shutil.rmtree(self._folder, ignore_errors=True)


def _as_whole(field: pa.Field, schemas: list[pa.Schema]) -> pa.Field:
    """The column's type in the whole table: integers with missing values are floats (as pandas
    makes them), also when the missing values came in a chunk of their own."""
    if pa.types.is_integer(field.type) and any(pa.types.is_null(s.field(field.name).type) for s in schemas):
        return field.with_type(pa.float64())
    return field


def _json_rows(frame: pd.DataFrame) -> str:
    """The rows of ``frame`` as ``log_table``'s JSON writes them, without the enclosing brackets."""
    encoded = frame.to_json(orient="values", date_format="iso", default_handler=str)
    return encoded[1:-1]


def read_results(path: str | Path) -> pd.DataFrame:
    """A results table read back as evaluate() builds it: list columns (contexts) as Python lists."""
    table = pq.read_table(path)
    frame = table.to_pandas()
    for index, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            frame[field.name] = table.column(index).to_pylist()
    return frame


class ResultsFile:
    """A results table in a local Parquet file (``download``): its status, score and number
    columns read whole (``light``), every column read for the rows asked for (``rows_at``), so
    that memory does not grow with the texts."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def download(cls, client: TrackingClient, run_id: str, folder: Path) -> ResultsFile:
        """The run's results table copied into ``folder`` (which must outlive the file)."""
        path = folder / f"{run_id}.parquet"
        client.artifact_repository(run_id).download_file(RESULTS_PARQUET, path)
        return cls(path)

    def light(self) -> pd.DataFrame:
        """Every row of the columns that hold no text."""
        import pandas as pd

        names = pq.read_schema(self.path).names
        return pd.read_parquet(self.path, columns=[n for n in names if n not in TEXT_COLUMNS
                                                   and not n.endswith(TEXT_SUFFIXES)])

    def column(self, name: str) -> pa.ChunkedArray | None:
        """One column of every row, or None when the table has none."""
        if name not in pq.read_schema(self.path).names:
            return None
        return pq.read_table(self.path, columns=[name]).column(name)

    def rows_at(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """Every column of the rows at ``positions`` (ascending), read a row group at a time;
        missing values as None."""
        wanted = np.asarray(positions, dtype=np.int64)
        parquet, pieces = pq.ParquetFile(self.path), []
        for group, first, size in row_groups(parquet):
            local = wanted[(wanted >= first) & (wanted < first + size)] - first
            if local.size:
                pieces.append(parquet.read_row_group(group).take(pa.array(local)))
        return pa.concat_tables(pieces).to_pylist() if pieces else []


def row_groups(parquet: pq.ParquetFile) -> Iterator[tuple[int, int, int]]:
    """Each row group of ``parquet`` as (its number, the position of its first row, its rows)."""
    first = 0
    for group in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(group).num_rows
        yield group, first, size
        first += size


def input_keys(table: pd.DataFrame, stored: ResultsFile | None) -> list[str]:
    """Each row's input as the text that pairs it with another run's rows (``evalkit.stats.align_rows``):
    from ``table`` when it holds the inputs, else read from ``stored`` (a table held without its texts)."""
    if "inputs" in table or stored is None:
        return [str(x) for x in table["inputs"]]
    column = stored.column("inputs")
    return [str(x) for x in column.to_pylist()] if column is not None else ["None"] * len(table)


class StoredTables(Mapping[str, "pd.DataFrame"]):
    """``result.tables``: the results table, read from the run's artifacts when first asked for
    (a million-row table is not kept in memory for a caller who only wants the metrics)."""

    def __init__(self, client: TrackingClient, run_id: str) -> None:
        self._client, self._run_id = client, run_id
        self._loaded: pd.DataFrame | None = None

    def __getitem__(self, key: str) -> pd.DataFrame:
        if key != RESULTS_TABLE:
            raise KeyError(key)
        if self._loaded is None:
            with tempfile.TemporaryDirectory(prefix="evalkit-results-") as folder:
                local = Path(folder) / RESULTS_PARQUET
                self._client.artifact_repository(self._run_id).download_file(RESULTS_PARQUET, local)
                self._loaded = read_results(local)
        return self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter((RESULTS_TABLE,))

    def __len__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"StoredTables(run_id={self._run_id!r}, tables=[{RESULTS_TABLE!r}])"
