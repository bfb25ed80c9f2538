"""The web UI's results page on a big evaluation run: how long the server takes to show the first
page, a searched page, a filtered page and a row's detail, and the server process's peak memory.

Run: ``.venv/bin/python bench/bench_results_page.py [--rows 100000] [--folder /tmp/bres]``.

An evaluation of ``--rows`` given predictions (inputs, outputs and targets of about 1 KB each, every
tenth answer wrong, offline exact match and token F1) is logged into a SQLite store in ``--folder``
(kept between runs: delete it to rebuild). Then a fresh process (so its peak memory is the page's
alone) opens the results through the functions the UI's routes call (``evalkit.ui.results``) and
prints each figure: wall time and the process's peak resident memory after each step.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

FILLER = ("The lamp ships from aisle {a} within {d} days; its shade is linen and its base is oak. " * 12)


def build(folder: Path, rows: int) -> str:
    import pandas as pd

    import evalkit as ek

    ek.set_tracking_uri(str(folder / "store.db"))
    frame = pd.DataFrame({
        "inputs": [f"Question {i}: where does lamp {i} ship from? " + FILLER.format(a=i % 7, d=i % 5) for i in range(rows)],
        "ground_truth": [f"Lamp {i} ships from aisle {i % 7}. " + FILLER.format(a=i % 7, d=i % 5) for i in range(rows)],
    })
    frame["predictions"] = [t if i % 10 else f"Lamp {i} is lost." for i, t in enumerate(frame["ground_truth"])]
    result = ek.evaluate(data=frame, predictions="predictions", targets="ground_truth", progress=False,
                         report=False, evaluators=["exact_match", "token_f1"])
    return result.run_id


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(store: str, run_id: str) -> None:
    from evalkit.tracking.client import TrackingClient
    from evalkit.ui import results

    client = TrackingClient(store)
    figures = {"baseline_mb": round(peak_mb())}

    def step(name, call):
        start = time.perf_counter()
        value = call()
        figures[name] = {"s": round(time.perf_counter() - start, 3), "peak_mb": round(peak_mb())}
        return value

    table = step("open (first visit)", lambda: results.load_results(client, run_id))
    step("page 1", lambda: results.page(table))
    step("page 500", lambda: results.page(table, number=500))
    found = step("search 'lamp 12345'", lambda: results.page(table, "lamp 12345"))
    step("search again", lambda: results.page(table, "lamp 12345"))
    step("failed filter", lambda: results.page(table, "", ("errors",)))
    step("poor filter, page 3", lambda: results.page(table, "", ("poor",), 3))
    step("row detail", lambda: results.row_detail(table, 54321 % found.all_rows))
    step("open again (cached)", lambda: results.load_results(client, run_id))
    figures["search_hits"] = found.total
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench-results-page"))
    parser.add_argument("--measure", nargs=2, metavar=("STORE", "RUN_ID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    folder = args.folder / str(args.rows)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "run_id"
    if not marker.exists():
        start = time.perf_counter()
        marker.write_text(build(folder, args.rows))
        print(f"built {args.rows:,} rows in {time.perf_counter() - start:.0f} s")
    out = subprocess.run([sys.executable, __file__, "--measure", str(folder / "store.db"), marker.read_text()],
                         check=True, capture_output=True, text=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    print(f"{args.rows:,} rows; process before opening: {figures.pop('baseline_mb')} MB; hits: {figures.pop('search_hits')}")
    for name, figure in figures.items():
        print(f"  {name:<24} {figure['s']:>8.3f} s   peak {figure['peak_mb']:>6} MB")


if __name__ == "__main__":
    main()
