"""Evaluation data in, one canonical table out.

:func:`load_dataset` accepts a pandas DataFrame, a Hugging Face ``datasets.Dataset`` or a file
(``.csv``, ``.jsonl``/``.ndjson``, ``.json``, ``.parquet``), finds the columns evalkit needs and
checks every value before any model is called, so a bad row fails the run at once instead of
after an hour of paid API calls.

Which columns are used, when ``col_mapping`` does not say:

- **inputs**: the first present of ``inputs``, ``question``, ``input``, ``query``, ``prompt``.
- **context**: the first present of ``contexts``, ``context``, ``retrieved_contexts``.
- **targets**: the column named by ``targets=``, else a column named exactly ``ground_truth``.
  Columns such as ``answer`` or ``reference`` are never picked up on their own: whether a column is
  the expected answer is the caller's decision, and guessing wrong would score against the wrong
  text without a word.
- **predictions**: only the column named by ``predictions=``. A guessed predictions column would
  silently replace calling the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.errors import InvalidArgument
from evalkit.evaluation.columns import (
    CONTEXT_CANDIDATES,
    DEFAULT_TARGET_COLUMN,
    INPUT_CANDIDATES,
    check_col_mapping,
)

if TYPE_CHECKING:
    import datasets

SUPPORTED_EXTENSIONS = (".csv", ".jsonl", ".ndjson", ".json", ".parquet")

_MAX_LISTED_ROWS = 5


@dataclass(frozen=True)
class EvalDataset:
    """Evaluation data with its columns resolved and every used value checked.

    ``frame`` is the caller's data (a copy, index reset to ``0..n-1``, every column kept, so
    prompt templates can use any of them). ``input_column`` is None only when
    ``load_dataset(require_inputs=False)`` found no input column. ``digest`` identifies the
    content of the used columns, whatever their names, order or source format: two runs with
    the same digest evaluated the same data.
    """

    frame: pd.DataFrame = field(compare=False, repr=False)
    input_column: str | None
    context_column: str | None
    target_column: str | None
    prediction_column: str | None
    digest: str
    # Parsed once at load time: decoding and checking contexts is the costly part of loading.
    _contexts: tuple[tuple[str, ...], ...] = field(compare=False, repr=False)

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        return len(self.frame)

    def inputs(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The input of each row (of rows ``start`` to ``stop``); empty strings when there is no input column."""
        stop = self.num_rows if stop is None else min(stop, self.num_rows)
        if self.input_column is None:
            return [""] * max(0, stop - start)
        return self.frame[self.input_column].iloc[start:stop].tolist()

    def contexts(self, start: int = 0, stop: int | None = None) -> list[list[str]]:
        """The retrieved passages of each row (of rows ``start`` to ``stop``); ``[]`` for a row without any."""
        return [list(passages) for passages in self._contexts[start:stop]]

    def targets(self, start: int = 0, stop: int | None = None) -> list[str | None]:
        """The expected answer of each row (of rows ``start`` to ``stop``); all None without a targets column."""
        return self._column_values(self.target_column, start, stop)

    def targets_of(self, rows: Sequence[int]) -> list[str | None]:
        """The expected answer of each of ``rows`` (row indices), as ``targets`` gives them."""
        return self._values_at(self.target_column, list(rows), len(rows))

    def predictions(self, start: int = 0, stop: int | None = None) -> list[str | None]:
        """The given prediction of each row (of rows ``start`` to ``stop``); all None without a predictions column."""
        return self._column_values(self.prediction_column, start, stop)

    def _column_values(self, column: str | None, start: int, stop: int | None) -> list[Any]:
        stop = self.num_rows if stop is None else min(stop, self.num_rows)
        return self._values_at(column, slice(start, stop), max(0, stop - start))

    def _values_at(self, column: str | None, at: slice | list[int], count: int) -> list[Any]:
        """The column's values at ``at`` (``count`` of them); all None without the column."""
        if column is None:
            return [None] * count
        return self.frame[column].iloc[at].tolist()


def load_dataset(
    data: pd.DataFrame | datasets.Dataset | str | os.PathLike[str],
    *,
    targets: str | None = None,
    predictions: str | None = None,
    col_mapping: dict[str, str] | None = None,
    require_inputs: bool = True,
) -> EvalDataset:
    """Read ``data``, resolve its columns and check every used value.

    ``col_mapping`` maps evalkit's names (``inputs``, ``context``, ``targets``, ``predictions``)
    to your columns, e.g. ``{"inputs": "user_question", "context": "docs"}``; two names may map
    to the same column. ``targets=`` and ``predictions=`` name columns too. See the module
    docstring for the column names used when nothing is said.

    A context cell may be a string (one passage), a list, tuple or NumPy array of strings, or a
    JSON-encoded list of strings (how CSV files store lists); an empty or missing cell means no
    passages. Inputs, targets and predictions must be strings: numbers are refused rather than
    converted, since ``str(3.0)`` is rarely the text the data meant. CSV cells are read as text,
    and only an empty cell counts as missing. An input that is empty or only white space is
    refused too, with its row numbers (0-based): a model would still be asked, and paid, to
    answer nothing.

    Raises :class:`InvalidArgument` naming the column, row and value at fault.
    """
    mapping = check_col_mapping(col_mapping)
    named_targets = _pick_named("targets", targets, mapping.get("targets"))
    named_predictions = _pick_named("predictions", predictions, mapping.get("predictions"))
    frame = read_frame(data).reset_index(drop=True)
    if len(frame) == 0:
        raise InvalidArgument(f"data has no rows (columns: {_list(frame.columns)})")

    input_column = _resolve(frame, "inputs", mapping.get("inputs"), INPUT_CANDIDATES, required=require_inputs)
    context_column = _resolve(frame, "context", mapping.get("context"), CONTEXT_CANDIDATES, required=False)
    target_column = _resolve(frame, "targets", named_targets, (DEFAULT_TARGET_COLUMN,), required=False)
    prediction_column = _resolve(frame, "predictions", named_predictions, (), required=False)

    inputs = _strings(frame, input_column, "inputs") if input_column is not None else None
    if inputs is not None:
        _refuse_blank(inputs, input_column, "inputs")  # type: ignore[arg-type]
    target_values = _strings(frame, target_column, "targets") if target_column is not None else None
    if prediction_column is not None:
        _strings(frame, prediction_column, "predictions")  # checked like inputs; not part of the digest
    if context_column is None:
        contexts: tuple[tuple[str, ...], ...] = ((),) * len(frame)
    else:
        contexts = tuple(_parse_context(v, context_column, i) for i, v in enumerate(_column(frame, context_column)))

    return EvalDataset(
        frame=frame,
        input_column=input_column,
        context_column=context_column,
        target_column=target_column,
        prediction_column=prediction_column,
        digest=_digest(inputs, contexts, target_values),
        _contexts=contexts,
    )


# --- reading -------------------------------------------------------------------------------


def read_frame(data: object) -> pd.DataFrame:
    """The rows of a DataFrame (copied), a Hugging Face Dataset or a CSV/JSONL/Parquet file."""
    if isinstance(data, pd.DataFrame):
        return data.copy()
    if isinstance(data, (str, os.PathLike)):
        return _read_file(Path(data))
    hf_dataset = _as_hf_dataset(data)
    if hf_dataset is not None:
        return hf_dataset.to_pandas()
    hint = ""
    if type(data).__name__ == "DatasetDict":
        hint = f" (pick one split, e.g. data=ds['test']; its splits: {_list(list(data))})"
    raise InvalidArgument(
        f"data must be a pandas DataFrame, a Hugging Face datasets.Dataset or a path to a "
        f"{'/'.join(SUPPORTED_EXTENSIONS)} file, got {type(data).__module__}.{type(data).__qualname__}{hint}"
    )


def _as_hf_dataset(data: object) -> Any:
    # A datasets.Dataset can only exist once the library is imported, so there is no need to pay
    # for importing it (seconds) to recognise one.
    hf_datasets = sys.modules.get("datasets")
    dataset_class = getattr(hf_datasets, "Dataset", None)
    return data if dataset_class is not None and isinstance(data, dataset_class) else None


def _read_file(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise InvalidArgument(
            f"cannot read {str(path)!r}: unsupported file extension {path.suffix or '(none)'!r}; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if not path.is_file():
        raise InvalidArgument(f"data file {str(path)!r} does not exist")
    if suffix == ".csv":
        # Text as written: no numbers parsed from answers like "007", no "NA" or "None" turned
        # into missing values; only an empty cell is missing.
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    if suffix == ".parquet":
        return pd.read_parquet(path)
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            return _records(_json_lines(text, path), path)  # a .json file holding JSON lines
        if not isinstance(whole, list):
            raise InvalidArgument(
                f"{str(path)!r} holds a JSON {type(whole).__name__}; expected a list of records "
                '([{"question": ...}, ...]) or one JSON object per line'
            )
        return _records(whole, path)
    return _records(_json_lines(text, path), path)


def _json_lines(text: str, path: Path) -> list[Any]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise InvalidArgument(f"{str(path)!r} line {number} is not valid JSON: {error.msg}") from None
    return records


def _records(records: list[Any], path: Path) -> pd.DataFrame:
    # Built from Python objects rather than pd.read_json, which would turn strings into numbers
    # and dates.
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise InvalidArgument(
                f"{str(path)!r} record {number} is a JSON {type(record).__name__}, not an object"
            )
    return pd.DataFrame.from_records(records)


# --- columns -------------------------------------------------------------------------------


def _pick_named(role: str, argument: str | None, mapped: str | None) -> str | None:
    if argument is not None and (not isinstance(argument, str) or not argument):
        raise InvalidArgument(f"{role}= must be a column name, got {argument!r}")
    if argument is not None and mapped is not None and argument != mapped:
        raise InvalidArgument(
            f"{role}={argument!r} and col_mapping[{role!r}]={mapped!r} name different columns; give one"
        )
    return argument if argument is not None else mapped


def _resolve(
    frame: pd.DataFrame, role: str, named: str | None, candidates: Sequence[str], *, required: bool
) -> str | None:
    if named is not None:
        if named not in frame.columns:
            raise InvalidArgument(
                f"{role} column {named!r} is not in the data; available columns: {_list(frame.columns)}"
            )
        return named
    for candidate in candidates:
        if candidate in frame.columns:
            return candidate
    if required:
        raise InvalidArgument(
            f"no {role} column: tried {_list(candidates)}, the data has {_list(frame.columns)}; "
            f"name yours with col_mapping={{{role!r}: '<column>'}}"
        )
    return None


def _column(frame: pd.DataFrame, name: str) -> list[Any]:
    selected = frame[name]
    if isinstance(selected, pd.DataFrame):
        raise InvalidArgument(f"column {name!r} appears {selected.shape[1]} times in the data")
    return selected.tolist()


def _strings(frame: pd.DataFrame, name: str, role: str) -> list[str]:
    values = _column(frame, name)
    missing = [i for i, value in enumerate(values) if _is_missing(value)]
    if missing:
        raise InvalidArgument(
            f"{role} column {name!r} has missing values (None/NaN) at row(s) {_rows(missing)}; "
            f"every row needs a value"
        )
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidArgument(
                f"{role} column {name!r} must hold strings; row {i} holds {type(value).__name__} {value!r} "
                f"(convert the column yourself, e.g. df[{name!r}].astype(str), if that is what you mean)"
            )
    return values


def _refuse_blank(values: list[str], name: str, role: str) -> None:
    # A model asked an empty question still answers (and bills) something; the row is a data bug.
    blank = [i for i, value in enumerate(values) if not value.strip()]
    if blank:
        raise InvalidArgument(
            f"{role} column {name!r} is empty or only white space at row(s) {_rows(blank)}; "
            "every row needs an input (drop those rows or fill them in)"
        )


def _rows(indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:_MAX_LISTED_ROWS])
    more = f" and {len(indices) - _MAX_LISTED_ROWS} more" if len(indices) > _MAX_LISTED_ROWS else ""
    return shown + more


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _parse_context(value: Any, column: str, row: int) -> tuple[str, ...]:
    if _is_missing(value):
        return ()
    if isinstance(value, str):
        decoded = _decode_json_list(value)
        if decoded is not None:
            return decoded
        return (value,) if value.strip() else ()
    if isinstance(value, (list, tuple, np.ndarray)):
        passages = list(value)
        for passage in passages:
            if not isinstance(passage, str):
                raise InvalidArgument(
                    f"context column {column!r} row {row}: passages must be strings, found "
                    f"{type(passage).__name__} {passage!r}"
                )
        return tuple(passages)
    raise InvalidArgument(
        f"context column {column!r} row {row} holds {type(value).__name__} {value!r}; expected a string, "
        "a list of strings or a JSON-encoded list of strings"
    )


def _decode_json_list(text: str) -> tuple[str, ...] | None:
    """The passages of a JSON-encoded list of strings, or None if ``text`` is a plain passage
    (which may well start with "[", as in "[1] Setup guide")."""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return None
    try:
        decoded = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    if isinstance(decoded, list) and all(isinstance(item, str) for item in decoded):
        return tuple(decoded)
    return None


# --- digest --------------------------------------------------------------------------------


_DIGEST_CHUNK = 10_000  # values encoded at a time: the digest never holds the whole data as one JSON text


def _digest(
    inputs: list[str] | None,
    contexts: tuple[tuple[str, ...], ...],
    targets: list[str] | None,
) -> str:
    # Keyed by role, never by column name: renaming a column or reading the same rows from
    # another format must not change the digest; moving text from targets to inputs must.
    # No context column and a column of empty cells are the same content: no passages.
    # Predictions are answers, not data: two runs answering the same questions share a digest.
    # The hash is that of json.dumps({"contexts": ..., "inputs": ..., "targets": ...}, sort_keys=True,
    # compact), fed a slice at a time.
    hasher = hashlib.sha256()
    for key, values in (("contexts", contexts), ("inputs", inputs), ("targets", targets)):
        hasher.update(('{"' if key == "contexts" else ',"').encode() + key.encode() + b'":')
        if values is None:
            hasher.update(b"null")
            continue
        hasher.update(b"[")
        for start in range(0, len(values), _DIGEST_CHUNK):
            part = [list(v) if isinstance(v, tuple) else v for v in values[start:start + _DIGEST_CHUNK]]
            encoded = json.dumps(part, ensure_ascii=False, separators=(",", ":"))[1:-1]
            hasher.update(((b"," if start else b"") + encoded.encode("utf-8")))
        hasher.update(b"]")
    hasher.update(b"}")
    return hasher.hexdigest()[:16]


def _list(names: Sequence[Any] | pd.Index) -> str:
    return ", ".join(repr(name) for name in names) or "(none)"
