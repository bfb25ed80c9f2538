"""Rendering for the terminal (rich tables) and for scripts (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import click
from rich.console import Console
from rich.table import Table


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
