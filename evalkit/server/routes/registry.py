"""``/api/v1/registered-models`` and ``/api/v1/model-versions``: the model registry, one route per
name of ``REGISTRY_OPERATIONS``.

Reads are GETs (a reader token may make them); every write is a POST (it needs an editor token)
served in the request's scope, so the store records the token's user as who moved a stage or an
alias. Names travel in query strings and JSON bodies, never in paths: a model name may hold
characters a path would mangle. Answers are the entities' ``to_dict`` forms.

A version registered from ``runs:/<run_id>/<path>`` gets its bundle hash and flavor from the
bundle's manifest, read here from the run's artifacts: the hash a promotion's evidence is checked
against is the server's reading, not a client's claim.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from evalkit.errors import InvalidArgument
from evalkit.server import models as m
from evalkit.server.context import scoped, store_of
from evalkit.server.routes.tracking import ok
from evalkit.tracking.client import TrackingClient

router = APIRouter(prefix="/api/v1")
MODELS, VERSIONS = ["registered models"], ["model versions"]


# ---- registered models -------------------------------------------------------------------------


@router.post("/registered-models", tags=MODELS, summary="Create a registered model with no versions")
def create_registered_model(request: Request, body: m.CreateRegisteredModel) -> Response:
    with scoped(request):
        model = store_of(request).create_registered_model(body.name, body.tags, body.description,
                                                          body.evidence_required)
    return ok(model.to_dict(), 201)


@router.get("/registered-models", tags=MODELS, summary="One page of registered models matching a filter")
def search_registered_models(
    request: Request,
    filter: str | None = None,
    max_results: int = 100,
    order_by: list[str] | None = Query(None),
    page_token: str | None = None,
) -> Response:
    found, token = store_of(request).search_registered_models(filter, max_results, order_by, page_token)
    return ok({"registered_models": [model.to_dict() for model in found], "next_page_token": token})


@router.get("/registered-models/get", tags=MODELS, summary="A registered model by name")
def get_registered_model(request: Request, name: str) -> Response:
    return ok(store_of(request).get_registered_model(name).to_dict())


@router.post("/registered-models/rename", tags=MODELS, summary="Rename a model (versions, aliases, history follow)")
def rename_registered_model(request: Request, body: m.RenameRegisteredModel) -> Response:
    with scoped(request):
        return ok(store_of(request).rename_registered_model(body.name, body.new_name).to_dict())


@router.post("/registered-models/update", tags=MODELS, summary="Change a model's description and/or evidence rule")
def update_registered_model(request: Request, body: m.UpdateRegisteredModel) -> Response:
    with scoped(request):
        model = store_of(request).update_registered_model(body.name, body.description, body.evidence_required)
    return ok(model.to_dict())


@router.post("/registered-models/delete", tags=MODELS, summary="Delete a model with its versions, tags and aliases")
def delete_registered_model(request: Request, body: m.ModelName) -> Response:
    with scoped(request):
        store_of(request).delete_registered_model(body.name)
    return ok()


@router.post("/registered-models/set-tag", tags=MODELS, summary="Set a registered model's tag")
def set_registered_model_tag(request: Request, body: m.RegisteredModelTag) -> Response:
    with scoped(request):
        store_of(request).set_registered_model_tag(body.name, body.key, body.value)
    return ok()


@router.post("/registered-models/delete-tag", tags=MODELS, summary="Remove a registered model's tag")
def delete_registered_model_tag(request: Request, body: m.RegisteredModelTagKey) -> Response:
    with scoped(request):
        store_of(request).delete_registered_model_tag(body.name, body.key)
    return ok()


@router.get("/registered-models/latest-versions", tags=MODELS,
            summary="The newest version in each stage asked for (every stage by default)")
def get_latest_versions(request: Request, name: str, stages: list[str] | None = Query(None)) -> Response:
    found = store_of(request).get_latest_versions(name, stages)
    return ok({"model_versions": [version.to_dict() for version in found]})


@router.get("/registered-models/history", tags=MODELS,
            summary="A model's stage transitions, alias moves and evidence-rule changes, oldest first")
def get_model_version_history(request: Request, name: str, version: str | None = None) -> Response:
    events = store_of(request).get_model_version_history(name, version)
    return ok({"events": [event.to_dict() for event in events]})


# ---- aliases -----------------------------------------------------------------------------------


@router.post("/registered-models/alias", tags=MODELS, summary="Point an alias at a version (with evidence if required)")
def set_registered_model_alias(request: Request, body: m.SetAlias) -> Response:
    with scoped(request):
        store_of(request).set_registered_model_alias(body.name, body.alias, body.version, body.evidence_run_id)
    return ok()


@router.post("/registered-models/alias/delete", tags=MODELS, summary="Remove an alias")
def delete_registered_model_alias(request: Request, body: m.AliasRef) -> Response:
    with scoped(request):
        store_of(request).delete_registered_model_alias(body.name, body.alias)
    return ok()


@router.get("/registered-models/alias", tags=MODELS, summary="The version an alias points at")
def get_model_version_by_alias(request: Request, name: str, alias: str) -> Response:
    return ok(store_of(request).get_model_version_by_alias(name, alias).to_dict())


# ---- versions ----------------------------------------------------------------------------------


@router.post("/model-versions", tags=VERSIONS, summary="Register a bundle as a model's next version")
def create_model_version(request: Request, body: m.CreateModelVersion) -> Response:
    bundle_hash, flavor, run_id = _bundle_of(request, body)
    with scoped(request):
        version = store_of(request).create_model_version(body.name, body.source, bundle_hash, flavor, run_id,
                                                         body.tags, body.description)
    return ok(version.to_dict(), 201)


@router.get("/model-versions", tags=VERSIONS, summary="Versions matching a filter, newest first by default")
def search_model_versions(
    request: Request,
    filter: str | None = None,
    max_results: int = 1000,
    order_by: list[str] | None = Query(None),
) -> Response:
    found = store_of(request).search_model_versions(filter, max_results, order_by)
    return ok({"model_versions": [version.to_dict() for version in found]})


@router.get("/model-versions/get", tags=VERSIONS, summary="A model version by name and number")
def get_model_version(request: Request, name: str, version: str) -> Response:
    return ok(store_of(request).get_model_version(name, version).to_dict())


@router.post("/model-versions/update", tags=VERSIONS, summary="Set a version's description")
def update_model_version(request: Request, body: m.UpdateModelVersion) -> Response:
    with scoped(request):
        return ok(store_of(request).update_model_version(body.name, body.version, body.description).to_dict())


@router.post("/model-versions/delete", tags=VERSIONS, summary="Delete a version, its tags and its aliases")
def delete_model_version(request: Request, body: m.ModelVersionRef) -> Response:
    with scoped(request):
        store_of(request).delete_model_version(body.name, body.version)
    return ok()


@router.post("/model-versions/set-tag", tags=VERSIONS, summary="Set a model version's tag")
def set_model_version_tag(request: Request, body: m.ModelVersionTag) -> Response:
    with scoped(request):
        store_of(request).set_model_version_tag(body.name, body.version, body.key, body.value)
    return ok()


@router.post("/model-versions/delete-tag", tags=VERSIONS, summary="Remove a model version's tag")
def delete_model_version_tag(request: Request, body: m.ModelVersionTagKey) -> Response:
    with scoped(request):
        store_of(request).delete_model_version_tag(body.name, body.version, body.key)
    return ok()


@router.post("/model-versions/transition-stage", tags=VERSIONS,
             summary="Move a version to a stage (with evidence if required), optionally archiving the others")
def transition_model_version_stage(request: Request, body: m.TransitionStage) -> Response:
    with scoped(request):
        version = store_of(request).transition_model_version_stage(
            body.name, body.version, body.stage, body.archive_existing_versions, body.evidence_run_id)
    return ok(version.to_dict())


def _bundle_of(request: Request, body: m.CreateModelVersion) -> tuple[str, str, str | None]:
    """The bundle hash, flavor and run id to record for ``body.source``: read from the manifest in
    the run's artifacts for a ``runs:/`` source (a hash the client sent must agree); as sent for
    any other source, whose location this server may not reach or must not read for a client."""
    if not body.source.startswith("runs:/"):
        if not body.bundle_hash or not body.flavor:
            raise InvalidArgument(f"source {body.source!r} is not a runs:/ URI, so the server cannot read its "
                                  "manifest: send bundle_hash and flavor with it")
        return body.bundle_hash, body.flavor, body.run_id
    # Imported on first use: an idle server does not load the models package.
    from evalkit.models.resolve import locate

    location = locate(body.source, TrackingClient.for_store(store_of(request)))
    manifest = location.manifest()
    for field, sent, read in (("bundle_hash", body.bundle_hash, manifest.bundle_hash),
                              ("flavor", body.flavor, manifest.flavor)):
        if sent is not None and sent != read:
            raise InvalidArgument(f"{field} {sent!r} does not match the bundle at {body.source}, whose manifest "
                                  f"says {read!r}")
    return manifest.bundle_hash, manifest.flavor, body.run_id or location.run_id
