"""The runs table of one experiment (``/experiments/{id}``) or several (``/runs?exp=1&exp=2``, all
active experiments without ``exp``), and the column chooser's key search."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from evalkit.entities import Experiment, ViewType
from evalkit.errors import FilterSyntaxError
from evalkit.ui.context import render, store
from evalkit.ui.routes.errors import page
from evalkit.ui.runs_query import (
    ATTRIBUTE_SORTS,
    RunsPage,
    RunsQuery,
    load_page,
    parse_column,
)

router = APIRouter()
CHOOSER_KEYS = 100  # keys listed per entity in the column chooser; a search narrows them
MAX_EXPERIMENTS = 5000


def _query_params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


def _table(request: Request, experiments: list[Experiment], path: str, title: str) -> Response:
    query = RunsQuery.from_params(_query_params(request), [e.experiment_id for e in experiments])
    error: FilterSyntaxError | None = None
    result: RunsPage | None = None
    if experiments:
        try:
            result = load_page(store(request), query)
        except FilterSyntaxError as exc:
            error = exc
    names = {e.experiment_id: e.name for e in experiments}
    return render(request, "runs.html", query=query, result=result, error=error, path=path, title=title,
                  experiments=experiments, experiment_names=names, many=len(experiments) > 1,
                  attribute_sorts=ATTRIBUTE_SORTS)


@router.get("/experiments/{experiment_id}")
@page
def experiment_runs(request: Request, experiment_id: str) -> Response:
    experiment = store(request).get_experiment(experiment_id)
    return _table(request, [experiment], f"/experiments/{experiment_id}", experiment.name)


@router.get("/runs")
@page
def all_runs(request: Request) -> Response:
    tracking = store(request)
    chosen = request.query_params.getlist("exp")
    if chosen:
        experiments = [tracking.get_experiment(e) for e in chosen]
    else:
        experiments = tracking.search_experiments(ViewType.ACTIVE_ONLY, max_results=MAX_EXPERIMENTS)
    title = ", ".join(e.name for e in experiments) if chosen else "All experiments"
    return _table(request, experiments, "/runs", title)


@router.get("/columns")
@page
def column_chooser(request: Request) -> Response:
    """The chooser's checkboxes: the chosen columns first, then up to CHOOSER_KEYS keys of each kind
    containing ``contains``."""
    tracking = store(request)
    experiment_ids = request.query_params.getlist("exp") or [
        e.experiment_id for e in tracking.search_experiments(ViewType.ACTIVE_ONLY, max_results=MAX_EXPERIMENTS)]
    chosen = [c for c in (parse_column(ref) for ref in request.query_params.getlist("col")) if c is not None]
    contains = request.query_params.get("contains", "").strip() or None
    keys = {entity: tracking.search_keys(experiment_ids, entity, contains, CHOOSER_KEYS)
            for entity in ("metric", "param", "tag")} if experiment_ids else {}
    return render(request, "_columns.html", chosen=chosen, keys=keys, limit=CHOOSER_KEYS)
