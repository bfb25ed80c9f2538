"""``RestStore``: the ``TrackingStore`` of an evalkit server, for ``http://`` and ``https://`` URIs.

``set_tracking_uri("http://host:5000")`` opens it (through the ``evalkit.tracking_stores`` entry
points) wrapped in a ``BufferedStore`` like any store, so a loop of ``log_metric`` calls becomes
a few batched requests. Everything the store contract promises holds over the wire: the server
runs the same validation and answers the same error codes, which are raised here as the same
classes. Calls are retried without ever writing twice (``rest/http.py``).

Runs whose artifacts the server serves come back with an ``http(s)://.../artifacts`` artifact URI,
read and written by ``HttpArtifactRepository``; any other artifact URI (a shared folder, an S3
bucket the clients reach themselves) is passed through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from evalkit.entities import (
    Experiment,
    Metric,
    ModelVersion,
    ModelVersionEvent,
    Param,
    RegisteredModel,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    Stage,
    ViewType,
)
from evalkit.errors import InvalidArgument, NotFound
from evalkit.tracking.registry import (
    check_description,
    evidence_rule,
    parse_stage,
    parse_version,
    validate_alias,
    validate_model_name,
)
from evalkit.tracking.rest.api import (
    MAX_BATCH_ITEMS,
    SEARCH_PAGE_MAX,
    SERVED_ARTIFACTS_SCHEME,
)
from evalkit.tracking.rest.http import RestClient
from evalkit.tracking.store import (
    HISTORIES_RUNS_MAX,
    HISTORY_PAGE_MAX,
    SEARCH_MAX_RESULTS,
    RunStats,
    TrackingStore,
    check_key_search,
    check_page_size,
    run_status,
)
from evalkit.tracking.validation import checked_metric, checked_param, checked_tag


class RestStore(TrackingStore):
    """The tracking store served by the evalkit server at ``uri``."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.client = RestClient(uri)

    @classmethod
    def normalize_uri(cls, uri: str) -> str:
        """``http(s)://host[:port][/prefix]`` without a trailing slash; no user or password in it
        (the token goes in ``$EVALKIT_TRACKING_TOKEN``), no query or fragment."""
        parts = urlsplit(uri.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise InvalidArgument(f"tracking server URI {uri!r} must look like http://host:5000 or https://host")
        if parts.username or parts.password:
            raise InvalidArgument("a tracking server URI must not hold a user or password: put the token in "
                                  "EVALKIT_TRACKING_TOKEN")
        if parts.query or parts.fragment:
            raise InvalidArgument(f"tracking server URI {parts.scheme}://{parts.netloc}{parts.path} must not have "
                                  "a query string or fragment")
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise InvalidArgument(f"tracking server URI {uri!r} has an invalid port") from None
        return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))

    @classmethod
    def from_uri(cls, uri: str, create: bool = True) -> RestStore:
        """The store of the server at ``uri``. Nothing is sent until the first call: a server that is
        down is retried then reported (``StoreUnavailable``) by the call that needs it."""
        return cls(uri)

    @property
    def display_uri(self) -> str:
        return self.uri

    # ---- experiments -------------------------------------------------------------------------

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        body = {"name": name, "artifact_location": artifact_location, "tags": _stringified(tags)}
        return self.client.call("POST", "/experiments", json=body, write=True)["experiment_id"]

    def get_experiment(self, experiment_id: str) -> Experiment:
        return Experiment.from_dict(self.client.call("GET", f"/experiments/{_segment(experiment_id, 'experiment')}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self.client.call("GET", "/experiments/by-name", params={"name": name})["experiment"]
        return None if found is None else Experiment.from_dict(found)

    def search_experiments(
        self, view_type: ViewType = ViewType.ACTIVE_ONLY, name_like: str | None = None, max_results: int = 1000
    ) -> list[Experiment]:
        params = {"view_type": ViewType(view_type).value, "name_like": name_like,
                  "max_results": min(check_page_size(max_results, SEARCH_MAX_RESULTS), SEARCH_PAGE_MAX)}
        return [Experiment.from_dict(e) for e in self.client.call("GET", "/experiments", params=params)["experiments"]]

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self.client.call("POST", f"/experiments/{_segment(experiment_id, 'experiment')}/tags",
                         json={"key": key, "value": _stringify(value)}, write=True)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.client.call("POST", f"/experiments/{_segment(experiment_id, 'experiment')}/rename",
                         json={"new_name": new_name}, write=True)

    def delete_experiment(self, experiment_id: str) -> None:
        self.client.call("POST", f"/experiments/{_segment(experiment_id, 'experiment')}/delete", write=True)

    def restore_experiment(self, experiment_id: str) -> None:
        self.client.call("POST", f"/experiments/{_segment(experiment_id, 'experiment')}/restore", write=True)

    def get_or_create_default_experiment(self) -> str:
        return self.client.call("POST", "/experiments/default", write=True)["experiment_id"]

    # ---- runs --------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        tags: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        start_time: int | None = None,
    ) -> Run:
        body = {"experiment_id": str(experiment_id), "run_name": run_name, "tags": _stringified(tags),
                "parent_run_id": parent_run_id, "start_time": start_time}
        return self._run(self.client.call("POST", "/runs", json=body, write=True))

    def get_run(self, run_id: str) -> Run:
        return self._run(self.client.call("GET", f"/runs/{_segment(run_id, 'run')}"))

    def update_run(self, run_id: str, status: RunStatus | str, end_time: int | None = None) -> RunInfo:
        body = {"status": run_status(status).value, "end_time": end_time}
        return self._info(self.client.call("POST", f"/runs/{_segment(run_id, 'run')}/update", json=body, write=True))

    def log_batch_and_update_run(
        self,
        run_id: str,
        status: RunStatus | str,
        end_time: int | None = None,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> RunInfo:
        """One request (one transaction on the server) unless the batch is over ``MAX_BATCH_ITEMS``
        values: then all but the last part are written first."""
        status = run_status(status)
        *first, last = _parts(_checked(metrics, params, tags))
        for part in first:
            self._log_part(run_id, part)
        body = {**last, "status": status.value, "end_time": end_time}
        return self._info(self.client.call("POST", f"/runs/{_segment(run_id, 'run')}/log-batch-and-update",
                                           json=body, write=True))

    def delete_run(self, run_id: str) -> None:
        self.client.call("POST", f"/runs/{_segment(run_id, 'run')}/delete", write=True)

    def restore_run(self, run_id: str) -> None:
        self.client.call("POST", f"/runs/{_segment(run_id, 'run')}/restore", write=True)

    def check_writable(self, run_id: str) -> None:
        self.client.call("GET", f"/runs/{_segment(run_id, 'run')}/writable")

    # ---- params, metrics, tags ---------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Checked here first (so nothing is sent when a value is bad), then sent in one request,
        or in parts of ``MAX_BATCH_ITEMS`` values for a bigger batch (each part all or nothing)."""
        for part in _parts(_checked(metrics, params, tags)):
            if any(part.values()):
                self._log_part(run_id, part)

    def _log_part(self, run_id: str, part: dict[str, list[dict[str, Any]]]) -> None:
        self.client.call("POST", f"/runs/{_segment(run_id, 'run')}/log-batch", json=part, write=True)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        history: list[Metric] = []
        for page in self.client.pages("GET", f"/runs/{_segment(run_id, 'run')}/metrics/history", "metrics",
                                      params={"key": key, "max_results": HISTORY_PAGE_MAX}):
            history.extend(Metric.from_dict(m) for m in page)
        return history

    def get_metric_history_page(
        self, run_id: str, key: str, max_results: int = HISTORY_PAGE_MAX, page_token: str | None = None
    ) -> tuple[list[Metric], str | None]:
        params = {"key": key, "max_results": check_page_size(max_results, HISTORY_PAGE_MAX), "page_token": page_token}
        answer = self.client.call("GET", f"/runs/{_segment(run_id, 'run')}/metrics/history", params=params)
        return [Metric.from_dict(m) for m in answer["metrics"]], answer.get("next_page_token")

    def get_downsampled_metric_history(self, run_id: str, key: str, max_points: int = 1000) -> tuple[list[Metric], int]:
        """The server's ``downsample_metric_history`` of the metric: at most ``max_points`` values
        (each bucket's min and max) and the length of the full history."""
        answer = self.client.call("GET", f"/runs/{_segment(run_id, 'run')}/metrics/history/downsampled",
                                  params={"key": key, "max_points": max_points})
        return [Metric.from_dict(m) for m in answer["metrics"]], answer["total"]

    def get_metric_histories(self, run_ids: Sequence[str], key: str) -> dict[str, list[Metric]]:
        histories: dict[str, list[Metric]] = {}
        ids = [str(run_id) for run_id in run_ids]
        for start in range(0, len(ids), HISTORIES_RUNS_MAX):
            answer = self.client.call("POST", "/metrics/histories",
                                      json={"run_ids": ids[start:start + HISTORIES_RUNS_MAX], "key": key})
            histories.update({run_id: [Metric.from_dict(m) for m in h] for run_id, h in answer["histories"].items()})
        return histories

    def delete_tag(self, run_id: str, key: str) -> None:
        self.client.call("POST", f"/runs/{_segment(run_id, 'run')}/delete-tag", json={"key": key}, write=True)

    # ---- search ------------------------------------------------------------------------------

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | str | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        """Asks for pages of at most ``SEARCH_PAGE_MAX`` runs until ``max_results`` are gathered."""
        check_page_size(max_results, SEARCH_MAX_RESULTS)
        orders = [order_by] if isinstance(order_by, str) else list(order_by or [])
        runs: list[Run] = []
        token = page_token
        while True:
            body = {"experiment_ids": [str(e) for e in experiment_ids], "filter": filter_string,
                    "view_type": ViewType(view_type).value, "max_results": min(max_results - len(runs), SEARCH_PAGE_MAX),
                    "order_by": orders, "page_token": token}
            answer = self.client.call("POST", "/runs/search", json=body)
            runs.extend(self._run(r) for r in answer["runs"])
            token = answer.get("next_page_token")
            if not token or len(runs) >= max_results:
                return runs, token

    def count_runs(self, experiment_ids: Sequence[str], filter_string: str | None = None,
                   view_type: ViewType = ViewType.ACTIVE_ONLY) -> int:
        body = {"experiment_ids": [str(e) for e in experiment_ids], "filter": filter_string,
                "view_type": ViewType(view_type).value}
        return int(self.client.call("POST", "/runs/count", json=body)["count"])

    def run_stats(self, experiment_ids: Sequence[str], view_type: ViewType = ViewType.ACTIVE_ONLY) -> dict[str, RunStats]:
        body = {"experiment_ids": [str(e) for e in experiment_ids], "view_type": ViewType(view_type).value}
        answer = self.client.call("POST", "/experiments/stats", json=body)
        return {e: RunStats(**stats) for e, stats in answer["stats"].items()}

    def search_keys(self, experiment_ids: Sequence[str], entity: str, contains: str | None = None,
                    max_results: int = 200) -> list[str]:
        check_key_search(entity, max_results)
        body = {"experiment_ids": [str(e) for e in experiment_ids], "entity": entity, "contains": contains,
                "max_results": max_results}
        return list(self.client.call("POST", "/keys/search", json=body)["keys"])

    # ---- model registry ----------------------------------------------------------------------
    # Names, versions, stages, aliases and evidence rules are checked here first with the
    # registry's own rules (same messages, nothing sent when one is bad); the server checks them
    # again. ``user`` is not sent: the server records its token's user as who acted.

    def create_registered_model(self, name: str, tags: dict[str, Any] | None = None, description: str | None = None,
                                evidence_required: Sequence[str] | None = None,
                                user: str | None = None) -> RegisteredModel:
        body = {"name": validate_model_name(name), "tags": _stringified(tags),
                "description": _description(description), "evidence_required": _rule(evidence_required)}
        return RegisteredModel.from_dict(self.client.call("POST", "/registered-models", json=body, write=True))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.from_dict(self.client.call("GET", "/registered-models/get", params={"name": name}))

    def search_registered_models(self, filter_string: str | None = None, max_results: int = 100,
                                 order_by: Sequence[str] | str | None = None,
                                 page_token: str | None = None) -> tuple[list[RegisteredModel], str | None]:
        params = {"filter": filter_string, "max_results": max_results, "order_by": _orders(order_by),
                  "page_token": page_token}
        answer = self.client.call("GET", "/registered-models", params=params)
        return [RegisteredModel.from_dict(m) for m in answer["registered_models"]], answer.get("next_page_token")

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        body = {"name": name, "new_name": validate_model_name(new_name)}
        return RegisteredModel.from_dict(self.client.call("POST", "/registered-models/rename", json=body, write=True))

    def update_registered_model(self, name: str, description: str | None = None,
                                evidence_required: Sequence[str] | None = None,
                                user: str | None = None) -> RegisteredModel:
        body = {"name": name, "description": None if description is None else _description(description),
                "evidence_required": _rule(evidence_required)}
        return RegisteredModel.from_dict(self.client.call("POST", "/registered-models/update", json=body, write=True))

    def delete_registered_model(self, name: str) -> None:
        self.client.call("POST", "/registered-models/delete", json={"name": name}, write=True)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        self.client.call("POST", "/registered-models/set-tag", json={"name": name, "key": key,
                                                                     "value": _stringify(value)}, write=True)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self.client.call("POST", "/registered-models/delete-tag", json={"name": name, "key": key}, write=True)

    def create_model_version(self, name: str, source: str, bundle_hash: str, flavor: str, run_id: str | None = None,
                             tags: dict[str, Any] | None = None, description: str | None = None,
                             user: str | None = None) -> ModelVersion:
        """For a ``runs:/`` source the server reads the bundle's manifest itself and refuses a
        ``bundle_hash`` or ``flavor`` that disagrees with it."""
        body = {"name": name, "source": source, "bundle_hash": bundle_hash, "flavor": flavor, "run_id": run_id,
                "tags": _stringified(tags), "description": _description(description)}
        return ModelVersion.from_dict(self.client.call("POST", "/model-versions", json=body, write=True))

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        params = {"name": name, "version": parse_version(version)}
        return ModelVersion.from_dict(self.client.call("GET", "/model-versions/get", params=params))

    def update_model_version(self, name: str, version: int | str, description: str) -> ModelVersion:
        body = {"name": name, "version": parse_version(version), "description": _description(description)}
        return ModelVersion.from_dict(self.client.call("POST", "/model-versions/update", json=body, write=True))

    def delete_model_version(self, name: str, version: int | str, user: str | None = None) -> None:
        self.client.call("POST", "/model-versions/delete", json={"name": name, "version": parse_version(version)},
                         write=True)

    def set_model_version_tag(self, name: str, version: int | str, key: str, value: Any) -> None:
        body = {"name": name, "version": parse_version(version), "key": key, "value": _stringify(value)}
        self.client.call("POST", "/model-versions/set-tag", json=body, write=True)

    def delete_model_version_tag(self, name: str, version: int | str, key: str) -> None:
        body = {"name": name, "version": parse_version(version), "key": key}
        self.client.call("POST", "/model-versions/delete-tag", json=body, write=True)

    def search_model_versions(self, filter_string: str | None = None, max_results: int = 1000,
                              order_by: Sequence[str] | str | None = None) -> list[ModelVersion]:
        params = {"filter": filter_string, "max_results": max_results, "order_by": _orders(order_by)}
        answer = self.client.call("GET", "/model-versions", params=params)
        return [ModelVersion.from_dict(v) for v in answer["model_versions"]]

    def transition_model_version_stage(self, name: str, version: int | str, stage: Stage | str,
                                       archive_existing_versions: bool = False, evidence_run_id: str | None = None,
                                       user: str | None = None) -> ModelVersion:
        body = {"name": name, "version": parse_version(version), "stage": parse_stage(stage).value,
                "archive_existing_versions": bool(archive_existing_versions), "evidence_run_id": evidence_run_id}
        return ModelVersion.from_dict(self.client.call("POST", "/model-versions/transition-stage", json=body,
                                                       write=True))

    def get_latest_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        wanted = [stages] if isinstance(stages, str) else list(stages or [])
        params = {"name": name, "stages": [parse_stage(s).value for s in wanted] or None}
        answer = self.client.call("GET", "/registered-models/latest-versions", params=params)
        return [ModelVersion.from_dict(v) for v in answer["model_versions"]]

    def set_registered_model_alias(self, name: str, alias: str, version: int | str,
                                   evidence_run_id: str | None = None, user: str | None = None) -> None:
        body = {"name": name, "alias": validate_alias(alias), "version": parse_version(version),
                "evidence_run_id": evidence_run_id}
        self.client.call("POST", "/registered-models/alias", json=body, write=True)

    def delete_registered_model_alias(self, name: str, alias: str, user: str | None = None) -> None:
        self.client.call("POST", "/registered-models/alias/delete", json={"name": name, "alias": alias}, write=True)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return ModelVersion.from_dict(self.client.call("GET", "/registered-models/alias",
                                                       params={"name": name, "alias": alias}))

    def get_model_version_history(self, name: str, version: int | str | None = None) -> list[ModelVersionEvent]:
        params = {"name": name, "version": None if version is None else parse_version(version)}
        answer = self.client.call("GET", "/registered-models/history", params=params)
        return [ModelVersionEvent.from_dict(e) for e in answer["events"]]

    # ---- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        self.client.close()

    # ---- the wire ----------------------------------------------------------------------------

    def _info(self, data: dict[str, Any]) -> RunInfo:
        info = RunInfo.from_dict(data)
        if info.artifact_uri.startswith(f"{SERVED_ARTIFACTS_SCHEME}:"):
            info.artifact_uri = self.uri + "/api/v1" + info.artifact_uri[len(SERVED_ARTIFACTS_SCHEME) + 1:]
        return info

    def _run(self, data: dict[str, Any]) -> Run:
        run = Run.from_dict(data)
        run.info = self._info(data["info"])
        return run


def _segment(value: str, what: str) -> str:
    """An id as one URL path segment; ``NotFound`` for one that cannot be an id (like the SQL store)."""
    text = str(value)
    if not text or "/" in text or text in (".", "..") or not text.isprintable():
        raise NotFound(f"no {what} with id {value!r}")
    return text


def _stringify(value: Any) -> Any:
    return value if isinstance(value, str) else None if value is None else str(value)


def _orders(order_by: Sequence[str] | str | None) -> list[str] | None:
    return [order_by] if isinstance(order_by, str) else (list(order_by) if order_by else None)


def _description(description: str | None) -> str | None:
    check_description(description)
    return description


def _rule(evidence_required: Sequence[str] | None) -> list[str] | None:
    return None if evidence_required is None else evidence_rule(evidence_required)


def _stringified(tags: dict[str, Any] | None) -> dict[str, Any] | None:
    """Tag values as the store keeps them (text), so any value that is fine locally is fine remotely."""
    return None if tags is None else {k: _stringify(v) for k, v in tags.items()}


def _checked(metrics: Sequence[Metric], params: Sequence[Param], tags: Sequence[RunTag]) -> dict[str, list[Any]]:
    return {"metrics": [checked_metric(m).to_dict() for m in metrics],
            "params": [checked_param(p).to_dict() for p in params],
            "tags": [checked_tag(g).to_dict() for g in tags]}


def _parts(batch: dict[str, list[Any]]) -> list[dict[str, list[Any]]]:
    """The batch in parts of at most ``MAX_BATCH_ITEMS`` values (one part, maybe empty, at least)."""
    items = [(kind, item) for kind in ("params", "tags", "metrics") for item in batch[kind]]
    parts = []
    for start in range(0, max(len(items), 1), MAX_BATCH_ITEMS):
        part: dict[str, list[Any]] = {"metrics": [], "params": [], "tags": []}
        for kind, item in items[start:start + MAX_BATCH_ITEMS]:
            part[kind].append(item)
        parts.append(part)
    return parts
