"""The model registry's pages: registered models (searched with the registry's filter grammar,
paged on the server), a model's page (versions, aliases, evidence rule, history) and a version's
page; editors move stages and aliases from them, with an evidence run where the model asks for one,
and edit descriptions, tags and the evidence rule, or delete a version (after typing its number)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from evalkit.entities import ModelVersion, ModelVersionEvent, RegisteredModel, Stage
from evalkit.errors import EvalkitError, FilterSyntaxError, InvalidArgument
from evalkit.tracking.registry import MAX_DESCRIPTION_LENGTH
from evalkit.tracking.validation import MAX_KEY_LENGTH, MAX_TAG_VALUE_LENGTH
from evalkit.ui.context import acting_user, quoted, render, require_editor, store
from evalkit.ui.routes.errors import page

router = APIRouter()
PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
ORDERS = {"name": "name ASC", "updated": "last_updated_timestamp DESC", "created": "creation_timestamp DESC"}
VERSIONS_SHOWN = 500  # newest versions listed on a model's page
HISTORY_SHOWN = 200  # newest history events listed on a model's or version's page
STAGES = [s.value for s in Stage]
# The store's limits, for the forms' maxlength (the store still checks and refuses).
LIMITS = {"description": MAX_DESCRIPTION_LENGTH, "key": MAX_KEY_LENGTH, "tag_value": MAX_TAG_VALUE_LENGTH}


def model_url(name: str, version: int | None = None) -> str:
    """The page of model ``name`` (or of one of its versions); any character of a name is quoted."""
    url = "/models/" + quote(name, safe="")
    return url if version is None else f"{url}/versions/{version}"


@dataclass
class ModelsQuery:
    """The models list as the URL states it: filter, order, page size and page tokens."""

    filter: str = ""
    order: str = "name"
    size: int = DEFAULT_PAGE_SIZE
    page_token: str | None = None
    previous: list[str] = field(default_factory=list)  # tokens of the pages before ("-" = the first)

    @classmethod
    def from_request(cls, request: Request) -> ModelsQuery:
        params = request.query_params
        size = params.get("size", "")
        order = params.get("order", "name")
        return cls(filter=params.get("filter", "").strip(), order=order if order in ORDERS else "name",
                   size=int(size) if size.isdigit() and int(size) in PAGE_SIZES else DEFAULT_PAGE_SIZE,
                   page_token=params.get("page") or None, previous=params.get("prev", "").split())

    def url(self, **changes: object) -> str:
        values: dict[str, object] = {"filter": self.filter, "order": self.order, "size": self.size,
                                     "page": self.page_token or "", "prev": " ".join(self.previous)}
        values.update(changes)
        return "/models?" + urlencode([(k, str(v)) for k, v in values.items() if v not in ("", None)])

    def next_url(self, token: str) -> str:
        return self.url(page=token, prev=" ".join([*self.previous, self.page_token or "-"]))

    def previous_url(self) -> str | None:
        if not self.previous:
            return None
        before = self.previous[-1]
        return self.url(page="" if before == "-" else before, prev=" ".join(self.previous[:-1]))

    @property
    def first_row(self) -> int:
        return len(self.previous) * self.size + 1


@router.get("/models")
@page
def models_page(request: Request) -> Response:
    query = ModelsQuery.from_request(request)
    models: list[RegisteredModel] = []
    next_token: str | None = None
    error: FilterSyntaxError | None = None
    try:
        models, next_token = store(request).search_registered_models(
            query.filter or None, query.size, [ORDERS[query.order]], query.page_token)
    except FilterSyntaxError as exc:
        error = exc
    return render(request, "models.html", query=query, models=models, next_token=next_token, error=error,
                  model_url=model_url)


def _versions(request: Request, name: str) -> list[ModelVersion]:
    return store(request).search_model_versions(f"name = {quoted(name)}", VERSIONS_SHOWN, ["version DESC"])


def latest_evidence(history: list[ModelVersionEvent]) -> dict[int, str]:
    """Each version's latest evidence run: the one named by the newest move to a stage or an alias
    that had one. Archiving, which a promotion does to the other versions with its own evidence
    run, is not a move the run was evidence for."""
    found: dict[int, str] = {}
    for event in history:
        if event.kind == "stage":
            moved_to = event.to_value != Stage.ARCHIVED.value
        else:
            moved_to = event.kind == "alias" and event.to_value is not None
        if event.evidence_run_id and event.version is not None and moved_to:
            found[event.version] = event.evidence_run_id
    return found


def _page_values(request: Request, failure: EvalkitError | None, form: str | None) -> dict[str, object]:
    """What both pages show besides the model: the message of the change just made, or the refusal
    of the form ``form`` (the message is dropped then: nothing changed)."""
    return {"stages": STAGES, "limits": LIMITS, "model_url": model_url, "failure": failure, "form": form,
            "message": None if failure else request.query_params.get("msg")}


def _model_view(request: Request, name: str, failure: EvalkitError | None = None,
                form: str | None = None) -> dict[str, object]:
    tracking = store(request)
    model = tracking.get_registered_model(name)
    history = tracking.get_model_version_history(model.name)
    return dict(model=model, versions=_versions(request, model.name), history=history[::-1][:HISTORY_SHOWN],
                history_count=len(history), evidence=latest_evidence(history), versions_shown=VERSIONS_SHOWN,
                **_page_values(request, failure, form))


@router.get("/models/{name}")
@page
def model_page(request: Request, name: str) -> Response:
    return render(request, "model.html", **_model_view(request, name))


def _version_view(request: Request, name: str, version: str, failure: EvalkitError | None = None,
                  form: str | None = None) -> dict[str, object]:
    tracking = store(request)
    model = tracking.get_registered_model(name)
    history = tracking.get_model_version_history(model.name, version)
    return dict(model=model, version=tracking.get_model_version(model.name, version),
                history=history[::-1][:HISTORY_SHOWN], history_count=len(history),
                **_page_values(request, failure, form))


@router.get("/models/{name}/versions/{version}")
@page
def version_page(request: Request, name: str, version: str) -> Response:
    return render(request, "model_version.html", **_version_view(request, name, version))


# ---- changes (editors and admins) --------------------------------------------------------------


def _done(name: str, on_version: str | None, message: str) -> RedirectResponse:
    back = model_url(name, on_version) if on_version else model_url(name)
    return RedirectResponse(f"{back}?{urlencode({'msg': message})}", status_code=303)


def _refused(request: Request, name: str, on_version: str | None, form: str, exc: EvalkitError) -> Response:
    """The page the form was on, with the store's refusal shown beside that form (nothing moved)."""
    if on_version:
        template, values = "model_version.html", _version_view(request, name, on_version, failure=exc, form=form)
    else:
        template, values = "model.html", _model_view(request, name, failure=exc, form=form)
    return render(request, template, status_code=exc.http_status, **values)


def _on_version(version: str, back: str) -> str | None:
    """The version whose page the form was on (``back=version``), or None for the model's page."""
    return version if back == "version" else None


@router.post("/models/{name}/versions/{version}/stage")
@page
def transition_stage(request: Request, name: str, version: str, stage: str = Form(...),
                     archive_existing_versions: bool = Form(False), evidence_run_id: str = Form(""),
                     back: str = Form("model")) -> Response:
    require_editor(request)
    on_version = _on_version(version, back)
    try:
        moved = store(request).transition_model_version_stage(
            name, version, stage, archive_existing_versions, evidence_run_id.strip() or None, user=acting_user(request))
    except EvalkitError as exc:
        return _refused(request, name, on_version, f"stage-{version}", exc)
    return _done(name, on_version, f"Version {moved.version} is now in {moved.current_stage}.")


@router.post("/models/{name}/aliases")
@page
def set_alias(request: Request, name: str, alias: str = Form(...), version: str = Form(...),
              evidence_run_id: str = Form(""), back: str = Form("model")) -> Response:
    require_editor(request)
    on_version = _on_version(version, back)
    try:
        store(request).set_registered_model_alias(name, alias.strip(), version, evidence_run_id.strip() or None,
                                                  user=acting_user(request))
    except EvalkitError as exc:
        return _refused(request, name, on_version, "alias", exc)
    return _done(name, on_version, f"@{alias.strip()} now points at version {version}.")


@router.post("/models/{name}/aliases/{alias}/delete")
@page
def delete_alias(request: Request, name: str, alias: str) -> Response:
    require_editor(request)
    try:
        store(request).delete_registered_model_alias(name, alias, user=acting_user(request))
    except EvalkitError as exc:
        return _refused(request, name, None, "alias", exc)
    return _done(name, None, f"Deleted the alias @{alias}.")


def _text(value: str) -> str:
    """A textarea's text with the browser's CRLF line ends made LF."""
    return value.replace("\r\n", "\n")


@router.post("/models/{name}/description")
@page
def update_model_description(request: Request, name: str, description: str = Form("")) -> Response:
    require_editor(request)
    try:
        store(request).update_registered_model(name, description=_text(description), user=acting_user(request))
    except EvalkitError as exc:
        return _refused(request, name, None, "description", exc)
    return _done(name, None, "Saved the description.")


@router.post("/models/{name}/versions/{version}/description")
@page
def update_version_description(request: Request, name: str, version: str, description: str = Form("")) -> Response:
    require_editor(request)
    try:
        store(request).update_model_version(name, version, _text(description))
    except EvalkitError as exc:
        return _refused(request, name, version, "description", exc)
    return _done(name, version, f"Saved the description of version {version}.")


@router.post("/models/{name}/tags")
@page
def set_model_tag(request: Request, name: str, key: str = Form(""), value: str = Form("")) -> Response:
    require_editor(request)
    try:
        store(request).set_registered_model_tag(name, key.strip(), value)
    except EvalkitError as exc:
        return _refused(request, name, None, "tag", exc)
    return _done(name, None, f"Set the tag {key.strip()}.")


@router.post("/models/{name}/tags/delete")
@page
def delete_model_tag(request: Request, name: str, key: str = Form("")) -> Response:
    require_editor(request)
    try:
        store(request).delete_registered_model_tag(name, key)
    except EvalkitError as exc:
        return _refused(request, name, None, "tag", exc)
    return _done(name, None, f"Deleted the tag {key}.")


@router.post("/models/{name}/versions/{version}/tags")
@page
def set_version_tag(request: Request, name: str, version: str, key: str = Form(""),
                    value: str = Form("")) -> Response:
    require_editor(request)
    try:
        store(request).set_model_version_tag(name, version, key.strip(), value)
    except EvalkitError as exc:
        return _refused(request, name, version, "tag", exc)
    return _done(name, version, f"Set the tag {key.strip()} of version {version}.")


@router.post("/models/{name}/versions/{version}/tags/delete")
@page
def delete_version_tag(request: Request, name: str, version: str, key: str = Form("")) -> Response:
    require_editor(request)
    try:
        store(request).delete_model_version_tag(name, version, key)
    except EvalkitError as exc:
        return _refused(request, name, version, "tag", exc)
    return _done(name, version, f"Deleted the tag {key} of version {version}.")


@router.post("/models/{name}/evidence-rule")
@page
def set_evidence_rule(request: Request, name: str, targets: str = Form(""), clear: bool = Form(False)) -> Response:
    """The stages and @aliases a version reaches only with evidence, written as the CLI and the
    model page show them (``Production, @champion``); empty, or the clear button, requires none."""
    require_editor(request)
    rule = [] if clear else [t for t in re.split(r"[,\s]+", targets) if t]
    try:
        model = store(request).update_registered_model(name, evidence_required=rule, user=acting_user(request))
    except EvalkitError as exc:
        return _refused(request, name, None, "evidence-rule", exc)
    if not model.evidence_required:
        return _done(name, None, "No stage or alias requires evidence now.")
    return _done(name, None, f"Evidence is now required for {', '.join(model.evidence_required)}.")


@router.post("/models/{name}/versions/{version}/delete")
@page
def delete_version(request: Request, name: str, version: str, confirm: str = Form("")) -> Response:
    """Delete a version once its number is typed again; the store deletes the aliases pointing at
    it and records each in the history, whatever its stage."""
    require_editor(request)
    tracking = store(request)
    try:
        doomed = tracking.get_model_version(name, version)
        if confirm.strip().removeprefix("v") != str(doomed.version):
            raise InvalidArgument(f"type the version number {doomed.version} to confirm deleting version "
                                  f"{doomed.version}; nothing was deleted")
        tracking.delete_model_version(name, doomed.version, user=acting_user(request))
    except EvalkitError as exc:
        return _refused(request, name, version, "delete-version", exc)
    notes = [f"it was in {doomed.current_stage}"] if doomed.current_stage != Stage.NONE.value else []
    if doomed.aliases:
        notes.append(f"{', '.join('@' + a for a in doomed.aliases)} went with it")
    return _done(name, None, f"Deleted version {doomed.version}" + (f" ({'; '.join(notes)})" if notes else "") + ".")
