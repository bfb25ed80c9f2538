"""MLflow's tracking REST API (``/api/2.0/mlflow/...``) over evalkit's store.

The routes and JSON shapes are those MLflow's Python client calls (``RestStore``): experiments,
runs, params, metrics, tags, metric histories, searches, dataset inputs. Ids, times and filters
mean the same as in evalkit (filters keep evalkit's OR, NOT and parentheses); page tokens are
evalkit's opaque tokens. What MLflow keeps in tags, evalkit keeps in the run: a new run's
``mlflow.runName`` tag is its name and ``mlflow.parentRunId`` its parent (the tag stays too, so
MLflow's searches on it work); ``mlflow.user`` is the acting user (a token's name when the server
has tokens). Differences an MLflow user sees are in the README ("For MLflow users").
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from evalkit.entities import (
    Experiment,
    Metric,
    Param,
    Run,
    RunInfo,
    RunTag,
    ViewType,
    float_from_json,
    float_to_json,
)
from evalkit.errors import InvalidArgument, NotFound
from evalkit.server.context import acting_user, store_of
from evalkit.server.routes.mlflow.artifact_uris import from_mlflow_uri, to_mlflow_uri
from evalkit.tracking.request_scope import request_scope
from evalkit.tracking.rest.api import MAX_BATCH_ITEMS, SEARCH_PAGE_MAX
from evalkit.tracking.store import (
    HISTORY_PAGE_MAX,
    check_page_size,
    decode_offset_token,
    encode_offset_token,
    run_status,
)
from evalkit.tracking.validation import MAX_TAG_VALUE_LENGTH

router = APIRouter(prefix="/api/2.0/mlflow", tags=["MLflow tracking"])

MLFLOW_MAX_RESULTS = 50_000  # MLflow refuses larger pages; evalkit serves at most SEARCH_PAGE_MAX of them
RUN_NAME_TAG = "mlflow.runName"
PARENT_TAG = "mlflow.parentRunId"
USER_TAG = "mlflow.user"
INPUTS_TAG = "evalkit.mlflow.inputs"  # a run's dataset inputs (log-inputs), as JSON
_VIEW_TYPES = {"1": ViewType.ACTIVE_ONLY, "2": ViewType.DELETED_ONLY, "3": ViewType.ALL}


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # MLflow's client sends fields evalkit has no use for


class KeyValue(Body):
    key: str
    value: str = ""


class MetricIn(Body):
    key: str
    value: float | str
    timestamp: int
    step: int = 0

    def entity(self) -> Metric:
        try:
            return Metric(self.key, float_from_json(self.value), self.timestamp, self.step)
        except ValueError:
            raise InvalidArgument(f"metric {self.key!r}: value {self.value!r} is not a number") from None


class RunRef(Body):
    run_id: str | None = None
    run_uuid: str | None = None

    @property
    def id(self) -> str:
        run_id = self.run_id or self.run_uuid
        if not run_id:
            raise InvalidArgument("missing value for required parameter 'run_id'")
        return run_id


class ExperimentRef(Body):
    experiment_id: str


class CreateExperiment(Body):
    name: str
    artifact_location: str | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class UpdateExperiment(ExperimentRef):
    new_name: str | None = None


class ExperimentTag(ExperimentRef, KeyValue):
    pass


class SearchExperiments(Body):
    max_results: int = 1000
    page_token: str | None = None
    filter: str | None = None
    order_by: list[str] = Field(default_factory=list)
    view_type: str | int = "ACTIVE_ONLY"


class CreateRun(Body):
    experiment_id: str
    user_id: str | None = None
    run_name: str | None = None
    start_time: int | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class UpdateRun(RunRef):
    status: str | None = None
    end_time: int | None = None
    run_name: str | None = None


class LogMetric(RunRef, MetricIn):
    pass


class RunKeyValue(RunRef, KeyValue):
    pass


class DeleteTag(RunRef):
    key: str


class LogBatch(RunRef):
    metrics: list[MetricIn] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class SearchRuns(Body):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    run_view_type: str | int = "ACTIVE_ONLY"
    max_results: int = 1000
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


class LogInputs(RunRef):
    datasets: list[dict[str, Any]] = Field(default_factory=list)


def ok(data: dict[str, Any] | None = None) -> Response:
    return JSONResponse(data or {})


def view_type(value: str | int) -> ViewType:
    """MLflow's view type, by name or by its number in MLflow's protocol."""
    try:
        return _VIEW_TYPES.get(str(value)) or ViewType(str(value).upper())
    except ValueError:
        raise InvalidArgument(f"unknown view type {value!r}: use ACTIVE_ONLY, DELETED_ONLY or ALL") from None


def page_size(max_results: int, cap: int) -> int:
    """MLflow's page size rule (1 to 50,000), served in pages of at most ``cap``."""
    check_page_size(max_results, MLFLOW_MAX_RESULTS)
    return min(max_results, cap)


def _pairs(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in values.items()]


# ---- JSON shapes -------------------------------------------------------------------------------


def experiment_out(request: Request, experiment: Experiment) -> dict[str, Any]:
    return {"experiment_id": experiment.experiment_id, "name": experiment.name,
            "artifact_location": to_mlflow_uri(request, experiment.artifact_location),
            "lifecycle_stage": experiment.lifecycle_stage.value, "creation_time": experiment.creation_time,
            "last_update_time": experiment.last_update_time, "tags": _pairs(experiment.tags)}


def info_out(request: Request, info: RunInfo) -> dict[str, Any]:
    data = {"run_id": info.run_id, "run_uuid": info.run_id, "run_name": info.run_name,
            "experiment_id": info.experiment_id, "user_id": info.user_id or "", "status": info.status.value,
            "start_time": info.start_time, "artifact_uri": to_mlflow_uri(request, info.artifact_uri),
            "lifecycle_stage": info.lifecycle_stage.value}
    if info.end_time is not None:
        data["end_time"] = info.end_time
    return data


def run_out(request: Request, run: Run) -> dict[str, Any]:
    """A run in MLflow's shape. Metrics carry their latest value (MLflow's ``run.data.metrics``); the
    name, parent and user are also given as MLflow's tags, and dataset inputs come back as logged."""
    info = run.info
    tags = dict(run.data.tags)
    inputs = _inputs(tags.pop(INPUTS_TAG, None))
    tags.setdefault(RUN_NAME_TAG, info.run_name)
    if info.parent_run_id:
        tags.setdefault(PARENT_TAG, info.parent_run_id)
    if info.user_id:
        tags.setdefault(USER_TAG, info.user_id)
    metrics = [{"key": k, "value": float_to_json(v)} for k, v in run.data.metrics.items()]
    return {"info": info_out(request, info),
            "data": {"metrics": metrics, "params": _pairs(run.data.params), "tags": _pairs(tags)},
            "inputs": {"dataset_inputs": inputs}}


def _inputs(tag: str | None) -> list[dict[str, Any]]:
    """The dataset inputs kept in a run's ``INPUTS_TAG`` (none if the tag was overwritten by hand)."""
    if not tag:
        return []
    try:
        inputs = json.loads(tag)
    except ValueError:
        return []
    return inputs if isinstance(inputs, list) else []


def run_user(request: Request, claimed_user: str | None = None) -> str | None:
    """Who acts: the authenticated user; with auth off, the user MLflow's client names."""
    principal = getattr(request.state, "principal", None)
    if claimed_user and getattr(principal, "via", None) == "open":
        return claimed_user
    return acting_user(request)


def scope(request: Request, user: str | None = None):
    """Serve the request as ``user`` (default: the authenticated one)."""
    return request_scope(user or acting_user(request), None)


# ---- experiments -------------------------------------------------------------------------------


@router.post("/experiments/create")
def create_experiment(request: Request, body: CreateExperiment) -> Response:
    location = None if body.artifact_location is None else from_mlflow_uri(request, body.artifact_location)
    with scope(request):
        experiment_id = store_of(request).create_experiment(body.name, location or None,
                                                            {t.key: t.value for t in body.tags} or None)
    return ok({"experiment_id": experiment_id})


@router.get("/experiments/get")
def get_experiment(request: Request, experiment_id: str) -> Response:
    return ok({"experiment": experiment_out(request, store_of(request).get_experiment(experiment_id))})


@router.get("/experiments/get-by-name")
def get_experiment_by_name(request: Request, experiment_name: str) -> Response:
    experiment = store_of(request).get_experiment_by_name(experiment_name)
    if experiment is None:
        raise NotFound(f"Could not find experiment with name '{experiment_name}'")
    return ok({"experiment": experiment_out(request, experiment)})


@router.post("/experiments/search")
def search_experiments(request: Request, body: SearchExperiments) -> Response:
    size = page_size(body.max_results, SEARCH_PAGE_MAX)
    matches = experiment_filter(body.filter)
    found = [e for e in store_of(request).search_experiments(view_type(body.view_type), None, MLFLOW_MAX_RESULTS)
             if matches(e)]
    for clause in reversed(body.order_by or ["last_update_time DESC", "experiment_id ASC"]):
        field, descending = experiment_order(clause)
        found.sort(key=lambda e, f=field: _sort_value(e, f), reverse=descending)
    offset = decode_offset_token(body.page_token)
    page = found[offset:offset + size]
    answer: dict[str, Any] = {"experiments": [experiment_out(request, e) for e in page]}
    if offset + size < len(found):
        answer["next_page_token"] = encode_offset_token(offset + size)
    return ok(answer)


@router.post("/experiments/update")
def update_experiment(request: Request, body: UpdateExperiment) -> Response:
    if body.new_name:
        with scope(request):
            store_of(request).rename_experiment(body.experiment_id, body.new_name)
    return ok()


@router.post("/experiments/delete")
def delete_experiment(request: Request, body: ExperimentRef) -> Response:
    with scope(request):
        store_of(request).delete_experiment(body.experiment_id)
    return ok()


@router.post("/experiments/restore")
def restore_experiment(request: Request, body: ExperimentRef) -> Response:
    with scope(request):
        store_of(request).restore_experiment(body.experiment_id)
    return ok()


@router.post("/experiments/set-experiment-tag")
def set_experiment_tag(request: Request, body: ExperimentTag) -> Response:
    with scope(request):
        store_of(request).set_experiment_tag(body.experiment_id, body.key, body.value)
    return ok()


# ---- experiment filters (MLflow's: name and tags.<key>, joined by AND) ---------------------------

_CLAUSE = re.compile(
    r"\s*(?P<key>(?:attributes?\.)?name|tags?\.(?:`[^`]+`|\"[^\"]+\"|[\w.\-/]+))\s*"
    r"(?P<op>!=|=|(?:NOT\s+)?I?LIKE)\s*'(?P<value>(?:[^'\\]|\\.)*)'\s*", re.IGNORECASE)
_ORDER_FIELDS = {"name", "experiment_id", "creation_time", "last_update_time"}


def experiment_filter(text: str | None):
    """A predicate for MLflow's experiment filter (``name``/``tags.<key>`` with =, !=, LIKE, ILIKE;
    AND between clauses); ``InvalidArgument`` naming what cannot be read."""
    tests = []
    for part in re.split(r"\s+AND\s+", text or "", flags=re.IGNORECASE):
        if not part.strip():
            continue
        match = _CLAUSE.fullmatch(part)
        if match is None:
            raise InvalidArgument(f"invalid experiment filter clause {part.strip()!r}: use name or tags.<key> "
                                  "with =, !=, LIKE or ILIKE and a quoted value, joined by AND")
        key, op, value = match["key"], " ".join(match["op"].upper().split()), match["value"].replace("\\'", "'")
        tag = None if key.lower().split(".")[-1] == "name" and not key.lower().startswith("tag") \
            else key.split(".", 1)[1].strip("`\"")
        tests.append((tag, op, value))

    def matches(experiment: Experiment) -> bool:
        for tag, op, value in tests:
            actual = experiment.name if tag is None else experiment.tags.get(tag)
            if actual is None or not _compare(actual, op, value):
                return False
        return True

    return matches


def _compare(actual: str, op: str, value: str) -> bool:
    if op in ("=", "!="):
        return (actual == value) == (op == "=")
    negated, op = op.startswith("NOT "), op.removeprefix("NOT ")
    pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value)
    hit = re.fullmatch(pattern, actual, re.DOTALL | (re.IGNORECASE if op == "ILIKE" else 0)) is not None
    return hit != negated


def experiment_order(clause: str) -> tuple[str, bool]:
    words = clause.split()
    field = words[0].removeprefix("attributes.").removeprefix("attribute.") if words else ""
    direction = words[1].upper() if len(words) > 1 else "ASC"
    if field not in _ORDER_FIELDS or len(words) > 2 or direction not in ("ASC", "DESC"):
        raise InvalidArgument(f"invalid experiment order_by {clause!r}: use one of "
                              f"{', '.join(sorted(_ORDER_FIELDS))}, then ASC or DESC")
    return field, direction == "DESC"


def _sort_value(experiment: Experiment, field: str) -> Any:
    value = getattr(experiment, field)
    return int(value) if field == "experiment_id" and value.isdigit() else value


# ---- runs --------------------------------------------------------------------------------------


@router.post("/runs/create")
def create_run(request: Request, body: CreateRun) -> Response:
    tags = {t.key: t.value for t in body.tags}
    run_name = body.run_name or tags.get(RUN_NAME_TAG) or None
    tags.pop(RUN_NAME_TAG, None)  # the run's name, given back as this tag
    parent = tags.get(PARENT_TAG) or None  # the run's parent; the tag stays, for MLflow's searches on it
    user = run_user(request, body.user_id or tags.get(USER_TAG))
    if user:
        tags[USER_TAG] = user  # with tokens, the token's name whatever the client says
    with scope(request, user):
        run = store_of(request).create_run(body.experiment_id, run_name, tags or None, parent, body.start_time)
    return ok({"run": run_out(request, run)})


@router.get("/runs/get")
def get_run(request: Request, run_id: str | None = None, run_uuid: str | None = None) -> Response:
    return ok({"run": run_out(request, store_of(request).get_run(RunRef(run_id=run_id, run_uuid=run_uuid).id))})


@router.post("/runs/update")
def update_run(request: Request, body: UpdateRun) -> Response:
    store = store_of(request)
    current = store.get_run(body.id).info
    if body.run_name and body.run_name != current.run_name:
        raise InvalidArgument(f"run {body.id} is named {current.run_name!r}: evalkit does not rename runs")
    if body.status is None:
        return ok({"run_info": info_out(request, current)})
    with scope(request):
        info = store.update_run(body.id, run_status(body.status), body.end_time)
    return ok({"run_info": info_out(request, info)})


@router.post("/runs/delete")
def delete_run(request: Request, body: RunRef) -> Response:
    with scope(request):
        store_of(request).delete_run(body.id)
    return ok()


@router.post("/runs/restore")
def restore_run(request: Request, body: RunRef) -> Response:
    with scope(request):
        store_of(request).restore_run(body.id)
    return ok()


@router.post("/runs/log-metric")
def log_metric(request: Request, body: LogMetric) -> Response:
    with scope(request):
        store_of(request).log_batch(body.id, metrics=[body.entity()])
    return ok()


@router.post("/runs/log-parameter")
def log_param(request: Request, body: RunKeyValue) -> Response:
    with scope(request):
        store_of(request).log_batch(body.id, params=[Param(body.key, body.value)])
    return ok()


@router.post("/runs/set-tag")
def set_tag(request: Request, body: RunKeyValue) -> Response:
    with scope(request):
        store_of(request).log_batch(body.id, tags=[RunTag(body.key, body.value)])
    return ok()


@router.post("/runs/delete-tag")
def delete_tag(request: Request, body: DeleteTag) -> Response:
    with scope(request):
        store_of(request).delete_tag(body.id, body.key)
    return ok()


@router.post("/runs/log-batch")
def log_batch(request: Request, body: LogBatch) -> Response:
    count = len(body.metrics) + len(body.params) + len(body.tags)
    if count > MAX_BATCH_ITEMS:
        raise InvalidArgument(f"a batch holds at most {MAX_BATCH_ITEMS} values, this one {count}: split it")
    with scope(request):
        store_of(request).log_batch(body.id, [m.entity() for m in body.metrics],
                                    [Param(p.key, p.value) for p in body.params],
                                    [RunTag(t.key, t.value) for t in body.tags])
    return ok()


@router.post("/runs/log-inputs")
def log_inputs(request: Request, body: LogInputs) -> Response:
    """Dataset inputs are kept as one JSON tag of the run and given back in ``run.inputs``."""
    store = store_of(request)
    if not body.datasets:
        return ok()
    known = _inputs(store.get_run(body.id).data.tags.get(INPUTS_TAG))
    seen = {json.dumps(d, sort_keys=True) for d in known}
    known += [d for d in body.datasets if json.dumps(d, sort_keys=True) not in seen]
    value = json.dumps(known, separators=(",", ":"))
    if len(value) > MAX_TAG_VALUE_LENGTH:  # a dataset's schema and profile are what make it long
        for entry in known:
            for field in ("schema", "profile"):
                entry.get("dataset", {}).pop(field, None)
        value = json.dumps(known, separators=(",", ":"))
    with scope(request):
        store.log_batch(body.id, tags=[RunTag(INPUTS_TAG, value)])
    return ok()


@router.post("/runs/search")
def search_runs(request: Request, body: SearchRuns) -> Response:
    size = page_size(body.max_results, SEARCH_PAGE_MAX)
    runs, token = store_of(request).search_runs(body.experiment_ids, body.filter or None, view_type(body.run_view_type),
                                                size, body.order_by or None, body.page_token or None)
    answer: dict[str, Any] = {"runs": [run_out(request, r) for r in runs]}
    if token:
        answer["next_page_token"] = token
    return ok(answer)


@router.get("/metrics/get-history")
def get_metric_history(
    request: Request,
    metric_key: str,
    run_id: str | None = None,
    run_uuid: str | None = None,
    max_results: int = Query(HISTORY_PAGE_MAX, ge=1),
    page_token: str | None = None,
) -> Response:
    """A page of a metric's history; pages hold at most 25,000 values (as on MLflow's server)."""
    page, token = store_of(request).get_metric_history_page(RunRef(run_id=run_id, run_uuid=run_uuid).id, metric_key,
                                                            min(max_results, HISTORY_PAGE_MAX), page_token or None)
    answer: dict[str, Any] = {"metrics": [metric.to_dict() for metric in page]}
    if token:
        answer["next_page_token"] = token
    return ok(answer)
