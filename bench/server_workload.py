"""The workload of issue 13's server benchmark, shared by evalkit's side and MLflow's side.

``bench_server.py`` (evalkit server, evalkit's REST store) and ``bench_server_mlflow.py``
(``mlflow server``, MLflow's client, run with a separate MLflow virtualenv) both import this
module, so the two servers see the same experiments, run counts, keys, values and search. Plain
Python on purpose: no evalkit and no mlflow import, so either environment can load it.

Every value is a pure function of its index, so both sides log the same numbers in the same order.
"""

from __future__ import annotations

HOST = "127.0.0.1"
BASE_TIMESTAMP_MS = 1_700_000_000_000  # timestamps of logged values: BASE + index, so both sides store the same

# ---- 1. one client logs 10,000 values of one metric to one run ---------------------------------
LOG_EXPERIMENT = "bench-log"
LOG_METRIC_KEY = "loss"
LOG_VALUES = 10_000
LOG_BATCH_SIZE = 1_000  # MLflow's REST API accepts at most 1,000 metrics per log_batch


def log_value(i: int) -> float:
    """The ``i``-th logged value (step ``i``)."""
    return 1.0 / (i + 1)


# ---- 2. create 1,000 runs, each with 5 params and 5 metrics ------------------------------------
RUNS_EXPERIMENT = "bench-runs"
RUNS_COUNT = 1_000
PARAM_KEYS = ("p1", "p2", "p3", "p4", "p5")
METRIC_KEYS = ("m1", "m2", "m3", "m4", "m5")


def run_params(i: int) -> dict[str, str]:
    """Params of run ``i``: p1 cycles through x, y, z (a third of the runs have p1 = 'x')."""
    return {"p1": "xyz"[i % 3], "p2": str(i % 7), "p3": f"model-{i % 10}", "p4": str(i), "p5": "fixed"}


def run_metrics(i: int) -> dict[str, float]:
    """Metrics of run ``i``: m1 spreads over [0, 1) so about half pass ``m1 > 0.5``; m2 orders them."""
    return {
        "m1": ((i * 7919) % 1000) / 1000.0,
        "m2": ((i * 104_729) % 10_007) / 10_007.0,
        "m3": float(i),
        "m4": i / RUNS_COUNT,
        "m5": 0.5,
    }


# ---- 3. search over 2,000 runs ----------------------------------------------------------------
SEARCH_EXPERIMENT = "bench-search"
SEARCH_RUNS = 2_000  # created outside the timing, with run_params / run_metrics of their index
SEARCH_FILTER = "metrics.m1 > 0.5 and params.p1 = 'x'"
SEARCH_ORDER_BY = ("metrics.m2 DESC",)
SEARCH_MAX_RESULTS = 1_000  # every match fits one page (about 333 runs match)
SEARCH_REPEATS = 20  # the figure is the median of these


def search_expected_count() -> int:
    """How many of the SEARCH_RUNS runs the filter matches: both sides must return this many."""
    return sum(
        1 for i in range(SEARCH_RUNS) if run_metrics(i)["m1"] > 0.5 and run_params(i)["p1"] == "x"
    )


# ---- 4. memory: idle, then after 1,000,000 values are logged and their histories read ----------
MEMORY_EXPERIMENT = "bench-memory"
MEMORY_VALUES = 1_000_000
MEMORY_RUNS = 10  # 100,000 values per run, one metric per run
MEMORY_METRIC_KEY = "loss"
MEMORY_BATCH_SIZE = 1_000  # values per log_batch call
MEMORY_IDLE_SECONDS = 2.0  # the server's memory is read at least this long after it answers /health, once it has settled


def memory_value(i: int) -> float:
    """The ``i``-th of the values a memory run logs (step ``i``)."""
    return (i % 1000) / 1000.0
