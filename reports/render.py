"""Render an evaluation run (optionally against a baseline run) as one self-contained HTML file.

Everything is inline (styles, script, SVG charts) and a Content-Security-Policy forbids any
request, so the file opens from file:// offline. Templates are rendered with autoescaping; the
row data is embedded as JSON with ``<``, ``>`` and ``&`` escaped, and the page's script inserts
it with textContent only, so nothing a model, a judge or a dataset wrote can run as code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timezone
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from evalkit.reports.charts import histogram, line_chart
from evalkit.reports.model import LOW_SCORE, Report, build_report, score_evaluators
from markupsafe import Markup

from evalkit import TrackingClient
from evalkit.evaluation.run_evaluators import higher_is_better
from evalkit.stats import paired_delta, percentile_statistic
from evalkit.tracking import run_tags

_TEMPLATES = Path(__file__).parent / "templates"
_HEADER_PARAMS = ("model_uri", "model_snapshot", "dataset_digest", "dataset_rows", "judge_uri", "judge_snapshot",
                  "evalkit_version", "git_commit")
# Characters that could end the <script> element or confuse an HTML parser, written as JSON escapes.
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@cache
def _asset(name: str) -> str:
    return (_TEMPLATES / name).read_text()


def _safe_json(payload: Any) -> Markup:
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in _JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return Markup(text)


def _sha256(script: str) -> str:
    """The CSP source that lets exactly this inline script run, and no injected one."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _signed(value: float | None) -> str:
    # Three significant digits for small changes, so a real +0.0004 does not read as +0.000.
    if value is None:
        return "–"
    return f"{value:+,.1f}" if abs(value) >= 1 else f"{value:+.3g}"


def _usd(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:,.4f}" if abs(value) >= 0.01 or value == 0 else f"${value:.6f}"


def _ms(value: float | None) -> str:
    # NaN: no call was timed in that run (every row came from the cache).
    return "–" if value is None or value != value else f"{value:,.0f} ms"


def _count(value: float | None) -> str:
    return "–" if value is None else f"{int(value):,}"


def _metric_value(value: float | None) -> str:
    # Gated metrics range from rates to milliseconds to fractions of a cent: significant digits suit all.
    return "–" if value is None else f"{value:.4g}"


def _p(value: float) -> str:
    return f"{value:.4f}" if value >= 0.0001 else "< 0.0001"


def _time(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _latency(report: Report) -> dict[str, Any]:
    table = report.current.table
    fresh = table[(table.get("status") == "ok") & (~table.get("cached", False).astype(bool))] if "latency_ms" in table else table.iloc[0:0]
    values = fresh["latency_ms"].to_numpy(dtype=float) if len(fresh) else np.zeros(0)
    values = values[np.isfinite(values)]
    base_values = None
    delta = None
    if report.baseline is not None and "latency_ms" in report.baseline.table:
        base_table = report.baseline.table
        base_values = base_table["latency_ms"].to_numpy(dtype=float)
        if len(base_table) == len(table):
            now = np.where(table["cached"].astype(bool), np.nan, table["latency_ms"].to_numpy(dtype=float))
            before = np.where(base_table["cached"].astype(bool), np.nan, base_values)
            better = higher_is_better("latency/p95_ms", report.current.evaluators)
            delta = paired_delta(now, before, higher_is_better=better, statistic=percentile_statistic(95))
    return {
        "measured": bool(values.size),  # not "values": in the template that would be dict.values
        "chart": histogram(values, unit=" ms", overlay=base_values) if values.size else "",
        "cached": int(table["cached"].astype(bool).sum()) if "cached" in table else 0,
        "total_p95": report.current.metrics.get("latency_total/p95_ms"),
        "delta": delta,
    }


def _health(report: Report) -> dict[str, Any]:
    table = report.current.table
    status = table["status"] if "status" in table else None
    total = len(table)
    failed = int((status == "failed").sum()) if status is not None else 0
    return {
        "total": total,
        "answered": int((status == "ok").sum()) if status is not None else total,
        "failed": failed,
        "skipped": int((status == "skipped").sum()) if status is not None else 0,
        "cached": int(table["cached"].astype(bool).sum()) if "cached" in table else 0,
        "error_rate": failed / total if total else 0.0,
        "reported": int((table["input_tokens"].notna() & ~table["usage_estimated"].astype(bool)).sum())
        if "usage_estimated" in table else 0,
    }


def _history(report: Report) -> list[dict[str, Any]]:
    """One line chart per gated metric, with this run ringed and the snapshot changes marked."""
    if report.suite is None:
        return []
    this_run = report.current.run.info.run_id
    charts = []
    for history in report.suite.history:
        points = history.points
        labels = [f"{_time(p.start_time)} · {p.status} · {_metric_value(p.value)} · run {p.run_id}"
                  + (" (this run)" if p.run_id == this_run else "") for p in points]
        current = next((i for i, p in enumerate(points) if p.run_id == this_run), None)
        changed = [i for i, p in enumerate(points) if p.snapshot_changed]
        chart = line_chart([p.value for p in points], labels, current, {i: "model snapshot changed" for i in changed})
        snapshots = [(_time(points[i].start_time), points[i].model_snapshot) for i in changed]
        charts.append({"metric": history.metric, "runs": len(points), "chart": chart, "snapshots": snapshots})
    return charts


def render_report(report: Report, status: str | None = None) -> str:
    """The HTML of a built report. ``status`` overrides the run's (evaluate() renders before it ends the run)."""
    run = report.current.run
    params = report.current.params
    score_names = [info.name for info in score_evaluators(report.current)]
    distributions = []
    for name in score_names:
        values = report.current.scores(name)
        overlay = report.baseline.scores(name) if report.baseline and f"{name}/score" in report.baseline.table else None
        in_unit = np.nanmin(values, initial=0.0) >= 0 and np.nanmax(values, initial=1.0) <= 1
        distributions.append((name, histogram(values, bins=10, value_range=(0.0, 1.0) if in_unit else None, overlay=overlay)))
    better = {info.name: info.higher_is_better for info in report.current.evaluators}
    payload = {"rows": report.rows, "score_names": score_names, "low_score": LOW_SCORE, "higher_is_better": better,
               "total_rows": report.total_rows}
    script = _asset("report.js")
    return _environment().get_template("report.html.j2").render(
        report=report, run=run, status=status or run.info.status.value, started=_time(run.info.start_time),
        failure_reason=run.data.tags.get(run_tags.FAILURE_REASON),
        stopped_reason=run.data.tags.get(run_tags.STOPPED_REASON),
        facts=[(key.replace("_", " "), params[key]) for key in _HEADER_PARAMS if key in params],
        other_params=sorted((k, v) for k, v in params.items() if k not in _HEADER_PARAMS),
        metrics=report.current.metrics, baseline_metrics=report.baseline.metrics if report.baseline else None,
        suite=report.suite, history=_history(report),
        health=_health(report), latency=_latency(report), distributions=distributions, score_names=score_names,
        low=LOW_SCORE, data_json=_safe_json(payload), evalkit_version=version("evalkit"),
        css=Markup(_asset("report.css")), js=Markup(script), script_hash=_sha256(script),
        num=_num, metric_value=_metric_value, p=_p, signed=_signed, usd=_usd, ms=_ms, count=_count,
        pct=lambda v: f"{100 * v:.1f}%",
    )


def render_run_report(run_id: str, baseline_run_id: str | None = None, tracking_uri: str | None = None,
                      row_cap: int = 2000, status: str | None = None) -> str:
    """The report of ``run_id`` (a run logged by evaluate()), compared with ``baseline_run_id`` if given."""
    client = TrackingClient(tracking_uri)
    return render_report(build_report(client, run_id, baseline_run_id, row_cap), status)


def write_run_report(run_id: str, path: str | os.PathLike[str], baseline_run_id: str | None = None,
                     tracking_uri: str | None = None, row_cap: int = 2000) -> Path:
    """Write the report to ``path`` and return it."""
    target = Path(path)
    target.write_text(render_run_report(run_id, baseline_run_id, tracking_uri, row_cap), encoding="utf-8")
    return target
