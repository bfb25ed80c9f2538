"""Compare 2 to 100 runs: params and metrics side by side (optionally only the differences),
overlaid metric histories, and for two evaluation runs the report's paired comparison."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from evalkit.entities import Run, ViewType
from evalkit.errors import InvalidArgument, NotFound
from evalkit.tracking.downsample import downsample
from evalkit.ui.context import artifacts, client, render, store
from evalkit.ui.routes.errors import page
from evalkit.ui.routes.run import MAX_POINTS, finite_or_none

# The report's and the results' modules load pandas: they are imported in the handlers that use
# them, so an idle server stays small (issue 13's memory goal).

router = APIRouter()
MAX_COMPARED = 100
MAX_EXPERIMENTS = 5000


def load_runs(request: Request, run_ids: list[str]) -> list[Run]:
    """The runs in the order given, with one search (not one query per run)."""
    run_ids = list(dict.fromkeys(run_ids))
    if not 2 <= len(run_ids) <= MAX_COMPARED:
        raise InvalidArgument(f"compare takes 2 to {MAX_COMPARED} runs, got {len(run_ids)}")
    if any(not run_id.isalnum() for run_id in run_ids):
        raise InvalidArgument("run ids are letters and digits")
    tracking = store(request)
    experiments = [e.experiment_id for e in tracking.search_experiments(ViewType.ALL, max_results=MAX_EXPERIMENTS)]
    listed = ", ".join(f"'{run_id}'" for run_id in run_ids)
    found, _ = tracking.search_runs(experiments, f"attributes.run_id IN ({listed})", ViewType.ALL, MAX_COMPARED)
    by_id = {run.info.run_id: run for run in found}
    missing = [run_id for run_id in run_ids if run_id not in by_id]
    if missing:
        raise NotFound(f"no run with id {missing[0]!r}")
    return [by_id[run_id] for run_id in run_ids]


def _rows(runs: list[Run], entity: str, only_differences: bool) -> list[tuple[str, list[object], bool]]:
    """(key, value per run, differs) for every key any run has; only those that differ if asked."""
    keys = sorted({key for run in runs for key in getattr(run.data, entity)})
    rows = []
    for key in keys:
        values = [getattr(run.data, entity).get(key) for run in runs]
        differs = len({repr(v) for v in values}) > 1
        if differs or not only_differences:
            rows.append((key, values, differs))
    return rows


@router.get("/compare")
@page
def compare_page(request: Request) -> Response:
    from evalkit.evaluation.results import RESULTS_PARQUET
    from evalkit.reports.model import build_report
    run_ids = [r for value in request.query_params.getlist("run") for r in value.split(",") if r]
    runs = load_runs(request, run_ids)
    only_differences = request.query_params.get("diff") == "1"
    metric_keys = sorted({key for run in runs for key in run.data.metrics})
    paired = None
    if len(runs) == 2 and all(artifacts(request, run).is_file(RESULTS_PARQUET) for run in runs):
        # The report's own paired comparison: the first run is the baseline, the second the candidate.
        paired = build_report(client(request), runs[1].info.run_id, baseline_run_id=runs[0].info.run_id)
    return render(request, "compare.html", runs=runs, only_differences=only_differences,
                  params=_rows(runs, "params", only_differences), metrics=_rows(runs, "metrics", only_differences),
                  tags=_rows(runs, "tags", only_differences), metric_keys=metric_keys, paired=paired,
                  run_ids=[run.info.run_id for run in runs])


@router.get("/compare/history")
@page
def compare_history(request: Request, key: str) -> Response:
    """One metric's downsampled history for each run: {"key", "series": [{"run", "name", "steps", "values"}]}."""
    runs = load_runs(request, request.query_params.getlist("run"))
    histories = store(request).get_metric_histories([run.info.run_id for run in runs], key)
    series = []
    for run in runs:
        kept, _ = downsample(histories[run.info.run_id], MAX_POINTS)
        series.append({"run": run.info.run_id, "name": run.info.run_name, "steps": [m.step for m in kept],
                       "values": [finite_or_none(m.value) for m in kept]})
    return JSONResponse({"key": key, "series": series})
