"""MLflow's REST API on evalkit server, so MLflow's client and its integrations log into evalkit unchanged.

``install_mlflow_api(app)`` adds the routers listed in ``ROUTERS`` and answers errors on MLflow's
paths in MLflow's shape (``errors``). The modules: ``tracking`` (``/api/2.0/mlflow/...``:
experiments, runs, metrics, params, tags, searches), ``artifacts`` (MLflow's artifact proxy,
``/api/2.0/mlflow-artifacts/...``), ``artifact_uris`` (the one rule between evalkit's artifact
locations and ``mlflow-artifacts:/`` URIs), ``registry`` (registered models, versions, stages,
aliases and tags on evalkit's registry) and ``logged_models`` (MLflow 3's logged models, kept in
runs). Everything maps onto ``request.app.state.store``.
"""

from __future__ import annotations

from fastapi import FastAPI

from evalkit.server.errors import add_error_dialect
from evalkit.server.routes.mlflow import artifacts, logged_models, registry, tracking
from evalkit.server.routes.mlflow.errors import is_mlflow_path, mlflow_error_response

ROUTERS = [tracking.router, logged_models.router, registry.router, artifacts.router]


def install_mlflow_api(app: FastAPI) -> None:
    """Serve MLflow's tracking and registry APIs and artifact proxy on ``app``, with MLflow's error shapes."""
    add_error_dialect(app, is_mlflow_path, mlflow_error_response)
    for router in ROUTERS:
        app.include_router(router)
