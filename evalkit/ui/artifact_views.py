"""Previews of a run's artifacts: text, JSON, images, tables (paged) and HTML (sandboxed).

A Parquet table is copied to a local file and a page reads only the row groups holding its rows,
so previewing a big results table costs a page, not the table."""

from __future__ import annotations

import io
import json
import mimetypes
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evalkit.evaluation.results import row_groups
from evalkit.tracking.artifacts import ArtifactRepository

TEXT_LIMIT = 200_000  # bytes of a text artifact shown; the rest is a download away
TABLE_PAGE = 50
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"}
TABLE_SUFFIXES = {".parquet", ".csv"}
TEXT_SUFFIXES = {".txt", ".md", ".log", ".py", ".yaml", ".yml", ".toml", ".xml", ".jsonl", ".ini", ".cfg", ".sql"}
CACHED_TABLES = 8

_tables: OrderedDict[tuple[str, str], Table] = OrderedDict()
_lock = threading.Lock()


def kind(path: str) -> str:
    """How an artifact is previewed: image, table, json, html, text or binary."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in TABLE_SUFFIXES:
        return "table"
    if suffix == ".json":
        return "json"
    if suffix in (".html", ".htm"):
        return "html"
    if suffix in TEXT_SUFFIXES:
        return "text"
    return "binary"


def media_type(path: str) -> str:
    """The Content-Type an artifact is served with; HTML and SVG keep theirs but are sandboxed."""
    if kind(path) in ("text", "json"):
        return "text/plain; charset=utf-8"
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


@dataclass
class TablePage:
    columns: list[str]
    rows: list[list[str]]
    total: int
    page: int
    pages: int


def _log_table_json(payload: Any) -> pd.DataFrame | None:
    """A table written by ``log_table`` as JSON ({"columns": [...], "data": [[...], ...]}), else None."""
    if isinstance(payload, dict) and isinstance(payload.get("columns"), list) and isinstance(payload.get("data"), list):
        return pd.DataFrame(payload["data"], columns=payload["columns"])
    return None


class Table(Protocol):
    """A table artifact as the preview pages it."""

    columns: list[str]
    rows: int

    def slice(self, start: int, stop: int) -> pd.DataFrame:
        """Rows ``start`` to ``stop`` (positions)."""
        ...


@dataclass
class FrameTable:
    """A CSV or log_table JSON artifact, read whole (they hold no row groups to read apart)."""

    frame: pd.DataFrame

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    @property
    def rows(self) -> int:
        return len(self.frame)

    def slice(self, start: int, stop: int) -> pd.DataFrame:
        return self.frame.iloc[start:stop]


@dataclass
class ParquetTable:
    """A Parquet artifact copied to a local file, removed once no request holds the table."""

    folder: tempfile.TemporaryDirectory[str]
    path: Path
    columns: list[str] = field(init=False)
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        parquet = pq.ParquetFile(self.path)
        self.columns = [str(c) for c in parquet.schema_arrow.empty_table().to_pandas().columns]
        self.rows = parquet.metadata.num_rows

    def slice(self, start: int, stop: int) -> pd.DataFrame:
        parquet = pq.ParquetFile(self.path)  # one per read: a ParquetFile is not shared between threads
        pieces, first = [], 0
        for group, offset, size in row_groups(parquet):
            if offset < stop and start < offset + size:
                first = first if pieces else offset
                pieces.append(parquet.read_row_group(group))
        if not pieces:
            return parquet.schema_arrow.empty_table().to_pandas()
        return pa.concat_tables(pieces).slice(start - first, stop - start).to_pandas()


def load_table(repository: ArtifactRepository, path: str, cache_key: str) -> Table:
    """The artifact as a table to page (parquet, CSV or log_table JSON), cached by (run, path)."""
    key = (cache_key, path)
    with _lock:
        if key in _tables:
            _tables.move_to_end(key)
            return _tables[key]
    table: Table
    if PurePosixPath(path).suffix.lower() == ".parquet":
        folder = tempfile.TemporaryDirectory(prefix="evalkit-table-")
        local = Path(folder.name) / "table.parquet"
        repository.download_file(path, local)
        table = ParquetTable(folder, local)
    else:
        data = repository.read_bytes(path)
        if PurePosixPath(path).suffix.lower() == ".csv":
            frame = pd.read_csv(io.BytesIO(data))
        else:
            frame = _log_table_json(json.loads(data))
            if frame is None:
                raise ValueError(f"{path} is not a table")
        table = FrameTable(frame)
    with _lock:
        _tables[key] = table
        while len(_tables) > CACHED_TABLES:
            _tables.popitem(last=False)
    return table


def table_page(table: Table, number: int, size: int = TABLE_PAGE) -> TablePage:
    pages = max(1, -(-table.rows // size))
    number = min(max(1, number), pages)
    chunk = table.slice((number - 1) * size, number * size)
    rows = [[_cell(v) for v in row] for row in chunk.itertuples(index=False, name=None)]
    return TablePage(table.columns, rows, table.rows, number, pages)


def _cell(value: Any, limit: int = 300) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def text_preview(repository: ArtifactRepository, path: str) -> tuple[str, bool]:
    """The artifact's text (pretty-printed when it is JSON) and whether it was cut short."""
    data = repository.read_bytes(path)
    cut = len(data) > TEXT_LIMIT
    text = data[:TEXT_LIMIT].decode("utf-8", errors="replace")
    if kind(path) == "json" and not cut:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return text, cut

