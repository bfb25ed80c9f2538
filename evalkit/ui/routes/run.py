"""A run's page: info, params, tags, metrics with charts, artifacts with previews, its report,
and for an evaluation its results table (paged on the server) and live progress."""

from __future__ import annotations

import math
from pathlib import PurePosixPath
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from evalkit.entities import ModelVersion, RunStatus
from evalkit.errors import InvalidArgument, InvalidState, NotFound
from evalkit.tracking.artifacts import safe_relative_path
from evalkit.tracking.downsample import DOWNSAMPLE_MAX_POINTS, downsample_metric_history
from evalkit.tracking.store import TrackingStore
from evalkit.ui.context import artifacts, client, quoted, render, store
from evalkit.ui.routes.errors import page
from evalkit.ui.routes.models import model_url

# The report's and the results' modules load pandas: they are imported in the handlers that use
# them, so an idle server stays small (issue 13's memory goal).

router = APIRouter()
REPORT_FILE = "report.html"
CHARTED_METRICS = 8  # charts drawn when the page opens; any other metric's chart is a click away
MAX_POINTS = 500
# Served artifacts run nothing on the UI's origin: a sandbox (an opaque origin) and no network.
ARTIFACT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
# The report's inline script is allowed by its own hash-based CSP; this header keeps it sandboxed.
REPORT_CSP = ("sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
              "img-src data:; frame-ancestors 'self'")


REGISTERED_SHOWN = 100  # model versions listed under "Registered as"


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def registered_from(tracking: TrackingStore, run_id: str) -> list[ModelVersion]:
    """The model versions registered from the run (an indexed search); none where the store keeps
    no registry (it refuses with InvalidState): the run page still opens."""
    try:
        return tracking.search_model_versions(f"run_id = {quoted(run_id)}", REGISTERED_SHOWN)
    except InvalidState:
        return []


@router.get("/runs/{run_id}")
@page
def run_page(request: Request, run_id: str) -> Response:
    from evalkit.evaluation.results import RESULTS_PARQUET
    from evalkit.ui import results
    tracking = store(request)
    run = tracking.get_run(run_id)
    experiment = tracking.get_experiment(run.info.experiment_id)
    repository = artifacts(request, run)
    parent = tracking.get_run(run.info.parent_run_id) if run.info.parent_run_id else None
    has_results = repository.is_file(RESULTS_PARQUET)
    live = run.info.status is RunStatus.RUNNING and "dataset_rows" in run.data.params
    metrics = sorted(run.data.metrics.items())
    return render(request, "run.html", run=run, experiment=experiment, parent=parent, metrics=metrics,
                  charted=[k for k, _ in metrics[:CHARTED_METRICS]], has_report=repository.is_file(REPORT_FILE),
                  has_results=has_results, live=live, filters=results.FILTERS,
                  registered=registered_from(tracking, run.info.run_id), model_url=model_url)


@router.get("/runs/{run_id}/metric-history")
@page
def metric_history(request: Request, run_id: str, key: str, max_points: int = MAX_POINTS) -> Response:
    """A metric's history, downsampled to about ``max_points``: {"key", "steps", "values", "count"}."""
    kept, count = downsample_metric_history(store(request), run_id, key, max(2, min(max_points, DOWNSAMPLE_MAX_POINTS)))
    return JSONResponse({"key": key, "count": count, "steps": [m.step for m in kept],
                         "values": [finite_or_none(m.value) for m in kept]})


@router.get("/runs/{run_id}/artifacts")
@page
def artifact_tree(request: Request, run_id: str, path: str = "") -> Response:
    run = store(request).get_run(run_id)
    folder = safe_relative_path(path) if path else None
    entries = sorted(artifacts(request, run).list_artifacts(folder), key=lambda f: (not f.is_dir, f.path))
    return render(request, "_artifacts.html", run=run, entries=entries,
                  names={f.path: PurePosixPath(f.path).name for f in entries})


@router.get("/runs/{run_id}/preview")
@page
def artifact_preview(request: Request, run_id: str, path: str, page_number: int = 1) -> Response:
    from evalkit.ui import artifact_views
    run = store(request).get_run(run_id)
    path = safe_relative_path(path, file=True)
    repository = artifacts(request, run)
    if not repository.is_file(path):
        raise NotFound(f"run {run_id} has no artifact {path!r}")
    kind = artifact_views.kind(path)
    table = text = None
    cut = False
    if kind in ("table", "json"):
        try:
            frame = artifact_views.load_table(repository, path, run_id)
            table, kind = artifact_views.table_page(frame, page_number), "table"
        except (ValueError, OSError):
            if kind == "table":
                raise InvalidArgument(f"{path} could not be read as a table") from None
    if kind == "html" and path != REPORT_FILE:
        kind = "text"  # shown as source: only evalkit's own report is rendered (sandboxed, below)
    if kind in ("text", "json"):
        text, cut = artifact_views.text_preview(repository, path)
    return render(request, "_preview.html", run=run, path=path, kind=kind, table=table, text=text, cut=cut)


@router.get("/runs/{run_id}/artifact")
@page
def artifact_file(request: Request, run_id: str, path: str, download: bool = False) -> Response:
    from evalkit.ui import artifact_views
    run = store(request).get_run(run_id)
    path = safe_relative_path(path, file=True)
    repository = artifacts(request, run)
    if not repository.is_file(path):
        raise NotFound(f"run {run_id} has no artifact {path!r}")
    name = PurePosixPath(path).name.replace('"', "")
    disposition = "attachment" if download else "inline"
    headers = {"Content-Security-Policy": REPORT_CSP if path == REPORT_FILE else ARTIFACT_CSP,
               "Content-Disposition": f'{disposition}; filename="{name.encode("ascii", "replace").decode()}"',
               "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    return Response(repository.read_bytes(path), media_type=artifact_views.media_type(path), headers=headers)


@router.get("/runs/{run_id}/results")
@page
def results_table(request: Request, run_id: str, q: str = "", page_number: int = 1) -> Response:
    from evalkit.ui import results
    chosen = tuple(f for f in results.FILTERS if request.query_params.get(f) == "1")
    table = results.load_results(client(request), run_id)
    shown = results.page(table, q, chosen, page_number)
    keep = urlencode([("q", q), *((name, "1") for name in chosen)])
    return render(request, "_results.html", run_id=run_id, page=shown, q=q, chosen=chosen, filters=results.FILTERS,
                  keep=keep)


@router.get("/runs/{run_id}/results/{row}")
@page
def result_row(request: Request, run_id: str, row: int) -> Response:
    from evalkit.ui import results
    detail = results.row_detail(results.load_results(client(request), run_id), row)
    if detail is None:
        raise NotFound(f"run {run_id}'s results table has no row {row}")
    return render(request, "_row.html", row=detail)


@router.get("/runs/{run_id}/progress")
@page
def live_progress(request: Request, run_id: str) -> Response:
    from evalkit.ui import progress
    run = store(request).get_run(run_id)
    rows = run.data.params.get("dataset_rows")
    state = progress.read_progress(artifacts(request, run), int(rows) if rows and rows.isdigit() else None)
    # 286 tells htmx to stop polling: the run has ended.
    status = 200 if run.info.status is RunStatus.RUNNING else 286
    return render(request, "_progress.html", status_code=status, run=run, progress=state)
