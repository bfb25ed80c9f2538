"""MLflow's model-registry routes (``/api/2.0/mlflow/registered-models/...``, ``/model-versions/...``)
on evalkit's registry, with MLflow's request and answer shapes.

``mlflow.register_model``, ``MlflowClient``'s registry calls and ``models:/Name/Stage``,
``models:/Name/3``, ``models:/Name@alias`` lookups work unchanged; the same models, versions,
stages, aliases and history are what evalkit's ``TrackingClient``, CLI and UI read.

How an MLflow model enters evalkit's registry (``create_model_version``):

- the version's source is kept in evalkit's form: a source inside a run's artifacts
  (``runs:/<id>/<path>``, a logged model's ``models:/m-...``, or the ``mlflow-artifacts:/`` URI of a
  location in the run named by ``run_id``) is kept as ``runs:/<id>/<path>``; any other
  ``mlflow-artifacts:/`` URI as the location it names, anything else as given. MLflow clients get
  every source back through ``artifact_uris.to_mlflow_uri``, the rule the run's ``artifact_uri`` follows;
- its flavor and bundle hash follow ``evalkit.models.mlflow_models.source_identity``: an evalkit
  bundle's own (the server reads the manifest itself), else flavor ``mlflow`` with the sha256 of
  the ``MLmodel`` file. An ``mlflow`` version takes every stage and alias, but never one the
  model's evidence rule guards: evalkit's suite does not evaluate MLflow models.

MLflow's client cannot send evidence, so a move the model's evidence rule guards is refused (MLflow's
``INVALID_PARAMETER_VALUE``, see ``errors.py``), saying how to promote with evidence (``evalkit models promote``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from evalkit.entities import ModelVersion, RegisteredModel
from evalkit.errors import InvalidArgument
from evalkit.models.mlflow_models import source_identity
from evalkit.server.context import store_of
from evalkit.server.routes.mlflow.artifact_uris import (
    SCHEME,
    from_mlflow_uri,
    to_mlflow_uri,
)
from evalkit.server.routes.mlflow.logged_models import records, run_id_of
from evalkit.server.routes.mlflow.tracking import Body, KeyValue, ok, scope
from evalkit.tracking.artifacts import join_artifact_uri, safe_relative_path
from evalkit.tracking.store import (
    SEARCH_MAX_RESULTS,
    TrackingStore,
    decode_offset_token,
    encode_offset_token,
)

router = APIRouter(prefix="/api/2.0/mlflow", tags=["MLflow model registry"])
_ORDER_KEYS = {"version_number": "version", "timestamp": "last_updated_timestamp"}  # MLflow's names -> evalkit's


# ---- request bodies ----------------------------------------------------------------------------


class ModelRef(Body):
    name: str


class CreateModel(ModelRef):
    tags: list[KeyValue] = Field(default_factory=list)
    description: str | None = None


class RenameModel(ModelRef):
    new_name: str


class Describe(ModelRef):
    description: str | None = None


class LatestVersions(ModelRef):
    stages: list[str] = Field(default_factory=list)


class ModelTag(ModelRef):
    key: str
    value: str = ""


class ModelTagRef(ModelRef):
    key: str


class AliasRef(ModelRef):
    alias: str


class SetAlias(AliasRef):
    version: str


class VersionRef(ModelRef):
    version: str


class CreateVersion(ModelRef):
    source: str | None = None
    model_id: str | None = None
    run_id: str | None = None
    tags: list[KeyValue] = Field(default_factory=list)
    description: str | None = None


class DescribeVersion(VersionRef):
    description: str | None = None


class TransitionStage(VersionRef):
    stage: str
    archive_existing_versions: bool = False


class VersionTag(VersionRef):
    key: str
    value: str = ""


class VersionTagRef(VersionRef):
    key: str


# ---- wire forms ------------------------------------------------------------------------------


def source_out(request: Request, source: str) -> str:
    """A version's source as MLflow clients read it: by the rule of runs' ``artifact_uri``."""
    if source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        source = join_artifact_uri(store_of(request).get_run(run_id).info.artifact_uri, path)
    return to_mlflow_uri(request, source)


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in tags.items()]


def version_out(request: Request, version: ModelVersion) -> dict[str, Any]:
    out = {"name": version.name, "version": str(version.version), "creation_timestamp": version.creation_timestamp,
           "last_updated_timestamp": version.last_updated_timestamp, "current_stage": version.current_stage,
           "description": version.description, "source": source_out(request, version.source),
           "run_id": version.run_id or "", "status": version.status, "run_link": "",
           "user_id": version.user_id or "", "aliases": list(version.aliases)}
    if version.tags:
        out["tags"] = _tags(version.tags)
    return out


def model_out(request: Request, model: RegisteredModel) -> dict[str, Any]:
    out = {"name": model.name, "creation_timestamp": model.creation_timestamp,
           "last_updated_timestamp": model.last_updated_timestamp, "description": model.description,
           "latest_versions": [version_out(request, v) for v in model.latest_versions],
           "aliases": [{"alias": alias, "version": str(number)} for alias, number in model.aliases.items()]}
    if model.tags:
        out["tags"] = _tags(model.tags)
    return out


def _order(clauses: list[str]) -> list[str]:
    result = []
    for clause in clauses:
        key, _, direction = clause.strip().partition(" ")
        result.append(f"{_ORDER_KEYS.get(key, key)} {direction}".strip())
    return result


# ---- how an MLflow source is registered --------------------------------------------------------


def registered_source(request: Request, store: TrackingStore, source: str,
                      run_id: str | None) -> tuple[str, str | None]:
    """``(source in evalkit's form, run id)`` of the source an MLflow client gave (module docstring)."""
    in_run: tuple[str, str] | None = None
    if source.startswith("runs:/"):
        found_run, _, path = source.removeprefix("runs:/").partition("/")
        in_run = (found_run, safe_relative_path(path))
    elif source.startswith("models:/m-"):
        model_id = source.removeprefix("models:/").strip("/")
        record = records(store.get_run(run_id_of(model_id))).get(model_id)
        if record is None:
            raise InvalidArgument(f"no logged model {model_id!r} to register")
        in_run = (run_id_of(model_id), record["name"])
    elif source.startswith(SCHEME + ":"):
        source = from_mlflow_uri(request, source)
        if run_id:
            root = store.get_run(run_id).info.artifact_uri.rstrip("/")
            if source == root or source.startswith(root + "/"):
                return f"runs:/{run_id}/{source[len(root) + 1:]}".rstrip("/"), run_id
    if in_run is None:
        return source, run_id
    found_run, path = in_run
    if run_id and run_id != found_run:
        raise InvalidArgument(f"the source {source!r} is in run {found_run}, not in the run_id given ({run_id})")
    return f"runs:/{found_run}/{path}".rstrip("/"), found_run


# ---- registered models -----------------------------------------------------------------------


@router.post("/registered-models/create", summary="Create a registered model")
def create_registered_model(request: Request, body: CreateModel) -> Response:
    with scope(request):
        model = store_of(request).create_registered_model(body.name, {t.key: t.value for t in body.tags},
                                                          body.description)
    return ok({"registered_model": model_out(request, model)})


@router.get("/registered-models/get", summary="A registered model")
def get_registered_model(request: Request, name: str) -> Response:
    return ok({"registered_model": model_out(request, store_of(request).get_registered_model(name))})


@router.post("/registered-models/rename", summary="Rename a registered model")
def rename_registered_model(request: Request, body: RenameModel) -> Response:
    with scope(request):
        model = store_of(request).rename_registered_model(body.name, body.new_name)
    return ok({"registered_model": model_out(request, model)})


@router.patch("/registered-models/update", summary="Change a registered model's description")
def update_registered_model(request: Request, body: Describe) -> Response:
    with scope(request):
        model = store_of(request).update_registered_model(body.name, body.description or "")
    return ok({"registered_model": model_out(request, model)})


@router.delete("/registered-models/delete", summary="Delete a registered model and its versions")
def delete_registered_model(request: Request, body: ModelRef) -> Response:
    with scope(request):
        store_of(request).delete_registered_model(body.name)
    return ok()


@router.get("/registered-models/search", summary="Search registered models")
def search_registered_models(request: Request, filter: str | None = None, max_results: int = 100,
                             order_by: list[str] = Query([]),
                             page_token: str | None = None) -> Response:
    models, token = store_of(request).search_registered_models(filter or None, max_results, _order(order_by),
                                                               page_token or None)
    return ok({"registered_models": [model_out(request, m) for m in models],
               **({"next_page_token": token} if token else {})})


@router.post("/registered-models/get-latest-versions", summary="Newest version per stage")
def get_latest_versions(request: Request, body: LatestVersions) -> Response:
    found = store_of(request).get_latest_versions(body.name, body.stages or None)
    return ok({"model_versions": [version_out(request, v) for v in found]})


@router.post("/registered-models/set-tag", summary="Set a registered model's tag")
def set_registered_model_tag(request: Request, body: ModelTag) -> Response:
    with scope(request):
        store_of(request).set_registered_model_tag(body.name, body.key, body.value)
    return ok()


@router.delete("/registered-models/delete-tag", summary="Delete a registered model's tag")
def delete_registered_model_tag(request: Request, body: ModelTagRef) -> Response:
    with scope(request):
        store_of(request).delete_registered_model_tag(body.name, body.key)
    return ok()


@router.post("/registered-models/alias", summary="Point an alias at a version")
def set_registered_model_alias(request: Request, body: SetAlias) -> Response:
    with scope(request):
        store_of(request).set_registered_model_alias(body.name, body.alias, body.version)
    return ok()


@router.delete("/registered-models/alias", summary="Delete an alias")
def delete_registered_model_alias(request: Request, body: AliasRef) -> Response:
    with scope(request):
        store_of(request).delete_registered_model_alias(body.name, body.alias)
    return ok()


@router.get("/registered-models/alias", summary="The version an alias points at")
def get_model_version_by_alias(request: Request, name: str, alias: str) -> Response:
    version = store_of(request).get_model_version_by_alias(name, alias)
    return ok({"model_version": version_out(request, version)})


# ---- model versions --------------------------------------------------------------------------


@router.post("/model-versions/create", summary="Register a new version of a model")
def create_model_version(request: Request, body: CreateVersion) -> Response:
    store = store_of(request)
    source = body.source or (f"models:/{body.model_id}" if body.model_id else None)
    if not source:
        raise InvalidArgument("missing value for required parameter 'source'")
    source, run_id = registered_source(request, store, source, body.run_id or None)
    bundle_hash, flavor = source_identity(store, source)
    with scope(request):
        version = store.create_model_version(body.name, source, bundle_hash, flavor, run_id,
                                             {t.key: t.value for t in body.tags}, body.description)
    return ok({"model_version": version_out(request, version)})


@router.get("/model-versions/get", summary="A model version")
def get_model_version(request: Request, name: str, version: str) -> Response:
    return ok({"model_version": version_out(request, store_of(request).get_model_version(name, version))})


@router.patch("/model-versions/update", summary="Change a version's description")
def update_model_version(request: Request, body: DescribeVersion) -> Response:
    with scope(request):
        version = store_of(request).update_model_version(body.name, body.version, body.description or "")
    return ok({"model_version": version_out(request, version)})


@router.delete("/model-versions/delete", summary="Delete a model version")
def delete_model_version(request: Request, body: VersionRef) -> Response:
    with scope(request):
        store_of(request).delete_model_version(body.name, body.version)
    return ok()


@router.get("/model-versions/search", summary="Search model versions")
def search_model_versions(request: Request, filter: str | None = None, max_results: int = 10_000,
                          order_by: list[str] = Query([]),
                          page_token: str | None = None) -> Response:
    offset = decode_offset_token(page_token or None)
    if not 0 < max_results <= SEARCH_MAX_RESULTS or offset + max_results >= SEARCH_MAX_RESULTS:
        raise InvalidArgument(f"max_results must be from 1 to {SEARCH_MAX_RESULTS} (pages included), "
                              f"got {max_results}")
    found = store_of(request).search_model_versions(filter or None, offset + max_results + 1, _order(order_by))
    page = found[offset:offset + max_results]
    more = len(found) > offset + max_results
    return ok({"model_versions": [version_out(request, v) for v in page],
               **({"next_page_token": encode_offset_token(offset + max_results)} if more else {})})


@router.post("/model-versions/transition-stage", summary="Move a version to a stage")
def transition_model_version_stage(request: Request, body: TransitionStage) -> Response:
    with scope(request):
        version = store_of(request).transition_model_version_stage(body.name, body.version, body.stage,
                                                                   body.archive_existing_versions)
    return ok({"model_version": version_out(request, version)})


@router.get("/model-versions/get-download-uri", summary="Where a version's files are")
def get_model_version_download_uri(request: Request, name: str, version: str) -> Response:
    found = store_of(request).get_model_version(name, version)
    return ok({"artifact_uri": source_out(request, found.source)})


@router.post("/model-versions/set-tag", summary="Set a version's tag")
def set_model_version_tag(request: Request, body: VersionTag) -> Response:
    with scope(request):
        store_of(request).set_model_version_tag(body.name, body.version, body.key, body.value)
    return ok()


@router.delete("/model-versions/delete-tag", summary="Delete a version's tag")
def delete_model_version_tag(request: Request, body: VersionTagRef) -> Response:
    with scope(request):
        store_of(request).delete_model_version_tag(body.name, body.version, body.key)
    return ok()
