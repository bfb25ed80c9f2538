"""MLflow's model-registry routes (``/api/2.0/mlflow/registered-models/...``, ``/model-versions/...``)
on evalkit's registry, with MLflow's request and answer shapes.

``mlflow.register_model``, ``MlflowClient``'s registry calls and ``models:/Name/Stage``,
``models:/Name/3``, ``models:/Name@alias`` lookups work unchanged; the same models, versions,
stages, aliases and history are what evalkit's ``TrackingClient``, CLI and UI read.

How an MLflow model enters evalkit's registry (``create_model_version``):

- the version's source is kept in evalkit's form: a source inside a run's artifacts
  (``mlflow-artifacts:/runs/<id>/artifacts/<path>``, ``runs:/<id>/<path>``, or a logged model's
  ``models:/m-...``) is kept as ``runs:/<id>/<path>`` and given back to MLflow clients as the
  ``mlflow-artifacts:/`` URI of those files; any other URI is kept as given;
- its flavor and bundle hash follow ``evalkit.models.mlflow_models.source_identity``: an evalkit
  bundle's own (the server reads the manifest itself), else flavor ``mlflow`` with the sha256 of
  the ``MLmodel`` file. An ``mlflow`` version takes every stage and alias, but never one the
  model's evidence rule guards: evalkit's suite does not evaluate MLflow models.

MLflow's client cannot send evidence, so a move the model's evidence rule guards is refused with
``INVALID_STATE``, saying how to promote with evidence (``evalkit models promote``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from evalkit.entities import ModelVersion, RegisteredModel
from evalkit.errors import InvalidArgument
from evalkit.models.mlflow_models import source_identity
from evalkit.server.context import store_of
from evalkit.server.routes.mlflow.artifact_uris import (
    parse_artifact_uri,
    run_artifact_uri,
)
from evalkit.server.routes.mlflow.endpoint import (
    mlflow_endpoint,
    required,
    tags_in,
    tags_out,
)
from evalkit.server.routes.mlflow.logged_models import records, run_id_of
from evalkit.tracking.artifacts import safe_relative_path
from evalkit.tracking.store import (
    SEARCH_MAX_RESULTS,
    TrackingStore,
    decode_offset_token,
    encode_offset_token,
)

router = APIRouter(prefix="/api/2.0/mlflow", tags=["MLflow model registry"])
_ORDER_KEYS = {"version_number": "version", "timestamp": "last_updated_timestamp"}  # MLflow's names -> evalkit's


# ---- wire forms ------------------------------------------------------------------------------


def source_out(source: str) -> str:
    """A version's source as MLflow clients read it: files in a run as their ``mlflow-artifacts:/`` URI."""
    if source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        return run_artifact_uri(run_id, path)
    return source


def version_out(version: ModelVersion) -> dict[str, Any]:
    out = {"name": version.name, "version": str(version.version), "creation_timestamp": version.creation_timestamp,
           "last_updated_timestamp": version.last_updated_timestamp, "current_stage": version.current_stage,
           "description": version.description, "source": source_out(version.source),
           "run_id": version.run_id or "", "status": version.status, "run_link": "",
           "user_id": version.user_id or "", "aliases": list(version.aliases)}
    if version.tags:
        out["tags"] = tags_out(version.tags)
    return out


def model_out(model: RegisteredModel) -> dict[str, Any]:
    out = {"name": model.name, "creation_timestamp": model.creation_timestamp,
           "last_updated_timestamp": model.last_updated_timestamp, "description": model.description,
           "latest_versions": [version_out(v) for v in model.latest_versions],
           "aliases": [{"alias": alias, "version": str(number)} for alias, number in model.aliases.items()]}
    if model.tags:
        out["tags"] = tags_out(model.tags)
    return out


def _int_field(fields: dict[str, Any], name: str, default: int) -> int:
    value = fields.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{name} must be an integer, got {value!r}") from None


def _order(fields: dict[str, Any]) -> list[str]:
    clauses = fields.get("order_by") or []
    clauses = [clauses] if isinstance(clauses, str) else clauses
    result = []
    for clause in clauses:
        key, _, direction = clause.strip().partition(" ")
        result.append(f"{_ORDER_KEYS.get(key, key)} {direction}".strip())
    return result


# ---- how an MLflow source is registered --------------------------------------------------------


def registered_source(store: TrackingStore, source: str, run_id: str | None) -> tuple[str, str | None]:
    """``(source in evalkit's form, run id)`` of the source an MLflow client gave (module docstring)."""
    in_run: tuple[str, str] | None = parse_artifact_uri(source)
    if source.startswith("runs:/"):
        found_run, _, path = source.removeprefix("runs:/").partition("/")
        in_run = (found_run, safe_relative_path(path))
    elif source.startswith("models:/m-"):
        model_id = source.removeprefix("models:/").strip("/")
        record = records(store.get_run(run_id_of(model_id))).get(model_id)
        if record is None:
            raise InvalidArgument(f"no logged model {model_id!r} to register")
        in_run = (run_id_of(model_id), record["name"])
    if in_run is None:
        return source, run_id
    found_run, path = in_run
    if run_id and run_id != found_run:
        raise InvalidArgument(f"the source {source!r} is in run {found_run}, not in the run_id given ({run_id})")
    return f"runs:/{found_run}/{path}".rstrip("/"), found_run


# ---- registered models -----------------------------------------------------------------------


@mlflow_endpoint(router, "POST", "/registered-models/create", "Create a registered model")
def create_registered_model(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    model = store_of(request).create_registered_model(required(fields, "name"), tags_in(fields),
                                                      fields.get("description"))
    return {"registered_model": model_out(model)}


@mlflow_endpoint(router, "GET", "/registered-models/get", "A registered model")
def get_registered_model(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    return {"registered_model": model_out(store_of(request).get_registered_model(required(fields, "name")))}


@mlflow_endpoint(router, "POST", "/registered-models/rename", "Rename a registered model")
def rename_registered_model(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    model = store_of(request).rename_registered_model(required(fields, "name"), required(fields, "new_name"))
    return {"registered_model": model_out(model)}


@mlflow_endpoint(router, "PATCH", "/registered-models/update", "Change a registered model's description")
def update_registered_model(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    model = store_of(request).update_registered_model(required(fields, "name"), fields.get("description") or "")
    return {"registered_model": model_out(model)}


@mlflow_endpoint(router, "DELETE", "/registered-models/delete", "Delete a registered model and its versions")
def delete_registered_model(request: Request, fields: dict[str, Any]) -> None:
    store_of(request).delete_registered_model(required(fields, "name"))


@mlflow_endpoint(router, "GET", "/registered-models/search", "Search registered models")
def search_registered_models(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    models, token = store_of(request).search_registered_models(
        fields.get("filter") or None, _int_field(fields, "max_results", 100), _order(fields),
        fields.get("page_token") or None)
    return {"registered_models": [model_out(m) for m in models], **({"next_page_token": token} if token else {})}


@mlflow_endpoint(router, "POST", "/registered-models/get-latest-versions", "Newest version per stage")
def get_latest_versions(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    found = store_of(request).get_latest_versions(required(fields, "name"), fields.get("stages") or None)
    return {"model_versions": [version_out(v) for v in found]}


@mlflow_endpoint(router, "POST", "/registered-models/set-tag", "Set a registered model's tag")
def set_registered_model_tag(request: Request, fields: dict[str, Any]) -> None:
    store_of(request).set_registered_model_tag(required(fields, "name"), required(fields, "key"),
                                               fields.get("value", ""))


@mlflow_endpoint(router, "DELETE", "/registered-models/delete-tag", "Delete a registered model's tag")
def delete_registered_model_tag(request: Request, fields: dict[str, Any]) -> None:
    store_of(request).delete_registered_model_tag(required(fields, "name"), required(fields, "key"))


@mlflow_endpoint(router, "POST", "/registered-models/alias", "Point an alias at a version")
def set_registered_model_alias(request: Request, fields: dict[str, Any]) -> None:
    store_of(request).set_registered_model_alias(required(fields, "name"), required(fields, "alias"),
                                                 required(fields, "version"))


@mlflow_endpoint(router, "DELETE", "/registered-models/alias", "Delete an alias")
def delete_registered_model_alias(request: Request, fields: dict[str, Any]) -> None:
    store_of(request).delete_registered_model_alias(required(fields, "name"), required(fields, "alias"))


@mlflow_endpoint(router, "GET", "/registered-models/alias", "The version an alias points at")
def get_model_version_by_alias(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    version = store_of(request).get_model_version_by_alias(required(fields, "name"), required(fields, "alias"))
    return {"model_version": version_out(version)}


# ---- model versions --------------------------------------------------------------------------


@mlflow_endpoint(router, "POST", "/model-versions/create", "Register a new version of a model")
def create_model_version(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    store = store_of(request)
    source = fields.get("source") or (f"models:/{fields['model_id']}" if fields.get("model_id") else None)
    if not source:
        raise InvalidArgument("missing value for required parameter 'source'")
    source, run_id = registered_source(store, source, fields.get("run_id") or None)
    bundle_hash, flavor = source_identity(store, source)
    version = store.create_model_version(required(fields, "name"), source, bundle_hash, flavor, run_id,
                                         tags_in(fields), fields.get("description"))
    return {"model_version": version_out(version)}


@mlflow_endpoint(router, "GET", "/model-versions/get", "A model version")
def get_model_version(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    version = store_of(request).get_model_version(required(fields, "name"), required(fields, "version"))
    return {"model_version": version_out(version)}


@mlflow_endpoint(router, "PATCH", "/model-versions/update", "Change a version's description")
def update_model_version(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    version = store_of(request).update_model_version(required(fields, "name"), required(fields, "version"),
                                                     fields.get("description") or "")
    return {"model_version": version_out(version)}


@mlflow_endpoint(router, "DELETE", "/model-versions/delete", "Delete a model version")
def delete_model_version(request: Request, fields: dict[str, Any]) -> None:
    store_of(request).delete_model_version(required(fields, "name"), required(fields, "version"))


@mlflow_endpoint(router, "GET", "/model-versions/search", "Search model versions")
def search_model_versions(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    size = _int_field(fields, "max_results", 10_000)
    offset = decode_offset_token(fields.get("page_token") or None)
    if not 0 < size <= SEARCH_MAX_RESULTS or offset + size >= SEARCH_MAX_RESULTS:
        raise InvalidArgument(f"max_results must be from 1 to {SEARCH_MAX_RESULTS} (pages included), got {size}")
    found = store_of(request).search_model_versions(fields.get("filter") or None, offset + size + 1, _order(fields))
    page = found[offset:offset + size]
    more = len(found) > offset + size
    return {"model_versions": [version_out(v) for v in page],
            **({"next_page_token": encode_offset_token(offset + size)} if more else {})}


@mlflow_endpoint(router, "POST", "/model-versions/transition-stage", "Move a version to a stage")
def transition_model_version_stage(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    archive = fields.get("archive_existing_versions") in (True, "true", "True")
    version = store_of(request).transition_model_version_stage(
        required(fields, "name"), required(fields, "version"), required(fields, "stage"), archive)
    return {"model_version": version_out(version)}


@mlflow_endpoint(router, "GET", "/model-versions/get-download-uri", "Where a version's files are")
def get_model_version_download_uri(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    version = store_of(request).get_model_version(required(fields, "name"), required(fields, "version"))
    return {"artifact_uri": source_out(version.source)}


@mlflow_endpoint(router, "POST", "/model-versions/set-tag", "Set a version's tag")
def set_model_version_tag(request: Request, fields: dict[str, Any]) -> None:
    store_of(request).set_model_version_tag(required(fields, "name"), required(fields, "version"),
                                            required(fields, "key"), fields.get("value", ""))


@mlflow_endpoint(router, "DELETE", "/model-versions/delete-tag", "Delete a version's tag")
def delete_model_version_tag(request: Request, fields: dict[str, Any]) -> None:
    store_of(request).delete_model_version_tag(required(fields, "name"), required(fields, "version"),
                                               required(fields, "key"))
