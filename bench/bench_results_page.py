"""The web UI's results page on a big evaluation run: how long the server takes to show the first
page, a searched page, a filtered page, a row's detail and the same table's preview in the
artifact tree, and the server process's peak memory.
Then, in another fresh process, the run's report against a baseline run of the same data (what
the UI's compare page and ``evaluate(baseline=...)`` build): time and peak memory.

Run: ``.venv/bin/python bench/bench_results_page.py [--rows 100000] [--folder /tmp/bres]``.

An evaluation of ``--rows`` given predictions (inputs, outputs and targets of about 1 KB each, every
tenth answer wrong, offline exact match and token F1) is logged into a SQLite store in ``--folder``
(kept between runs: delete it to rebuild), and a baseline run of the same rows with every
seventh answer wrong instead. Then a fresh process (so its peak memory is the page's
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

RESULTS = "eval_results_table.parquet"
FILLER = ("The lamp ships from aisle {a} within {d} days; its shade is linen and its base is oak. " * 12)


def build(folder: Path, rows: int) -> dict[str, str]:
    import pandas as pd

    import evalkit as ek

    ek.set_tracking_uri(str(folder / "store.db"))
    frame = pd.DataFrame({
        "inputs": [f"Question {i}: where does lamp {i} ship from? " + FILLER.format(a=i % 7, d=i % 5) for i in range(rows)],
        "ground_truth": [f"Lamp {i} ships from aisle {i % 7}. " + FILLER.format(a=i % 7, d=i % 5) for i in range(rows)],
    })
    runs = {}
    for name, wrong in (("baseline", 7), ("run", 10)):
        frame["predictions"] = [t if i % wrong else f"Lamp {i} is lost." for i, t in enumerate(frame["ground_truth"])]
        runs[name] = ek.evaluate(data=frame, predictions="predictions", targets="ground_truth", progress=False,
                                 report=False, evaluators=["exact_match", "token_f1"]).run_id
    return runs


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(store: str, run_id: str) -> None:
    from evalkit.tracking.client import TrackingClient
    from evalkit.ui import results

    client = TrackingClient(store)
    figures = {"baseline_mb": round(peak_mb())}
    step = _stepper(figures)
    table = step("open (first visit)", lambda: results.load_results(client, run_id))
    step("page 1", lambda: results.page(table))
    step("page 500", lambda: results.page(table, number=500))
    found = step("search 'lamp 12345'", lambda: results.page(table, "lamp 12345"))
    step("search again", lambda: results.page(table, "lamp 12345"))
    step("failed filter", lambda: results.page(table, "", ("errors",)))
    step("poor filter, page 3", lambda: results.page(table, "", ("poor",), 3))
    step("row detail", lambda: results.row_detail(table, 54321 % found.all_rows))
    step("open again (cached)", lambda: results.load_results(client, run_id))
    # The same table previewed from the run's artifact tree.
    from evalkit.ui import artifact_views

    repository = client.artifact_repository(run_id)
    preview = step("artifact preview, page 1",
                   lambda: artifact_views.table_page(artifact_views.load_table(repository, RESULTS, run_id), 1))
    step("artifact preview, last page",
         lambda: artifact_views.table_page(artifact_views.load_table(repository, RESULTS, run_id), preview.pages))
    figures["search_hits"] = found.total
    print(json.dumps(figures))


def measure_report(store: str, run_id: str, baseline_id: str) -> None:
    from evalkit.reports.model import build_report

    from evalkit.tracking.client import TrackingClient

    figures = {"baseline_mb": round(peak_mb())}
    report = _stepper(figures)("report against the baseline",
                               lambda: build_report(TrackingClient(store), run_id, baseline_run_id=baseline_id))
    figures["search_hits"] = len(report.rows)
    print(json.dumps(figures))


def _stepper(figures: dict):
    def step(name, call):
        start = time.perf_counter()
        value = call()
        figures[name] = {"s": round(time.perf_counter() - start, 3), "peak_mb": round(peak_mb())}
        return value
    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench-results-page"))
    parser.add_argument("--measure", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        (measure if len(args.measure) == 2 else measure_report)(*args.measure)
        return
    folder = args.folder / str(args.rows)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "runs.json"
    if not marker.exists():
        start = time.perf_counter()
        marker.write_text(json.dumps(build(folder, args.rows)))
        print(f"built {args.rows:,} rows twice in {time.perf_counter() - start:.0f} s")
    runs = json.loads(marker.read_text())
    store = str(folder / "store.db")
    for call, label in (([store, runs["run"]], "rows shown"), ([store, runs["run"], runs["baseline"]], "rows embedded")):
        out = subprocess.run([sys.executable, __file__, "--measure", *call], check=True, capture_output=True,
                             text=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        print(f"{args.rows:,} rows; process before: {figures.pop('baseline_mb')} MB; {label}: {figures.pop('search_hits')}")
        for name, figure in figures.items():
            print(f"  {name:<28} {figure['s']:>8.3f} s   peak {figure['peak_mb']:>6} MB")


if __name__ == "__main__":
    main()
