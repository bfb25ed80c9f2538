"""MLflow's REST API on evalkit server: MLflow's client, and everything that logs through it, talks
to evalkit unchanged (``mlflow.set_tracking_uri("http://<evalkit server>")``).

``router`` holds every MLflow route; ``create_app`` includes it. The routes answer in MLflow's
shapes and error codes (``errors.py``), reach run artifacts through ``mlflow-artifacts:/`` URIs
(``artifact_uris.py``), and map onto evalkit's store:

- ``registry.py``: registered models, versions, stages, aliases and tags on evalkit's registry;
- ``logged_models.py``: MLflow 3's logged models, kept in runs;
- ``tracking.py`` and ``artifacts.py``: what logging a model needs of experiments, runs and the
  artifact proxy.
"""

from fastapi import APIRouter

from evalkit.server.routes.mlflow import artifacts, logged_models, registry, tracking

router = APIRouter()
for _module in (tracking, logged_models, registry, artifacts):
    router.include_router(_module.router)
