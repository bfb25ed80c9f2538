"""Peak memory and wall time of offline scoring of given predictions (issue 17, point 1), by row count.

Each size runs in a fresh process (its peak resident memory is the child's ``ru_maxrss``): rows of
about 1 KB (a question, two contexts, a target and a prediction), ``predictions=`` (no model), the
default evaluators and the HTML report, into a fresh SQLite store.

Run: ``.venv/bin/python bench/bench_memory.py [--rows 10000 100000]``
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time

CHILD = """
import sys, warnings
import pandas as pd
import evalkit as ek
rows = int(sys.argv[1])
ek.set_tracking_uri(f"sqlite:///{sys.argv[2]}/store.db")
padding = " It was checked by the night shift and logged in the warehouse register." * 4
frame = pd.DataFrame({
    "inputs": [f"Where is lamp {i} stored and when does it ship?" for i in range(rows)],
    "contexts": [[f"Lamp {i} is stored in aisle {i % 9}.{padding}", f"Lamp {i} ships in {i % 5 + 1} days.{padding}"]
                 for i in range(rows)],
    "ground_truth": [f"Lamp {i} is stored in aisle {i % 9} and ships in {i % 5 + 1} days." for i in range(rows)],
    "prediction": [f"It is in aisle {i % 9}; it ships in {i % 4 + 1} days." for i in range(rows)],
})
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ek.evaluate(data=frame, targets="ground_truth", predictions="prediction", progress=False)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    last: tuple[int, int] | None = None  # (rows, peak KB) of the size before
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as folder:
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", CHILD, str(rows), folder], check=True)
            elapsed = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            # ru_maxrss of children is the largest child so far: sizes go up, so each is its own peak
            shown = f"{peak / 1024:,.0f} MB" if peak > before else f"<= {before / 1024:,.0f} MB"
            # what each row adds: the peak's growth from the size before (imports and the rest are fixed)
            marginal = f", {(peak - last[1]) * 1024 / (rows - last[0]) / 1000:.1f} KB per added row" if last else ""
            print(f"{rows:>9,} rows: {elapsed:6.1f} s, peak {shown}{marginal}")
            last = (rows, peak)


if __name__ == "__main__":
    main()
