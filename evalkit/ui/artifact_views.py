"""Previews of a run's artifacts: text, JSON, images, tables (paged) and HTML (sandboxed)."""

from __future__ import annotations

import io
import json
import mimetypes
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from evalkit.tracking.artifacts import ArtifactRepository

TEXT_LIMIT = 200_000  # bytes of a text artifact shown; the rest is a download away
TABLE_PAGE = 50
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"}
TABLE_SUFFIXES = {".parquet", ".csv"}
TEXT_SUFFIXES = {".txt", ".md", ".log", ".py", ".yaml", ".yml", ".toml", ".xml", ".jsonl", ".ini", ".cfg", ".sql"}
CACHED_TABLES = 8

_tables: OrderedDict[tuple[str, str], pd.DataFrame] = OrderedDict()
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


def load_table(repository: ArtifactRepository, path: str, cache_key: str) -> pd.DataFrame:
    """The artifact as a DataFrame (parquet, CSV or log_table JSON), cached by (run, path)."""
    key = (cache_key, path)
    with _lock:
        if key in _tables:
            _tables.move_to_end(key)
            return _tables[key]
    data = repository.read_bytes(path)
    suffix = PurePosixPath(path).suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(io.BytesIO(data))
    elif suffix == ".csv":
        frame = pd.read_csv(io.BytesIO(data))
    else:
        frame = _log_table_json(json.loads(data))
        if frame is None:
            raise ValueError(f"{path} is not a table")
    with _lock:
        _tables[key] = frame
        while len(_tables) > CACHED_TABLES:
            _tables.popitem(last=False)
    return frame


def table_page(frame: pd.DataFrame, number: int, size: int = TABLE_PAGE) -> TablePage:
    pages = max(1, -(-len(frame) // size))
    number = min(max(1, number), pages)
    chunk = frame.iloc[(number - 1) * size:number * size]
    rows = [[_cell(v) for v in row] for row in chunk.itertuples(index=False, name=None)]
    return TablePage([str(c) for c in frame.columns], rows, len(frame), number, pages)


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

