"""Suites: the nightly evaluation job (``evalkit run suite.yaml``), its gates and its history."""

from evalkit.suite.config import Suite, SuiteConfigError, load_suite
from evalkit.suite.history import HistoryPoint, metric_history
from evalkit.suite.job import PairResult, SuiteResult, run_suite

__all__ = ["HistoryPoint", "PairResult", "Suite", "SuiteConfigError", "SuiteResult", "load_suite", "metric_history",
           "run_suite"]
