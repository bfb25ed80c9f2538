"""The column names evalkit looks for in evaluation data, and the keys ``col_mapping`` takes.

Kept apart from ``data.py`` (which needs pandas) so that the command line can show them in its
help without loading the data stack.
"""

from __future__ import annotations

from typing import Any

from evalkit.errors import InvalidArgument

INPUT_CANDIDATES = ("inputs", "question", "input", "query", "prompt")
CONTEXT_CANDIDATES = ("contexts", "context", "retrieved_contexts")
DEFAULT_TARGET_COLUMN = "ground_truth"
MAPPING_KEYS = ("inputs", "context", "targets", "predictions")


def check_col_mapping(col_mapping: Any) -> dict[str, str]:
    """``col_mapping`` checked: known keys, each naming a column; None is no mapping."""
    if col_mapping is None:
        return {}
    if not isinstance(col_mapping, dict):
        raise InvalidArgument(f"col_mapping must be a dict, got {type(col_mapping).__name__}")
    unknown = [key for key in col_mapping if key not in MAPPING_KEYS]
    if unknown:
        raise InvalidArgument(f"unknown key(s) {_list(unknown)} in col_mapping; valid keys: {_list(MAPPING_KEYS)}")
    for key, column in col_mapping.items():
        if not isinstance(column, str):
            raise InvalidArgument(f"col_mapping[{key!r}] must be a column name, got {column!r}")
        if not column.strip():
            raise InvalidArgument(f"no column given for {key!r} in col_mapping")
    return dict(col_mapping)


def _list(names: Any) -> str:
    return ", ".join(repr(name) for name in names)
