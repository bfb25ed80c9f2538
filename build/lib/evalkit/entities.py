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
