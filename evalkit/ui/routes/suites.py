"""Suites: every suite with its latest night, and a page per suite with its nights (each pair's
gates) and the history of every gated metric, model snapshot changes marked."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from evalkit.entities import Run, ViewType
from evalkit.errors import EvalkitError
from evalkit.suite import tags
from evalkit.ui.context import artifacts, client, quoted, render, store, when
from evalkit.ui.routes.errors import page

# The report's and the results' modules load pandas: they are imported in the handlers that use
# them, so an idle server stays small (issue 13's memory goal).

router = APIRouter()
MAX_EXPERIMENTS = 5000
NIGHTS_LISTED = 1000  # newest suite nights scanned for the suites list
NIGHTS_PER_PAGE = 14


def _experiments(request: Request) -> list[str]:
    return [e.experiment_id for e in store(request).search_experiments(ViewType.ACTIVE_ONLY, max_results=MAX_EXPERIMENTS)]


def _nights(request: Request, suite: str | None, limit: int) -> list[Run]:
    experiment_ids = _experiments(request)
    if not experiment_ids:
        return []
    query = f"tags.`{tags.ROLE}` = 'parent'" + (f" AND tags.`{tags.SUITE}` = {quoted(suite)}" if suite else "")
    runs, _ = store(request).search_runs(experiment_ids, query, ViewType.ACTIVE_ONLY, limit,
                                         ["attributes.start_time DESC"])
    return runs


@router.get("/suites")
@page
def suites_page(request: Request) -> Response:
    by_suite: dict[str, list[Run]] = {}
    for night in _nights(request, None, NIGHTS_LISTED):
        by_suite.setdefault(night.data.tags.get(tags.SUITE, "?"), []).append(night)
    return render(request, "suites.html", suites=sorted(by_suite.items()))


def _gates(request: Request, pair: Run) -> dict[str, Any]:
    try:
        payload = json.loads(artifacts(request, pair).read_bytes(tags.GATES_FILE))
    except (EvalkitError, OSError, ValueError):
        return {"status": pair.data.tags.get(tags.STATUS), "gates": [], "error": None}
    return payload if isinstance(payload, dict) else {"gates": []}


def _history_charts(request: Request, suite: str, pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each gated metric of the newest night, one line chart per (dataset, model) pair."""
    from evalkit.reports.charts import line_chart
    from evalkit.reports.model import GATE_KINDS, HISTORY_RUNS
    from evalkit.suite.history import metrics_history
    metrics: list[str] = []
    for pair in pairs:
        for gate in pair["gates"].get("gates", []):
            if isinstance(gate, dict) and gate.get("kind") in GATE_KINDS and gate.get("metric"):
                if gate["metric"] not in metrics:
                    metrics.append(str(gate["metric"]))
    histories = metrics_history(client(request), suite, metrics, HISTORY_RUNS) if metrics else {}
    charts = []
    for metric in metrics:
        by_pair: dict[tuple[str, str], list[Any]] = {}
        for point in histories[metric]:
            by_pair.setdefault((point.dataset, point.model), []).append(point)
        for (dataset, model), points in sorted(by_pair.items()):
            labels = [f"{when(p.start_time)} · {p.status} · {p.value if p.value is not None else '–'} · run {p.run_id}"
                      for p in points]
            marks = {i: f"snapshot {p.model_snapshot}" for i, p in enumerate(points) if p.snapshot_changed}
            charts.append({"metric": metric, "dataset": dataset, "model": model,
                           "svg": line_chart([p.value for p in points], labels, marks=marks, width=520, height=160),
                           "changes": sum(p.snapshot_changed for p in points)})
    return charts


@router.get("/suites/{suite}")
@page
def suite_page(request: Request, suite: str) -> Response:
    nights = _nights(request, suite, NIGHTS_PER_PAGE)
    children: dict[str, list[Run]] = {}
    if nights:
        listed = ", ".join(f"'{n.info.run_id}'" for n in nights)
        pairs, _ = store(request).search_runs(_experiments(request), f"attributes.parent_run_id IN ({listed})",
                                              ViewType.ACTIVE_ONLY, 1000, ["attributes.start_time ASC"])
        for pair in pairs:
            children.setdefault(pair.info.parent_run_id or "", []).append(pair)
    night_views = [{"run": night, "pairs": [{"run": p, "gates": _gates(request, p)}
                                            for p in children.get(night.info.run_id, [])]} for night in nights]
    charts = _history_charts(request, suite, night_views[0]["pairs"]) if night_views else []
    return render(request, "suite.html", suite=suite, nights=night_views, charts=charts)
