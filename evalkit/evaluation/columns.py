"""The column names evalkit looks for in evaluation data, and the keys ``col_mapping`` takes.

Kept apart from ``data.py`` (which needs pandas) so that the command line can show them in its
help without loading the data stack.
"""

from __future__ import annotations

INPUT_CANDIDATES = ("inputs", "question", "input", "query", "prompt")
CONTEXT_CANDIDATES = ("contexts", "context", "retrieved_contexts")
DEFAULT_TARGET_COLUMN = "ground_truth"
MAPPING_KEYS = ("inputs", "context", "targets", "predictions")
