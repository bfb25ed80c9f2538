"""The SQL tracking store: experiments, runs, params, metrics and tags in SQLite or PostgreSQL."""

from __future__ import annotations

import atexit
import base64
import dataclasses
import getpass
import json
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update
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
from evalkit.tracking.buffer import MetricRow, PendingWrites
from evalkit.tracking.filter import parse_filter, parse_order_by
from evalkit.tracking.names import random_run_name
from evalkit.tracking.sql import schema as t
from evalkit.tracking.sql.engine import (
    checkpoint_wal,
    create_store_engine,
    write_transaction,
)
from evalkit.tracking.sql.search import compile_filter, order_clauses
from evalkit.tracking.uri import StoreLocation
from evalkit.validation import (
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    is_nan,
    stringify,
    validate_key,
    validate_metric_value,
    validate_step,
    validate_timestamp,
)

DEFAULT_EXPERIMENT_NAME = "Default"
FLUSH_MAX_ITEMS = 1000
FLUSH_MAX_AGE_SECONDS = 1.0
SEARCH_MAX_RESULTS = 50_000
# A run that ended is folded from the SQLite log into the .db file within this delay (and at once
# when the store is closed or the process exits).
CHECKPOINT_DELAY_SECONDS = 1.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqlStore:
    """One tracking store. Writes are checked at once, buffered, and flushed in batches.

    Thread-safe; one instance per tracking URI per process is enough (see ``get_store``).
    """

    def __init__(self, location: StoreLocation, create: bool = True) -> None:
        """Open the store at ``location``; with ``create=False`` a store that does not exist yet
        raises :class:`~evalkit.errors.StoreUnavailable` instead of being created."""
        self.location = location
        self.engine = create_store_engine(location, create=create)
        self._lock = threading.RLock()
        # Held for a whole flush, so a read's own flush waits for one already under way in
        # another thread (the background flusher) instead of reading before its values land.
        self._flush_lock = threading.Lock()
        self._pending = PendingWrites()
        self._writable: set[str] = set()
        self._known_params: dict[str, dict[str, str]] = {}
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        self._background_error: BaseException | None = None
        self._checkpoint_timer: threading.Timer | None = None
        self._closed = False
        _live_stores.add(self)

    # ---- experiments -------------------------------------------------------------------------

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        _check_experiment_name(name)
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

    def get_or_create_default_experiment(self) -> str:
        experiment = self.get_experiment_by_name(DEFAULT_EXPERIMENT_NAME)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.create_experiment(DEFAULT_EXPERIMENT_NAME)
        except AlreadyExists:
            return self.get_experiment_by_name(DEFAULT_EXPERIMENT_NAME).experiment_id  # type: ignore[union-attr]

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
        _check_experiment_name(new_name)
        pk = _experiment_pk(experiment_id)

        def work(conn: Connection) -> None:
            self._require_experiment(conn, pk, active=True)
            taken = conn.execute(
                select(t.experiments.c.experiment_id)
                .where(t.experiments.c.name == new_name, t.experiments.c.experiment_id != pk)
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
        self._raise_background_error()
        pk = _experiment_pk(experiment_id)
        name = run_name or random_run_name()
        if not isinstance(name, str) or len(name) > 250:
            raise InvalidArgument(f"run name must be a string of at most 250 characters, got {run_name!r}")
        tag_rows = {
            validate_key("tag", k): stringify("tag", k, v, MAX_TAG_VALUE_LENGTH) for k, v in (tags or {}).items()
        }
        run_id = uuid.uuid4().hex
        started = start_time if start_time is not None else now_ms()
        user = _user_id()

        def work(conn: Connection) -> str:
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
            return artifact_uri

        artifact_uri = write_transaction(self.engine, work)
        with self._lock:
            self._writable.add(run_id)
            self._known_params[run_id] = {}
        info = RunInfo(run_id, str(pk), name, RunStatus.RUNNING, started, None, artifact_uri,
                       LifecycleStage.ACTIVE, parent_run_id, user)
        return Run(info, RunData(tags=dict(tag_rows)))

    def get_run(self, run_id: str) -> Run:
        self.flush()
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
        """Set a run's status. Ending it (any status but RUNNING) flushes its pending writes first,
        in the same transaction; setting RUNNING reopens a finished run for more writes."""
        status = _status(status)
        with self._lock:
            batch = self._pending.split_off({run_id})

        def work(conn: Connection) -> RunInfo:
            row = self._require_run_row(conn, run_id)
            if row.lifecycle_stage != LifecycleStage.ACTIVE.value:
                raise InvalidState(f"run {run_id} is deleted; restore it before changing its status")
            self._write_batch(conn, batch)
            ended = None if status is RunStatus.RUNNING else (end_time or now_ms())
            conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(status=status.value, end_time=ended))
            return dataclasses.replace(_run_info(row), status=status, end_time=ended)

        info = write_transaction(self.engine, work)
        with self._lock:
            if status is RunStatus.RUNNING:
                self._writable.add(run_id)
            else:
                self._writable.discard(run_id)
        if status is not RunStatus.RUNNING:
            self._checkpoint_soon()
        return info

    def _checkpoint_soon(self) -> None:
        """Fold the SQLite log into the .db file within CHECKPOINT_DELAY_SECONDS, so that a run
        that ended is in the file for whoever copies it, even while this process goes on.

        Deferred rather than done at once: a checkpoint syncs the file to disk, which at every
        run end would double the cost of a loop of short runs; one per delay covers them all.
        """
        if self.location.dialect != "sqlite":
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

    def _set_run_stage(self, run_id: str, stage: LifecycleStage) -> None:
        self.flush()

        def work(conn: Connection) -> None:
            self._require_run_row(conn, run_id)
            conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(lifecycle_stage=stage.value))

        write_transaction(self.engine, work)
        with self._lock:
            self._writable.discard(run_id)

    def delete_run(self, run_id: str) -> None:
        self._set_run_stage(run_id, LifecycleStage.DELETED)

    def restore_run(self, run_id: str) -> None:
        self._set_run_stage(run_id, LifecycleStage.ACTIVE)

    # ---- logging -----------------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Iterable[Metric] = (),
        params: Iterable[Param] = (),
        tags: Iterable[RunTag] = (),
    ) -> None:
        """Check every value, then queue them all; nothing is queued if any is invalid."""
        self._raise_background_error()
        metric_rows = []
        for m in metrics:
            key = validate_key("metric", m.key)
            value = validate_metric_value(key, m.value)
            nan = is_nan(value)
            metric_rows.append(
                MetricRow(run_id, key, None if nan else value, nan, validate_step(key, m.step),
                          validate_timestamp(key, m.timestamp))
            )
        param_items = [
            (validate_key("param", p.key), stringify("param", p.key, p.value, MAX_PARAM_VALUE_LENGTH)) for p in params
        ]
        tag_items = [(validate_key("tag", g.key), stringify("tag", g.key, g.value, MAX_TAG_VALUE_LENGTH)) for g in tags]
        with self._lock:
            self._require_writable(run_id)
            if param_items:
                known = self._params_of(run_id)
                batch: dict[str, str] = {}
                for key, value in param_items:
                    previous = batch.get(key, known.get(key))
                    if previous is not None and previous != value:
                        raise InvalidArgument(
                            f"param {key!r} of run {run_id} is already {previous!r}; params cannot change "
                            f"(tried {value!r}). Log it under another key, or start a new run"
                        )
                    batch[key] = value
                known.update(batch)
                for key, value in batch.items():
                    self._pending.params[(run_id, key)] = value
            self._pending.metrics.extend(metric_rows)
            for key, value in tag_items:
                self._pending.tags[(run_id, key)] = value
            self._pending.touch()
            full = len(self._pending) >= FLUSH_MAX_ITEMS
        if full:
            self.flush()
        else:
            self._ensure_flusher()

    def check_writable(self, run_id: str) -> None:
        """Raise unless the run exists, is not deleted, and is RUNNING."""
        with self._lock:
            self._require_writable(run_id)

    def _require_writable(self, run_id: str) -> None:
        if run_id in self._writable:
            return
        with self.engine.connect() as conn:
            row = self._require_run_row(conn, run_id)
        if row.lifecycle_stage != LifecycleStage.ACTIVE.value:
            raise InvalidState(f"run {run_id} is deleted: restore it before logging to it")
        if row.status != RunStatus.RUNNING.value:
            raise InvalidState(
                f"run {run_id} is {row.status}: only RUNNING runs accept writes "
                "(reopen it with start_run(run_id=...))"
            )
        self._writable.add(run_id)

    def _params_of(self, run_id: str) -> dict[str, str]:
        if run_id not in self._known_params:
            with self.engine.connect() as conn:
                rows = conn.execute(select(t.params.c.key, t.params.c.value).where(t.params.c.run_id == run_id))
                self._known_params[run_id] = {r.key: r.value for r in rows}
        return self._known_params[run_id]

    def flush(self) -> None:
        """Write every queued value now, in one transaction."""
        self._raise_background_error()
        with self._flush_lock:
            with self._lock:
                if not len(self._pending):
                    return
                batch, self._pending = self._pending, PendingWrites()
            try:
                write_transaction(self.engine, lambda conn: self._write_batch(conn, batch))
            except BaseException:
                with self._lock:  # keep the values so a later flush can still write them
                    self._pending.metrics[:0] = batch.metrics
                    self._pending.params = {**batch.params, **self._pending.params}
                    self._pending.tags = {**batch.tags, **self._pending.tags}
                    self._pending.touch()
                raise

    def _write_batch(self, conn: Connection, batch: PendingWrites) -> None:
        if not len(batch):
            return
        run_ids = batch.run_ids()
        states = {
            r.run_id: r for r in conn.execute(
                select(t.runs.c.run_id, t.runs.c.status, t.runs.c.lifecycle_stage).where(t.runs.c.run_id.in_(run_ids))
            )
        }
        for run_id in run_ids:
            row = states.get(run_id)
            if row is None or row.lifecycle_stage != "active" or row.status != RunStatus.RUNNING.value:
                state = "missing" if row is None else f"{row.lifecycle_stage}, {row.status}"
                raise InvalidState(f"run {run_id} stopped accepting writes before they were flushed ({state})")
        if batch.params:
            self._check_param_conflicts(conn, batch.params)
            _upsert(conn, t.params, [{"run_id": r, "key": k, "value": v} for (r, k), v in batch.params.items()],
                    ["run_id", "key"], None)
        if batch.tags:
            _upsert(conn, t.tags, [{"run_id": r, "key": k, "value": v} for (r, k), v in batch.tags.items()],
                    ["run_id", "key"], ["value"])
        if batch.metrics:
            rows = [row._asdict() for row in batch.metrics]
            conn.execute(insert(t.metric_history), rows)
            latest: dict[tuple[str, str], MetricRow] = {}
            for row in batch.metrics:
                current = latest.get((row.run_id, row.key))
                if current is None or (row.step, row.timestamp) >= (current.step, current.timestamp):
                    latest[(row.run_id, row.key)] = row
            _upsert_latest(conn, [row._asdict() for row in latest.values()])

    def _check_param_conflicts(self, conn: Connection, params: dict[tuple[str, str], str]) -> None:
        keys = {k for _, k in params}
        runs = {r for r, _ in params}
        query = select(t.params).where(t.params.c.run_id.in_(runs), t.params.c.key.in_(keys))
        for row in conn.execute(query):
            new = params.get((row.run_id, row.key))
            if new is not None and new != row.value:
                raise InvalidArgument(
                    f"param {row.key!r} of run {row.run_id} is already {row.value!r}; params cannot change "
                    f"(tried {new!r})"
                )

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        self.flush()
        mh = t.metric_history.c
        with self.engine.connect() as conn:
            self._require_run_row(conn, run_id)
            rows = conn.execute(
                select(mh.key, mh.value, mh.is_nan, mh.timestamp, mh.step)
                .where(mh.run_id == run_id, mh.key == key)
                .order_by(mh.step, mh.timestamp, mh.id)
            ).all()
        return [Metric(r.key, float("nan") if r.is_nan else r.value, r.timestamp, r.step) for r in rows]

    def delete_tag(self, run_id: str, key: str) -> None:
        self.flush()

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
        """Runs of the given experiments that match ``filter_string``, one page at a time.

        Returns the page and a token for the next one (None after the last page).
        """
        if not isinstance(max_results, int) or not 0 < max_results <= SEARCH_MAX_RESULTS:
            raise InvalidArgument(f"max_results must be an integer from 1 to {SEARCH_MAX_RESULTS}, got {max_results!r}")
        expression = parse_filter(filter_string)
        orders = parse_order_by(order_by)
        offset = _decode_page_token(page_token)
        self.flush()
        condition = and_(
            t.runs.c.experiment_id.in_([_experiment_pk(e) for e in experiment_ids]),
            _lifecycle_condition(t.runs.c.lifecycle_stage, ViewType(view_type)),
        )
        if expression is not None:
            condition = and_(condition, compile_filter(expression))
        query, sort = order_clauses(select(t.runs).where(condition), orders)
        query = query.order_by(*sort).limit(max_results + 1).offset(offset)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            more = len(rows) > max_results
            runs = self._load_runs(conn, rows[:max_results])
        return runs, _encode_page_token(offset + max_results) if more else None

    # ---- flushing in the background ----------------------------------------------------------

    def _ensure_flusher(self) -> None:
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(target=self._flush_loop, name="evalkit-flush", daemon=True)
            self._flusher.start()
        self._wake.set()

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if not len(self._pending):
                        break
                    wait = FLUSH_MAX_AGE_SECONDS - self._pending.age()
                if wait > 0:
                    time.sleep(wait)
                    continue
                try:
                    self.flush()
                except BaseException as exc:  # raised again from the next call in the caller's thread
                    self._background_error = exc
                    break

    def _raise_background_error(self) -> None:
        error, self._background_error = self._background_error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Flush, copy the SQLite write-ahead log into the database file, then release the
        database connections."""
        try:
            self.flush()
        finally:
            with self._lock:
                self._closed = True
                if self._checkpoint_timer is not None:
                    self._checkpoint_timer.cancel()
                    self._checkpoint_timer = None
            try:
                checkpoint_wal(self.engine)
            finally:
                self.engine.dispose()
                _live_stores.discard(self)


def _user_id() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers; the field is optional
        return None


def _status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(status.upper() if isinstance(status, str) else status)
    except ValueError:
        raise InvalidArgument(
            f"unknown run status {status!r}: use one of {', '.join(s.value for s in RunStatus)}"
        ) from None


def _check_experiment_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"experiment name must be a non-empty string, got {name!r}")


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


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise InvalidArgument(f"invalid page token {token!r}")


_live_stores: "weakref.WeakSet[SqlStore]" = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    # Closing checkpoints the WAL: after any evalkit process (a script, the CLI) the .db file
    # alone holds everything it committed.
    for store in list(_live_stores):
        try:
            store.close()
        except Exception as exc:  # noqa: BLE001 - at exit, say what was lost and carry on with the others
            print(f"evalkit: could not flush logged values to {store.location.display_uri}: {exc}", file=sys.stderr)
