"""A trivial in-memory ``TrackingStore`` (a test double): it keeps the contract's rules that the
buffering tests rely on, counts every call, and can be told to fail or to block in ``log_batch``."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

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
from evalkit.errors import AlreadyExists, InvalidArgument, NotFound
from evalkit.tracking.clock import now_ms
from evalkit.tracking.store import (
    RunStats,
    TrackingStore,
    check_key_search,
    require_writable,
)
from evalkit.tracking.validation import (
    checked_metric,
    checked_param,
    checked_tag,
    param_change_error,
)


class MemoryStore(TrackingStore):
    opened: dict[str, MemoryStore] = {}  # by URI, for stores opened through the entry-point registry

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []  # (method, run id) of every call about a run, in order
        self.batches: list[tuple[str, list[Metric], list[Param], list[RunTag]]] = []
        self.fail_next_log_batch: BaseException | None = None
        self.block_log_batch: threading.Event | None = None  # log_batch waits for it when set
        self.log_batch_entered = threading.Event()
        self.closed = False
        self.experiments: dict[str, Experiment] = {}
        self.runs: dict[str, Run] = {}
        self.history: dict[tuple[str, str], list[Metric]] = {}

    @classmethod
    def from_uri(cls, uri: str) -> MemoryStore:
        store = cls.opened[uri] = cls()
        return store

    @property
    def display_uri(self) -> str:
        return "memory:"

    def _called(self, name: str, run_id: str | None = None) -> None:
        self.calls[name] += 1
        if run_id is not None:
            self.log.append((name, run_id))

    # ---- experiments -------------------------------------------------------------------------

    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: dict[str, Any] | None = None) -> str:
        self._called("create_experiment")
        if self.get_experiment_by_name(name) is not None:
            raise AlreadyExists(f"an experiment named {name!r} already exists")
        experiment_id = str(len(self.experiments) + 1)
        self.experiments[experiment_id] = Experiment(
            experiment_id, name, artifact_location or f"/tmp/{experiment_id}", LifecycleStage.ACTIVE,
            now_ms(), now_ms(), {k: str(v) for k, v in (tags or {}).items()},
        )
        return experiment_id

    def get_experiment(self, experiment_id: str) -> Experiment:
        self._called("get_experiment")
        if experiment_id not in self.experiments:
            raise NotFound(f"no experiment with id {experiment_id!r}")
        return self.experiments[experiment_id]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return next((e for e in self.experiments.values() if e.name == name), None)

    def search_experiments(self, view_type: ViewType = ViewType.ACTIVE_ONLY, name_like: str | None = None,
                           max_results: int = 1000) -> list[Experiment]:
        return list(self.experiments.values())[:max_results]

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self.get_experiment(experiment_id).tags[key] = str(value)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.get_experiment(experiment_id).name = new_name

    def delete_experiment(self, experiment_id: str) -> None:
        self.get_experiment(experiment_id).lifecycle_stage = LifecycleStage.DELETED

    def restore_experiment(self, experiment_id: str) -> None:
        self.get_experiment(experiment_id).lifecycle_stage = LifecycleStage.ACTIVE

    # ---- runs --------------------------------------------------------------------------------

    def create_run(self, experiment_id: str, run_name: str | None = None, tags: dict[str, Any] | None = None,
                   parent_run_id: str | None = None, start_time: int | None = None) -> Run:
        self.get_experiment(experiment_id)
        run_id = uuid.uuid4().hex
        self._called("create_run", run_id)
        info = RunInfo(run_id, experiment_id, run_name or "run", RunStatus.RUNNING, start_time or now_ms(), None,
                       f"/tmp/{run_id}", LifecycleStage.ACTIVE, parent_run_id)
        self.runs[run_id] = Run(info, RunData(tags={k: str(v) for k, v in (tags or {}).items()}))
        return self._copy(self.runs[run_id])

    def _run(self, run_id: str) -> Run:
        if run_id not in self.runs:
            raise NotFound(f"no run with id {run_id!r}")
        return self.runs[run_id]

    @staticmethod
    def _copy(run: Run) -> Run:
        data = RunData(dict(run.data.metrics), dict(run.data.params), dict(run.data.tags))
        return Run(RunInfo(**vars(run.info)), data)

    def get_run(self, run_id: str) -> Run:
        self._called("get_run", run_id)
        return self._copy(self._run(run_id))

    def update_run(self, run_id: str, status: RunStatus | str, end_time: int | None = None) -> RunInfo:
        self._called("update_run", run_id)
        info = self._run(run_id).info
        info.status = RunStatus(status)
        info.end_time = None if info.status is RunStatus.RUNNING else (end_time or now_ms())
        return RunInfo(**vars(info))

    def delete_run(self, run_id: str) -> None:
        self._called("delete_run", run_id)
        self._run(run_id).info.lifecycle_stage = LifecycleStage.DELETED

    def restore_run(self, run_id: str) -> None:
        self._run(run_id).info.lifecycle_stage = LifecycleStage.ACTIVE

    # ---- logging -----------------------------------------------------------------------------

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
                  tags: Sequence[RunTag] = ()) -> None:
        self._called("log_batch", run_id)
        self.log_batch_entered.set()
        if self.block_log_batch is not None:
            self.block_log_batch.wait(10)
        if self.fail_next_log_batch is not None:
            error, self.fail_next_log_batch = self.fail_next_log_batch, None
            raise error
        run = self._run(run_id)
        require_writable(run.info)
        metrics, params, tags = [checked_metric(m) for m in metrics], [checked_param(p) for p in params], \
            [checked_tag(t) for t in tags]
        for param in params:
            previous = run.data.params.get(param.key)
            if previous is not None and previous != param.value:
                raise param_change_error(run_id, param.key, previous, param.value)
        self.batches.append((run_id, metrics, params, tags))
        for param in params:
            run.data.params[param.key] = param.value
        for tag in tags:
            run.data.tags[tag.key] = tag.value
        for metric in metrics:
            self.history.setdefault((run_id, metric.key), []).append(metric)
            run.data.metrics[metric.key] = metric.value

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        self._called("get_metric_history", run_id)
        self._run(run_id)
        return list(self.history.get((run_id, key), []))

    def get_metric_histories(self, run_ids: Sequence[str], key: str) -> dict[str, list[Metric]]:
        return {run_id: list(self.history.get((run_id, key), [])) for run_id in run_ids}

    def delete_tag(self, run_id: str, key: str) -> None:
        self._run(run_id).data.tags.pop(key)

    def search_runs(self, experiment_ids: Sequence[str], filter_string: str | None = None,
                    view_type: ViewType = ViewType.ACTIVE_ONLY, max_results: int = 1000,
                    order_by: Sequence[str] | str | None = None,
                    page_token: str | None = None) -> tuple[list[Run], str | None]:
        self._called("search_runs", "*")
        if filter_string or order_by:
            raise InvalidArgument("the memory store neither filters nor sorts")
        runs = [self._copy(r) for r in self.runs.values() if r.info.experiment_id in experiment_ids]
        offset = int(page_token or 0)
        more = len(runs) > offset + max_results
        return runs[offset:offset + max_results], str(offset + max_results) if more else None

    def _visible(self, experiment_ids: Sequence[str], view_type: ViewType) -> list[Run]:
        stages = {ViewType.ACTIVE_ONLY: {LifecycleStage.ACTIVE}, ViewType.DELETED_ONLY: {LifecycleStage.DELETED}}.get(
            ViewType(view_type), {LifecycleStage.ACTIVE, LifecycleStage.DELETED})
        return [r for r in self.runs.values() if r.info.experiment_id in experiment_ids and r.info.lifecycle_stage in stages]

    def count_runs(self, experiment_ids: Sequence[str], filter_string: str | None = None,
                   view_type: ViewType = ViewType.ACTIVE_ONLY) -> int:
        if filter_string:
            raise InvalidArgument("the memory store does not filter")
        return len(self._visible(experiment_ids, view_type))

    def run_stats(self, experiment_ids: Sequence[str], view_type: ViewType = ViewType.ACTIVE_ONLY) -> dict[str, RunStats]:
        stats = {}
        for experiment_id in experiment_ids:
            runs = self._visible([experiment_id], view_type)
            last = max((r.info.end_time or r.info.start_time for r in runs), default=None)
            stats[experiment_id] = RunStats(len(runs), last)
        return stats

    def search_keys(self, experiment_ids: Sequence[str], entity: str, contains: str | None = None,
                    max_results: int = 200) -> list[str]:
        check_key_search(entity, max_results)
        keys = set()
        for run in self._visible(experiment_ids, ViewType.ACTIVE_ONLY):
            keys.update(getattr(run.data, entity + "s"))
        return sorted(k for k in keys if not contains or contains.lower() in k.lower())[:max_results]

    def close(self) -> None:
        self.closed = True
