"""The web UI at scale: 10,000 runs of 20 params and 20 metrics (3 metrics with a 200-step
history), and an evaluation run whose results table has 10,000 rows.

Run: ``.venv/bin/python bench/bench_ui.py [--runs 10000 --repeat 5]``.

The store is filled with bulk inserts (the UI is measured, not logging). A real uvicorn server
serves ``mount_ui`` on 127.0.0.1 and headless Chromium (/usr/bin/chromium) opens each page; a
figure is the median wall time from ``page.goto`` to the element that shows the page's data
(the runs table's rows, the compare tables, the results table's rows), over ``--repeat`` visits
after one warm-up. The server-side time of the same request (httpx) is shown beside it.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import sync_playwright

import evalkit as ek
from evalkit.evaluation.run_evaluators import EVALUATORS_FILE
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.sql import schema as t
from evalkit.tracking.sql.store import SqlStore
from evalkit.tracking.stores import close_stores
from evalkit.ui import mount_ui

ROOT = Path(__file__).resolve().parent.parent
PARAMS, METRICS, HISTORY_METRICS, STEPS = 20, 20, 3, 200
RESULT_ROWS = 10_000


def fill(uri: str, artifact_root: str, runs: int) -> tuple[str, list[str]]:
    """``runs`` finished runs in experiment "scale" by bulk insert; their ids, newest first."""
    store = SqlStore.from_uri(uri)
    experiment = store.create_experiment("scale", artifact_location=f"{artifact_root}/scale")
    base = 1_700_000_000_000
    ids = [uuid.uuid4().hex for _ in range(runs)]
    run_rows, params, latest, history = [], [], [], []
    for i, run_id in enumerate(ids):
        start = base + i * 1000
        run_rows.append({"run_id": run_id, "experiment_id": int(experiment), "run_name": f"run-{i:05d}",
                         "status": "FINISHED", "start_time": start, "end_time": start + 500 + i % 900,
                         "lifecycle_stage": "active", "artifact_uri": f"{artifact_root}/scale/{run_id}",
                         "parent_run_id": None, "user_id": "bench"})
        params += [{"run_id": run_id, "key": f"param_{k:02d}", "value": str((i * (k + 3)) % 17)} for k in range(PARAMS)]
        for k in range(METRICS):
            value = ((i * 7919 + k * 104729) % 10_000) / 10_000
            latest.append({"run_id": run_id, "key": f"metric_{k:02d}", "value": value, "is_nan": False,
                           "step": STEPS - 1 if k < HISTORY_METRICS else 0, "timestamp": start})
            steps = range(STEPS) if k < HISTORY_METRICS else (0,)
            history += [{"run_id": run_id, "key": f"metric_{k:02d}", "value": value * (s + 1) / STEPS,
                         "is_nan": False, "step": s, "timestamp": start + s} for s in steps]
    with store.engine.begin() as conn:
        conn.execute(t.runs.insert(), run_rows)
        conn.execute(t.params.insert(), params)
        conn.execute(t.latest_metrics.insert(), latest)
        conn.execute(t.metric_history.insert(), history)
    store.close()
    return experiment, list(reversed(ids))


def evaluation_run(uri: str, artifact_root: str) -> str:
    """An evaluation of 30 rows, then a run whose results table is that table repeated to 10,000 rows."""
    import os

    os.environ["EVALKIT_ARTIFACT_ROOT"] = artifact_root
    ek.set_tracking_uri(uri)
    sys.path.insert(0, str(ROOT / "tests"))
    from ui_seed import _model, rag_rows  # the UI tests' data and model

    small = ek.evaluate(model=_model(0), data=rag_rows(), targets="ground_truth", evaluators=["exact_match", "token_f1"],
                        progress=False, run_name="eval-30", report=False)
    client = TrackingClient()
    table = small.tables["eval_results_table"]
    big = pd.concat([table] * (RESULT_ROWS // len(table) + 1), ignore_index=True).iloc[:RESULT_ROWS].copy()
    big["row"] = range(len(big))
    source = client.get_run(small.run_id)
    run = client.create_run(source.info.experiment_id, run_name="eval-10k")
    client.log_batch(run.info.run_id, params=[ek.Param(k, v) for k, v in source.data.params.items()])
    client.log_text(run.info.run_id, client.load_text(small.run_id, EVALUATORS_FILE), EVALUATORS_FILE)
    client.log_table(run.info.run_id, big, "eval_results_table.parquet")
    client.set_terminated(run.info.run_id)
    client.flush()
    ek.set_tracking_uri(None)
    close_stores()
    return run.info.run_id


def serve(uri: str, artifact_root: str) -> tuple[str, uvicorn.Server]:
    app = FastAPI()
    app.state.store = SqlStore.from_uri(uri)
    app.state.default_artifact_root = artifact_root
    mount_ui(app)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:7.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", help="a folder to keep the store in; a store already there is reused")
    args = parser.parse_args()
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="evalkit-bench-ui-"))
    folder.mkdir(parents=True, exist_ok=True)
    uri, root = str(folder / "bench.db"), str(folder / "artifacts")
    started = time.perf_counter()
    if (folder / "bench.db").exists():
        store = SqlStore.from_uri(uri)
        experiment = store.get_experiment_by_name("scale").experiment_id
        ids = [r.info.run_id for r in store.search_runs([experiment], max_results=args.runs)[0]]
        eval_run = store.search_runs([e.experiment_id for e in store.search_experiments()],
                                     "attributes.run_name = 'eval-10k'")[0][0].info.run_id
        store.close()
    else:
        experiment, ids = fill(uri, root, args.runs)
        eval_run = evaluation_run(uri, root)
    print(f"store: {args.runs:,} runs x {PARAMS} params x {METRICS} metrics, results table of {RESULT_ROWS:,} rows "
          f"(filled in {time.perf_counter() - started:.1f} s)")
    base, server = serve(uri, root)
    compare = "/compare?" + "&".join(f"run={r}" for r in ids[:100])
    cases = [
        ("runs page (50 rows, 8 columns)", f"/experiments/{experiment}", "#runs-table tbody tr[data-run]"),
        ("filtered + sorted runs page", f"/experiments/{experiment}?filter=metrics.metric_03+%3E+0.5+AND+params.param_01+%3D+%273%27"
         "&order=metrics.%60metric_05%60&dir=desc", "#runs-table tbody tr[data-run]"),
        ("all 20+20 columns chosen", f"/experiments/{experiment}?cols=1&"
         + "&".join(f"col=metrics.metric_{k:02d}" for k in range(20)) + "&"
         + "&".join(f"col=params.param_{k:02d}" for k in range(20)), "#runs-table tbody tr[data-run]"),
        ("last page of 200 (offset 9,800)", None, "#runs-table tbody tr[data-run]"),
        ("run page (3 history charts)", f"/runs/{ids[0]}", "#charts canvas"),
        ("compare 100 runs", compare, "#compare-metrics tbody tr"),
        ("results table, 10,000 rows (first page)", f"/runs/{eval_run}", "#results-table tbody tr[data-row]"),
    ]
    with httpx.Client(base_url=base, timeout=60) as http:
        # The last page: walk the page tokens once, as a user clicking "Next" would arrive there.
        url = f"/experiments/{experiment}?size=200"
        for _ in range(args.runs // 200 - 1):
            html = http.get(url).text
            url = html.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
        cases[3] = (cases[3][0], url, cases[3][2])
        print(f"\n{'page':44} {'server':>10} {'in Chromium':>12}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for name, path, ready in cases:
                server_times, browser_times = [], []
                for attempt in range(args.repeat + 1):
                    t0 = time.perf_counter()
                    assert http.get(path).status_code == 200
                    t1 = time.perf_counter()
                    page.goto(base + path, wait_until="commit")
                    page.wait_for_selector(ready, timeout=30_000)
                    t2 = time.perf_counter()
                    if attempt:  # the first visit warms the caches (SQLite pages, the parquet table)
                        server_times.append(t1 - t0)
                        browser_times.append(t2 - t1)
                print(f"{name:44} {median_ms(server_times):>10} {median_ms(browser_times):>12}")
            # Paging the 10,000-row results table: from the click on "Next" to the next page's rows.
            page.goto(base + f"/runs/{eval_run}")
            page.wait_for_selector("#results-table tbody tr[data-row]")
            samples = []
            for n in range(args.repeat):
                first = page.locator("#results-table tbody tr[data-row]").first.get_attribute("data-row")
                t0 = time.perf_counter()
                page.click("#results-next")
                page.wait_for_selector(f"#results-table tbody tr[data-row='{int(first) + 50}']")
                samples.append(time.perf_counter() - t0)
            print(f"{'results table: Next page (click to rows)':44} {'':>10} {median_ms(samples):>12}")
            samples = []
            for attempt in range(args.repeat):
                if attempt:
                    page.uncheck("#results .results-filter[name=poor]")
                    page.wait_for_load_state("networkidle")
                t0 = time.perf_counter()
                page.check("#results .results-filter[name=poor]")
                page.wait_for_selector("#results .results-filter[name=poor]:checked")
                page.wait_for_load_state("networkidle")
                samples.append(time.perf_counter() - t0)
            print(f"{'results table: poor-scores filter':44} {'':>10} {median_ms(samples):>12}")
            browser.close()
    server.should_exit = True


if __name__ == "__main__":
    main()
