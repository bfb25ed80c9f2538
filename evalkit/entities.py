"""Typed records for what the tracking store holds: experiments, runs, metrics, artifacts."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True)
class RunTag:
    key: str
    value: str


@dataclass
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: LifecycleStage
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)


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


@dataclass
class RunData:
    """The latest value of each metric, and all params and tags of a run."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    info: RunInfo
    data: RunData


@dataclass(frozen=True)
class FileInfo:
    """An artifact: ``path`` is relative to the run's artifact root."""

    path: str
    is_dir: bool
    file_size: int | None
