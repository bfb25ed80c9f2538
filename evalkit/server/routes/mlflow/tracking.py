"""The few MLflow tracking routes that logging a model needs (a stand-in, see below).

Experiments by name, id and creation; runs created, read, ended, with params, tags and metrics;
and a run's model outputs. This module exists so that ``mlflow.sklearn.log_model`` works against
evalkit server on this branch; the full tracking API (search, paging, restore, histories) is
another branch's ``tracking.py``, which replaces this one when the two meet.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from evalkit.entities import Experiment, Metric, Param, Run, RunInfo, RunTag
from evalkit.errors import NotFound
from evalkit.server.context import store_of
from evalkit.server.routes.mlflow.artifact_uris import run_artifact_uri
from evalkit.server.routes.mlflow.endpoint import (
    mlflow_endpoint,
    required,
    tags_in,
    tags_out,
)
from evalkit.server.routes.mlflow.logged_models import model_outputs

router = APIRouter(prefix="/api/2.0/mlflow", tags=["MLflow tracking"])


def experiment_out(experiment: Experiment) -> dict[str, Any]:
    return {"experiment_id": experiment.experiment_id, "name": experiment.name,
            "artifact_location": experiment.artifact_location,
            "lifecycle_stage": experiment.lifecycle_stage.value, "creation_time": experiment.creation_time,
            "last_update_time": experiment.last_update_time, "tags": tags_out(experiment.tags)}


def run_info_out(info: RunInfo) -> dict[str, Any]:
    return {"run_uuid": info.run_id, "run_id": info.run_id, "experiment_id": info.experiment_id,
            "run_name": info.run_name, "user_id": info.user_id or "", "status": info.status.value,
            "start_time": info.start_time, "end_time": info.end_time,
            "artifact_uri": run_artifact_uri(info.run_id), "lifecycle_stage": info.lifecycle_stage.value}


def run_out(run: Run) -> dict[str, Any]:
    data = run.data
    return {"info": run_info_out(run.info),
            "data": {"metrics": [{"key": k, "value": v, "timestamp": 0, "step": 0} for k, v in data.metrics.items()],
                     "params": tags_out(data.params), "tags": tags_out(data.tags)},
            "inputs": {}, "outputs": {"model_outputs": model_outputs(run)}}


@mlflow_endpoint(router, "GET", "/experiments/get-by-name", "An experiment by name")
def get_experiment_by_name(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    name = required(fields, "experiment_name")
    experiment = store_of(request).get_experiment_by_name(name)
    if experiment is None:
        raise NotFound(f"Could not find experiment with name '{name}'")
    return {"experiment": experiment_out(experiment)}


@mlflow_endpoint(router, "GET", "/experiments/get", "An experiment by id")
def get_experiment(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    return {"experiment": experiment_out(store_of(request).get_experiment(str(required(fields, "experiment_id"))))}


@mlflow_endpoint(router, "POST", "/experiments/create", "Create an experiment")
def create_experiment(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    experiment_id = store_of(request).create_experiment(
        required(fields, "name"), fields.get("artifact_location") or None, tags_in(fields))
    return {"experiment_id": experiment_id}


@mlflow_endpoint(router, "POST", "/runs/create", "Start a run")
def create_run(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    store = store_of(request)
    experiment_id = str(fields.get("experiment_id") or store.get_or_create_default_experiment())
    tags = tags_in(fields)
    run = store.create_run(experiment_id, fields.get("run_name") or tags.get("mlflow.runName"), tags,
                           tags.get("mlflow.parentRunId"), fields.get("start_time"))
    return {"run": run_out(run)}


@mlflow_endpoint(router, "GET", "/runs/get", "A run with its latest values")
def get_run(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    run_id = fields.get("run_id") or required(fields, "run_uuid")
    return {"run": run_out(store_of(request).get_run(run_id))}


@mlflow_endpoint(router, "POST", "/runs/update", "End (or reopen) a run")
def update_run(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    run_id = fields.get("run_id") or required(fields, "run_uuid")
    info = store_of(request).update_run(run_id, fields.get("status") or "RUNNING", fields.get("end_time"))
    return {"run_info": run_info_out(info)}


@mlflow_endpoint(router, "POST", "/runs/log-batch", "Log metrics, params and tags at once")
def log_batch(request: Request, fields: dict[str, Any]) -> None:
    run_id = required(fields, "run_id")
    metrics = [Metric(m["key"], float(m["value"]), int(m.get("timestamp") or 0), int(m.get("step") or 0))
               for m in fields.get("metrics") or []]
    params = [Param(p["key"], p.get("value", "")) for p in fields.get("params") or []]
    tags = [RunTag(key, value) for key, value in tags_in(fields).items()]
    store_of(request).log_batch(run_id, metrics, params, tags)


@mlflow_endpoint(router, "POST", "/runs/set-tag", "Set a run tag")
def set_tag(request: Request, fields: dict[str, Any]) -> None:
    run_id = fields.get("run_id") or required(fields, "run_uuid")
    store_of(request).log_batch(run_id, tags=[RunTag(required(fields, "key"), fields.get("value", ""))])


@mlflow_endpoint(router, "POST", "/runs/log-parameter", "Log a param")
def log_param(request: Request, fields: dict[str, Any]) -> None:
    run_id = fields.get("run_id") or required(fields, "run_uuid")
    store_of(request).log_batch(run_id, params=[Param(required(fields, "key"), fields.get("value", ""))])


@mlflow_endpoint(router, "POST", "/runs/outputs", "Record models a run produced")
def log_outputs(request: Request, fields: dict[str, Any]) -> None:
    """A logged model is already its source run's (its id says which), so this only checks the run."""
    store_of(request).get_run(required(fields, "run_id"))
