"""The SQL tracking store: experiments, runs, params, metrics and tags in SQLite or PostgreSQL,
and the model registry (``sql/registry.py``)."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from evalkit.entities import (
    Experiment,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from evalkit.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from evalkit.tracking.artifacts import join_artifact_uri
from evalkit.tracking.clock import now_ms
from evalkit.tracking.filter import parse_filter, parse_order_by
from evalkit.tracking.names import random_run_name
from evalkit.tracking.sql import schema as t
from evalkit.tracking.sql.engine import (
    checkpoint_wal,
    create_store_engine,
    write_transaction,
)
from evalkit.tracking.sql.registry import SqlRegistry, os_user
from evalkit.tracking.sql.search import compile_filter, order_clauses
from evalkit.tracking.store import (
    HISTORY_PAGE_MAX,
    SEARCH_MAX_RESULTS,
    ImportedRun,
    RunStats,
    TrackingStore,
    check_key_search,
    check_page_size,
    decode_offset_token,
    encode_offset_token,
    require_writable,
    run_status,
)
from evalkit.tracking.uri import StoreLocation, parse_tracking_uri
from evalkit.tracking.validation import (
    MAX_TAG_VALUE_LENGTH,
    checked_metric,
    checked_param,
    checked_tag,
    param_change_error,
    stringify,
    validate_experiment_name,
    validate_key,
)

# A run that ended is folded from the SQLite log into the .db file within this delay (and at once
# when the store is closed, which the process does at exit).
CHECKPOINT_DELAY_SECONDS = 1.0
IMPORT_ROWS_PER_INSERT = 50_000  # rows per multi-row insert of import_runs
__all__ = ["SqlStore"]


class SqlStore(SqlRegistry, TrackingStore):
    """The tracking store in SQLite or PostgreSQL. Every call is one transaction: nothing is
    buffered here (``BufferedStore`` adds that), so a value is stored when the call returns.

    Thread-safe; one instance per tracking URI per process is enough (see ``get_store``).
    """

    def __init__(self, location: StoreLocation, create: bool = True) -> None:
        """Open the store at ``location``; with ``create=False`` a store that does not exist yet
        raises :class:`~evalkit.errors.StoreUnavailable` instead of being created."""
        self.location = location
        self.engine = create_store_engine(location, create=create)
        self._lock = threading.Lock()
        self._checkpoint_timer: threading.Timer | None = None
        self._closed = False

    @classmethod
    def normalize_uri(cls, uri: str) -> str:
        """A file path, ``sqlite:///...`` or ``postgresql://...`` in canonical form (a SQLite path
        made absolute), or ``InvalidArgument`` saying which forms are accepted."""
        return parse_tracking_uri(uri).uri

    @classmethod
    def from_uri(cls, uri: str, create: bool = True) -> SqlStore:
        """Open (creating, unless ``create=False``, or migrating if needed) the database ``uri`` names."""
        return cls(parse_tracking_uri(uri), create=create)

    @property
    def display_uri(self) -> str:
        return self.location.display_uri

    # ---- experiments -------------------------------------------------------------------------

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        validate_experiment_name(name)
        tag_rows = [
            (validate_key("tag", k), stringify("tag", k, v, MAX_TAG_VALUE_LENGTH)) for k, v in (tags or {}).items()
        ]

        def work(conn: Connection) -> str:
            existing = conn.execute(select(t.experiments.c.experiment_id).where(t.experiments.c.name == name)).first()
            if existing is not None:
                raise AlreadyExists(f"an experiment named {name!r} already exists (id {existing[0]})")
            ts = now_ms()
            experiment_id = conn.execute(
                insert(t.experiments).values(
                    name=name, artifact_location="", lifecycle_stage="active", creation_time=ts, last_update_time=ts
                )
            ).inserted_primary_key[0]
            location = artifact_location or join_artifact_uri(self.location.default_artifact_root, str(experiment_id))
            conn.execute(
                update(t.experiments)
                .where(t.experiments.c.experiment_id == experiment_id)
                .values(artifact_location=location)
            )
            if tag_rows:
                conn.execute(
                    insert(t.experiment_tags),
                    [{"experiment_id": experiment_id, "key": k, "value": v} for k, v in tag_rows],
                )
            return str(experiment_id)

        try:
            return write_transaction(self.engine, work)
        except IntegrityError:  # a concurrent process created the same name
            raise AlreadyExists(f"an experiment named {name!r} already exists") from None

    def get_experiment(self, experiment_id: str) -> Experiment:
        with self.engine.connect() as conn:
            experiments = self._load_experiments(conn, t.experiments.c.experiment_id == _experiment_pk(experiment_id))
        if not experiments:
            raise NotFound(f"no experiment with id {experiment_id!r}")
        return experiments[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self.engine.connect() as conn:
            experiments = self._load_experiments(conn, t.experiments.c.name == name)
        return experiments[0] if experiments else None

    def search_experiments(
        self, view_type: ViewType = ViewType.ACTIVE_ONLY, name_like: str | None = None, max_results: int = 1000
    ) -> list[Experiment]:
        condition = _lifecycle_condition(t.experiments.c.lifecycle_stage, ViewType(view_type))
        if name_like is not None:
            condition = and_(condition, t.experiments.c.name.like(name_like))
        with self.engine.connect() as conn:
            return self._load_experiments(conn, condition, limit=max_results)

    def _load_experiments(self, conn: Connection, condition: Any, limit: int | None = None) -> list[Experiment]:
        query = select(t.experiments).where(condition).order_by(t.experiments.c.experiment_id).limit(limit)
        rows = conn.execute(query).all()
        if not rows:
            return []
        ids = [row.experiment_id for row in rows]
        tags: dict[int, dict[str, str]] = {i: {} for i in ids}
        for tag in conn.execute(select(t.experiment_tags).where(t.experiment_tags.c.experiment_id.in_(ids))):
            tags[tag.experiment_id][tag.key] = tag.value
        return [
            Experiment(
                experiment_id=str(row.experiment_id),
                name=row.name,
                artifact_location=row.artifact_location,
                lifecycle_stage=LifecycleStage(row.lifecycle_stage),
                creation_time=row.creation_time,
                last_update_time=row.last_update_time,
                tags=tags[row.experiment_id],
            )
            for row in rows
        ]

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        key = validate_key("tag", key)
        text = stringify("tag", key, value, MAX_TAG_VALUE_LENGTH)
        pk = _experiment_pk(experiment_id)

        def work(conn: Connection) -> None:
            self._require_experiment(conn, pk, active=True)
            _upsert(conn, t.experiment_tags, [{"experiment_id": pk, "key": key, "value": text}], ["experiment_id", "key"], ["value"])

        write_transaction(self.engine, work)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Give an active experiment another name, unique like the names ``create_experiment`` takes."""
        validate_experiment_name(new_name)
        pk = _experiment_pk(experiment_id)

        def work(conn: Connection) -> None:
            self._require_experiment(conn, pk, active=True)
            taken = conn.execute(
                select(t.experiments.c.experiment_id).where(
                    t.experiments.c.name == new_name, t.experiments.c.experiment_id != pk
                )
            ).first()
            if taken is not None:
                raise AlreadyExists(f"an experiment named {new_name!r} already exists (id {taken[0]})")
            conn.execute(
                update(t.experiments)
                .where(t.experiments.c.experiment_id == pk)
                .values(name=new_name, last_update_time=now_ms())
            )

        try:
            write_transaction(self.engine, work)
        except IntegrityError:  # a concurrent process took the name
            raise AlreadyExists(f"an experiment named {new_name!r} already exists") from None

    def _set_experiment_stage(self, experiment_id: str, stage: LifecycleStage) -> None:
        pk = _experiment_pk(experiment_id)

        def work(conn: Connection) -> None:
            self._require_experiment(conn, pk, active=None)
            conn.execute(
                update(t.experiments)
                .where(t.experiments.c.experiment_id == pk)
                .values(lifecycle_stage=stage.value, last_update_time=now_ms())
            )

        write_transaction(self.engine, work)

    def delete_experiment(self, experiment_id: str) -> None:
        self._set_experiment_stage(experiment_id, LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id: str) -> None:
        self._set_experiment_stage(experiment_id, LifecycleStage.ACTIVE)

    def _require_experiment(self, conn: Connection, pk: int, active: bool | None) -> Any:
        row = conn.execute(select(t.experiments).where(t.experiments.c.experiment_id == pk)).first()
        if row is None:
            raise NotFound(f"no experiment with id {str(pk)!r}")
        if active and row.lifecycle_stage != LifecycleStage.ACTIVE.value:
            raise InvalidState(f"experiment {row.name!r} (id {pk}) is deleted; restore it first")
        return row

    # ---- runs --------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        tags: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        start_time: int | None = None,
    ) -> Run:
        pk = _experiment_pk(experiment_id)
        name = run_name or random_run_name()
        if not isinstance(name, str) or len(name) > 250:
            raise InvalidArgument(f"run name must be a string of at most 250 characters, got {run_name!r}")
        tag_rows = {
            validate_key("tag", k): stringify("tag", k, v, MAX_TAG_VALUE_LENGTH) for k, v in (tags or {}).items()
        }
        run_id = uuid.uuid4().hex
        started = start_time if start_time is not None else now_ms()
        user = os_user()

        def work(conn: Connection) -> tuple[str, str]:
            experiment = self._require_experiment(conn, pk, active=True)
            if parent_run_id is not None:
                self._require_run_row(conn, parent_run_id)
            artifact_uri = join_artifact_uri(experiment.artifact_location, run_id, "artifacts")
            conn.execute(
                insert(t.runs).values(
                    run_id=run_id, experiment_id=pk, run_name=name, status=RunStatus.RUNNING.value,
                    start_time=started, end_time=None, lifecycle_stage="active", artifact_uri=artifact_uri,
                    parent_run_id=parent_run_id, user_id=user,
                )
            )
            if tag_rows:
                conn.execute(insert(t.tags), [{"run_id": run_id, "key": k, "value": v} for k, v in tag_rows.items()])
            return run_id, artifact_uri

        created_id, artifact_uri = write_transaction(self.engine, work)
        if created_id != run_id:  # a retried server request: the run its first attempt created
            return self.get_run(created_id)
        info = RunInfo(run_id, str(pk), name, RunStatus.RUNNING, started, None, artifact_uri,
                       LifecycleStage.ACTIVE, parent_run_id, user)
        return Run(info, RunData(tags=dict(tag_rows)))

    def import_runs(self, experiment_id: str, runs: Sequence[ImportedRun]) -> list[str]:
        """Every run of the call in one transaction, with multi-row inserts (an import's speed)."""
        pk = _experiment_pk(experiment_id)
        user = os_user()
        rows, tag_rows, param_rows, metric_rows, latest = [], [], [], [], {}
        for run in runs:
            name = run.run_name or random_run_name()
            if not isinstance(name, str) or len(name) > 250:
                raise InvalidArgument(f"run name must be a string of at most 250 characters, got {run.run_name!r}")
            run_id = uuid.uuid4().hex
            creation = [RunTag(k, v) for k, v in run.creation_tags.items()]
            metrics, params, tags = _checked_batch(run_id, run.metrics, run.params, [*creation, *run.tags])
            status = run_status(run.status)
            ended = None if status is RunStatus.RUNNING else (run.end_time or now_ms())
            rows.append({"run_id": run_id, "run_name": name, "status": status.value,
                         "start_time": run.start_time if run.start_time is not None else now_ms(), "end_time": ended,
                         "lifecycle_stage": (LifecycleStage.DELETED if run.deleted else LifecycleStage.ACTIVE).value,
                         "parent_run_id": run.parent_run_id, "user_id": user})
            tag_rows += [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
            param_rows += [{"run_id": run_id, "key": k, "value": v} for k, v in params.items()]
            for m in metrics:
                row = {"run_id": run_id, "key": m.key, "value": None if m.value != m.value else m.value,
                       "is_nan": m.value != m.value, "step": m.step, "timestamp": m.timestamp}
                metric_rows.append(row)
                current = latest.get((run_id, m.key))
                if current is None or (row["step"], row["timestamp"]) >= (current["step"], current["timestamp"]):
                    latest[(run_id, m.key)] = row

        def work(conn: Connection) -> None:
            experiment = self._require_experiment(conn, pk, active=True)
            for parent in {r["parent_run_id"] for r in rows} - {None} - {r["run_id"] for r in rows}:
                self._require_run_row(conn, parent)
            for row in rows:
                row.update(experiment_id=pk,
                           artifact_uri=join_artifact_uri(experiment.artifact_location, row["run_id"], "artifacts"))
            conn.execute(insert(t.runs), rows)
            for table, values in ((t.tags, tag_rows), (t.params, param_rows), (t.metric_history, metric_rows)):
                for start in range(0, len(values), IMPORT_ROWS_PER_INSERT):
                    conn.execute(insert(table), values[start:start + IMPORT_ROWS_PER_INSERT])
            if latest:
                _upsert_latest(conn, list(latest.values()))

        if rows:
            write_transaction(self.engine, work)
            self._checkpoint_soon(RunStatus.FINISHED)
        return [r["run_id"] for r in rows]

    def get_run(self, run_id: str) -> Run:
        with self.engine.connect() as conn:
            row = self._require_run_row(conn, run_id)
            return self._load_runs(conn, [row])[0]

    def _require_run_row(self, conn: Connection, run_id: str) -> Any:
        if not isinstance(run_id, str):
            raise InvalidArgument(f"run id must be a string, got {run_id!r}")
        row = conn.execute(select(t.runs).where(t.runs.c.run_id == run_id)).first()
        if row is None:
            raise NotFound(f"no run with id {run_id!r}")
        return row

    def _load_runs(self, conn: Connection, rows: Sequence[Any]) -> list[Run]:
        ids = [row.run_id for row in rows]
        data = {run_id: RunData() for run_id in ids}
        for chunk in _chunks(ids, 500):
            for r in conn.execute(select(t.params.c.run_id, t.params.c.key, t.params.c.value).where(t.params.c.run_id.in_(chunk))):
                data[r.run_id].params[r.key] = r.value
            for r in conn.execute(select(t.tags.c.run_id, t.tags.c.key, t.tags.c.value).where(t.tags.c.run_id.in_(chunk))):
                data[r.run_id].tags[r.key] = r.value
            lm = t.latest_metrics.c
            for r in conn.execute(select(lm.run_id, lm.key, lm.value, lm.is_nan).where(lm.run_id.in_(chunk))):
                data[r.run_id].metrics[r.key] = float("nan") if r.is_nan else r.value
        return [Run(_run_info(row), data[row.run_id]) for row in rows]

    def update_run(self, run_id: str, status: RunStatus | str, end_time: int | None = None) -> RunInfo:
        status = run_status(status)
        info = write_transaction(self.engine, lambda conn: self._update_run(conn, run_id, status, end_time))
        self._checkpoint_soon(status)
        return info

    def log_batch_and_update_run(
        self,
        run_id: str,
        status: RunStatus | str,
        end_time: int | None = None,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> RunInfo:
        """The run's last values and its new status in one transaction."""
        status = run_status(status)
        checked = _checked_batch(run_id, metrics, params, tags)

        def work(conn: Connection) -> RunInfo:
            self._write(conn, run_id, *checked)
            return self._update_run(conn, run_id, status, end_time)

        info = write_transaction(self.engine, work)
        self._checkpoint_soon(status)
        return info

    def _checkpoint_soon(self, status: RunStatus) -> None:
        """When a run ends, fold the SQLite log into the .db file within CHECKPOINT_DELAY_SECONDS,
        so that the run is in the file for whoever copies it, even while this process goes on.

        Deferred rather than done at once: a checkpoint syncs the file to disk, which at every
        run end would double the cost of a loop of short runs; one per delay covers them all.
        """
        if status is RunStatus.RUNNING or self.location.dialect != "sqlite":
            return
        with self._lock:
            if self._checkpoint_timer is not None or self._closed:
                return
            self._checkpoint_timer = threading.Timer(CHECKPOINT_DELAY_SECONDS, self._deferred_checkpoint)
            self._checkpoint_timer.daemon = True
            self._checkpoint_timer.start()

    def _deferred_checkpoint(self) -> None:
        with self._lock:
            # Cleared first: a run ending while this checkpoint runs schedules the next one.
            self._checkpoint_timer = None
            if self._closed:
                return
        checkpoint_wal(self.engine)

    def _update_run(self, conn: Connection, run_id: str, status: RunStatus, end_time: int | None) -> RunInfo:
        row = self._require_run_row(conn, run_id)
        if row.lifecycle_stage != LifecycleStage.ACTIVE.value:
            raise InvalidState(f"run {run_id} is deleted; restore it before changing its status")
        ended = None if status is RunStatus.RUNNING else (end_time or now_ms())
        conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(status=status.value, end_time=ended))
        return dataclasses.replace(_run_info(row), status=status, end_time=ended)

    def _set_run_stage(self, run_id: str, stage: LifecycleStage) -> None:
        def work(conn: Connection) -> None:
            self._require_run_row(conn, run_id)
            conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(lifecycle_stage=stage.value))

        write_transaction(self.engine, work)

    def delete_run(self, run_id: str) -> None:
        self._set_run_stage(run_id, LifecycleStage.DELETED)

    def restore_run(self, run_id: str) -> None:
        self._set_run_stage(run_id, LifecycleStage.ACTIVE)

    def check_writable(self, run_id: str) -> None:
        with self.engine.connect() as conn:
            require_writable(_run_info(self._require_run_row(conn, run_id)))

    # ---- logging -----------------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Check every value, then write them all in one transaction (or none of them)."""
        checked = _checked_batch(run_id, metrics, params, tags)
        write_transaction(self.engine, lambda conn: self._write(conn, run_id, *checked))

    def _write(
        self, conn: Connection, run_id: str, metrics: list[Metric], params: dict[str, str], tags: dict[str, str]
    ) -> None:
        require_writable(_run_info(self._require_run_row(conn, run_id)))
        if params:
            stored = conn.execute(
                select(t.params.c.key, t.params.c.value).where(t.params.c.run_id == run_id, t.params.c.key.in_(params))
            )
            for row in stored:
                if row.value != params[row.key]:
                    raise param_change_error(run_id, row.key, row.value, params[row.key])
            _upsert(conn, t.params, [{"run_id": run_id, "key": k, "value": v} for k, v in params.items()],
                    ["run_id", "key"], None)
        if tags:
            _upsert(conn, t.tags, [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
                    ["run_id", "key"], ["value"])
        if metrics:
            rows = [
                {"run_id": run_id, "key": m.key, "value": None if m.value != m.value else m.value,
                 "is_nan": m.value != m.value, "step": m.step, "timestamp": m.timestamp}
                for m in metrics
            ]
            conn.execute(insert(t.metric_history), rows)
            latest: dict[str, dict[str, Any]] = {}
            for row in rows:  # the latest value: highest step, then latest time, then logged last
                current = latest.get(row["key"])
                if current is None or (row["step"], row["timestamp"]) >= (current["step"], current["timestamp"]):
                    latest[row["key"]] = row
            _upsert_latest(conn, list(latest.values()))

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        mh = t.metric_history.c
        with self.engine.connect() as conn:
            self._require_run_row(conn, run_id)
            rows = conn.execute(
                select(mh.key, mh.value, mh.is_nan, mh.timestamp, mh.step)
                .where(mh.run_id == run_id, mh.key == key)
                .order_by(mh.step, mh.timestamp, mh.id)
            ).all()
        return [Metric(r.key, float("nan") if r.is_nan else r.value, r.timestamp, r.step) for r in rows]

    def get_metric_history_page(
        self, run_id: str, key: str, max_results: int = HISTORY_PAGE_MAX, page_token: str | None = None
    ) -> tuple[list[Metric], str | None]:
        """One page of the history, read with LIMIT/OFFSET on the (run, key, step, timestamp) index."""
        check_page_size(max_results, HISTORY_PAGE_MAX)
        offset = decode_offset_token(page_token)
        mh = t.metric_history.c
        with self.engine.connect() as conn:
            self._require_run_row(conn, run_id)
            rows = conn.execute(
                select(mh.key, mh.value, mh.is_nan, mh.timestamp, mh.step)
                .where(mh.run_id == run_id, mh.key == key)
                .order_by(mh.step, mh.timestamp, mh.id)
                .limit(max_results + 1).offset(offset)
            ).all()
        page = [Metric(r.key, float("nan") if r.is_nan else r.value, r.timestamp, r.step) for r in rows[:max_results]]
        return page, encode_offset_token(offset + max_results) if len(rows) > max_results else None

    def get_metric_histories(self, run_ids: Sequence[str], key: str) -> dict[str, list[Metric]]:
        mh = t.metric_history.c
        histories: dict[str, list[Metric]] = {run_id: [] for run_id in run_ids}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(histories), 500):
                rows = conn.execute(
                    select(mh.run_id, mh.key, mh.value, mh.is_nan, mh.timestamp, mh.step)
                    .where(mh.run_id.in_(chunk), mh.key == key)
                    .order_by(mh.run_id, mh.step, mh.timestamp, mh.id)
                )
                for r in rows:
                    histories[r.run_id].append(Metric(r.key, float("nan") if r.is_nan else r.value, r.timestamp, r.step))
        return histories

    def delete_tag(self, run_id: str, key: str) -> None:
        def work(conn: Connection) -> None:
            self._require_run_row(conn, run_id)
            deleted = conn.execute(t.tags.delete().where(t.tags.c.run_id == run_id, t.tags.c.key == key)).rowcount
            if not deleted:
                raise NotFound(f"run {run_id} has no tag {key!r}")

        write_transaction(self.engine, work)

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
        check_page_size(max_results, SEARCH_MAX_RESULTS)
        orders = parse_order_by(order_by)
        offset = decode_offset_token(page_token)
        condition = _search_condition(experiment_ids, filter_string, view_type)
        query, sort = order_clauses(select(t.runs).where(condition), orders)
        query = query.order_by(*sort).limit(max_results + 1).offset(offset)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            more = len(rows) > max_results
            runs = self._load_runs(conn, rows[:max_results])
        return runs, encode_offset_token(offset + max_results) if more else None

    def count_runs(self, experiment_ids: Sequence[str], filter_string: str | None = None,
                   view_type: ViewType = ViewType.ACTIVE_ONLY) -> int:
        condition = _search_condition(experiment_ids, filter_string, view_type)
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.runs).where(condition)).scalar_one())

    def run_stats(self, experiment_ids: Sequence[str], view_type: ViewType = ViewType.ACTIVE_ONLY) -> dict[str, RunStats]:
        r = t.runs.c
        query = (
            select(r.experiment_id, func.count(), func.max(func.coalesce(r.end_time, r.start_time)))
            .where(r.experiment_id.in_([_experiment_pk(e) for e in experiment_ids]),
                   _lifecycle_condition(r.lifecycle_stage, ViewType(view_type)))
            .group_by(r.experiment_id)
        )
        stats = {str(e): RunStats(0, None) for e in experiment_ids}
        with self.engine.connect() as conn:
            for experiment_id, count, last in conn.execute(query):
                stats[str(experiment_id)] = RunStats(int(count), last)
        return stats

    def search_keys(self, experiment_ids: Sequence[str], entity: str, contains: str | None = None,
                    max_results: int = 200) -> list[str]:
        check_key_search(entity, max_results)
        table = {"param": t.params, "metric": t.latest_metrics, "tag": t.tags}[entity]
        # Distinct keys come off the (key, value) index in order, without reading any run. When
        # other experiments have runs too, each key is then probed for one run of these
        # experiments (an index lookup), stopping at max_results keys: reading every value of
        # every run of the experiment instead costs ~0.4 s at 10,000 runs of 20 keys.
        keys = select(table.c.key).distinct().order_by(table.c.key)
        if contains:
            # Matched on the distinct keys, not on every row's key (a 6x difference at 200,000 rows).
            pattern = "%" + contains.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            distinct = select(table.c.key).distinct().subquery("distinct_keys")
            keys = select(distinct.c.key).where(func.lower(distinct.c.key).like(pattern, escape="\\")) \
                .order_by(distinct.c.key)
        pks = [_experiment_pk(e) for e in experiment_ids]
        with self.engine.connect() as conn:
            others = conn.execute(select(t.runs.c.experiment_id).distinct()
                                  .where(t.runs.c.experiment_id.not_in(pks)).limit(1)).first()
            if others is None:
                return list(conn.execute(keys.limit(max_results)).scalars())
            probe = (
                select(t.runs.c.run_id).join(table, table.c.run_id == t.runs.c.run_id)
                # "+ 0" keeps the planner off the experiment index: going from the key's own index
                # rows, a key no run of these experiments has costs its rows, not the experiment's.
                .where(table.c.key == bindparam("key"), (t.runs.c.experiment_id + 0).in_(pks),
                       t.runs.c.lifecycle_stage == LifecycleStage.ACTIVE.value)
                .limit(1)
            )
            found: list[str] = []
            for key in conn.execute(keys).scalars():
                if conn.execute(probe, {"key": key}).first() is not None:
                    found.append(key)
                    if len(found) == max_results:
                        break
            return found

    def close(self) -> None:
        """Copy the SQLite write-ahead log into the database file (so the .db file alone holds
        every committed run), then release the database connections."""
        with self._lock:
            self._closed = True
            if self._checkpoint_timer is not None:
                self._checkpoint_timer.cancel()
                self._checkpoint_timer = None
        try:
            checkpoint_wal(self.engine)
        finally:
            self.engine.dispose()


def _checked_batch(
    run_id: str, metrics: Sequence[Metric], params: Sequence[Param], tags: Sequence[RunTag]
) -> tuple[list[Metric], dict[str, str], dict[str, str]]:
    """The batch's values checked, params and tags by key; a param given twice must agree."""
    metric_list = [checked_metric(m) for m in metrics]
    param_values: dict[str, str] = {}
    for param in map(checked_param, params):
        previous = param_values.setdefault(param.key, param.value)
        if previous != param.value:
            raise param_change_error(run_id, param.key, previous, param.value)
    return metric_list, param_values, {tag.key: tag.value for tag in map(checked_tag, tags)}



def _search_condition(experiment_ids: Sequence[str], filter_string: str | None, view_type: ViewType) -> Any:
    """The WHERE clause of a run search: its experiments, lifecycle view and filter."""
    expression = parse_filter(filter_string)
    condition = and_(
        t.runs.c.experiment_id.in_([_experiment_pk(e) for e in experiment_ids]),
        _lifecycle_condition(t.runs.c.lifecycle_stage, ViewType(view_type)),
    )
    return condition if expression is None else and_(condition, compile_filter(expression))


def _experiment_pk(experiment_id: str | int) -> int:
    try:
        return int(experiment_id)
    except (TypeError, ValueError):
        raise NotFound(f"no experiment with id {experiment_id!r}") from None


def _lifecycle_condition(column: Any, view_type: ViewType) -> Any:
    if view_type is ViewType.ACTIVE_ONLY:
        return column == LifecycleStage.ACTIVE.value
    if view_type is ViewType.DELETED_ONLY:
        return column == LifecycleStage.DELETED.value
    return column.in_([LifecycleStage.ACTIVE.value, LifecycleStage.DELETED.value])


def _run_info(row: Any) -> RunInfo:
    return RunInfo(
        run_id=row.run_id,
        experiment_id=str(row.experiment_id),
        run_name=row.run_name,
        status=RunStatus(row.status),
        start_time=row.start_time,
        end_time=row.end_time,
        artifact_uri=row.artifact_uri,
        lifecycle_stage=LifecycleStage(row.lifecycle_stage),
        parent_run_id=row.parent_run_id,
        user_id=row.user_id,
    )


_statements: dict[tuple[str, str], Any] = {}


def _cached_statement(conn: Connection, name: str, build: Any) -> Any:
    """Upsert statements are costly to build and never change: build each once per dialect."""
    key = (conn.dialect.name, name)
    statement = _statements.get(key)
    if statement is None:
        insert_for = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = _statements[key] = build(insert_for)
    return statement


def _upsert(conn: Connection, table: Any, rows: list[dict[str, Any]], keys: list[str], update_cols: list[str] | None) -> None:
    def build(insert_for: Any) -> Any:
        statement = insert_for(table)
        if update_cols:
            return statement.on_conflict_do_update(
                index_elements=keys, set_={c: getattr(statement.excluded, c) for c in update_cols}
            )
        return statement.on_conflict_do_nothing(index_elements=keys)

    conn.execute(_cached_statement(conn, f"upsert:{table.name}:{update_cols}", build), rows)


def _upsert_latest(conn: Connection, rows: list[dict[str, Any]]) -> None:
    table = t.latest_metrics

    def build(insert_for: Any) -> Any:
        statement = insert_for(table)
        new = statement.excluded
        return statement.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={"value": new.value, "is_nan": new.is_nan, "step": new.step, "timestamp": new.timestamp},
            where=(new.step > table.c.step) | ((new.step == table.c.step) & (new.timestamp >= table.c.timestamp)),
        )

    conn.execute(_cached_statement(conn, "upsert_latest", build), rows)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
