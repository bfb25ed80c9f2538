"""Reading an MLflow tracking store without MLflow: its file-store folders or its SQL tables.

MLflow is not an evalkit dependency, so both of its store layouts are read here directly:

- the **file store** (an ``mlruns`` folder): ``<experiment id>/meta.yaml`` and ``tags/`` per
  experiment (deleted ones under ``.trash/``), ``<experiment id>/<run id>/meta.yaml`` per run with
  ``params/``, ``tags/`` and ``metrics/`` below it (one file per key, keys with ``/`` as folders;
  a metric file holds one ``timestamp value step`` line per logged value);
- the **SQL store** (``sqlite:///``, ``postgresql://``, ``mysql://``): the tables ``experiments``,
  ``experiment_tags``, ``runs``, ``params``, ``tags`` and ``metrics`` of MLflow's schema, read
  with SQLAlchemy Core (``latest_metrics`` is derived from ``metrics``, so it is not read). That
  store writes an infinite metric value as the largest finite float; it is read back as infinity.

Both give the same records (:class:`SourceExperiment`, :class:`SourceRun`, ...), so the importer
does not know which layout it reads. What MLflow keeps that evalkit has no place for yet is
counted by :meth:`MlflowSource.unmapped_counts` so the import can say what it left behind.
"""

from __future__ import annotations

import math
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    Column,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from evalkit.errors import InvalidArgument, StoreUnavailable
from evalkit.redaction import redact

# MLflow's RunStatus numbers, as its file store writes them into meta.yaml.
_FILE_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
PARENT_TAG = "mlflow.parentRunId"  # where MLflow keeps a run's parent
USER_TAG = "mlflow.user"
_DELETED_STAGE = "Deleted_Internal"  # how MLflow marks a deleted model version it keeps
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql")


@dataclass(frozen=True)
class SourceExperiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str  # "active" or "deleted"
    creation_time: int | None
    last_update_time: int | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceRun:
    """A run's info as MLflow keeps it (status as MLflow's name, times in ms since the epoch)."""

    run_id: str
    experiment_id: str
    run_name: str | None
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str | None
    user_id: str | None
    parent_run_id: str | None = None  # MLflow keeps it in the run's tag mlflow.parentRunId


@dataclass(frozen=True)
class SourceMetric:
    key: str
    value: float
    timestamp: int
    step: int


@dataclass
class SourceRunData:
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[SourceMetric] = field(default_factory=list)  # every logged value of every key


@dataclass(frozen=True)
class SourceModelVersion:
    version: int
    source: str
    run_id: str | None
    stage: str  # MLflow's name: None, Staging, Production, Archived
    description: str
    user_id: str | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceRegisteredModel:
    name: str
    description: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    versions: list[SourceModelVersion] = field(default_factory=list)  # by number; deleted ones left out


class MlflowSource(ABC):
    """One MLflow tracking store, read-only."""

    display_uri: str

    @abstractmethod
    def experiments(self) -> list[SourceExperiment]:
        """Every experiment, deleted ones included, by id."""

    @abstractmethod
    def runs(self, experiment_id: str) -> list[SourceRun]:
        """Every run of the experiment, deleted ones included, by start time."""

    @abstractmethod
    def run_data(self, run: SourceRun) -> SourceRunData:
        """The run's params, tags and full metric history."""

    def runs_data(self, runs: list[SourceRun]) -> dict[str, SourceRunData]:
        """``run_data`` of several runs, by run id (the SQL store reads them in a few queries)."""
        return {run.run_id: self.run_data(run) for run in runs}

    @abstractmethod
    def unmapped_counts(self) -> dict[str, int]:
        """What the store holds that evalkit does not import yet, by kind (only kinds with any)."""

    @abstractmethod
    def registered_models(self) -> list[SourceRegisteredModel]:
        """The store's registered models with their versions, tags and aliases, by name."""

    def close(self) -> None:
        """Release connections."""


def open_mlflow_source(source: str) -> MlflowSource:
    """The MLflow store ``source`` names: an ``mlruns`` folder (path or ``file://``), a SQLite file,
    or a SQLAlchemy database URI (``sqlite:///``, ``postgresql://``, ``mysql://``)."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidArgument("the MLflow store to import must be a folder path or a database URI")
    scheme = source.split("://", 1)[0].lower().split("+", 1)[0] if "://" in source else ""
    if scheme in SQL_SCHEMES:
        return SqlSource(source)
    if scheme and scheme != "file":
        raise InvalidArgument(
            f"cannot read an MLflow store at {redact(source)!r}: give an mlruns folder, a SQLite file, or a "
            f"database URI ({', '.join(s + '://' for s in SQL_SCHEMES)})"
        )
    path = Path(source.removeprefix("file://")).expanduser()
    if path.is_file():
        return SqlSource(f"sqlite:///{path.resolve()}")
    if path.is_dir():
        return FileSource(path)
    raise InvalidArgument(f"no MLflow store at {str(path)!r}: it is neither a folder nor a SQLite file")


# ---- the file store ---------------------------------------------------------------------------

class FileSource(MlflowSource):
    """An MLflow file store: an ``mlruns`` folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.display_uri = str(self.root)
        if not any(self._experiment_folders()):
            raise InvalidArgument(
                f"{self.root} is not an MLflow file store: no experiment folder with a meta.yaml in it"
            )

    def _experiment_folders(self) -> Iterator[tuple[Path, bool]]:
        for base, deleted in ((self.root, False), (self.root / ".trash", True)):
            if base.is_dir():
                for child in sorted(base.iterdir()):
                    # "models" at the root is the model registry's folder, not an experiment
                    if (child.is_dir() and (child / "meta.yaml").is_file() and not child.name.startswith(".")
                            and not (child.name == "models" and not deleted)):
                        yield child, deleted

    def experiments(self) -> list[SourceExperiment]:
        found = []
        for folder, in_trash in self._experiment_folders():
            meta = _read_yaml(folder / "meta.yaml")
            if "experiment_id" not in meta or "name" not in meta:
                continue
            found.append(SourceExperiment(
                experiment_id=str(meta["experiment_id"]),
                name=str(meta["name"]),
                artifact_location=str(meta.get("artifact_location") or ""),
                lifecycle_stage="deleted" if in_trash else str(meta.get("lifecycle_stage") or "active"),
                creation_time=_int_or_none(meta.get("creation_time")),
                last_update_time=_int_or_none(meta.get("last_update_time")),
                tags=_read_key_files(folder / "tags"),
            ))
        return sorted(found, key=lambda e: _id_sort_key(e.experiment_id))

    def _experiment_folder(self, experiment_id: str) -> Path:
        for folder in (self.root / experiment_id, self.root / ".trash" / experiment_id):
            if (folder / "meta.yaml").is_file():
                return folder
        raise InvalidArgument(f"no experiment {experiment_id!r} in {self.root}")

    def runs(self, experiment_id: str) -> list[SourceRun]:
        found = []
        for child in sorted(self._experiment_folder(experiment_id).iterdir()):
            meta_file = child / "meta.yaml"
            if not (child.is_dir() and meta_file.is_file()):
                continue
            meta = _read_yaml(meta_file)
            if "run_id" not in meta and "run_uuid" not in meta:
                continue  # a logged model's or trace's folder, not a run
            status = meta.get("status")
            found.append(SourceRun(
                run_id=str(meta.get("run_id") or meta["run_uuid"]),
                experiment_id=str(meta.get("experiment_id", experiment_id)),
                run_name=meta.get("run_name") or None,
                status=_FILE_STATUS.get(status, str(status)) if isinstance(status, int) else str(status or "FINISHED"),
                start_time=_int_or_none(meta.get("start_time")),
                end_time=_int_or_none(meta.get("end_time")),
                lifecycle_stage=str(meta.get("lifecycle_stage") or "active"),
                artifact_uri=meta.get("artifact_uri") or None,
                user_id=meta.get("user_id") or None,
                parent_run_id=_read_text(child / "tags" / PARENT_TAG),
            ))
        return sorted(found, key=lambda r: (r.start_time or 0, r.run_id))

    def run_data(self, run: SourceRun) -> SourceRunData:
        folder = self._experiment_folder(run.experiment_id) / run.run_id
        data = SourceRunData(params=_read_key_files(folder / "params"), tags=_read_key_files(folder / "tags"))
        metrics_dir = folder / "metrics"
        for path in _key_files(metrics_dir):
            key = path.relative_to(metrics_dir).as_posix()
            for number, line in enumerate(path.read_text().splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) not in (2, 3):
                    raise InvalidArgument(f"{path}, line {number}: expected 'timestamp value [step]', got {line!r}")
                step = int(parts[2]) if len(parts) == 3 else 0
                data.metrics.append(SourceMetric(key, float(parts[1]), int(parts[0]), step))
        return data

    def unmapped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for folder, _ in self._experiment_folders():
            for kind, sub in (("logged models", "models"), ("traces", "traces"), ("datasets", "datasets")):
                if (folder / sub).is_dir():
                    counts[kind] = counts.get(kind, 0) + sum(1 for c in (folder / sub).iterdir() if c.is_dir())
            for run_folder in folder.iterdir():
                inputs = run_folder / "inputs"
                if run_folder.is_dir() and inputs.is_dir():
                    counts["run inputs (datasets)"] = counts.get("run inputs (datasets)", 0) + sum(
                        1 for c in inputs.iterdir() if c.is_dir())
        return {k: v for k, v in counts.items() if v}

    def registered_models(self) -> list[SourceRegisteredModel]:
        models_dir = self.root / "models"
        if not models_dir.is_dir():
            return []
        models = []
        for folder in sorted(models_dir.iterdir()):
            if not (folder / "meta.yaml").is_file():
                continue
            meta = _read_yaml(folder / "meta.yaml")
            versions = []
            for version_dir in folder.glob("version-*"):
                version = _read_yaml(version_dir / "meta.yaml") if (version_dir / "meta.yaml").is_file() else {}
                if "version" not in version or version.get("current_stage") == _DELETED_STAGE:
                    continue
                versions.append(SourceModelVersion(
                    int(version["version"]), str(version.get("source") or ""), version.get("run_id") or None,
                    str(version.get("current_stage") or "None"), version.get("description") or "",
                    version.get("user_id") or None, _read_key_files(version_dir / "tags")))
            aliases = {str(k): int(v) for k, v in (meta.get("aliases") or {}).items()}
            models.append(SourceRegisteredModel(
                str(meta.get("name") or folder.name), meta.get("description") or "", _read_key_files(folder / "tags"),
                aliases, sorted(versions, key=lambda v: v.version)))
        return models


def _read_text(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path} is not valid YAML: {exc}") from None
    return loaded if isinstance(loaded, dict) else {}


def _key_files(folder: Path) -> list[Path]:
    """The files under ``folder``, recursively: a key with ``/`` is stored as nested folders."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _read_key_files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in _key_files(folder)}


# ---- the SQL store ----------------------------------------------------------------------------

_meta = MetaData()
_experiments = Table(
    "experiments", _meta, Column("experiment_id"), Column("name"), Column("artifact_location"),
    Column("lifecycle_stage"), Column("creation_time"), Column("last_update_time"),
)
_experiment_tags = Table("experiment_tags", _meta, Column("key"), Column("value"), Column("experiment_id"))
_runs = Table(
    "runs", _meta, Column("run_uuid", String), Column("name"), Column("user_id"), Column("status"),
    Column("start_time"), Column("end_time"), Column("lifecycle_stage"), Column("artifact_uri"),
    Column("experiment_id"),
)
_params = Table("params", _meta, Column("key"), Column("value"), Column("run_uuid"))
_tags = Table("tags", _meta, Column("key"), Column("value"), Column("run_uuid"))
_metrics = Table(
    "metrics", _meta, Column("key"), Column("value"), Column("timestamp"), Column("step"), Column("is_nan"),
    Column("run_uuid"),
)
_IDS_PER_QUERY = 500  # run ids in one IN (...) list
_REQUIRED = {table.name: {c.name for c in table.columns} for table in _meta.sorted_tables}
# Tables of MLflow features evalkit does not import yet, counted for the summary.
_UNMAPPED_TABLES = {
    "datasets": "datasets",
    "inputs": "run inputs (datasets)",
    "trace_info": "traces",
    "logged_models": "logged models",
}


class SqlSource(MlflowSource):
    """An MLflow SQL store, read with SQLAlchemy (the database's driver must be installed)."""

    def __init__(self, uri: str) -> None:
        self.display_uri = redact(uri)
        scheme, _, rest = uri.partition("://")
        if scheme.lower() in ("postgresql", "postgres"):
            uri = f"postgresql+psycopg://{rest}"  # the driver evalkit's postgres extra installs (MLflow's default is psycopg2)
        try:
            self.engine: Engine = create_engine(make_url(uri))
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise InvalidArgument(f"cannot open MLflow database {self.display_uri!r}: {exc}") from None
        if make_url(uri).get_backend_name() == "sqlite":
            database = make_url(uri).database or ""
            if not database or not os.path.isfile(database):
                raise InvalidArgument(f"no MLflow SQLite database at {database!r}")
        self._check_schema()

    def _check_schema(self) -> None:
        try:
            inspector = inspect(self.engine)
            tables = set(inspector.get_table_names())
            missing = []
            for table, columns in _REQUIRED.items():
                if table not in tables:
                    missing.append(f"table {table}")
                    continue
                present = {c["name"] for c in inspector.get_columns(table)}
                missing += [f"{table}.{c}" for c in sorted(columns - present)]
            self._tables = tables
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot read MLflow database {self.display_uri!r}: {exc}") from None
        if missing:
            raise InvalidArgument(
                f"{self.display_uri} is not an MLflow tracking database (or its schema is not one evalkit "
                f"reads): missing {', '.join(missing)}"
            )

    def experiments(self) -> list[SourceExperiment]:
        with self.engine.connect() as conn:
            tags: dict[str, dict[str, str]] = {}
            for row in conn.execute(select(_experiment_tags)):
                tags.setdefault(str(row.experiment_id), {})[row.key] = row.value or ""
            rows = conn.execute(select(_experiments).order_by(_experiments.c.experiment_id)).all()
        return [
            SourceExperiment(
                experiment_id=str(row.experiment_id), name=row.name, artifact_location=row.artifact_location or "",
                lifecycle_stage=row.lifecycle_stage or "active", creation_time=_int_or_none(row.creation_time),
                last_update_time=_int_or_none(row.last_update_time), tags=tags.get(str(row.experiment_id), {}),
            )
            for row in rows
        ]

    def runs(self, experiment_id: str) -> list[SourceRun]:
        query = (select(_runs).where(_runs.c.experiment_id == int(experiment_id))
                 .order_by(_runs.c.start_time, _runs.c.run_uuid))
        parent_query = (select(_tags.c.run_uuid, _tags.c.value).join(_runs, _runs.c.run_uuid == _tags.c.run_uuid)
                        .where(_runs.c.experiment_id == int(experiment_id), _tags.c.key == PARENT_TAG))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            parents = {row.run_uuid: row.value for row in conn.execute(parent_query)}
        return [
            SourceRun(
                run_id=row.run_uuid, experiment_id=str(row.experiment_id), run_name=row.name or None,
                status=row.status or "FINISHED", start_time=_int_or_none(row.start_time),
                end_time=_int_or_none(row.end_time), lifecycle_stage=row.lifecycle_stage or "active",
                artifact_uri=row.artifact_uri or None, user_id=row.user_id or None,
                parent_run_id=parents.get(row.run_uuid),
            )
            for row in rows
        ]

    def run_data(self, run: SourceRun) -> SourceRunData:
        return self.runs_data([run])[run.run_id]

    def runs_data(self, runs: list[SourceRun]) -> dict[str, SourceRunData]:
        found = {run.run_id: SourceRunData() for run in runs}
        ids = list(found)
        m = _metrics.c
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start:start + _IDS_PER_QUERY]
                for row in conn.execute(select(_params.c.run_uuid, _params.c.key, _params.c.value)
                                        .where(_params.c.run_uuid.in_(chunk))):
                    found[row.run_uuid].params[row.key] = row.value or ""
                for row in conn.execute(select(_tags.c.run_uuid, _tags.c.key, _tags.c.value)
                                        .where(_tags.c.run_uuid.in_(chunk))):
                    found[row.run_uuid].tags[row.key] = row.value or ""
                query = (select(m.run_uuid, m.key, m.value, m.timestamp, m.step, m.is_nan)
                         .where(m.run_uuid.in_(chunk)).order_by(m.run_uuid, m.key, m.step, m.timestamp))
                for run_uuid, key, value, timestamp, step, is_nan in conn.execute(query):
                    value = math.nan if is_nan else _infinity_back(float(value))
                    found[run_uuid].metrics.append(SourceMetric(key, value, int(timestamp), int(step or 0)))
        return found

    def unmapped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            for table, kind in _UNMAPPED_TABLES.items():
                if table in self._tables:
                    count = conn.execute(select(func.count()).select_from(Table(table, MetaData()))).scalar_one()
                    if count:
                        counts[kind] = int(count)
        return counts

    def registered_models(self) -> list[SourceRegisteredModel]:
        if "registered_models" not in self._tables:
            return []
        meta = MetaData()
        tables = {name: Table(name, meta, autoload_with=self.engine)
                  for name in ("registered_models", "model_versions", "registered_model_tags", "model_version_tags",
                               "registered_model_aliases") if name in self._tables}
        with self.engine.connect() as conn:
            rows = {name: conn.execute(select(table)).all() for name, table in tables.items()}
        model_tags: dict[str, dict[str, str]] = {}
        for row in rows.get("registered_model_tags", []):
            model_tags.setdefault(row.name, {})[row.key] = row.value or ""
        version_tags: dict[tuple[str, int], dict[str, str]] = {}
        for row in rows.get("model_version_tags", []):
            version_tags.setdefault((row.name, int(row.version)), {})[row.key] = row.value or ""
        aliases: dict[str, dict[str, int]] = {}
        for row in rows.get("registered_model_aliases", []):
            aliases.setdefault(row.name, {})[row.alias] = int(row.version)
        versions: dict[str, list[SourceModelVersion]] = {}
        for row in rows.get("model_versions", []):
            if row.current_stage == _DELETED_STAGE:
                continue
            versions.setdefault(row.name, []).append(SourceModelVersion(
                int(row.version), row.source or "", row.run_id or None, row.current_stage or "None",
                row.description or "", row.user_id or None, version_tags.get((row.name, int(row.version)), {})))
        return sorted((SourceRegisteredModel(row.name, row.description or "", model_tags.get(row.name, {}),
                                             aliases.get(row.name, {}),
                                             sorted(versions.get(row.name, []), key=lambda v: v.version))
                       for row in rows["registered_models"]), key=lambda m: m.name)

    def close(self) -> None:
        self.engine.dispose()


def _infinity_back(value: float) -> float:
    """MLflow's SQL store writes an infinite metric as the largest finite float (of its sign):
    give the infinity back, as MLflow's file store and evalkit keep it."""
    return math.copysign(math.inf, value) if abs(value) == sys.float_info.max else value


def _int_or_none(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _id_sort_key(experiment_id: str) -> tuple[int, str]:
    return (int(experiment_id), "") if experiment_id.isdigit() else (1 << 62, experiment_id)
