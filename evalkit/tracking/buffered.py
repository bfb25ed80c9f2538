"""``BufferedStore``: write batching around any ``TrackingStore``.

Buffering is what makes a loop of ``log_metric`` calls fast: values are checked when logged (so a
bad value fails at the caller's line), queued, and written through the wrapped store's
``log_batch`` in batches: when ``max_items`` values are waiting, when the oldest is ``max_age``
seconds old (a background thread), before any read of run data, when a run ends (that run's values,
then the end), and when the process exits. A process killed with SIGKILL loses at most the last
``max_age`` seconds of values.

Params stay immutable inside the buffer: a second value for a key is refused when it is logged,
not at the flush. An error of a background flush is raised again from the next call, and the
values it could not write stay queued for the next flush. A run ends with one call to the wrapped
store, ``log_batch_and_update_run`` (one transaction in the SQL store); if that fails, the run's
queued values are dropped and the error says why, so they are never written twice.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.entities import (
    Experiment,
    Metric,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from evalkit.tracking.store import (
    HISTORY_PAGE_MAX,
    REGISTRY_OPERATIONS,
    RunStats,
    TrackingStore,
    run_status,
)
from evalkit.tracking.validation import (
    checked_metric,
    checked_param,
    checked_tag,
    param_change_error,
)

FLUSH_MAX_ITEMS = 1000
FLUSH_MAX_AGE_SECONDS = 1.0


@dataclass
class RunWrites:
    """One run's queued values: metrics in logging order, the last value of each tag."""

    metrics: list[Metric] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)

    def put_back(self, newer: RunWrites) -> None:
        """Merge values queued after this batch was taken: they come after it (newer tags win)."""
        self.metrics.extend(newer.metrics)
        self.params.update(newer.params)
        self.tags.update(newer.tags)


@dataclass
class PendingWrites:
    """Every run's queued values, and when the oldest was queued."""

    runs: dict[str, RunWrites] = field(default_factory=dict)
    count: int = 0
    first_added: float | None = None

    def __len__(self) -> int:
        return self.count

    def of(self, run_id: str) -> RunWrites:
        writes = self.runs.get(run_id)
        if writes is None:
            writes = self.runs[run_id] = RunWrites()
        if self.first_added is None:
            self.first_added = time.monotonic()
        return writes

    def age(self) -> float:
        return 0.0 if self.first_added is None else time.monotonic() - self.first_added

    def take(self, run_id: str) -> RunWrites | None:
        """Remove and return one run's values."""
        writes = self.runs.pop(run_id, None)
        if writes is not None:
            self.count -= len(writes)
        if not self.runs:
            self.first_added = None
        return writes

    def put_back(self, run_id: str, writes: RunWrites) -> None:
        """Queue again values a flush could not write, ahead of any queued since."""
        newer = self.runs.pop(run_id, None)
        if newer is not None:
            self.count -= len(newer)
            writes.put_back(newer)
        self.runs = {run_id: writes, **self.runs}
        self.count += len(writes)
        if self.first_added is None:
            self.first_added = time.monotonic()


class BufferedStore(TrackingStore):
    """Any ``TrackingStore`` with its writes batched; see the module docstring for when it flushes.

    Reads of run data (``get_run``, ``get_metric_history``, ``search_runs``) and run changes
    flush first and wait for a flush under way, so a read sees every value logged before it.
    Thread-safe: one instance is shared by every client of a tracking URI (``get_store``).
    """

    def __init__(
        self, inner: TrackingStore, max_items: int = FLUSH_MAX_ITEMS, max_age: float = FLUSH_MAX_AGE_SECONDS
    ) -> None:
        self.inner = inner
        self.max_items = max_items
        self.max_age = max_age
        self._lock = threading.RLock()
        # Held for a whole flush, so a read's own flush waits for one already under way in
        # another thread (the background flusher) instead of reading before its values land.
        self._flush_lock = threading.Lock()
        self._pending = PendingWrites()
        self._writable: set[str] = set()
        self._known_params: dict[str, dict[str, str]] = {}
        self._wake = threading.Event()
        self._closed = False
        self._flusher: threading.Thread | None = None
        self._background_error: BaseException | None = None
        _live_stores.add(self)

    @property
    def display_uri(self) -> str:
        return self.inner.display_uri

    # ---- experiments: not buffered, passed through ---------------------------------------------

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        self._raise_background_error()
        return self.inner.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        self._raise_background_error()
        return self.inner.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        self._raise_background_error()
        return self.inner.get_experiment_by_name(name)

    def search_experiments(
        self, view_type: ViewType = ViewType.ACTIVE_ONLY, name_like: str | None = None, max_results: int = 1000
    ) -> list[Experiment]:
        self._raise_background_error()
        return self.inner.search_experiments(view_type, name_like, max_results)

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self._raise_background_error()
        self.inner.set_experiment_tag(experiment_id, key, value)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._raise_background_error()
        self.inner.rename_experiment(experiment_id, new_name)

    def delete_experiment(self, experiment_id: str) -> None:
        self._raise_background_error()
        self.inner.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> None:
        self._raise_background_error()
        self.inner.restore_experiment(experiment_id)

    def get_or_create_default_experiment(self) -> str:
        self._raise_background_error()
        return self.inner.get_or_create_default_experiment()

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
        run = self.inner.create_run(experiment_id, run_name, tags, parent_run_id, start_time)
        with self._lock:  # a new run is writable and has no params: no need to ask the store later
            self._writable.add(run.info.run_id)
            self._known_params[run.info.run_id] = dict(run.data.params)
        return run

    def get_run(self, run_id: str) -> Run:
        self.flush()
        return self.inner.get_run(run_id)

    def update_run(self, run_id: str, status: RunStatus | str, end_time: int | None = None) -> RunInfo:
        """Write the run's queued values, then set its status (ending it, or reopening it with
        RUNNING). If this fails the queued values of the run are not kept: the error says why."""
        self._raise_background_error()
        status = run_status(status)  # refused before the run's values are taken from the queue
        with self._flush_lock:  # a background flush holding some of this run's values finishes first
            with self._lock:
                writes = self._pending.take(run_id)
            if writes:
                info = self.inner.log_batch_and_update_run(
                    run_id, status, end_time, writes.metrics, *_params_and_tags(writes)
                )
            else:
                info = self.inner.update_run(run_id, status, end_time)
        with self._lock:
            if info.status is RunStatus.RUNNING:
                self._writable.add(run_id)
            else:
                self._writable.discard(run_id)
        return info

    def delete_run(self, run_id: str) -> None:
        self.flush()
        self.inner.delete_run(run_id)
        with self._lock:
            self._writable.discard(run_id)

    def restore_run(self, run_id: str) -> None:
        self.flush()
        self.inner.restore_run(run_id)

    def check_writable(self, run_id: str) -> None:
        self._raise_background_error()
        with self._lock:
            self._require_writable(run_id)

    # ---- logging -----------------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Check every value, then queue them all; nothing is queued if any is invalid."""
        self._raise_background_error()
        metric_list = [checked_metric(m) for m in metrics]
        param_list = [checked_param(p) for p in params]
        tag_list = [checked_tag(g) for g in tags]
        with self._lock:
            self._require_writable(run_id)
            if not (metric_list or param_list or tag_list):
                return
            if param_list:
                known = self._params_of(run_id)
                batch: dict[str, str] = {}
                for param in param_list:
                    previous = batch.get(param.key, known.get(param.key))
                    if previous is not None and previous != param.value:
                        raise param_change_error(run_id, param.key, previous, param.value)
                    batch[param.key] = param.value
                known.update(batch)
            else:
                batch = {}
            writes = self._pending.of(run_id)
            before = len(writes)
            writes.metrics.extend(metric_list)
            writes.params.update(batch)
            writes.tags.update((tag.key, tag.value) for tag in tag_list)
            self._pending.count += len(writes) - before
            full = self._pending.count >= self.max_items
            if not full:
                self._ensure_flusher()
        if full:
            self.flush()

    def _require_writable(self, run_id: str) -> None:
        if run_id not in self._writable:
            self.inner.check_writable(run_id)
            self._writable.add(run_id)

    def _params_of(self, run_id: str) -> dict[str, str]:
        known = self._known_params.get(run_id)
        if known is None:  # a run this process did not create: its stored params, plus any queued
            queued = self._pending.runs.get(run_id)
            known = {**self.inner.get_run(run_id).data.params, **(queued.params if queued else {})}
            self._known_params[run_id] = known
        return known

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        self.flush()
        return self.inner.get_metric_history(run_id, key)

    def get_metric_history_page(
        self, run_id: str, key: str, max_results: int = HISTORY_PAGE_MAX, page_token: str | None = None
    ) -> tuple[list[Metric], str | None]:
        self.flush()
        return self.inner.get_metric_history_page(run_id, key, max_results, page_token)

    def delete_tag(self, run_id: str, key: str) -> None:
        self.flush()
        self.inner.delete_tag(run_id, key)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | str | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        self.flush()
        return self.inner.search_runs(experiment_ids, filter_string, view_type, max_results, order_by, page_token)

    def get_metric_histories(self, run_ids: Sequence[str], key: str) -> dict[str, list[Metric]]:
        self.flush()
        return self.inner.get_metric_histories(run_ids, key)

    def count_runs(self, experiment_ids: Sequence[str], filter_string: str | None = None,
                   view_type: ViewType = ViewType.ACTIVE_ONLY) -> int:
        self.flush()
        return self.inner.count_runs(experiment_ids, filter_string, view_type)

    def run_stats(self, experiment_ids: Sequence[str], view_type: ViewType = ViewType.ACTIVE_ONLY) -> dict[str, RunStats]:
        self.flush()
        return self.inner.run_stats(experiment_ids, view_type)

    def search_keys(self, experiment_ids: Sequence[str], entity: str, contains: str | None = None,
                    max_results: int = 200) -> list[str]:
        self.flush()
        return self.inner.search_keys(experiment_ids, entity, contains, max_results)

    # ---- flushing ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every queued value now (one ``log_batch`` of the wrapped store per run)."""
        self._raise_background_error()
        self._flush()

    def _flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                if not self._pending.count:
                    return
                batch, self._pending = self._pending, PendingWrites()
            run_ids = list(batch.runs)
            for index, run_id in enumerate(run_ids):
                try:
                    self._write(run_id, batch.runs[run_id])
                except BaseException:
                    with self._lock:  # keep this run's values and the untried ones for a later flush
                        for unwritten in reversed(run_ids[index:]):
                            self._pending.put_back(unwritten, batch.runs[unwritten])
                    raise

    def _write(self, run_id: str, writes: RunWrites) -> None:
        self.inner.log_batch(run_id, writes.metrics, *_params_and_tags(writes))

    def _ensure_flusher(self) -> None:
        """Wake the background flusher, starting it if needed; called with ``_lock`` held."""
        if self._closed:  # used again after close(), as a SQL engine can be: flush as before
            self._closed = False
            _live_stores.add(self)
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, name="evalkit-flush", daemon=True)
            self._flusher.start()
        self._wake.set()

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if self._closed:
                        self._flusher = None
                        return
                    if not self._pending.count:
                        break
                    wait = self.max_age - self._pending.age()
                if wait > 0:
                    time.sleep(wait)
                    continue
                try:
                    self._flush()
                except BaseException as exc:  # raised again from the next call in the caller's thread
                    self._background_error = exc
                    break

    def _raise_background_error(self) -> None:
        error = self._background_error
        if error is not None:
            self._background_error = None
            raise error

    def close(self) -> None:
        """Flush, stop the background flusher, then close the wrapped store."""
        try:
            self.flush()
        finally:
            with self._lock:
                self._closed = True
                self._wake.set()
                _live_stores.discard(self)
            self.inner.close()


def _forward(name: str) -> Any:
    """A registry operation of the wrapped store, after a flush: a promotion reads its evidence
    run, which must hold every value logged before it."""

    def forwarded(self: BufferedStore, *args: Any, **kwargs: Any) -> Any:
        self.flush()
        return getattr(self.inner, name)(*args, **kwargs)

    forwarded.__name__ = name
    forwarded.__doc__ = getattr(TrackingStore, name).__doc__
    return forwarded


for _name in (*REGISTRY_OPERATIONS, "import_runs"):
    setattr(BufferedStore, _name, _forward(_name))


def _params_and_tags(writes: RunWrites) -> tuple[list[Param], list[RunTag]]:
    return [Param(k, v) for k, v in writes.params.items()], [RunTag(k, v) for k, v in writes.tags.items()]


_live_stores: weakref.WeakSet[BufferedStore] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    # Closing lets the store finish its work: a SQLite store checkpoints its write-ahead log, so
    # after any evalkit process (a script, the CLI) the .db file alone holds everything committed.
    for store in list(_live_stores):
        try:
            store._flush()  # not flush(): an earlier background error must not stop this last attempt
        except Exception as exc:  # noqa: BLE001 - at exit, say what was lost and carry on with the others
            print(f"evalkit: could not flush logged values to {store.display_uri}: {exc}", file=sys.stderr)
        try:
            store.inner.close()
        except Exception:  # noqa: BLE001 - the values are committed; only the file's tidying failed
            pass
