"""Typed records for what the tracking store holds: experiments, runs, metrics, artifacts.

Each record has one JSON form, ``to_dict()`` / ``from_dict()``, used on the wire and in tests.
JSON has no NaN or infinity, and a metric may be either (a diverging loss is a fact worth
keeping): such values travel as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, so
they come back exactly.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def float_to_json(value: float) -> float | str:
    """A float as JSON can hold it: itself, or "NaN" / "Infinity" / "-Infinity"."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def float_from_json(value: float | int | str) -> float:
    """The inverse of :func:`float_to_json`."""
    if isinstance(value, str):
        try:
            return _NON_FINITE[value]
        except KeyError:
            raise ValueError(f"not a number: {value!r}") from None
    return float(value)


class RunStatus(str, enum.Enum):
    """Lifecycle of a run. Only RUNNING runs accept writes."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class ViewType(str, enum.Enum):
    """Which runs or experiments a search returns, by deleted flag."""

    ACTIVE_ONLY = "ACTIVE_ONLY"
    DELETED_ONLY = "DELETED_ONLY"
    ALL = "ALL"


class LifecycleStage(str, enum.Enum):
    ACTIVE = "active"
    DELETED = "deleted"


@dataclass(frozen=True)
class Metric:
    """One logged value of a metric. ``timestamp`` is milliseconds since the epoch."""

    key: str
    value: float
    timestamp: int
    step: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": float_to_json(self.value), "timestamp": self.timestamp, "step": self.step}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metric:
        return cls(data["key"], float_from_json(data["value"]), int(data["timestamp"]), int(data.get("step", 0)))


@dataclass(frozen=True)
class Param:
    key: str
    value: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Param:
        return cls(data["key"], data["value"])


@dataclass(frozen=True)
class RunTag:
    key: str
    value: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunTag:
        return cls(data["key"], data["value"])


@dataclass
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: LifecycleStage
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "name": self.name, "artifact_location": self.artifact_location,
                "lifecycle_stage": self.lifecycle_stage.value, "creation_time": self.creation_time,
                "last_update_time": self.last_update_time, "tags": dict(self.tags)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        return cls(str(data["experiment_id"]), data["name"], data["artifact_location"],
                   LifecycleStage(data["lifecycle_stage"]), int(data["creation_time"]), int(data["last_update_time"]),
                   dict(data.get("tags") or {}))


@dataclass
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: LifecycleStage
    parent_run_id: str | None = None
    user_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "experiment_id": self.experiment_id, "run_name": self.run_name,
                "status": self.status.value, "start_time": self.start_time, "end_time": self.end_time,
                "artifact_uri": self.artifact_uri, "lifecycle_stage": self.lifecycle_stage.value,
                "parent_run_id": self.parent_run_id, "user_id": self.user_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        end = data.get("end_time")
        return cls(data["run_id"], str(data["experiment_id"]), data["run_name"], RunStatus(data["status"]),
                   int(data["start_time"]), None if end is None else int(end), data["artifact_uri"],
                   LifecycleStage(data["lifecycle_stage"]), data.get("parent_run_id"), data.get("user_id"))


@dataclass
class RunData:
    """The latest value of each metric, and all params and tags of a run."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": {k: float_to_json(v) for k, v in self.metrics.items()}, "params": dict(self.params),
                "tags": dict(self.tags)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunData:
        return cls({k: float_from_json(v) for k, v in (data.get("metrics") or {}).items()},
                   dict(data.get("params") or {}), dict(data.get("tags") or {}))


@dataclass
class Run:
    info: RunInfo
    data: RunData

    def to_dict(self) -> dict[str, Any]:
        return {"info": self.info.to_dict(), "data": self.data.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        return cls(RunInfo.from_dict(data["info"]), RunData.from_dict(data.get("data") or {}))


@dataclass(frozen=True)
class FileInfo:
    """An artifact: ``path`` is relative to the run's artifact root."""

    path: str
    is_dir: bool
    file_size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "is_dir": self.is_dir, "file_size": self.file_size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileInfo:
        size = data.get("file_size")
        return cls(data["path"], bool(data["is_dir"]), None if size is None else int(size))


# ---- the model registry ----------------------------------------------------------------------


class Stage(str, enum.Enum):
    """The stage a model version is in. Each version is in exactly one; a new version is in NONE."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"


@dataclass
class ModelVersion:
    """One registered version of a model: an immutable bundle (``source``, ``bundle_hash``) with
    a stage, aliases, tags and a description. ``version`` counts from 1 and is never reused."""

    name: str
    version: int
    creation_timestamp: int
    last_updated_timestamp: int
    current_stage: str
    source: str
    run_id: str | None
    bundle_hash: str
    flavor: str
    description: str = ""
    user_id: str | None = None
    status: str = "READY"
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "creation_timestamp": self.creation_timestamp,
                "last_updated_timestamp": self.last_updated_timestamp, "current_stage": self.current_stage,
                "source": self.source, "run_id": self.run_id, "bundle_hash": self.bundle_hash, "flavor": self.flavor,
                "description": self.description, "user_id": self.user_id, "status": self.status,
                "tags": dict(self.tags), "aliases": list(self.aliases)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersion:
        return cls(data["name"], int(data["version"]), int(data["creation_timestamp"]),
                   int(data["last_updated_timestamp"]), data["current_stage"], data["source"], data.get("run_id"),
                   data["bundle_hash"], data["flavor"], data.get("description") or "", data.get("user_id"),
                   data.get("status", "READY"), dict(data.get("tags") or {}), list(data.get("aliases") or []))


@dataclass
class RegisteredModel:
    """A named model: its versions are numbered 1, 2, ...; ``aliases`` maps each alias to a version;
    ``latest_versions`` holds the newest version in each stage; ``evidence_required`` lists the
    stages (``Production``) and aliases (``@champion``) a version only reaches with evidence."""

    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    latest_versions: list[ModelVersion] = field(default_factory=list)
    evidence_required: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "creation_timestamp": self.creation_timestamp,
                "last_updated_timestamp": self.last_updated_timestamp, "description": self.description,
                "tags": dict(self.tags), "aliases": dict(self.aliases),
                "latest_versions": [v.to_dict() for v in self.latest_versions],
                "evidence_required": list(self.evidence_required)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegisteredModel:
        return cls(data["name"], int(data["creation_timestamp"]), int(data["last_updated_timestamp"]),
                   data.get("description") or "", dict(data.get("tags") or {}),
                   {k: int(v) for k, v in (data.get("aliases") or {}).items()},
                   [ModelVersion.from_dict(v) for v in data.get("latest_versions") or []],
                   list(data.get("evidence_required") or []))


@dataclass(frozen=True)
class ModelVersionEvent:
    """One entry of a registered model's history: a stage transition (``kind="stage"``: version
    ``version`` went from stage ``from_value`` to ``to_value``), an alias move (``kind="alias"``,
    ``alias`` set: it pointed at version ``from_value`` and now at ``to_value``, None when unset),
    or a change of the evidence rule (``kind="evidence_rule"``, values are comma-separated lists).
    ``user_id`` is who did it, ``timestamp`` when (ms since the epoch), ``evidence_run_id`` the
    run that justified it, if any."""

    name: str
    kind: str
    version: int | None
    from_value: str | None
    to_value: str | None
    timestamp: int
    user_id: str | None = None
    alias: str | None = None
    evidence_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "version": self.version, "from_value": self.from_value,
                "to_value": self.to_value, "timestamp": self.timestamp, "user_id": self.user_id,
                "alias": self.alias, "evidence_run_id": self.evidence_run_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersionEvent:
        version = data.get("version")
        return cls(data["name"], data["kind"], None if version is None else int(version), data.get("from_value"),
                   data.get("to_value"), int(data["timestamp"]), data.get("user_id"), data.get("alias"),
                   data.get("evidence_run_id"))
