"""Tracking-store speed on the embedded SQLite store, against MLflow's figures (REFERENCE §1).

Run: ``make bench`` or ``.venv/bin/python bench/bench_tracking.py [--big-runs 100000]``.
Each figure is measured in a fresh store in a temporary folder.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import evalkit as ek
from evalkit.entities import Metric
from evalkit.tracking.sql import schema as t
from evalkit.tracking.sql.engine import create_store_engine, write_transaction
from evalkit.tracking.stores import close_stores
from evalkit.tracking.uri import parse_tracking_uri

MLFLOW = {  # measured on MLflow 3.17, SQLite store, 2 cores (REFERENCE §1)
    "log_metric x 10,000": 71.5,
    "log_batch 10,000 values": 1.4,
    "2,000 runs x (5 params + 5 metrics)": 118.0,
    "search_runs over 2,000 runs (median)": 0.128,
}
GOALS = {
    "log_metric x 10,000": 1.4,
    "log_batch 10,000 values": 0.2,
    "2,000 runs x (5 params + 5 metrics)": 5.0,
    "search_runs over 2,000 runs (median)": 0.015,
    "search_runs over 100,000 runs (median)": 0.300,
}
FILTER = "metrics.m1 > 0.5 AND params.p1 = 'a'"
ORDER = ["metrics.m1 DESC"]


def fresh_store(folder: Path) -> None:
    close_stores()
    ek.set_tracking_uri(str(folder / f"{uuid.uuid4().hex}.db"))
    ek.set_experiment("bench")
    ek.start_run().__exit__(None, None, None)  # opens and migrates the store outside the timings


def bench_log_metric_loop() -> float:
    with ek.start_run():
        start = time.perf_counter()
        for i in range(10_000):
            ek.log_metric("loss", 1.0 / (i + 1), step=i)
        ek.flush()
        return time.perf_counter() - start


def bench_log_batch() -> float:
    with ek.start_run() as run:
        metrics = [Metric("loss", 1.0 / (i + 1), 1_700_000_000_000 + i, i) for i in range(10_000)]
        client = ek.TrackingClient()
        start = time.perf_counter()
        client.log_batch(run.info.run_id, metrics=metrics)
        client.flush()
        return time.perf_counter() - start


def bench_create_runs(n: int = 2000) -> float:
    rng = random.Random(0)
    start = time.perf_counter()
    for i in range(n):
        with ek.start_run(run_name=f"run-{i}"):
            ek.log_params({f"p{j}": rng.choice("abc") for j in range(1, 6)})
            ek.log_metrics({f"m{j}": rng.random() for j in range(1, 6)})
    return time.perf_counter() - start


def bench_search(repeats: int = 30) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        frame = ek.search_runs(filter_string=FILTER, order_by=ORDER, max_results=100)
        timings.append(time.perf_counter() - start)
    assert len(frame) == 100, len(frame)
    return statistics.median(timings)


def bulk_insert_runs(n: int) -> None:
    """Fill the store quickly for the large search figure (creation speed is measured above)."""
    engine = create_store_engine(parse_tracking_uri(ek.get_tracking_uri()))
    experiment_id = int(ek.get_experiment_by_name("bench").experiment_id)
    rng = random.Random(1)
    for base in range(0, n, 10_000):
        runs, params, metrics = [], [], []
        for i in range(base, min(n, base + 10_000)):
            run_id = uuid.uuid4().hex
            runs.append(dict(run_id=run_id, experiment_id=experiment_id, run_name=f"bulk-{i}", status="FINISHED",
                             start_time=1_700_000_000_000 + i, end_time=1_700_000_000_001 + i,
                             lifecycle_stage="active", artifact_uri="/dev/null", parent_run_id=None, user_id="bench"))
            params += [dict(run_id=run_id, key=f"p{j}", value=rng.choice("abc")) for j in range(1, 6)]
            metrics += [dict(run_id=run_id, key=f"m{j}", value=rng.random(), is_nan=False, step=0,
                             timestamp=1_700_000_000_000) for j in range(1, 6)]

        def work(conn, runs=runs, params=params, metrics=metrics) -> None:  # noqa: ANN001
            conn.execute(t.runs.insert(), runs)
            conn.execute(t.params.insert(), params)
            conn.execute(t.latest_metrics.insert(), metrics)
            conn.execute(t.metric_history.insert(), metrics)

        write_transaction(engine, work)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big-runs", type=int, default=100_000, help="runs for the large search figure")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fresh_store(folder)
        results["log_metric x 10,000"] = bench_log_metric_loop()
        fresh_store(folder)
        results["log_batch 10,000 values"] = bench_log_batch()
        fresh_store(folder)
        results["2,000 runs x (5 params + 5 metrics)"] = bench_create_runs()
        results["search_runs over 2,000 runs (median)"] = bench_search()
        fresh_store(folder)
        bulk_insert_runs(args.big_runs)
        key = f"search_runs over {args.big_runs:,} runs (median)"
        results[key] = bench_search(repeats=10)
        GOALS.setdefault(key, GOALS["search_runs over 100,000 runs (median)"])
        close_stores()

    print(f"{'figure':42} {'evalkit':>10} {'goal':>10} {'MLflow':>10} {'speed-up':>9}")
    for name, seconds in results.items():
        mlflow = MLFLOW.get(name)
        speedup = f"{mlflow / seconds:8.0f}x" if mlflow else ""
        mlflow_text = f"{mlflow:9.3f}s" if mlflow else ""
        verdict = "ok" if seconds < GOALS[name] else "MISSED"
        print(f"{name:42} {seconds:9.3f}s {GOALS[name]:9.3f}s {mlflow_text:>10} {speedup:>9}  {verdict}")


if __name__ == "__main__":
    main()
