"""``TrackingStore``: every operation ``TrackingClient`` needs from a place that keeps runs.

A store holds experiments, runs, params, metrics (with their history) and tags. The SQL store
(SQLite, PostgreSQL) implements it; the REST store that talks to an evalkit server will too.
Stores are chosen by the tracking URI's scheme (``evalkit.tracking.schemes``) and wrapped in a
``BufferedStore``, which batches writes for any of them.

The contract every implementation keeps, so callers behave the same whatever the backend:

- **Validation happens in the store.** Keys, values, lengths, run state and param immutability
  are checked by the store itself with ``evalkit.tracking.validation`` (same rules, same messages), and a
  ``log_batch`` is all-or-nothing: if any value is refused, none is written. A wrapper may check
  earlier (``BufferedStore`` checks when a value is logged), never instead.
- **Errors are evalkit errors**: ``InvalidArgument`` for a bad value, key, status, filter or page
  token; ``NotFound`` for an unknown experiment or run id; ``AlreadyExists`` for a taken
  experiment name; ``InvalidState`` for a write to a deleted experiment or to a run that is not
  RUNNING or is deleted; ``StoreUnavailable`` when the store cannot be reached or opened. Their
  codes map to HTTP statuses (``evalkit.errors``), so a remote store raises the same classes.
- **Ids are strings**; times are integer milliseconds since the epoch (``evalkit.tracking.clock``).
- **Stores do not buffer** unless they say so: after a call returns, the value is stored and
  visible to every reader. ``flush`` exists for those that do, and is a no-op otherwise.

The model registry (registered models, versions, stages, aliases, their history and the evidence
rule) is a section of this interface, so one backend keeps runs and the models registered from
them, and a promotion can check its evidence run in the same transaction. A store without a
registry (a test double) keeps the default methods, which refuse with ``InvalidState``; the ones a
server exposes are listed in ``REGISTRY_OPERATIONS``.
"""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.entities import (
    Experiment,
    LifecycleStage,
    Metric,
    ModelVersion,
    ModelVersionEvent,
    Param,
    RegisteredModel,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    Stage,
    ViewType,
)
from evalkit.errors import AlreadyExists, InvalidArgument, InvalidState

DEFAULT_EXPERIMENT_NAME = "Default"
SEARCH_MAX_RESULTS = 50_000
HISTORY_PAGE_MAX = 25_000  # values of a metric history per page
KEY_ENTITIES = ("param", "metric", "tag")  # what ``search_keys`` lists
HISTORIES_RUNS_MAX = 100  # runs per get_metric_histories call (a comparison chart)


@dataclass(frozen=True)
class RunStats:
    """How many runs an experiment holds (by the view asked for) and when one last started or ended
    (ms since the epoch; None without runs)."""

    run_count: int
    last_activity: int | None


@dataclass
class ImportedRun:
    """A whole run copied from another tool (``TrackingStore.import_runs``): ended or running, with
    all its values. ``creation_tags`` are written with the run itself (an import's id of its
    source), ``tags`` with its last values."""

    run_name: str | None
    status: RunStatus
    start_time: int | None
    end_time: int | None
    deleted: bool = False
    parent_run_id: str | None = None
    creation_tags: dict[str, str] = field(default_factory=dict)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)


IMPORT_METRICS_PER_CALL = 10_000  # metric values per log_batch when import_runs goes run by run


class TrackingStore(ABC):
    """The operations of a tracking store; see the module docstring for the rules all of them keep.

    A store registered under the ``evalkit.tracking_stores`` entry-point group is opened with
    :meth:`from_uri`, after :meth:`normalize_uri` has checked and normalised the URI. Stores are
    shared by every client of the same URI in a process, so they must be thread-safe.
    """

    # ---- opening -----------------------------------------------------------------------------

    @classmethod
    def normalize_uri(cls, uri: str) -> str:
        """The canonical form of ``uri`` (one store is opened per canonical URI), or
        ``InvalidArgument`` saying what is wrong with it. Must not connect to anything."""
        return uri

    @classmethod
    def from_uri(cls, uri: str, create: bool = True) -> TrackingStore:
        """Open the store that the normalised ``uri`` names; ``StoreUnavailable`` if it cannot be
        reached or opened, or if it does not exist yet and ``create`` is False (read-only use).
        Stores registered by URI scheme implement this."""
        raise NotImplementedError(f"{cls.__name__} is not opened from a tracking URI")

    @property
    @abstractmethod
    def display_uri(self) -> str:
        """Where the store is, safe to print: no password or token in it."""

    # ---- experiments -------------------------------------------------------------------------

    @abstractmethod
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        """Create an active experiment and return its id. ``AlreadyExists`` if the name is taken
        (deleted experiments keep their names); ``InvalidArgument`` for an empty name or a bad tag.
        Without ``artifact_location``, the store picks one under its default artifact root."""

    @abstractmethod
    def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment, deleted or not; ``NotFound`` for an unknown id."""

    @abstractmethod
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment called ``name`` (deleted or not), or None."""

    @abstractmethod
    def search_experiments(
        self, view_type: ViewType = ViewType.ACTIVE_ONLY, name_like: str | None = None, max_results: int = 1000
    ) -> list[Experiment]:
        """Experiments by deleted flag, in creation order; ``name_like`` is a case-sensitive SQL
        LIKE pattern (``%`` any text, ``_`` one character)."""

    @abstractmethod
    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        """Set (or replace) a tag of an active experiment; ``InvalidState`` if it is deleted."""

    @abstractmethod
    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Give an experiment a new name; ``AlreadyExists`` if another experiment has it,
        ``InvalidArgument`` for an empty name, ``NotFound`` for an unknown id."""

    @abstractmethod
    def delete_experiment(self, experiment_id: str) -> None:
        """Mark the experiment deleted (kept, hidden from active searches; no new runs)."""

    @abstractmethod
    def restore_experiment(self, experiment_id: str) -> None:
        """Mark a deleted experiment active again."""

    def get_or_create_default_experiment(self) -> str:
        """The id of the experiment called "Default", created if missing (safe if another
        process creates it at the same time)."""
        experiment = self.get_experiment_by_name(DEFAULT_EXPERIMENT_NAME)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.create_experiment(DEFAULT_EXPERIMENT_NAME)
        except AlreadyExists:
            return self.get_experiment_by_name(DEFAULT_EXPERIMENT_NAME).experiment_id  # type: ignore[union-attr]

    # ---- runs --------------------------------------------------------------------------------

    @abstractmethod
    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        tags: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        start_time: int | None = None,
    ) -> Run:
        """Start a RUNNING run in an active experiment and return it (its tags included).

        A made-up name is given when ``run_name`` is None. ``NotFound`` for an unknown experiment
        or parent run, ``InvalidState`` for a deleted experiment, ``InvalidArgument`` for a name
        over 250 characters or a bad tag."""

    @abstractmethod
    def get_run(self, run_id: str) -> Run:
        """The run's info, params, tags and latest metric values; ``NotFound`` for an unknown id."""

    @abstractmethod
    def update_run(self, run_id: str, status: RunStatus | str, end_time: int | None = None) -> RunInfo:
        """Set a run's status and return its new info. Any status but RUNNING ends the run (its
        end time is ``end_time`` or now) and it stops accepting writes; RUNNING reopens it.
        ``InvalidArgument`` for an unknown status, ``InvalidState`` if the run is deleted."""

    def log_batch_and_update_run(
        self,
        run_id: str,
        status: RunStatus | str,
        end_time: int | None = None,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> RunInfo:
        """``log_batch`` then ``update_run``: how a buffered run ends (its last values, then its
        status). Stores that can do both in one transaction override this (the SQL store does, so
        ending a run costs one commit, not two, and a refused value leaves the run RUNNING)."""
        self.log_batch(run_id, metrics, params, tags)
        return self.update_run(run_id, status, end_time)

    @abstractmethod
    def delete_run(self, run_id: str) -> None:
        """Mark the run deleted: searches skip it unless asked for deleted runs, and it refuses writes."""

    @abstractmethod
    def restore_run(self, run_id: str) -> None:
        """Mark a deleted run active again."""

    def check_writable(self, run_id: str) -> None:
        """Return if the run accepts writes; else ``NotFound`` (unknown run) or ``InvalidState``
        (deleted, or not RUNNING), with the message a refused write gives."""
        require_writable(self.get_run(run_id).info)

    def import_runs(self, experiment_id: str, runs: Sequence[ImportedRun]) -> list[str]:
        """Create ``runs`` whole in an active experiment and return their new ids, in order.

        Each run's values are checked like ``log_batch``'s. This default goes run by run (created
        with its ``creation_tags``, then its metrics, then its last values and status in one call),
        so an interruption leaves at most one run without its last values; the SQL store overrides
        it to write every run of the call in one transaction (all of them or none)."""
        created = []
        for run in runs:
            run_id = self.create_run(experiment_id, run.run_name, run.creation_tags, run.parent_run_id,
                                     run.start_time).info.run_id
            metrics = run.metrics
            last = len(metrics) - (len(metrics) - 1) % IMPORT_METRICS_PER_CALL - 1 if metrics else 0
            for start in range(0, last, IMPORT_METRICS_PER_CALL):
                self.log_batch(run_id, metrics[start:start + IMPORT_METRICS_PER_CALL])
            self.log_batch_and_update_run(run_id, run.status, run.end_time, metrics[last:], run.params, run.tags)
            if run.deleted:
                self.delete_run(run_id)
            created.append(run_id)
        return created

    # ---- params, metrics, tags ---------------------------------------------------------------

    @abstractmethod
    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Write metrics (appended to their history), params and tags (replaced) to a RUNNING run,
        all or nothing.

        Every value is checked with ``evalkit.tracking.validation`` (``InvalidArgument`` names the key and
        the problem). Params are immutable: logging a param again with the same value is allowed,
        with another value (already stored, or earlier in the same batch) raises
        ``InvalidArgument``. Writes to an unknown run raise ``NotFound``, to a deleted or ended run
        ``InvalidState``. The latest value of a metric is the one with the highest step, then the
        latest timestamp."""

    @abstractmethod
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every logged value of a metric, by step then timestamp then logging order (empty for a
        key never logged); ``NotFound`` for an unknown run."""

    def get_metric_history_page(
        self, run_id: str, key: str, max_results: int = HISTORY_PAGE_MAX, page_token: str | None = None
    ) -> tuple[list[Metric], str | None]:
        """One page of :meth:`get_metric_history` (same order) and the token of the next page (None
        after the last), so a long history is read without holding all of it. This default slices
        the whole history; the SQL store reads only the page. ``InvalidArgument`` for
        ``max_results`` outside 1..``HISTORY_PAGE_MAX`` or a bad page token."""
        check_page_size(max_results, HISTORY_PAGE_MAX)
        offset = decode_offset_token(page_token)
        history = self.get_metric_history(run_id, key)
        page = history[offset:offset + max_results]
        more = offset + max_results < len(history)
        return page, encode_offset_token(offset + max_results) if more else None

    @abstractmethod
    def get_metric_histories(self, run_ids: Sequence[str], key: str) -> dict[str, list[Metric]]:
        """``get_metric_history`` of one metric for several runs in one call (a comparison chart of
        up to ``HISTORIES_RUNS_MAX`` runs), by run id; a run without the metric, or an unknown id,
        maps to an empty list."""

    @abstractmethod
    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag from a run; ``NotFound`` if the run has no such tag."""

    # ---- search ------------------------------------------------------------------------------

    @abstractmethod
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | str | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        """One page of the runs of ``experiment_ids`` that match ``filter_string`` (the README's
        grammar, parsed by ``evalkit.tracking.filter``), sorted by ``order_by``, and the opaque
        token of the next page (None after the last). Pages are stable while no run is added.

        ``InvalidArgument`` for ``max_results`` outside 1..``SEARCH_MAX_RESULTS`` or a bad page
        token; ``FilterSyntaxError`` (an ``InvalidArgument``) for a bad filter or order."""

    @abstractmethod
    def count_runs(
        self, experiment_ids: Sequence[str], filter_string: str | None = None,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
    ) -> int:
        """How many runs ``search_runs`` would return over all its pages, without loading them;
        ``FilterSyntaxError`` for a bad filter."""

    @abstractmethod
    def run_stats(self, experiment_ids: Sequence[str], view_type: ViewType = ViewType.ACTIVE_ONLY) -> dict[str, RunStats]:
        """Run count and last activity of each experiment id given (one query, whatever the number of
        runs); an experiment without runs maps to ``RunStats(0, None)``."""

    @abstractmethod
    def search_keys(
        self, experiment_ids: Sequence[str], entity: str, contains: str | None = None, max_results: int = 200
    ) -> list[str]:
        """The distinct param, metric or tag keys (``entity`` in ``KEY_ENTITIES``) of the active runs of
        ``experiment_ids``, sorted, at most ``max_results``, optionally only those containing
        ``contains`` (case-insensitive). For column choosers over thousands of keys: nothing else is loaded.
        ``InvalidArgument`` for an unknown entity or a ``max_results`` outside 1..``SEARCH_MAX_RESULTS``."""
    # ---- model registry ----------------------------------------------------------------------
    #
    # Names are checked with ``evalkit.tracking.registry`` (same rules, same messages in every
    # store). ``NotFound`` for an unknown model, version or alias; ``AlreadyExists`` for a taken
    # name; ``InvalidArgument`` for a bad name, version, stage, alias, filter or evidence rule;
    # ``InvalidState`` for a promotion whose evidence is missing or does not hold. Each write is
    # one transaction. ``user`` says who acts (a server passes its token's user); a local store
    # takes the operating-system user when it is None. Stage transitions and alias moves append
    # to the model's history in the same transaction as the change itself.

    def registry_unsupported(self) -> InvalidState:
        return InvalidState(f"the tracking store {self.display_uri} holds no model registry")

    def create_registered_model(self, name: str, tags: dict[str, Any] | None = None, description: str | None = None,
                                evidence_required: Sequence[str] | None = None,
                                user: str | None = None) -> RegisteredModel:
        """Create an empty registered model; ``AlreadyExists`` if the name is taken.
        ``evidence_required`` lists stages and ``@aliases`` a version only reaches with evidence."""
        raise self.registry_unsupported()

    def get_registered_model(self, name: str) -> RegisteredModel:
        """The model with its tags, aliases, evidence rule and newest version per stage."""
        raise self.registry_unsupported()

    def search_registered_models(self, filter_string: str | None = None, max_results: int = 100,
                                 order_by: Sequence[str] | str | None = None,
                                 page_token: str | None = None) -> tuple[list[RegisteredModel], str | None]:
        """One page of models matching ``filter_string`` (``name``/``tags.<key>`` with =, !=, LIKE,
        ILIKE, joined by AND), sorted by ``order_by`` (``name``, ``creation_timestamp``,
        ``last_updated_timestamp``, ASC or DESC; name ascending by default), and the next page's token."""
        raise self.registry_unsupported()

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Rename a model; its versions, aliases and history follow. ``AlreadyExists`` if taken."""
        raise self.registry_unsupported()

    def update_registered_model(self, name: str, description: str | None = None,
                                evidence_required: Sequence[str] | None = None,
                                user: str | None = None) -> RegisteredModel:
        """Change the description and/or the evidence rule (None leaves each as it is; a change of
        the rule is recorded in the history)."""
        raise self.registry_unsupported()

    def delete_registered_model(self, name: str) -> None:
        """Delete a model with its versions, tags and aliases."""
        raise self.registry_unsupported()

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        raise self.registry_unsupported()

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """``NotFound`` if the model has no such tag."""
        raise self.registry_unsupported()

    def create_model_version(self, name: str, source: str, bundle_hash: str, flavor: str, run_id: str | None = None,
                             tags: dict[str, Any] | None = None, description: str | None = None,
                             user: str | None = None) -> ModelVersion:
        """Add the next version (numbers are never reused) of an existing model, in stage None.
        ``source`` is the bundle's location (``runs:/<id>/<path>`` or an artifact URI) and
        ``bundle_hash`` its content hash, read by the caller from the bundle's manifest."""
        raise self.registry_unsupported()

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        raise self.registry_unsupported()

    def update_model_version(self, name: str, version: int | str, description: str) -> ModelVersion:
        raise self.registry_unsupported()

    def delete_model_version(self, name: str, version: int | str, user: str | None = None) -> None:
        """Delete a version, its tags and the aliases pointing at it (its number is not reused)."""
        raise self.registry_unsupported()

    def set_model_version_tag(self, name: str, version: int | str, key: str, value: Any) -> None:
        raise self.registry_unsupported()

    def delete_model_version_tag(self, name: str, version: int | str, key: str) -> None:
        raise self.registry_unsupported()

    def search_model_versions(self, filter_string: str | None = None, max_results: int = 1000,
                              order_by: Sequence[str] | str | None = None) -> list[ModelVersion]:
        """Versions matching ``filter_string`` (``name``, ``run_id``, ``bundle_hash``,
        ``current_stage``, ``source`` or ``tags.<key>``), newest first unless ``order_by`` says otherwise."""
        raise self.registry_unsupported()

    def transition_model_version_stage(self, name: str, version: int | str, stage: Stage | str,
                                       archive_existing_versions: bool = False, evidence_run_id: str | None = None,
                                       user: str | None = None) -> ModelVersion:
        """Move a version to ``stage``; with ``archive_existing_versions`` every other version in
        that stage moves to Archived in the same transaction (each move in the history). Where the
        model's evidence rule names ``stage``, ``evidence_run_id`` must name a passing run of the
        nightly job that evaluated exactly this version's bundle (``evidence_problem``)."""
        raise self.registry_unsupported()

    def get_latest_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        """The newest version in each of ``stages`` (every stage by default) that has one."""
        raise self.registry_unsupported()

    def set_registered_model_alias(self, name: str, alias: str, version: int | str,
                                   evidence_run_id: str | None = None, user: str | None = None) -> None:
        """Point ``alias`` at ``version`` (moving it if it pointed elsewhere), with evidence where
        the rule names ``@alias``."""
        raise self.registry_unsupported()

    def delete_registered_model_alias(self, name: str, alias: str, user: str | None = None) -> None:
        raise self.registry_unsupported()

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        raise self.registry_unsupported()

    def get_model_version_history(self, name: str, version: int | str | None = None) -> list[ModelVersionEvent]:
        """The model's stage transitions, alias moves and evidence-rule changes, oldest first;
        with ``version``, only the events about that version (aliases moved to or from it)."""
        raise self.registry_unsupported()

    # ---- lifetime ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every value the store holds back; a no-op for stores that do not buffer."""

    def close(self) -> None:
        """Flush, then release connections. The store is not used after this."""


# The registry operations, for wrappers that forward them and servers that expose them.
REGISTRY_OPERATIONS = (
    "create_registered_model", "get_registered_model", "search_registered_models", "rename_registered_model",
    "update_registered_model", "delete_registered_model", "set_registered_model_tag", "delete_registered_model_tag",
    "create_model_version", "get_model_version", "update_model_version", "delete_model_version",
    "set_model_version_tag", "delete_model_version_tag", "search_model_versions", "transition_model_version_stage",
    "get_latest_versions", "set_registered_model_alias", "delete_registered_model_alias",
    "get_model_version_by_alias", "get_model_version_history",
)


def require_writable(info: RunInfo) -> None:
    """Raise ``InvalidState`` unless the run is active and RUNNING: the rule for every write."""
    if info.lifecycle_stage is not LifecycleStage.ACTIVE:
        raise InvalidState(f"run {info.run_id} is deleted: restore it before logging to it")
    if info.status is not RunStatus.RUNNING:
        raise InvalidState(
            f"run {info.run_id} is {info.status.value}: only RUNNING runs accept writes "
            "(reopen it with start_run(run_id=...))"
        )


def check_key_search(entity: str, max_results: int) -> None:
    """``InvalidArgument`` unless ``search_keys`` can answer for ``entity`` and ``max_results``."""
    if entity not in KEY_ENTITIES:
        raise InvalidArgument(f"unknown key entity {entity!r}: use one of {', '.join(KEY_ENTITIES)}")
    check_page_size(max_results, SEARCH_MAX_RESULTS)


def run_status(status: RunStatus | str) -> RunStatus:
    """``status`` as a RunStatus (any case), or ``InvalidArgument`` listing the statuses."""
    try:
        return RunStatus(status.upper() if isinstance(status, str) else status)
    except ValueError:
        raise InvalidArgument(
            f"unknown run status {status!r}: use one of {', '.join(s.value for s in RunStatus)}"
        ) from None


def check_page_size(max_results: Any, limit: int) -> int:
    """``max_results`` if it is an integer from 1 to ``limit``, else ``InvalidArgument``."""
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 0 < max_results <= limit:
        raise InvalidArgument(f"max_results must be an integer from 1 to {limit}, got {max_results!r}")
    return max_results


def encode_offset_token(offset: int) -> str:
    """An opaque page token holding a row offset."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_offset_token(token: str | None) -> int:
    """The offset of a token from :func:`encode_offset_token` (0 for None); ``InvalidArgument`` if malformed."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise InvalidArgument(f"invalid page token {token!r}")
