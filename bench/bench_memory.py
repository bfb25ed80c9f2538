"""Peak memory and wall time of offline scoring of given predictions (issue 17, point 1), by row count.

Each size runs in a fresh process (its peak resident memory is the child's ``ru_maxrss``): rows of
about 1 KB (a question, two contexts, a target and a prediction), ``predictions=`` (no model), the
default evaluators and the HTML report, into a fresh SQLite store. The data is a DataFrame built
in the child (it counts in the peak, as a caller's own frame would), or with ``--parquet`` a
Parquet file written beforehand.

``--stages`` also samples the child's resident memory every 10 ms and prints its peak in each
stage: building the frame, planning (reading and checking the data), answering and scoring
(chunk by chunk, spooling the results table), aggregating, writing the table, the report.

Run: ``.venv/bin/python bench/bench_memory.py [--rows 10000 100000 1000000] [--stages] [--parquet]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, os, sys, threading, time, warnings
import pandas as pd
import evalkit as ek
from evalkit.evaluation import engine
rows, stages = int(sys.argv[1]), sys.argv[3] == "stages"
ek.set_tracking_uri(f"sqlite:///{sys.argv[2]}/store.db")
stage, peaks = ["frame"], {}

def sample():
    while True:
        with open("/proc/self/statm") as statm:
            resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        peaks[stage[0]] = max(peaks.get(stage[0], 0), resident)
        time.sleep(0.01)

def staged(name, function, after):
    def run(*args, **kwargs):
        stage[0] = name
        try:
            return function(*args, **kwargs)
        finally:
            stage[0] = after
    return run

if stages:
    threading.Thread(target=sample, daemon=True).start()
    engine.plan_evaluation = staged("plan", engine.plan_evaluation, "execute")
    engine._run_async = staged("answer+score", engine._run_async, "aggregate")
    engine.ResultsWriter.log = staged("write table", engine.ResultsWriter.log, "report")
    engine.log_report = staged("report", engine.log_report, "end")
padding = " It was checked by the night shift and logged in the warehouse register." * 4
frame = pd.DataFrame({
    "inputs": [f"Where is lamp {i} stored and when does it ship?" for i in range(rows)],
    "contexts": [[f"Lamp {i} is stored in aisle {i % 9}.{padding}", f"Lamp {i} ships in {i % 5 + 1} days.{padding}"]
                 for i in range(rows)],
    "ground_truth": [f"Lamp {i} is stored in aisle {i % 9} and ships in {i % 5 + 1} days." for i in range(rows)],
    "prediction": [f"It is in aisle {i % 9}; it ships in {i % 4 + 1} days." for i in range(rows)],
})
if sys.argv[4] == "write":
    frame.to_parquet(f"{sys.argv[2]}/data.parquet", row_group_size=10_000)
    sys.exit()
if sys.argv[4] == "parquet":
    del frame
    frame = f"{sys.argv[2]}/data.parquet"
    stage[0] = "read"
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ek.evaluate(data=frame, targets="ground_truth", predictions="prediction", progress=False)
elapsed = time.perf_counter() - start
import resource
print(json.dumps({"seconds": elapsed, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "stages": {name: round(peak / 2**20) for name, peak in peaks.items()}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--stages", action="store_true", help="print the peak resident memory of each stage")
    parser.add_argument("--parquet", action="store_true", help="evaluate a Parquet file rather than a DataFrame")
    args = parser.parse_args()
    last: tuple[int, float] | None = None  # (rows, peak MB) of the size before
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as folder:
            mode = "parquet" if args.parquet else "frame"
            if args.parquet:  # written by a process of its own, so that building the frame is not in the peak
                subprocess.run([sys.executable, "-c", CHILD, str(rows), folder, "-", "write"], check=True)
            began = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", CHILD, str(rows), folder,
                                   "stages" if args.stages else "-", mode],
                                  check=True, capture_output=True, text=True)
            wall = time.perf_counter() - began
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            peak = figures["peak_mb"]
            # what each row adds: the peak's growth from the size before (imports and the rest are fixed)
            marginal = f", {(peak - last[1]) * 2**20 / (rows - last[0]) / 1000:.1f} KB per added row" if last else ""
            print(f"{rows:>9,} rows ({mode}): process {wall:6.1f} s, evaluate() {figures['seconds']:6.1f} s, "
                  f"peak {peak:,.0f} MB{marginal}")
            if args.stages:
                print("           peak MB by stage: " + ", ".join(f"{k} {v:,}" for k, v in figures["stages"].items()))
            last = (rows, peak)


if __name__ == "__main__":
    main()
