"""Rendering for the terminal (rich tables) and for scripts (JSON)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import click
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

# Output piped to a file or a pager has no width of its own: wide enough for a handful of
# metric columns, narrow enough to read without scrolling sideways. $COLUMNS overrides it.
PIPED_WIDTH = 160
# Each column of a table adds a border and one space of padding on each side.
_COLUMN_CHROME = 3


def table_width() -> int:
    """The characters a table may take: the terminal's width, ``$COLUMNS``, or PIPED_WIDTH."""
    return shutil.get_terminal_size((PIPED_WIDTH, 24)).columns


def table_width_of(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """The width ``print_table`` gives these columns, unwrapped."""
    return 1 + sum(_column_width(column, [row[i] for row in rows]) + _COLUMN_CHROME for i, column in enumerate(columns))


def fitting_columns(columns: Sequence[str], rows: Sequence[Sequence[Any]], budget: int) -> int:
    """How many of ``columns`` (first ones first; ``rows`` hold their cells) fit in ``budget`` characters."""
    used = 0
    for i, column in enumerate(columns):
        used += _column_width(column, [row[i] for row in rows]) + _COLUMN_CHROME
        if used > budget:
            return i
    return len(columns)


def _column_width(header: str, cells: Sequence[Any]) -> int:
    return max([cell_len(header), *(cell_len(format_value(cell)) for cell in cells)])


def format_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False, header_style="bold", title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column == "run_id")
    for row in rows:
        table.add_row(*(format_value(v) for v in row))
    console = Console()
    if not console.is_terminal:  # piped to a file or a pager: do not squeeze into 80 columns
        console = Console(width=1000)  # tables take their natural width, no wider
    console.print(table)


def print_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=str, allow_nan=True))
