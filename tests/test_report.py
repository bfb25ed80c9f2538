"""The HTML report, checked as a file: self-contained, escaped, with the comparison and row cap.
(tests/test_report_browser.py checks it in a real browser.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import evalkit as ek
from evalkit.cli.main import cli
from reports.render import render_run_report

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

    import evalkit.evaluation as evaluation

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
