"""The HTML report in a real browser: it renders without errors or network requests, its filters,
search, sorting and detail view work by clicking, comparisons with a baseline show verdicts and
changed rows, and text from the data can never run as script.

Headless Chromium through Playwright (tests/browser.py); skipped where Chromium is missing,
failed instead in CI (EVALKIT_REQUIRE_BROWSER=1).
"""

from __future__ import annotations

import json
import math
import re
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import evalkit as ek

pytest.register_assert_rewrite("browser")
from browser import open_report  # after registering it for pytest's assertion rewriting

pytest_plugins = ["browser"]  # its fixtures: chromium, browser_context, chromium_page
pytestmark = pytest.mark.browser

DATASET = Path(__file__).resolve().parents[2] / "datasets" / "rag_qa.jsonl"
TABLE = "eval_results_table"
NOT_SCORES = ("latency", "cost")  # per-row figures with panels of their own, not 0..1 scores
LOW = 0.5


# --------------------------------------------------------------------------------------------
# runs


def rag_rows(start: int = 0, count: int = 40) -> pd.DataFrame:
    records = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    frame = pd.DataFrame(records[start:start + count]).reset_index(drop=True)
    return frame[["id", "question", "contexts", "ground_truth"]]


def flaky_model(question: str, row: dict[str, Any]) -> str:
    """Right, wrong or hedged answers, a few calls that fail, and latencies that differ per row."""
    i = int(row["id"][1:]) - 1
    time.sleep((i * 7 % 13) / 1000)
    if i % 10 == 7:
        raise RuntimeError(f"backend exploded on {row['id']}")
    if i % 3 == 0:
        return "I don't know"
    if i % 3 == 1:
        return row["ground_truth"]
    return f"{row['ground_truth']}, probably, as far as the documents say"


@ek.evaluator(name="browser_picky", requires=["targets"])
def browser_picky(row: ek.EvalRow) -> float:
    """Fails (an evaluator error, not a failed call) on every fourth row."""
    if row.index % 4 == 0:
        raise ValueError(f"picky cannot score row {row.index}")
    return 0.9


def real_run(evaluators: Any = "default", extra_metrics: Any = None) -> ek.EvaluationResult:
    return ek.evaluate(model=flaky_model, data=rag_rows(), targets="ground_truth", evaluators=evaluators,
                       extra_metrics=extra_metrics, progress=False, run_name="browser-real")


def table_of(result: ek.EvaluationResult) -> pd.DataFrame:
    return result.tables[TABLE]


def score_names(table: pd.DataFrame) -> list[str]:
    return [c.split("/")[0] for c in table.columns if c.endswith("/score") and c.split("/")[0] not in NOT_SCORES]


def rows_where(table: pd.DataFrame, mask: pd.Series) -> set[int]:
    return {int(r) for r in table.loc[mask.fillna(False).astype(bool), "row"]}


def failed_rows(table: pd.DataFrame) -> set[int]:
    return rows_where(table, table["status"] == "failed")


def error_rows(table: pd.DataFrame) -> set[int]:
    mask = table["status"] == "failed"
    for name in score_names(table):
        mask |= table[f"{name}/status"] == "failed"
    return rows_where(table, mask)


def low_rows(table: pd.DataFrame) -> set[int]:
    mask = pd.Series(False, index=table.index)
    for name in score_names(table):
        mask |= pd.to_numeric(table[f"{name}/score"], errors="coerce") < LOW
    return rows_where(table, mask)


def search_rows(table: pd.DataFrame, text: str) -> set[int]:
    needle = text.lower()
    mask = pd.Series(False, index=table.index)
    for column in ("inputs", "outputs", "targets"):
        mask |= table[column].map(lambda v: isinstance(v, str) and needle in v.lower())
    return rows_where(table, mask)


def write_report(run_id: str, path: Path, baseline_run_id: str | None = None, **kwargs: Any) -> Path:
    from evalkit.reports.render import write_run_report

    written = Path(write_run_report(run_id, str(path), baseline_run_id=baseline_run_id, **kwargs))
    assert written.exists() and written.stat().st_size > 0
    return written


# --------------------------------------------------------------------------------------------
# the page


ROWS = "#rows tbody tr[data-row]"
VISIBLE = f"{ROWS}:not([hidden])"


def visible_rows(page: Any) -> list[int]:
    return page.eval_on_selector_all(VISIBLE, "rows => rows.map(r => Number(r.dataset.row))")


def wait_for_rows(page: Any, expected: set[int], timeout_s: float = 5.0) -> list[int]:
    """The visible rows, once they are ``expected`` (filtering may be debounced), else as they are."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = visible_rows(page)
        if set(rows) == expected or time.monotonic() > deadline:
            return rows
        page.wait_for_timeout(50)


def row_count(page: Any) -> tuple[int, int]:
    text = page.text_content("#row-count") or ""
    match = re.search(r"Showing\s+([\d,]+)\s+of\s+([\d,]+)\s+rows", text)
    assert match, f"#row-count reads {text!r}, not 'Showing N of M rows'"
    return int(match.group(1).replace(",", "")), int(match.group(2).replace(",", ""))


def toggle_filter(page: Any, name: str, pressed: bool) -> None:
    button = page.locator(f'button[data-filter="{name}"]')
    assert button.count() == 1, f'expected one button[data-filter="{name}"], found {button.count()}'
    button.click()
    assert button.get_attribute("aria-pressed") == ("true" if pressed else "false"), \
        f'button[data-filter="{name}"] aria-pressed is {button.get_attribute("aria-pressed")!r} after the click'


def expect_rows(page: Any, expected: set[int], total: int, what: str) -> None:
    shown = wait_for_rows(page, expected)
    assert set(shown) == expected, (f"{what}: visible rows {sorted(shown)}, expected {sorted(expected)} "
                                    f"(extra {sorted(set(shown) - expected)}, missing {sorted(expected - set(shown))})")
    assert row_count(page) == (len(expected), total), f"{what}: #row-count reads {page.text_content('#row-count')!r}"


def card(page: Any, metric: str) -> Any:
    return page.locator(f'.metric-card[data-metric="{metric}"], .metric-card[data-metric^="{metric}/"]')


def first_number(text: str | None) -> float | None:
    match = re.search(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+", text or "")
    return float(match.group(0).replace(",", "")) if match else None


def verdicts(page: Any) -> dict[str, str | None]:
    """Each card's verdict: on the card itself or on an element inside it."""
    return page.eval_on_selector_all(".metric-card", """cards => Object.fromEntries(cards.map(c => [
        c.dataset.metric,
        c.getAttribute('data-verdict') ?? (c.querySelector('[data-verdict]')?.getAttribute('data-verdict') ?? null)]))""")


def sorted_column(page: Any, key: str) -> tuple[list[int], list[float | None]]:
    """Visible rows in display order, and the numbers their cells show in the ``key`` column."""
    rows = visible_rows(page)
    cells = page.evaluate("""key => {
        const th = document.querySelector(`th[data-sort="${key}"]`);
        const index = th.cellIndex;
        return [...document.querySelectorAll('#rows tbody tr[data-row]:not([hidden])')]
            .map(tr => tr.cells[index] ? tr.cells[index].textContent : '');
    }""", key)
    return rows, [first_number(text) for text in cells]


def direction(values: list[float]) -> str:
    if all(a <= b for a, b in pairwise(values)):
        return "ascending"
    if all(a >= b for a, b in pairwise(values)):
        return "descending"
    return "unordered"


def check_sort(page: Any, key: str, by_row: dict[int, float]) -> None:
    header = page.locator(f'th[data-sort="{key}"]')
    assert header.count() == 1, f'expected one th[data-sort="{key}"], found {header.count()}'
    seen = []
    for _ in range(2):
        header.click()
        page.wait_for_timeout(100)
        rows, cells = sorted_column(page, key)
        true_order = [by_row[r] for r in rows if by_row.get(r) is not None and not math.isnan(by_row[r])]
        shown = [c for c in cells if c is not None]
        assert len(set(true_order)) > 2, f"{key}: too few distinct values to check the order"
        order = direction(true_order)
        assert order != "unordered", f"clicking th[data-sort={key!r}] left rows {rows} unordered: {true_order}"
        assert direction(shown) in (order, "ascending" if len(set(shown)) <= 1 else order), \
            f"{key}: the cells read {shown}, not {order}"
        seen.append(order)
    assert seen in (["ascending", "descending"], ["descending", "ascending"]), \
        f"clicking th[data-sort={key!r}] twice sorted {seen[0]} then {seen[1]}"


def detail_text(page: Any, selector: str) -> str:
    return page.locator(f"#detail {selector}").first.text_content() or ""


def open_detail(page: Any, row: int) -> None:
    page.locator(f'{ROWS}[data-row="{row}"] td').first.click()
    page.wait_for_function("() => !document.querySelector('#detail').hasAttribute('hidden')", timeout=3000)


def close_detail(page: Any) -> None:
    page.click("#detail-close")
    page.wait_for_function("() => document.querySelector('#detail').hasAttribute('hidden')", timeout=3000)


def csp_sources(page: Any) -> list[str]:
    metas = page.eval_on_selector_all('meta[http-equiv="Content-Security-Policy" i]', "ms => ms.map(m => m.content)")
    assert len(metas) == 1, f"expected one Content-Security-Policy meta tag, found {metas}"
    return metas[0].split()


# --------------------------------------------------------------------------------------------
# tests


def test_report_of_a_real_run_renders_without_errors_or_requests(chromium_page, tmp_path):
    result = real_run()
    table = table_of(result)
    assert len(table) >= 30 and failed_rows(table)
    path = write_report(result.run_id, tmp_path / "report.html")

    from evalkit.reports.render import render_run_report

    html = render_run_report(result.run_id)
    assert html.lstrip().lower().startswith("<!doctype html")
    page, errors = open_report(chromium_page, path)

    assert errors == []
    remote = [s for s in csp_sources(page) if s == "*" or "://" in s or s.rstrip(";") in ("http:", "https:", "ws:", "wss:")]
    assert remote == [], f"the Content-Security-Policy allows remote sources: {remote}"
    data = page.evaluate("() => JSON.parse(document.getElementById('report-data').textContent)")
    assert data, "#report-data holds no JSON"

    total = len(table)
    assert row_count(page) == (total, total)
    assert page.locator(ROWS).count() == total
    assert sorted(visible_rows(page)) == list(range(total))
    assert page.locator("#detail").get_attribute("hidden") is not None, "#detail is open before any click"

    for name, prefix in (("exact_match", "exact_match/v1"), ("token_f1", "token_f1/v1")):
        element = card(page, name)
        assert element.count() == 1, f'expected one .metric-card[data-metric="{name}"], found {element.count()}'
        value = first_number(element.locator(".value").text_content())
        assert value is not None, f"{name} card: .value reads {element.locator('.value').text_content()!r}"
        mean = result.metrics[f"{prefix}/mean"]
        assert min(abs(value - mean), abs(value / 100 - mean)) < 0.01, f"{name} card shows {value}, the mean is {mean}"
        assert (element.locator(".ci").text_content() or "").strip(), f"{name} card: empty .ci"
        denominators = element.locator(".denominators").text_content() or ""
        for key in ("rows_scored", "rows_failed"):
            count = int(result.metrics[f"{prefix}/{key}"])
            assert re.search(rf"(?<![\d.,]){count}(?![\d.,])", denominators), \
                f"{name} card: .denominators {denominators!r} lacks {key} = {count}"
    for other in ("answer_correctness", "faithfulness"):
        assert card(page, other).count() == 1, f"no .metric-card for {other}"

    for key in ("row", "latency_ms", "cost_usd", "score:exact_match", "score:token_f1"):
        assert page.locator(f'th[data-sort="{key}"]').count() == 1, f'no th[data-sort="{key}"]'
    for name in ("failed", "errors", "low"):
        assert page.locator(f'button[data-filter="{name}"]').count() == 1, f'no button[data-filter="{name}"]'
    # Without a baseline there is nothing to compare with.
    assert page.locator('button[data-filter="changed"]').count() == 0
    assert page.locator("#digest-warning").count() == 0
    assert all(v is None for v in verdicts(page).values()), f"verdicts without a baseline: {verdicts(page)}"
    assert errors == []


def test_filters_search_and_sorting_work_by_clicking(chromium_page, tmp_path):
    result = real_run(evaluators=["exact_match", "token_f1", "faithfulness"], extra_metrics=["browser_picky"])
    table = table_of(result)
    total = len(table)
    everything = set(range(total))
    failed, errs, low = failed_rows(table), error_rows(table), low_rows(table)
    # The data is built so that each filter, and the combination, selects a proper, non-empty subset.
    assert failed and failed < errs < everything and low < everything and low & errs and low & errs != low
    page, errors = open_report(chromium_page, write_report(result.run_id, tmp_path / "report.html"))

    toggle_filter(page, "failed", pressed=True)
    expect_rows(page, failed, total, "failed")
    toggle_filter(page, "failed", pressed=False)
    expect_rows(page, everything, total, "failed toggled off")

    toggle_filter(page, "errors", pressed=True)
    expect_rows(page, errs, total, "errors (failed call or evaluator error)")
    toggle_filter(page, "low", pressed=True)
    expect_rows(page, errs & low, total, "errors AND low")
    toggle_filter(page, "errors", pressed=False)
    expect_rows(page, low, total, "low (any score < 0.5)")
    toggle_filter(page, "low", pressed=False)
    expect_rows(page, everything, total, "all filters off")

    page.fill("#search", "FENN")
    fenn = search_rows(table, "fenn")
    assert fenn and fenn != everything
    expect_rows(page, fenn, total, "search 'FENN'")
    toggle_filter(page, "low", pressed=True)
    expect_rows(page, fenn & low, total, "search 'FENN' AND low")
    toggle_filter(page, "low", pressed=False)
    page.fill("#search", "")
    expect_rows(page, everything, total, "search cleared")

    latency = {int(r): float(v) for r, v in zip(table["row"], pd.to_numeric(table["latency_ms"]))}
    check_sort(page, "latency_ms", latency)
    f1 = {int(r): float(v) for r, v in zip(table["row"], pd.to_numeric(table["token_f1/score"], errors="coerce"))}
    check_sort(page, "score:token_f1", f1)
    # Sorting keeps the filter: only the low rows, in order.
    toggle_filter(page, "low", pressed=True)
    check_sort(page, "latency_ms", latency)
    assert set(visible_rows(page)) == low
    assert errors == []


def test_detail_view_opens_on_click_and_shows_the_row(chromium_page, tmp_path):
    result = real_run(evaluators=["exact_match", "token_f1", "faithfulness"])
    table = table_of(result)
    page, errors = open_report(chromium_page, write_report(result.run_id, tmp_path / "report.html"))

    ok_row = next(int(r) for r, s, o in zip(table["row"], table["status"], table["outputs"])
                  if s == "ok" and "probably" in str(o))
    failed_row = min(failed_rows(table))
    for row in (ok_row, failed_row):
        record = table.loc[table["row"] == row].iloc[0]
        open_detail(page, row)
        assert record["inputs"] in detail_text(page, ".detail-input")
        if record["status"] == "ok":
            assert record["outputs"] in detail_text(page, ".detail-output")
        assert record["targets"] in detail_text(page, ".detail-target")
        contexts = detail_text(page, ".detail-contexts")
        for passage in record["contexts"]:
            assert passage[:60] in contexts, f"row {row}: context {passage[:60]!r} not in .detail-contexts"
        for name in ("exact_match", "token_f1", "faithfulness"):
            element = page.locator(f'#detail .detail-score[data-evaluator="{name}"]')
            assert element.count() == 1, f'row {row}: expected one .detail-score[data-evaluator="{name}"]'
            justification = record[f"{name}/justification"]
            assert justification in (element.text_content() or ""), \
                f"row {row}: {name} justification {justification!r} not in {element.text_content()!r}"
        close_detail(page)
    assert errors == []


VERDICTS = {"improved", "regressed", "no significant change"}
SCORE_CARDS = ("exact_match", "token_f1", "answer_correctness", "faithfulness", "toxicity")


def _answers_run(frame: pd.DataFrame, answers: list[str], name: str) -> ek.EvaluationResult:
    """A run whose model gives ``answers``. A model function, not predictions="answer": the
    dataset digest covers a predictions column, so runs with other answers would have other data."""
    by_id = dict(zip(frame["id"], answers, strict=True))

    def model(question: str, row: dict[str, Any]) -> str:
        return by_id[row["id"]]

    return ek.evaluate(model=model, data=frame, targets="ground_truth", progress=False, run_name=name)


def test_baseline_verdicts_changed_rows_and_digest_warning(chromium_page, browser_context, tmp_path):
    frame = rag_rows(0, 40)
    truth = list(frame["ground_truth"])
    before = [t if i % 2 == 0 else "no idea" for i, t in enumerate(truth)]
    after = [t if i not in (4, 8) else "no idea" for i, t in enumerate(truth)]
    baseline = _answers_run(frame, before, "baseline")
    current = _answers_run(frame, after, "current")
    changed = {i for i in range(len(frame)) if before[i] != after[i]}
    path = write_report(current.run_id, tmp_path / "report.html", baseline_run_id=baseline.run_id)
    page, errors = open_report(chromium_page, path)

    found = verdicts(page)
    evaluator_cards = {k.split("/")[0]: v for k, v in found.items() if k.split("/")[0] in SCORE_CARDS}
    assert set(evaluator_cards) == set(SCORE_CARDS), f"score cards: {sorted(found)}"
    assert all(v in VERDICTS for v in evaluator_cards.values()), f"card verdicts: {found}"
    assert evaluator_cards["exact_match"] == "improved", \
        f"exact_match went from 0.5 to 0.95 on the same 40 rows; verdicts: {found}"
    assert page.locator("#digest-warning").count() == 0, "#digest-warning with the same data"

    total = len(frame)
    toggle_filter(page, "changed", pressed=True)
    expect_rows(page, changed, total, "changed")
    toggle_filter(page, "changed", pressed=False)
    expect_rows(page, set(range(total)), total, "changed toggled off")
    assert errors == []
    screenshot = tmp_path / "report-baseline.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000

    shifted = rag_rows(5, 40)
    other = _answers_run(shifted, list(shifted["ground_truth"]), "other-data")
    path = write_report(current.run_id, tmp_path / "report-other.html", baseline_run_id=other.run_id)
    page, errors = open_report(browser_context, path)
    warning = page.locator("#digest-warning")
    assert warning.count() == 1 and warning.is_visible(), "no visible #digest-warning with a baseline on other data"
    assert (warning.text_content() or "").strip()
    assert errors == []


# Each payload tries another way out of text: markup, event handlers, javascript: URLs, and
# breaking out of the <script type="application/json"> that embeds the rows.
PAYLOADS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    '<svg onload="window.__xss=3">',
    "javascript:window.__xss=4",
    "</script><script>window.__xss=5</script>",
    '"><iframe src="javascript:window.__xss=6">',
    "<!--<script>window.__xss=7//",
]
LINKISH = ["javascript:window.__xss=4", "[docs](javascript:window.__xss=4)", "see https://example.com/x?q=<b>y</b>"]


@ek.evaluator(name="browser_xss_judge")
def browser_xss_judge(row: ek.EvalRow) -> ek.Score:
    i = row.index % len(PAYLOADS)
    return ek.Score(0.25, justification=f"because {PAYLOADS[i]} and {PAYLOADS[(i + 3) % len(PAYLOADS)]}",
                    raw=json.dumps({"verdict": PAYLOADS[(i + 1) % len(PAYLOADS)], "link": LINKISH[i % len(LINKISH)]}))


def _xss_frame(shift: int) -> pd.DataFrame:
    n = len(PAYLOADS)
    return pd.DataFrame({
        "inputs": [f"Q{i} {PAYLOADS[i]}" for i in range(n)],
        "contexts": [[PAYLOADS[(i + 2) % n], LINKISH[i % len(LINKISH)], f"plain passage {i}"] for i in range(n)],
        "ground_truth": [PAYLOADS[(i + 1) % n] for i in range(n)],
        "answer": [PAYLOADS[(i + shift) % n] if i % 3 else LINKISH[i % len(LINKISH)] for i in range(n)],
    })


def test_text_from_the_data_never_runs_as_script(chromium_page, tmp_path):
    baseline = ek.evaluate(data=_xss_frame(3), predictions="answer", targets="ground_truth", progress=False,
                           extra_metrics=["browser_xss_judge"], run_name=PAYLOADS[0])
    current = ek.evaluate(data=_xss_frame(0), predictions="answer", targets="ground_truth", progress=False,
                          extra_metrics=["browser_xss_judge"], run_name=PAYLOADS[1])
    table = table_of(current)
    path = write_report(current.run_id, tmp_path / "report.html", baseline_run_id=baseline.run_id)
    page, errors = open_report(chromium_page, path)
    report_url = page.url

    def assert_clean(where: str) -> None:
        assert page.evaluate("() => typeof window.__xss") == "undefined", \
            f"{where}: window.__xss = {page.evaluate('() => window.__xss')}"
        injected = page.evaluate("""() => [...document.querySelectorAll('*')].filter(e =>
                (e.tagName === 'SCRIPT' && e.id !== 'report-data' && e.textContent.includes('__xss'))
                || e.tagName === 'IFRAME' || e.tagName === 'OBJECT' || e.tagName === 'EMBED'
                || (e.tagName === 'IMG' && e.getAttribute('src') === 'x')
                || [...e.attributes].some(a => a.value.includes('__xss')))
            .map(e => e.outerHTML.slice(0, 200))""")
        assert injected == [], f"{where}: payload markup became elements: {injected}"
        assert errors == [], f"{where}: {errors}"

    assert_clean("after rendering")
    assert page.evaluate("() => document.querySelectorAll('script#report-data').length") == 1
    data = page.evaluate("() => document.getElementById('report-data').textContent")
    assert json.loads(data), "#report-data is not JSON"
    assert page.locator(ROWS).count() == len(table), "the rows JSON was cut short"

    for header in page.locator("th[data-sort]").all():
        header.click()
    assert_clean("after sorting by every column")
    for cell in page.locator(f"{VISIBLE} td").all():
        cell.hover()
        cell.click()
        if page.locator("#detail").get_attribute("hidden") is None:
            close_detail(page)
    assert_clean("after hovering and clicking every cell")

    for row in range(len(table)):
        record = table.loc[table["row"] == row].iloc[0]
        open_detail(page, row)
        for raw in page.locator("#detail details.raw").all():
            raw.locator("summary").first.click()
        assert record["inputs"] in detail_text(page, ".detail-input")
        assert record["outputs"] in detail_text(page, ".detail-output")
        assert record["targets"] in detail_text(page, ".detail-target")
        assert PAYLOADS[(row + 2) % len(PAYLOADS)] in detail_text(page, ".detail-contexts")
        judge = page.locator('#detail .detail-score[data-evaluator="browser_xss_judge"]')
        assert record["browser_xss_judge/justification"] in (judge.text_content() or "")
        raw_text = " ".join(r.text_content() or "" for r in page.locator("#detail details.raw").all())
        assert "__xss" in raw_text, f"row {row}: the judge's raw output is not shown in <details class=raw>"
        for link in page.locator("#detail a").all():
            if link.is_visible():
                link.click()
        assert_clean(f"after opening row {row}'s detail view")
        close_detail(page)
    assert "<script>window.__xss=1</script>" in page.evaluate(
        "() => [...document.querySelectorAll('#rows tbody td')].map(td => td.textContent).join(' ')")

    for link in page.locator("a").all():
        href = (link.get_attribute("href") or "").strip().lower()
        assert not href.startswith(("javascript:", "data:text/html", "vbscript:")), f"a link to {href!r}"
        if not link.is_visible():
            continue
        link.click(timeout=3000)
        page.wait_for_timeout(100)
        if page.url != report_url:
            page.goto(report_url)
            page.wait_for_function("() => window.__reportReady === true", timeout=10_000)
        assert_clean(f"after clicking a link to {href!r}")

    assert page.evaluate("() => typeof window.__xss") == "undefined"
    assert errors == []


def test_every_metric_card_has_value_interval_denominators_and_a_verdict(chromium_page, tmp_path):
    frame = rag_rows(0, 40)
    truth = list(frame["ground_truth"])
    baseline = _answers_run(frame, [t if i % 2 == 0 else "no idea" for i, t in enumerate(truth)], "baseline")
    current = _answers_run(frame, truth, "current")
    page, errors = open_report(chromium_page, write_report(current.run_id, tmp_path / "report.html",
                                                           baseline_run_id=baseline.run_id))
    cards = page.eval_on_selector_all(".metric-card", """cards => cards.map(c => ({
        metric: c.dataset.metric,
        missing: ['.value', '.ci', '.denominators'].filter(s => !c.querySelector(s)),
        verdict: c.getAttribute('data-verdict') ?? (c.querySelector('[data-verdict]')?.getAttribute('data-verdict') ?? null),
    }))""")
    assert cards
    broken = [c for c in cards if c["missing"] or c["verdict"] not in VERDICTS]
    assert broken == [], f"cards without .value/.ci/.denominators or a verdict: {broken}"
    assert errors == []


def test_a_suite_run_shows_its_gates_and_history(chromium_page, tmp_path):
    from test_report import (
        suite_runs,  # two runs of a small offline suite, the second against the first
    )

    _, second = suite_runs(tmp_path / "suite")
    page, errors = open_report(chromium_page, second.pairs[0].report_path)
    gates = page.locator("#gates")
    assert gates.is_visible(), "no visible Gates section in a suite run's report"
    statuses = page.eval_on_selector_all("#gates tbody tr[data-status]", "rows => rows.map(r => r.dataset.status)")
    assert sorted(set(statuses)) == ["failed", "passed"], f"gate statuses {statuses}"
    failed = gates.locator('tr[data-status="failed"] .gate-status').first
    assert failed.is_visible() and "failed" in (failed.text_content() or ""), "a failed gate must say so in words"
    chart = page.locator('#history figure[data-history="token_f1/v1/mean"] svg')
    assert chart.is_visible(), "no visible history chart of token_f1"
    assert chart.locator("circle.point").count() == 2 and chart.locator("circle.point.current").count() == 1
    assert "model snapshot changed" in (chart.locator("g.mark text").text_content() or "")
    assert errors == []
