"""The fluent API: ``import evalkit as ek; with ek.start_run(): ek.log_metric(...)``.

It keeps the active experiment and a stack of active runs in context variables: asyncio tasks,
``asyncio.to_thread`` workers (a model function evaluate() runs) and notebook event loops see the
run their caller started, while separate threads started on their own do not log into each
other's runs. Everything else goes through ``TrackingClient``.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any

from evalkit.entities import Experiment, Metric, Param, Run, RunStatus, RunTag, ViewType
from evalkit.errors import (
    AlreadyExists,
    EvaluationFailed,
    InvalidArgument,
    InvalidState,
    NotFound,
)
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.clock import now_ms
from evalkit.tracking.store import SEARCH_MAX_RESULTS
from evalkit.tracking.stores import get_tracking_uri

if TYPE_CHECKING:
    import pandas as pd  # loaded by the methods that read or write tables, not by `import evalkit`

EXPERIMENT_NAME_ENV = "EVALKIT_EXPERIMENT_NAME"

# (tracking URI, experiment id) of set_experiment(); and the active runs, innermost last. Tuples,
# never mutated: a context that sets one does not change what its parent context sees.
_active_experiment: ContextVar[tuple[str, str] | None] = ContextVar("evalkit_active_experiment", default=None)
_active_runs: ContextVar[tuple[ActiveRun, ...]] = ContextVar("evalkit_active_runs", default=())


class ActiveRun(Run):
    """The run ``start_run`` returned. As a context manager it ends the run on exit: FINISHED,
    FAILED if an exception escaped, KILLED on Ctrl-C."""

    def __init__(self, run: Run) -> None:
        super().__init__(run.info, run.data)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        reason = None
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status, reason = RunStatus.KILLED, "interrupted (Ctrl-C)"
        else:
            status = RunStatus.FAILED
            reason = exc.reason if isinstance(exc, EvaluationFailed) else f"{exc_type.__name__}: {exc}"
        if any(run.info.run_id == self.info.run_id for run in _run_stack()):
            _end(self.info.run_id, status, reason)


def _run_stack() -> tuple[ActiveRun, ...]:
    return _active_runs.get()


def _push(run: ActiveRun) -> None:
    _active_runs.set((*_active_runs.get(), run))


def _pop() -> ActiveRun:
    *rest, top = _active_runs.get()
    _active_runs.set(tuple(rest))
    return top


def _client() -> TrackingClient:
    return TrackingClient(get_tracking_uri())


# ---- experiments ---------------------------------------------------------------------------


def set_experiment(experiment_name: str | None = None, experiment_id: str | None = None) -> Experiment:
    """Make an experiment the active one, creating it (by name) if it does not exist yet."""
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidArgument("set_experiment takes exactly one of experiment_name or experiment_id")
    client = _client()
    if experiment_id is not None:
        experiment = client.get_experiment(experiment_id)
        _require_active(experiment)
    else:
        experiment = experiment_named(client, experiment_name)  # type: ignore[arg-type]
    _active_experiment.set((client.tracking_uri, experiment.experiment_id))
    return experiment


def experiment_named(client: TrackingClient, name: str) -> Experiment:
    """The active experiment called ``name``, created if it does not exist; the active experiment
    of this context is left as it is."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment = client.get_experiment(client.create_experiment(name))
        except AlreadyExists:  # another process created it in between
            experiment = client.get_experiment_by_name(name)
    _require_active(experiment)
    return experiment  # type: ignore[return-value]


def _require_active(experiment: Experiment) -> None:
    if experiment.lifecycle_stage.value != "active":
        raise InvalidState(f"experiment {experiment.name!r} is deleted; restore it or pick another name")


def active_experiment_id(client: TrackingClient) -> str:
    """The experiment new runs go to: set_experiment's, else $EVALKIT_EXPERIMENT_NAME, else "Default"."""
    active = _active_experiment.get()
    if active is not None and active[0] == client.tracking_uri:
        return active[1]
    name = os.environ.get(EXPERIMENT_NAME_ENV)
    if name:
        return set_experiment(name).experiment_id
    return client.get_or_create_default_experiment()


def create_experiment(name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None) -> str:
    """Create an experiment and return its id."""
    return _client().create_experiment(name, artifact_location, tags)


def get_experiment(experiment_id: str) -> Experiment:
    return _client().get_experiment(experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    """The experiment called ``name``, or None."""
    return _client().get_experiment_by_name(name)


def search_experiments(view_type: ViewType | str = ViewType.ACTIVE_ONLY, name_like: str | None = None) -> list[Experiment]:
    return _client().search_experiments(view_type, name_like)


def delete_experiment(experiment_id: str) -> None:
    _client().delete_experiment(experiment_id)


# ---- runs ----------------------------------------------------------------------------------


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    tags: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
) -> ActiveRun:
    """Start a run (or reopen ``run_id``) and make it the active one.

    Use it as a context manager so the run ends FINISHED, or FAILED if an exception escapes.
    With ``nested=True`` the new run becomes a child of the active run.
    """
    stack = _run_stack()
    if stack and not nested:
        raise InvalidState(
            f"run {stack[-1].info.run_id} is already active: end it with end_run() or pass nested=True"
        )
    client = _client()
    if run_id is not None:
        if any(active.info.run_id == run_id for active in stack):
            raise InvalidState(f"run {run_id} is already active")
        existing = client.get_run(run_id)
        if existing.info.lifecycle_stage.value != "active":
            raise InvalidState(f"run {run_id} is deleted; restore it before reopening it")
        client.update_run(run_id, RunStatus.RUNNING)
        if tags:
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        run = client.get_run(run_id)
    else:
        parent = parent_run_id or (stack[-1].info.run_id if stack and nested else None)
        experiment = experiment_id or (
            client.get_run(parent).info.experiment_id if parent else active_experiment_id(client)
        )
        run = client.create_run(experiment, run_name=run_name, tags=tags, parent_run_id=parent)
    active = ActiveRun(run)
    _push(active)
    return active


def active_run() -> ActiveRun | None:
    """The innermost active run of this thread, or None."""
    stack = _run_stack()
    return stack[-1] if stack else None


def end_run(status: RunStatus | str = RunStatus.FINISHED, reason: str | None = None) -> None:
    """End the active run (FINISHED by default); a no-op when no run is active. ``reason`` says
    why a FAILED or KILLED run ended, and is stored on it."""
    stack = _run_stack()
    if stack:
        _end(stack[-1].info.run_id, RunStatus(status.upper() if isinstance(status, str) else status), reason)


def _end(run_id: str, status: RunStatus, reason: str | None = None) -> None:
    # Ending a parent also ends the children still open above it.
    while _run_stack():
        top = _pop()
        _client().set_terminated(top.info.run_id, status, reason=reason)
        if top.info.run_id == run_id:
            break


def _current_run_id() -> str:
    """The active run, started on demand like MLflow does when logging with no run."""
    run = active_run() or start_run()
    return run.info.run_id


def get_run(run_id: str) -> Run:
    """A run's info and data: ``run.data.metrics``, ``run.data.params``, ``run.data.tags``."""
    return _client().get_run(run_id)


def delete_run(run_id: str) -> None:
    _client().delete_run(run_id)


def restore_run(run_id: str) -> None:
    _client().restore_run(run_id)


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    return _client().get_metric_history(run_id, key)


# ---- logging to the active run -------------------------------------------------------------


def log_param(key: str, value: Any) -> Any:
    """Log a param of the active run; params cannot change once logged."""
    _client().log_param(_current_run_id(), key, value)
    return value


def log_params(params: dict[str, Any]) -> None:
    _client().log_batch(_current_run_id(), params=[Param(k, v) for k, v in params.items()])


def log_metric(key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
    """Add a value to a metric of the active run. Buffered: a loop of calls is cheap."""
    _client().log_metric(_current_run_id(), key, value, step or 0, timestamp)


def log_metrics(metrics: dict[str, float], step: int | None = None, timestamp: int | None = None) -> None:
    ts = now_ms() if timestamp is None else timestamp
    _client().log_batch(_current_run_id(), metrics=[Metric(k, v, ts, step or 0) for k, v in metrics.items()])


def set_tag(key: str, value: Any) -> None:
    _client().set_tag(_current_run_id(), key, value)


def set_tags(tags: dict[str, Any]) -> None:
    _client().log_batch(_current_run_id(), tags=[RunTag(k, v) for k, v in tags.items()])


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    _client().log_artifact(_current_run_id(), local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    _client().log_artifacts(_current_run_id(), local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    _client().log_text(_current_run_id(), text, artifact_file)


def log_dict(dictionary: dict[str, Any], artifact_file: str) -> None:
    _client().log_dict(_current_run_id(), dictionary, artifact_file)


def log_figure(figure: Any, artifact_file: str) -> None:
    _client().log_figure(_current_run_id(), figure, artifact_file)


def log_table(data: pd.DataFrame | dict[str, Any], artifact_file: str) -> None:
    _client().log_table(_current_run_id(), data, artifact_file)


def flush() -> None:
    """Write every buffered value of the current store now."""
    _client().flush()


# ---- search ----------------------------------------------------------------------------------


def search_runs(
    experiment_ids: Sequence[str] | str | None = None,
    filter_string: str | None = None,
    run_view_type: ViewType | str = ViewType.ACTIVE_ONLY,
    max_results: int = 100_000,
    order_by: Sequence[str] | str | None = None,
    output_format: str = "pandas",
    experiment_names: Sequence[str] | str | None = None,
) -> pd.DataFrame | list[Run]:
    """Find runs; by default a DataFrame with run_id, experiment_id, status, artifact_uri,
    start_time, end_time, run_name, then ``metrics.<k>``, ``params.<k>`` and ``tags.<k>`` columns.

    Search the active experiment unless ``experiment_ids`` or ``experiment_names`` say otherwise.
    """
    client = _client()
    ids = resolve_experiment_ids(client, experiment_ids, experiment_names)
    if output_format not in ("pandas", "list"):
        raise InvalidArgument(f"output_format must be 'pandas' or 'list', got {output_format!r}")
    if not isinstance(max_results, int) or max_results <= 0:
        raise InvalidArgument(f"max_results must be a positive integer, got {max_results!r}")
    runs: list[Run] = []
    token = None
    while len(runs) < max_results:
        page, token = client.search_runs(
            ids, filter_string, run_view_type, min(max_results - len(runs), SEARCH_MAX_RESULTS), order_by, token
        )
        runs.extend(page)
        if token is None:
            break
    return runs_to_frame(runs) if output_format == "pandas" else runs


def resolve_experiment_ids(
    client: TrackingClient, experiment_ids: Sequence[str] | str | None, experiment_names: Sequence[str] | str | None
) -> list[str]:
    ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids or [])
    names = [experiment_names] if isinstance(experiment_names, str) else list(experiment_names or [])
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise NotFound(f"no experiment named {name!r}")
        ids.append(experiment.experiment_id)
    return ids or [active_experiment_id(client)]


_BASE_COLUMNS = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time", "run_name"]


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """The search_runs DataFrame for a list of runs (times as UTC timestamps)."""
    import pandas as pd

    records = []
    for run in runs:
        record: dict[str, Any] = {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "status": run.info.status.value,
            "artifact_uri": run.info.artifact_uri,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
            "run_name": run.info.run_name,
        }
        record.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        record.update({f"params.{k}": v for k, v in run.data.params.items()})
        record.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=None if records else _BASE_COLUMNS)
    extra = sorted(set(frame.columns) - set(_BASE_COLUMNS), key=lambda c: ({"metrics": 0, "params": 1, "tags": 2}[c.split(".", 1)[0]], c))
    frame = frame[_BASE_COLUMNS + extra]
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame


@atexit.register
def _end_runs_at_exit() -> None:
    # Like MLflow: a script that never ended its run leaves it FINISHED, with its values flushed.
    while _run_stack():
        try:
            end_run()
        except Exception as exc:  # noqa: BLE001 - the interpreter is going away; end what can be ended
            run = _pop()
            print(f"evalkit: could not end run {run.info.run_id} at exit: {exc}", file=sys.stderr)
