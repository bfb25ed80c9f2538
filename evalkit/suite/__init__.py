"""Suites: the nightly evaluation job (``evalkit run suite.yaml``), its gates and its history.

Names load on first use, so reading ``evalkit.suite.tags`` does not import the evaluation engine.
"""

from typing import TYPE_CHECKING, Any

_LAZY = {
    "Suite": "evalkit.suite.config", "SuiteConfigError": "evalkit.suite.config", "load_suite": "evalkit.suite.config",
    "HistoryPoint": "evalkit.suite.history", "metric_history": "evalkit.suite.history",
    "PairResult": "evalkit.suite.job", "SuiteResult": "evalkit.suite.job", "run_suite": "evalkit.suite.job",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name not in _LAZY:
        raise AttributeError(f"module 'evalkit.suite' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


if TYPE_CHECKING:
    from evalkit.suite.config import Suite, SuiteConfigError, load_suite
    from evalkit.suite.history import HistoryPoint, metric_history
    from evalkit.suite.job import PairResult, SuiteResult, run_suite

__all__ = ["HistoryPoint", "PairResult", "Suite", "SuiteConfigError", "SuiteResult", "load_suite", "metric_history",
           "run_suite"]
