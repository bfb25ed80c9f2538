"""MLflow 3's logged models (``/api/2.0/mlflow/logged-models``), kept in evalkit runs.

MLflow 3's ``log_model`` creates a LoggedModel, uploads its files to the model's artifact URI and
marks it READY. evalkit has no table for them, so the rule is:

- a logged model belongs to one run: its source run, or, when it was logged outside any run, a
  run created for it in its experiment (named after the model, tag ``evalkit.mlflow.holder``);
- its files are in that run's artifacts, in the folder of the model's name, so
  ``runs:/<run_id>/<name>`` names them as in MLflow 2 (``mlflow.register_model`` then takes that
  path, and evalkit's ``runs:/`` URIs read the same files). Logging a second model with the same
  name in the same run replaces the first (MLflow 3 would keep both);
- its id is ``m-<run id>-<8 hex of the name>``, so it names its run without a lookup;
- its record (name, status, type, tags, params, times) is the JSON value of the run tag
  ``evalkit.mlflow.logged_model.<id>``, and ``evalkit.mlflow.logged_models`` lists the run's ids
  (what searches look for). A record written after the run ended reopens the run for that one
  write and ends it again with its status and end time.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from evalkit.entities import LifecycleStage, Run, RunStatus, RunTag, ViewType
from evalkit.errors import InvalidArgument, NotFound
from evalkit.server.context import store_of
from evalkit.server.routes.mlflow.artifact_uris import to_mlflow_uri
from evalkit.server.routes.mlflow.tracking import Body, KeyValue, RunRef, ok, scope
from evalkit.tracking.artifacts import join_artifact_uri, safe_relative_path
from evalkit.tracking.clock import now_ms
from evalkit.tracking.registry import parse_registry_filter
from evalkit.tracking.store import TrackingStore

router = APIRouter(prefix="/api/2.0/mlflow", tags=["MLflow logged models"])
RECORD_TAG = "evalkit.mlflow.logged_model."
INDEX_TAG = "evalkit.mlflow.logged_models"
HOLDER_TAG = "evalkit.mlflow.holder"
_STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
_FILTER_KEYS = ("name", "source_run_id", "model_id", "status", "model_type")


class CreateLoggedModel(Body):
    experiment_id: str
    name: str | None = None
    model_type: str | None = None
    source_run_id: str | None = None
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class Finalize(Body):
    status: str


class Tags(Body):
    tags: list[KeyValue] = Field(default_factory=list)


class Params(Body):
    params: list[KeyValue] = Field(default_factory=list)


class SearchLoggedModels(Body):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    max_results: int = 100


def model_id_for(run_id: str, name: str) -> str:
    return f"m-{run_id}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def run_id_of(model_id: str) -> str:
    """The run a logged model id names; ``NotFound`` for an id evalkit did not give."""
    run_id = model_id.removeprefix("m-").rpartition("-")[0]
    if not model_id.startswith("m-") or not run_id:
        raise NotFound(f"no logged model {model_id!r}")
    return run_id


def records(run: Run) -> dict[str, dict[str, Any]]:
    """The run's logged models: id -> record."""
    return {key[len(RECORD_TAG):]: json.loads(value) for key, value in run.data.tags.items()
            if key.startswith(RECORD_TAG)}


def model_out(request: Request, run: Run, model_id: str, record: dict[str, Any]) -> dict[str, Any]:
    location = join_artifact_uri(run.info.artifact_uri, record["name"])
    info = {"model_id": model_id, "experiment_id": run.info.experiment_id, "name": record["name"],
            "creation_timestamp_ms": record["created"], "last_updated_timestamp_ms": record["updated"],
            "artifact_uri": to_mlflow_uri(request, location), "status": record["status"],
            "model_type": record.get("model_type") or "", "source_run_id": run.info.run_id,
            "tags": [{"key": k, "value": v} for k, v in (record.get("tags") or {}).items()]}
    params = [{"key": k, "value": v} for k, v in (record.get("params") or {}).items()]
    return {"info": info, "data": {"params": params, "metrics": []}}


def _load(store: TrackingStore, model_id: str) -> tuple[Run, dict[str, Any]]:
    run = store.get_run(run_id_of(model_id))
    record = records(run).get(model_id)
    if record is None:
        raise NotFound(f"no logged model {model_id!r}")
    return run, record


def _save(store: TrackingStore, run: Run, model_id: str, record: dict[str, Any]) -> None:
    """Write the record (and the run's index of models), reopening an ended run for the write."""
    record["updated"] = now_ms()
    ids = [i for i in run.data.tags.get(INDEX_TAG, "").split(",") if i]
    tags = [RunTag(RECORD_TAG + model_id, json.dumps(record, sort_keys=True)),
            RunTag(INDEX_TAG, ",".join(ids if model_id in ids else [*ids, model_id]))]
    info = run.info
    if info.status is RunStatus.RUNNING:
        store.log_batch(info.run_id, tags=tags)
        return
    store.update_run(info.run_id, RunStatus.RUNNING)
    store.log_batch_and_update_run(info.run_id, info.status, info.end_time, tags=tags)


@router.post("/logged-models", summary="Create a logged model (then upload its files, then finalize it)")
def create_logged_model(request: Request, body: CreateLoggedModel) -> Response:
    store = store_of(request)
    name = safe_relative_path(body.name or "model", file=True)
    with scope(request):
        if body.source_run_id:
            run = store.get_run(body.source_run_id)
            if run.info.experiment_id != body.experiment_id:
                raise InvalidArgument(f"run {body.source_run_id} is in experiment {run.info.experiment_id}, "
                                      f"not {body.experiment_id}")
        else:
            run = store.create_run(body.experiment_id, name, {HOLDER_TAG: "true"})
        model_id = model_id_for(run.info.run_id, name)
        ts = now_ms()
        record = {"name": name, "status": _STATUSES[0], "model_type": body.model_type or "", "created": ts,
                  "tags": {t.key: t.value for t in body.tags}, "params": {p.key: p.value for p in body.params}}
        _save(store, run, model_id, record)
    return ok({"model": model_out(request, run, model_id, record)})


@router.post("/logged-models/search", summary="Logged models of experiments (filter: attribute = 'value' AND ...)")
def search_logged_models(request: Request, body: SearchLoggedModels) -> Response:
    store = store_of(request)
    conditions = parse_registry_filter(body.filter, _FILTER_KEYS)
    if any(c.op not in ("=", "!=") or c.key.startswith("tags.") for c in conditions):
        raise InvalidArgument(f"logged model filters compare {', '.join(_FILTER_KEYS)} with = or !=")
    runs, _ = store.search_runs(body.experiment_ids, f"tags.`{INDEX_TAG}` IS NOT NULL", ViewType.ALL, 50_000)
    found = []
    for run in runs:
        if run.info.lifecycle_stage is not LifecycleStage.ACTIVE:
            continue
        for model_id, record in records(run).items():
            out = model_out(request, run, model_id, record)
            if all((str(out["info"].get(c.key)) == c.value) == (c.op == "=") for c in conditions):
                found.append(out)
    return ok({"models": sorted(found, key=lambda m: -m["info"]["creation_timestamp_ms"])[:body.max_results]})


@router.get("/logged-models/{model_id}", summary="A logged model")
def get_logged_model(request: Request, model_id: str) -> Response:
    run, record = _load(store_of(request), model_id)
    return ok({"model": model_out(request, run, model_id, record)})


@router.patch("/logged-models/{model_id}", summary="Finalize a logged model (READY or UPLOAD_FAILED)")
def finalize_logged_model(request: Request, model_id: str, body: Finalize) -> Response:
    store = store_of(request)
    if body.status not in _STATUSES:
        raise InvalidArgument(f"unknown logged model status {body.status!r}: use one of {', '.join(_STATUSES)}")
    with scope(request):
        run, record = _load(store, model_id)
        record["status"] = body.status
        _save(store, run, model_id, record)
        if run.data.tags.get(HOLDER_TAG) and run.info.status is RunStatus.RUNNING:
            store.update_run(run.info.run_id, RunStatus.FINISHED if body.status == _STATUSES[1] else RunStatus.FAILED)
    return ok({"model": model_out(request, run, model_id, record)})


@router.patch("/logged-models/{model_id}/tags", summary="Set tags of a logged model")
def set_logged_model_tags(request: Request, model_id: str, body: Tags) -> Response:
    store = store_of(request)
    with scope(request):
        run, record = _load(store, model_id)
        record["tags"] = {**(record.get("tags") or {}), **{t.key: t.value for t in body.tags}}
        _save(store, run, model_id, record)
    return ok()


@router.delete("/logged-models/{model_id}/tags/{tag_key}", summary="Delete a tag of a logged model")
def delete_logged_model_tag(request: Request, model_id: str, tag_key: str) -> Response:
    store = store_of(request)
    with scope(request):
        run, record = _load(store, model_id)
        if tag_key not in (record.get("tags") or {}):
            raise NotFound(f"logged model {model_id} has no tag {tag_key!r}")
        del record["tags"][tag_key]
        _save(store, run, model_id, record)
    return ok()


@router.post("/logged-models/{model_id}/params", summary="Log params of a logged model")
def log_logged_model_params(request: Request, model_id: str, body: Params) -> Response:
    store = store_of(request)
    with scope(request):
        run, record = _load(store, model_id)
        record["params"] = {**(record.get("params") or {}), **{p.key: p.value for p in body.params}}
        _save(store, run, model_id, record)
    return ok()


@router.post("/runs/outputs", summary="Record models a run produced")
def log_outputs(request: Request, body: RunRef) -> Response:
    """A logged model is already its source run's (its id says which), so this only checks the run."""
    store_of(request).get_run(body.id)
    return ok()
