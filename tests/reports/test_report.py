"""The HTML report, checked as a file: self-contained, escaped, with the comparison and row cap.
(tests/reports/test_report_browser.py checks it in a real browser.)"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from evalkit.reports.render import render_run_report

import evalkit as ek
from evalkit.cli.main import cli
from evalkit.suite import SuiteResult, run_suite
from evalkit.suite.tags import GATES_FILE, MODEL_SNAPSHOT

HOSTILE = '</script><script>alert(1)</script><img src=x onerror=alert(2)>'


def data(rows: int = 12) -> pd.DataFrame:
    return pd.DataFrame({
        "inputs": [f"Where is lamp {i}?" for i in range(rows)],
        "contexts": [[f"Lamp {i} is in aisle {i % 4}."] for i in range(rows)],
        "ground_truth": [f"Lamp {i} is in aisle {i % 4}." for i in range(rows)],
    })


def good(question: str, contexts: list[str]) -> str:
    return contexts[0]


def test_every_evaluation_logs_a_self_contained_report():
    result = ek.evaluate(model=good, data=data(), targets="ground_truth", progress=False)
    html = Path(result.artifacts["report"]).read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)  # nothing to fetch
    assert "<link" not in html and "@import" not in html
    assert 'data-metric="exact_match"' in html and "95% CI" in html
    payload = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1))
    assert len(payload["rows"]) == 12 and payload["rows"][3]["output"] == "Lamp 3 is in aisle 3."
    assert "FINISHED" in html


def test_hostile_text_is_escaped_in_the_json_and_in_the_server_rendered_parts():
    baseline = ek.evaluate(model=good, data=data(4), targets="ground_truth", progress=False)
    result = ek.evaluate(model=lambda q: HOSTILE, data=data(4), targets="ground_truth", baseline=baseline.run_id,
                         progress=False)
    html = Path(result.artifacts["report"]).read_text()
    elements = _elements(html)
    assert [tag for tag, _ in elements].count("script") == 2  # the data block and the page's own script
    assert "img" not in [tag for tag, _ in elements]
    assert not [name for _, attrs in elements for name, _ in attrs if name.startswith("on")]
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)" in html  # inside the JSON
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html  # in the changed-rows panel


def _elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element a browser's parser would create, with its attributes."""
    from html.parser import HTMLParser

    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):  # noqa: ANN001
            found.append((tag, attrs))

    Collect().feed(html)
    return found


def test_baseline_comparison_verdicts_and_changed_rows():
    baseline = ek.evaluate(model=lambda q: "no idea", data=data(40), targets="ground_truth", progress=False)
    result = ek.evaluate(model=good, data=data(40), targets="ground_truth", baseline=baseline.run_id, progress=False)
    html = Path(result.artifacts["report"]).read_text()
    assert re.search(r'data-metric="exact_match" data-verdict="improved"', html)
    assert 'id="digest-warning"' not in html and "Changed rows" in html
    payload = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))
    assert all(row["changed"] for row in payload["rows"])
    assert payload["rows"][0]["baseline"]["output"] == "no idea"
    assert ["-", "no idea"] in payload["rows"][0]["diff"]


def test_different_data_warns_and_pairs_rows_by_input():
    baseline = ek.evaluate(model=good, data=data(10), targets="ground_truth", progress=False)
    result = ek.evaluate(model=good, data=data(14).iloc[4:], targets="ground_truth", baseline=baseline.run_id,
                         progress=False)
    html = Path(result.artifacts["report"]).read_text()
    assert 'id="digest-warning"' in html and "6 of 10 rows have a partner" in html


def test_unknown_baseline_fails_before_any_call():
    calls = []
    with pytest.raises(ek.NotFound, match="no run with id 'nope'"):
        ek.evaluate(model=lambda q: calls.append(q) or "x", data=data(), baseline="nope", progress=False)
    assert calls == []


def test_past_the_row_cap_the_failed_and_worst_rows_are_embedded_and_the_report_says_so():
    def flaky(question: str) -> str:
        if question.endswith("7?"):
            raise RuntimeError("down")
        return "Lamp 1 is in aisle 1." if "lamp 1" in question else "nowhere"

    result = ek.evaluate(model=flaky, data=data(30), targets="ground_truth", evaluators=["exact_match"], progress=False)
    html = render_run_report(result.run_id, row_cap=5)
    payload = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))
    rows = {row["row"] for row in payload["rows"]}
    assert len(rows) == 5 and {7, 17, 27} <= rows and 1 not in rows  # failed first, then the lowest scores
    assert "embeds 5 of 30 rows" in html and "eval_results_table.parquet" in html


def test_report_command_and_a_failing_renderer_does_not_fail_the_evaluation(tmp_path, monkeypatch):
    result = ek.evaluate(model=good, data=data(), targets="ground_truth", progress=False)
    out = tmp_path / "r.html"
    done = CliRunner().invoke(cli, ["report", result.run_id, "-o", str(out)])
    assert done.exit_code == 0, done.output and out.read_text().startswith("<!doctype html>")

    import evalkit.evaluation.engine as evaluation

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(evaluation, "find_report_renderer", lambda: broken)
    with pytest.warns(UserWarning, match="template exploded"):
        survived = ek.evaluate(model=good, data=data(), targets="ground_truth", progress=False)
    run = ek.get_run(survived.run_id)
    assert run.info.status is ek.RunStatus.FINISHED and "template exploded" in run.data.tags["evalkit.report_error"]


def test_non_finite_scores_render_as_missing():
    @ek.evaluator(name="unbounded")
    def unbounded(row: ek.EvalRow) -> float:
        return float("inf") if "1?" in row.input else 0.5

    baseline = ek.evaluate(model=good, data=data(3), extra_metrics=[unbounded], evaluators=[], progress=False)
    result = ek.evaluate(model=good, data=data(3), extra_metrics=[unbounded], evaluators=[], baseline=baseline.run_id,
                         progress=False)
    html = render_run_report(result.run_id, baseline.run_id)
    payload = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))
    assert [row["scores"]["unbounded"] for row in payload["rows"]] == [0.5, None, 0.5]


def test_the_content_security_policy_pins_the_one_inline_script_by_hash():
    import base64
    import hashlib

    result = ek.evaluate(model=good, data=data(2), targets="ground_truth", progress=False)
    html = Path(result.artifacts["report"]).read_text()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy


# ---- runs made by a suite: gates and history -------------------------------------------------

SUITE_ROWS = [
    ("How bright is the Fenn lamp?", "The Fenn lamp gives 800 lumens.", "800 lumens"),
    ("How tall is the Orla lamp?", "The Orla lamp stands 168 cm tall.", "168 cm"),
    ("What powers the Pip lamp?", "The Pip lamp runs on a USB-C battery.", "a USB-C battery"),
    ("Does the Fenn dim?", "All lamps dim down to 1% brightness.", "yes, to 1%"),
]
# token_f1 passes its threshold, exact_match (always 0 for the extractive model) fails its own.
SUITE_YAML = """\
suite: report-suite
datasets:
  - {name: lamps, path: rows.jsonl, targets: ground_truth}
models:
  - {name: extractive, uri: "evalkit:/extractive"}
evaluators: [exact_match, token_f1]
thresholds:
  - token_f1/mean >= 0.3
  - exact_match/mean >= 0.5
baseline:
  rules:
    - metric: token_f1/mean
    - {metric: error_rate, tolerance: 0.01}
"""


def suite_runs(folder: Path) -> tuple[SuiteResult, SuiteResult]:
    """Two runs of a one-pair suite, the second against the first, with the model snapshot changed
    in between (the first run's snapshot tag is rewritten, as if another model had answered)."""
    folder.mkdir(exist_ok=True)
    (folder / "rows.jsonl").write_text("".join(
        json.dumps({"question": q, "contexts": [c], "ground_truth": t}) + "\n" for q, c, t in SUITE_ROWS))
    (folder / "suite.yaml").write_text(SUITE_YAML)
    first = run_suite(folder / "suite.yaml", folder / "out1", progress=False)
    with ek.start_run(run_id=first.pairs[0].run_id):
        ek.set_tag(MODEL_SNAPSHOT, "extractive-old")
    second = run_suite(folder / "suite.yaml", folder / "out2", baseline=first.run_id, progress=False)
    return first, second


def _gate_rows(html: str) -> dict[str, dict[str, str]]:
    """The Gates table: gate name -> status and the cells with a data-field."""
    section = re.search(r'<section id="gates">(.*?)</section>', html, re.S).group(1)
    rows = {}
    for row in re.findall(r"<tr data-status=.*?</tr>", section, re.S):
        name = re.search(r"<td>([^<]*)<div", row).group(1)
        cells = dict(re.findall(r'data-field="(\w+)">(.*?)</td>', row, re.S))
        rows[name] = {"status": re.search(r'data-status="([^"]*)"', row).group(1),
                      "label": re.search(r'class="gate-status \w+">(.*?)</span>', row).group(1), **cells}
    return rows


def test_a_suite_run_shows_its_gates_and_the_history_of_its_gated_metrics(tmp_path):
    first, second = suite_runs(tmp_path / "suite")
    pair = second.pairs[0]
    html = pair.report_path.read_text()
    recorded = json.loads(ek.TrackingClient().load_text(pair.run_id, GATES_FILE))
    assert html.index('id="gates"') < html.index("<h2>Health</h2>")  # near the top

    rows = _gate_rows(html)
    assert list(rows) == [escape(g["name"], quote=False) for g in recorded["gates"]]
    assert {r["status"] for r in rows.values()} == {"passed", "failed"}
    assert rows["exact_match/mean &gt;= 0.5"]["label"] == "✗ failed"  # a word and a symbol, not colour alone
    threshold = rows["token_f1/mean &gt;= 0.3"]
    assert threshold["label"] == "✓ passed" and threshold["observed"] == f"{pair.metrics['token_f1/v1/mean']:.4g}"
    assert threshold["baseline"] == threshold["delta"] == threshold["p_value"] == "–"
    paired = next(g for g in recorded["gates"] if g["kind"] == "paired")
    cells = rows[paired["name"]]
    assert cells["baseline"] == f"{paired['baseline']:.4g}" and cells["delta"] == "+0"
    assert cells["p_value"].startswith(f"{paired['p_value']:.4f}") and "adjusted" in cells["p_value"]
    assert escape(paired["message"], quote=False) in html
    assert pair.baseline_run_id == first.pairs[0].run_id and f"baseline run <code>{pair.baseline_run_id}</code>" in html

    # One chart per gated metric (the threshold and the paired rule share token_f1), two runs each.
    history = re.search(r'<section id="history">(.*?)</section>', html, re.S).group(1)
    charts = dict(re.findall(r'<figure data-history="([^"]+)">(.*?)</figure>', history, re.S))
    assert sorted(charts) == ["error_rate", "exact_match/v1/mean", "token_f1/v1/mean"]
    chart = charts["token_f1/v1/mean"]
    points = re.findall(r'<circle class="point( current)?".*?<title>[^<]* · run (\w+)( \(this run\))?</title>', chart)
    assert points == [("", first.pairs[0].run_id, ""), (" current", pair.run_id, " (this run)")]  # oldest first
    assert chart.count('<g class="mark">') == 1 and "model snapshot changed" in chart
    assert "now <code>evalkit-extractive-1</code>" in chart

    # The first run had no baseline: its baseline rules were skipped, and its history is one run.
    earlier = first.pairs[0].report_path.read_text()
    assert {r["status"] for r in _gate_rows(earlier).values()} == {"passed", "failed", "skipped"}
    assert "– skipped" in earlier and "no baseline run" in earlier and 'class="point current"' in earlier


def _with_gates(run_id: str, text: str) -> str:
    """Give a finished run a gates.json (as the suite job logs it) and render its report."""
    with ek.start_run(run_id=run_id):
        ek.log_text(text, GATES_FILE)
    return render_run_report(run_id)


def test_gate_text_is_escaped_and_missing_or_unknown_fields_do_not_break_the_report():
    run = ek.evaluate(model=good, data=data(3), targets="ground_truth", progress=False)
    gates = {"status": "error", "error": HOSTILE, "baseline_run_id": HOSTILE, "extra": [1, 2], "gates": [
        {"name": HOSTILE, "kind": "threshold", "metric": "exact_match/mean", "status": "error", "message": HOSTILE,
         "observed": "NaN", "surprise": {"x": 1}},
        {"name": "future", "status": "from the future", "p_value": 0.00001, "p_adjusted": None, "delta": -0.25},
        {},
        "not a gate",
    ]}
    html = _with_gates(run.run_id, json.dumps(gates))
    elements = _elements(html)
    assert [tag for tag, _ in elements].count("script") == 2 and "img" not in [tag for tag, _ in elements]
    assert not [name for _, attrs in elements for name, _ in attrs if name.startswith("on")]
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html and 'id="gates-error"' in html
    rows = _gate_rows(html)
    assert len(rows) == 3 and [r["status"] for r in rows.values()] == ["error", "from the future", "unknown"]
    assert [r["label"] for r in rows.values()] == ["⚠ error", "? from the future", "? unknown"]
    assert rows["future"]["p_value"] == "&lt; 0.0001" and rows["future"]["delta"] == "-0.25"
    assert rows["(unnamed gate)"]["observed"] == "–"
    assert 'id="history"' not in html  # not a suite's pair run: nothing to chart

    broken = ek.evaluate(model=good, data=data(3), targets="ground_truth", progress=False)
    html = _with_gates(broken.run_id, '{"status": "passed", "gates": [')
    assert 'id="gates"' in html and re.search(r'id="gates-error">⚠ gates.json could not be read', html)


def test_a_plain_run_has_no_gates_or_history():
    result = ek.evaluate(model=good, data=data(3), targets="ground_truth", progress=False)
    html = Path(result.artifacts["report"]).read_text()
    assert 'id="gates"' not in html and 'id="history"' not in html and 'class="gate-status' not in html
