"""``/api/v1``: every ``TrackingStore`` operation, one route each.

Handlers are plain functions, so FastAPI runs them in its thread pool and a slow query never
blocks the event loop. Answers are the entities' ``to_dict`` forms; page sizes and metric
histories are capped so that no request makes the server hold an unbounded result.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from evalkit.entities import ViewType
from evalkit.errors import InvalidArgument
from evalkit.server import models as m
from evalkit.server.context import info_out, run_out, scoped, store_of
from evalkit.tracking.downsample import DOWNSAMPLE_MAX_POINTS, downsample_metric_history
from evalkit.tracking.rest.api import SEARCH_PAGE_MAX
from evalkit.tracking.store import HISTORIES_RUNS_MAX, HISTORY_PAGE_MAX, check_page_size

router = APIRouter(prefix="/api/v1")


def ok(data: Any = None, status: int = 200) -> Response:
    return JSONResponse({} if data is None else data, status_code=status)


# ---- experiments -------------------------------------------------------------------------------


@router.post("/experiments", tags=["experiments"], summary="Create an experiment; returns its id")
def create_experiment(request: Request, body: m.CreateExperiment) -> Response:
    with scoped(request):
        experiment_id = store_of(request).create_experiment(body.name, body.artifact_location, body.tags)
    return ok({"experiment_id": experiment_id}, 201)


@router.post("/experiments/default", tags=["experiments"], summary='The id of "Default", created if missing')
def default_experiment(request: Request) -> Response:
    with scoped(request):
        return ok({"experiment_id": store_of(request).get_or_create_default_experiment()})


@router.get("/experiments", tags=["experiments"], summary="Search experiments by deleted flag and name pattern")
def search_experiments(
    request: Request,
    view_type: ViewType = ViewType.ACTIVE_ONLY,
    name_like: str | None = None,
    max_results: int = Query(1000, ge=1, le=SEARCH_PAGE_MAX),
) -> Response:
    found = store_of(request).search_experiments(view_type, name_like, max_results)
    return ok({"experiments": [e.to_dict() for e in found]})


@router.get("/experiments/by-name", tags=["experiments"], summary="The experiment with this name, or null")
def get_experiment_by_name(request: Request, name: str) -> Response:
    experiment = store_of(request).get_experiment_by_name(name)
    return ok({"experiment": None if experiment is None else experiment.to_dict()})


@router.get("/experiments/{experiment_id}", tags=["experiments"], summary="An experiment by id")
def get_experiment(request: Request, experiment_id: str) -> Response:
    return ok(store_of(request).get_experiment(experiment_id).to_dict())


@router.post("/experiments/{experiment_id}/tags", tags=["experiments"], summary="Set an experiment tag")
def set_experiment_tag(request: Request, experiment_id: str, body: m.ExperimentTag) -> Response:
    with scoped(request):
        store_of(request).set_experiment_tag(experiment_id, body.key, body.value)
    return ok()


@router.post("/experiments/{experiment_id}/rename", tags=["experiments"], summary="Rename an experiment")
def rename_experiment(request: Request, experiment_id: str, body: m.RenameExperiment) -> Response:
    with scoped(request):
        store_of(request).rename_experiment(experiment_id, body.new_name)
    return ok()


@router.post("/experiments/{experiment_id}/delete", tags=["experiments"], summary="Mark an experiment deleted")
def delete_experiment(request: Request, experiment_id: str) -> Response:
    with scoped(request):
        store_of(request).delete_experiment(experiment_id)
    return ok()


@router.post("/experiments/{experiment_id}/restore", tags=["experiments"], summary="Restore a deleted experiment")
def restore_experiment(request: Request, experiment_id: str) -> Response:
    with scoped(request):
        store_of(request).restore_experiment(experiment_id)
    return ok()


# ---- runs --------------------------------------------------------------------------------------


@router.post("/runs", tags=["runs"], summary="Start a RUNNING run; returns it")
def create_run(request: Request, body: m.CreateRun) -> Response:
    with scoped(request):
        run = store_of(request).create_run(body.experiment_id, body.run_name, body.tags, body.parent_run_id,
                                           body.start_time)
    return ok(run_out(request, run), 201)


@router.post("/runs/search", tags=["runs"], summary="One page of runs matching a filter, in an order")
def search_runs(request: Request, body: m.SearchRuns) -> Response:
    check_page_size(body.max_results, SEARCH_PAGE_MAX)
    runs, token = store_of(request).search_runs(body.experiment_ids, body.filter, body.view_type, body.max_results,
                                                body.order_by, body.page_token)
    return ok({"runs": [run_out(request, r) for r in runs], "next_page_token": token})


@router.post("/runs/count", tags=["runs"], summary="How many runs match a filter (without loading them)")
def count_runs(request: Request, body: m.CountRuns) -> Response:
    return ok({"count": store_of(request).count_runs(body.experiment_ids, body.filter, body.view_type)})


@router.post("/experiments/stats", tags=["experiments"], summary="Run count and last activity per experiment")
def run_stats(request: Request, body: m.RunStatsRequest) -> Response:
    stats = store_of(request).run_stats(body.experiment_ids, body.view_type)
    return ok({"stats": {e: dataclasses.asdict(s) for e, s in stats.items()}})


@router.post("/keys/search", tags=["runs"], summary="Distinct param, metric or tag keys of experiments' runs")
def search_keys(request: Request, body: m.SearchKeys) -> Response:
    keys = store_of(request).search_keys(body.experiment_ids, body.entity, body.contains, body.max_results)
    return ok({"keys": keys})


@router.post("/metrics/histories", tags=["metrics"], summary="One metric's history for several runs")
def get_metric_histories(request: Request, body: m.MetricHistories) -> Response:
    if len(body.run_ids) > HISTORIES_RUNS_MAX:
        raise InvalidArgument(f"at most {HISTORIES_RUNS_MAX} runs per request, got {len(body.run_ids)}")
    histories = store_of(request).get_metric_histories(body.run_ids, body.key)
    return ok({"histories": {run_id: [metric.to_dict() for metric in h] for run_id, h in histories.items()}})


@router.get("/runs/{run_id}", tags=["runs"], summary="A run: info, params, tags, latest metrics")
def get_run(request: Request, run_id: str) -> Response:
    return ok(run_out(request, store_of(request).get_run(run_id)))


@router.get("/runs/{run_id}/writable", tags=["runs"], summary="204 if the run accepts writes, else the error")
def check_writable(request: Request, run_id: str) -> Response:
    store_of(request).check_writable(run_id)
    return Response(status_code=204)


@router.post("/runs/{run_id}/update", tags=["runs"], summary="Set a run's status (ends it unless RUNNING)")
def update_run(request: Request, run_id: str, body: m.UpdateRun) -> Response:
    with scoped(request):
        info = store_of(request).update_run(run_id, body.status, body.end_time)
    return ok(info_out(request, info))


@router.post("/runs/{run_id}/log-batch", tags=["runs"], summary="Write metrics, params and tags, all or nothing")
def log_batch(request: Request, run_id: str, body: m.LogBatch) -> Response:
    metrics, params, tags = body.entities()
    with scoped(request):
        store_of(request).log_batch(run_id, metrics, params, tags)
    return ok()


@router.post("/runs/{run_id}/log-batch-and-update", tags=["runs"],
             summary="Write a run's last values and set its status in one transaction")
def log_batch_and_update_run(request: Request, run_id: str, body: m.LogBatchAndUpdateRun) -> Response:
    metrics, params, tags = body.entities()
    with scoped(request):
        info = store_of(request).log_batch_and_update_run(run_id, body.status, body.end_time, metrics, params, tags)
    return ok(info_out(request, info))


@router.post("/runs/{run_id}/delete", tags=["runs"], summary="Mark a run deleted")
def delete_run(request: Request, run_id: str) -> Response:
    with scoped(request):
        store_of(request).delete_run(run_id)
    return ok()


@router.post("/runs/{run_id}/restore", tags=["runs"], summary="Restore a deleted run")
def restore_run(request: Request, run_id: str) -> Response:
    with scoped(request):
        store_of(request).restore_run(run_id)
    return ok()


@router.post("/runs/{run_id}/delete-tag", tags=["runs"], summary="Remove a tag from a run")
def delete_tag(request: Request, run_id: str, body: m.DeleteTag) -> Response:
    with scoped(request):
        store_of(request).delete_tag(run_id, body.key)
    return ok()


# ---- metric history ----------------------------------------------------------------------------


@router.get("/runs/{run_id}/metrics/history", tags=["metrics"],
            summary=f"One page (at most {HISTORY_PAGE_MAX} values) of a metric's history")
def get_metric_history(
    request: Request,
    run_id: str,
    key: str,
    max_results: int = Query(HISTORY_PAGE_MAX, ge=1, le=HISTORY_PAGE_MAX),
    page_token: str | None = None,
) -> Response:
    page, token = store_of(request).get_metric_history_page(run_id, key, max_results, page_token)
    return ok({"metrics": [metric.to_dict() for metric in page], "next_page_token": token})


@router.get("/runs/{run_id}/metrics/history/downsampled", tags=["metrics"],
            summary="A metric's history thinned for a chart (each bucket's min and max kept)")
def get_downsampled_history(
    request: Request, run_id: str, key: str, max_points: int = Query(1000, ge=2, le=DOWNSAMPLE_MAX_POINTS)
) -> Response:
    points, total = downsample_metric_history(store_of(request), run_id, key, max_points)
    return ok({"metrics": [metric.to_dict() for metric in points], "total": total})
