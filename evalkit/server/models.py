"""Request bodies of the REST API (pydantic), as documented at ``/docs``.

Values keep evalkit's wire format (``evalkit.entities``): a metric value is a number or one of the
strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``. Keys and values are checked by the store with
the same rules and messages as a local store; these models check only the shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evalkit.entities import Metric, Param, RunTag, ViewType, float_from_json
from evalkit.errors import InvalidArgument
from evalkit.tracking.rest.api import MAX_BATCH_ITEMS


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricIn(_Body):
    key: str
    value: float | str = Field(description='a number, or "NaN", "Infinity", "-Infinity"')
    timestamp: int
    step: int = 0

    def entity(self, index: int) -> Metric:
        try:
            value = float_from_json(self.value)
        except ValueError:
            raise InvalidArgument(
                f"metrics[{index}] ({self.key!r}): value {self.value!r} is not a number "
                '(use a number, "NaN", "Infinity" or "-Infinity")'
            ) from None
        return Metric(self.key, value, self.timestamp, self.step)


class KeyValue(_Body):
    key: str
    value: str


class CreateExperiment(_Body):
    name: str
    artifact_location: str | None = None
    tags: dict[str, Any] | None = None


class ExperimentTag(_Body):
    key: str
    value: Any


class RenameExperiment(_Body):
    new_name: str


class CreateRun(_Body):
    experiment_id: str
    run_name: str | None = None
    tags: dict[str, Any] | None = None
    parent_run_id: str | None = None
    start_time: int | None = None


class UpdateRun(_Body):
    status: str
    end_time: int | None = None


class LogBatch(_Body):
    metrics: list[MetricIn] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)

    def entities(self) -> tuple[list[Metric], list[Param], list[RunTag]]:
        count = len(self.metrics) + len(self.params) + len(self.tags)
        if count > MAX_BATCH_ITEMS:
            raise InvalidArgument(f"a batch holds at most {MAX_BATCH_ITEMS} values, this one {count}: split it")
        return ([m.entity(i) for i, m in enumerate(self.metrics)], [Param(p.key, p.value) for p in self.params],
                [RunTag(g.key, g.value) for g in self.tags])


class LogBatchAndUpdateRun(LogBatch):
    status: str
    end_time: int | None = None


class DeleteTag(_Body):
    key: str


class SearchRuns(_Body):
    experiment_ids: list[str]
    filter: str | None = None
    view_type: ViewType = ViewType.ACTIVE_ONLY
    max_results: int = 1000
    order_by: list[str] | None = None
    page_token: str | None = None


class CountRuns(_Body):
    experiment_ids: list[str]
    filter: str | None = None
    view_type: ViewType = ViewType.ACTIVE_ONLY


class RunStatsRequest(_Body):
    experiment_ids: list[str]
    view_type: ViewType = ViewType.ACTIVE_ONLY


class SearchKeys(_Body):
    experiment_ids: list[str]
    entity: str
    contains: str | None = None
    max_results: int = 200


class MetricHistories(_Body):
    run_ids: list[str]
    key: str


class UploadRequest(_Body):
    path: str


# ---- model registry ----------------------------------------------------------------------------
# Names, versions, stages and aliases are checked by the store (``evalkit.tracking.registry``), so
# a bad one gets the same message as on a local store; a version is a number or a string of digits.


class CreateRegisteredModel(_Body):
    name: str
    tags: dict[str, Any] | None = None
    description: str | None = None
    evidence_required: list[str] | None = Field(None, description='stages and @aliases, e.g. ["Production", "@champion"]')


class ModelName(_Body):
    name: str


class RenameRegisteredModel(_Body):
    name: str
    new_name: str


class UpdateRegisteredModel(_Body):
    name: str
    description: str | None = None
    evidence_required: list[str] | None = None


class RegisteredModelTagKey(_Body):
    name: str
    key: str


class RegisteredModelTag(RegisteredModelTagKey):
    value: Any


class CreateModelVersion(_Body):
    name: str
    source: str = Field(description="runs:/<run_id>/<path>, or an artifact URI holding a bundle")
    run_id: str | None = None
    bundle_hash: str | None = Field(None, description="checked against the bundle's manifest for a runs:/ source; "
                                                      "required for any other source, which the server does not read")
    flavor: str | None = Field(None, description="as bundle_hash")
    tags: dict[str, Any] | None = None
    description: str | None = None


class ModelVersionRef(_Body):
    name: str
    version: int | str


class UpdateModelVersion(_Body):
    name: str
    version: int | str
    description: str


class ModelVersionTagKey(_Body):
    name: str
    version: int | str
    key: str


class ModelVersionTag(ModelVersionTagKey):
    value: Any


class TransitionStage(_Body):
    name: str
    version: int | str
    stage: str
    archive_existing_versions: bool = False
    evidence_run_id: str | None = None


class SetAlias(_Body):
    name: str
    alias: str
    version: int | str
    evidence_run_id: str | None = None


class AliasRef(_Body):
    name: str
    alias: str
