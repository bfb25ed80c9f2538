"""Size and opening time of the HTML run report, in headless Chromium.

Builds a synthetic 10,000-row RAG run (questions, three ~40-word passages, targets and answers
given with ``predictions="answer"``) and a baseline run with some of the answers changed, writes
the report with the baseline (``reports.render.write_run_report``) and prints its size (goal
< 10 MB). Then opens it from file:// ``--repeat`` times, each in a fresh browser context, and
prints the median time from navigation start to ``window.__reportReady`` as the page measures it
(``performance.now()`` when the page sets the flag), the time until the browser has also laid
out and painted what the script built (the next frame, then a free main thread; goal < 2 s: a
person sees the page and can click), the wall time around ``page.goto`` until ready, and how long
the page's handler for a click on a filter and on a sort header runs (it re-filters, re-sorts
and moves the rows; the relayout follows). The baseline run has other answers in
its ``answer`` column, so its dataset digest differs and the report pairs rows by input and shows
its "different data" warning. The same for the report of the ``make demo`` run (``evalkit:/extractive`` on
datasets/rag_qa.jsonl) alone and against a baseline run on the same data.

Saves full-page screenshots for a person to look at: the 10,000-row report to
/tmp/evalkit-report.png and the demo run against its baseline to /tmp/evalkit-report-baseline.png.

Uses the system Chromium (``chromium`` on PATH, Debian's package) through Playwright's Python
package, with the flags of tests/browser.py; never ``playwright install``.

Run: ``.venv/bin/python bench/bench_report.py [--rows 10000] [--repeat 5] [--seed 0] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import evalkit as ek
from evalkit.cli.output import print_table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from browser import CHROMIUM_ARGS  # the same Chromium flags as the browser tests

DEMO_DATASET = ROOT / "datasets" / "rag_qa.jsonl"
GOAL_MB = 10.0
GOAL_READY_S = 2.0
SCREENSHOT = Path("/tmp/evalkit-report.png")
SCREENSHOT_BASELINE = Path("/tmp/evalkit-report-baseline.png")

# Records when the page sets window.__reportReady, in ms since navigation start (performance.now()),
# and when the main thread is next free after the frame that follows (requestAnimationFrame, then a
# task): by then the browser has laid out and painted the table the script built.
READY_PROBE = """
(() => {
  let ready;
  Object.defineProperty(window, "__reportReady", {
    configurable: true,
    get() { return ready; },
    set(value) {
      ready = value;
      if (value === true && window.__benchReadyAt === undefined) {
        window.__benchReadyAt = performance.now();
        requestAnimationFrame(() => setTimeout(() => { window.__benchPaintedAt = performance.now(); }, 0));
      }
    },
  });
})();
"""
# A click on a filter or a header redraws the table synchronously in its handler.
CLICK_MS = """selector => {
  const target = document.querySelector(selector);
  if (!target) return null;
  const start = performance.now();
  target.click();
  return performance.now() - start;
}"""

FUNCTION_WORDS = "the a an of in on at to for with by from and or but is was are were it this that which as".split()  # noqa: SIM905
CONTENT_WORDS = """
    lamp bulb socket dimmer switch cable plug battery charger adapter module sensor remote hub app
    firmware update warranty return refund shipping order invoice account password login device
    bright warm cool daylight colour finish graphite birch oxblood linen charcoal brass steel oak
    watts lumens kelvin volts hours days weeks months years metres grams kilograms centimetres
    installs pairs resets charges dims connects ships replaces repairs supports includes covers
    Fenn Orla Pip Tarn Wren Hollis Marrowby Europe Canada Japan Ireland Norway Portugal
    twelve eighteen twenty forty hundred thousand 2700 6500 800 1600 2024 2025
    """.split()  # noqa: SIM905


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(CONTENT_WORDS) if rng.random() < 0.6 else rng.choice(FUNCTION_WORDS)
                    for _ in range(count))


def synthetic_frame(rows: int, seed: int) -> pd.DataFrame:
    """RAG-like rows: a question, three passages, a target found in one, and a mix of exact, partly
    right and unrelated answers, as a real run has."""
    rng = random.Random(seed)
    records = []
    for index in range(rows):
        contexts = [words(rng, rng.randint(35, 45)) + "." for _ in range(3)]
        target = words(rng, rng.randint(2, 8))
        contexts[rng.randrange(3)] += f" {target.capitalize()}."
        kind = rng.random()
        if kind < 0.45:
            answer = target
        elif kind < 0.8:
            answer = f"{target} {words(rng, rng.randint(3, 15))}"
        else:
            answer = words(rng, rng.randint(4, 20))
        records.append({"question": f"Q{index}: what does the manual say about {words(rng, rng.randint(4, 10))}?",
                        "contexts": contexts, "ground_truth": target, "answer": answer})
    return pd.DataFrame.from_records(records)


def changed_answers(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """The baseline: ``share`` of the answers are different (worse or better) from the current run's."""
    rng = random.Random(seed + 1)
    answers = list(frame["answer"])
    for index in rng.sample(range(len(answers)), int(len(answers) * share)):
        answers[index] = (frame["ground_truth"][index] if rng.random() < 0.4
                          else f"{answers[index]} {words(rng, rng.randint(2, 10))}")
    return frame.assign(answer=answers)


def first_sentence(question: str, contexts: list[str]) -> str:
    """A weak baseline for the demo data: the first sentence of the first passage."""
    return contexts[0].split(". ")[0] if contexts else ""


@dataclass
class Figures:
    name: str
    rows: int
    embedded: int
    size_mb: float
    render_s: float
    ready_ms: float
    painted_ms: float
    wall_ms: float
    filter_ms: float
    sort_ms: float


def watch_problems(page: Any) -> list[str]:
    """Console errors, page errors and requests that leave the file: the report should make none."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: None if request.url.startswith(("file:", "data:", "blob:"))
            else problems.append(f"request {request.url}"))
    return problems


def time_report(browser: Any, path: Path, repeat: int, filter_name: str, screenshot: Path | None) -> dict[str, Any]:
    """Median figures over ``repeat`` openings of the report, each in a fresh context."""
    ready, painted, wall, filter_click, sort_click = [], [], [], [], []
    embedded = 0
    url = path.resolve().as_uri()
    for attempt in range(repeat):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(READY_PROBE)
        page = context.new_page()
        problems = watch_problems(page)
        start = time.perf_counter()
        page.goto(url, wait_until="load", timeout=60_000)
        page.wait_for_function("() => window.__reportReady === true", timeout=60_000, polling=10)
        wall.append((time.perf_counter() - start) * 1000)
        ready.append(page.evaluate("() => window.__benchReadyAt"))
        page.wait_for_function("() => window.__benchPaintedAt !== undefined", timeout=60_000, polling=10)
        painted.append(page.evaluate("() => window.__benchPaintedAt"))
        embedded = page.locator("#rows tbody tr[data-row]").count()
        filter_click.append(page.evaluate(CLICK_MS, f'button[data-filter="{filter_name}"]') or float("nan"))
        page.evaluate(CLICK_MS, f'button[data-filter="{filter_name}"]')  # off again
        sort_click.append(page.evaluate(CLICK_MS, 'th[data-sort="latency_ms"]') or float("nan"))
        if problems:
            print(f"  {path.name}: {problems[:5]}", file=sys.stderr)
        if screenshot is not None and attempt == repeat - 1:
            page.evaluate(CLICK_MS, 'th[data-sort="row"]')
            page.screenshot(path=str(screenshot), full_page=True)
        context.close()
    return {"ready_ms": statistics.median(ready), "painted_ms": statistics.median(painted), "wall_ms": statistics.median(wall), "embedded": embedded,
            "filter_ms": statistics.median(filter_click), "sort_ms": statistics.median(sort_click)}


def report(name: str, browser: Any, folder: Path, run_id: str, rows: int, repeat: int, filter_name: str,
           baseline_run_id: str | None = None, screenshot: Path | None = None) -> Figures:
    from evalkit.reports.render import write_run_report

    path = folder / f"{name.split()[0]}{'-baseline' if baseline_run_id else ''}.html"
    start = time.perf_counter()
    write_run_report(run_id, path, baseline_run_id=baseline_run_id)
    render_s = time.perf_counter() - start
    timed = time_report(browser, path, repeat, filter_name, screenshot)
    return Figures(name, rows, timed["embedded"], path.stat().st_size / 1e6, render_s, timed["ready_ms"],
                   timed["painted_ms"], timed["wall_ms"], timed["filter_ms"], timed["sort_ms"])


def launch(playwright: Any) -> Any:
    executable = shutil.which("chromium")
    if executable is None:
        sys.exit("bench_report: no `chromium` on PATH (Debian: apt-get install chromium)")
    return playwright.chromium.launch(headless=True, executable_path=executable, args=CHROMIUM_ARGS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="write the reports into this folder and keep them")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="evalkit-bench-report-"))
    folder = args.keep.resolve() if args.keep else tmp
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(tmp)
    os.environ["EVALKIT_ARTIFACT_ROOT"] = str(tmp / "artifacts")
    ek.set_tracking_uri(str(tmp / "bench.db"))
    try:
        frame = synthetic_frame(args.rows, args.seed)
        start = time.perf_counter()
        baseline = ek.evaluate(data=changed_answers(frame, 0.15, args.seed), predictions="answer",
                               targets="ground_truth", progress=False,
                               experiment="bench-report", run_name="synthetic-baseline")
        current = ek.evaluate(data=frame, predictions="answer", targets="ground_truth",
                              progress=False, experiment="bench-report",
                              run_name="synthetic")
        print(f"evaluate(): 2 runs of {args.rows:,} rows in {time.perf_counter() - start:.1f} s")
        demo = ek.evaluate(model="evalkit:/extractive", data=DEMO_DATASET, targets="ground_truth",
                           experiment="evalkit-demo", run_name="extractive-baseline", cache="off", progress=False)
        weak = ek.evaluate(model=first_sentence, data=DEMO_DATASET, targets="ground_truth", experiment="evalkit-demo",
                           run_name="first-sentence", progress=False)
        demo_rows = len(demo.tables["eval_results_table"])

        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                figures = [
                    report(f"synthetic {args.rows:,} rows vs baseline", browser, folder, current.run_id, args.rows,
                           args.repeat, "changed", baseline.run_id, SCREENSHOT),
                    report("demo (make demo run)", browser, folder, demo.run_id, demo_rows, args.repeat, "low"),
                    report("demo vs first-sentence baseline", browser, folder, demo.run_id, demo_rows, args.repeat,
                           "changed", weak.run_id, SCREENSHOT_BASELINE),
                ]
            finally:
                browser.close()
    finally:
        ek.set_tracking_uri(None)
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)

    print_table(
        f"HTML report in headless Chromium (median of {args.repeat} openings; goals: < {GOAL_MB:g} MB, "
        f"ready < {GOAL_READY_S:g} s)",
        ["report", "rows", "rows embedded", "size MB", "render s", "ready ms (in page)", "painted ms (in page)",
         "goto→ready ms (wall)",
         "filter click ms", "sort click ms"],
        [(f.name, f.rows, f.embedded, round(f.size_mb, 2), round(f.render_s, 2), round(f.ready_ms),
          round(f.painted_ms), round(f.wall_ms), round(f.filter_ms, 1), round(f.sort_ms, 1)) for f in figures],
    )
    big = figures[0]
    print(f"size {big.size_mb:.2f} MB: {'OK' if big.size_mb < GOAL_MB else 'OVER'} the {GOAL_MB:g} MB goal; "
          f"ready in {big.ready_ms / 1000:.2f} s (painted {big.painted_ms / 1000:.2f} s): "
          f"{'OK' if big.painted_ms / 1000 < GOAL_READY_S else 'OVER'} the {GOAL_READY_S:g} s goal")
    print(f"screenshots: {SCREENSHOT} ({args.rows:,}-row report), {SCREENSHOT_BASELINE} (demo run vs baseline)")
    if args.keep:
        print(f"reports kept in {args.keep}")


if __name__ == "__main__":
    main()
