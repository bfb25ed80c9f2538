"""The experiments list (run counts, last activity) and creating, renaming and deleting experiments."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from evalkit.entities import ViewType
from evalkit.ui.context import render, require_editor, store
from evalkit.ui.routes.errors import page

router = APIRouter()
MAX_EXPERIMENTS = 5000


@router.get("/")
@page
def experiments_page(request: Request) -> Response:
    tracking = store(request)
    listed = tracking.search_experiments(ViewType.ACTIVE_ONLY, max_results=MAX_EXPERIMENTS)
    stats = tracking.run_stats([e.experiment_id for e in listed]) if listed else {}
    rows = sorted(listed, key=lambda e: stats[e.experiment_id].last_activity or e.creation_time or 0, reverse=True)
    return render(request, "experiments.html", experiments=rows, stats=stats, message=request.query_params.get("msg"))


def _back(message: str) -> RedirectResponse:
    from urllib.parse import urlencode
    return RedirectResponse("/?" + urlencode({"msg": message}), status_code=303)


@router.post("/experiments")
@page
def create_experiment(request: Request, name: str = Form(...)) -> Response:
    require_editor(request)
    store(request).create_experiment(name.strip())
    return _back(f"Created experiment {name.strip()!r}.")


@router.post("/experiments/{experiment_id}/rename")
@page
def rename_experiment(request: Request, experiment_id: str, name: str = Form(...)) -> Response:
    require_editor(request)
    store(request).rename_experiment(experiment_id, name.strip())
    return _back(f"Renamed experiment {experiment_id} to {name.strip()!r}.")


@router.post("/experiments/{experiment_id}/delete")
@page
def delete_experiment(request: Request, experiment_id: str) -> Response:
    require_editor(request)
    tracking = store(request)
    name = tracking.get_experiment(experiment_id).name
    tracking.delete_experiment(experiment_id)
    return _back(f"Deleted experiment {name!r} (its runs are kept; restore it with the API).")
