"""Copy an MLflow tracking store into an evalkit store: ``evalkit import-mlflow``.

What is copied: experiments (matched by name; evalkit's "Default" takes MLflow's "Default") with
their tags and deleted flag; runs with their name, status, start and end times, parent, deleted
flag, params, tags and every logged metric value (step and timestamp kept); and each run's
artifacts. A child run's ``mlflow.parentRunId`` tag names its parent's evalkit id, like its
``parent_run_id`` (the parent's MLflow id stays in the parent's ``evalkit.mlflow.run_id``). What cannot be copied is listed in the summary, value by value, instead of failing the
whole import: keys evalkit refuses (evalkit keys are ASCII), MLflow's SCHEDULED status (imported
as RUNNING), artifacts in a place evalkit cannot read, and MLflow features evalkit has no place
for yet (traces, logged models, datasets). Registered models follow the runs, with their versions,
stages, aliases, tags and descriptions (``import_registered_models``).

Running it again duplicates nothing. Each imported run carries the tag ``evalkit.mlflow.run_id``
from its creation, and ``evalkit.mlflow.imported_at`` is written in the same transaction as its
last values and status, so a run that has both was copied whole and is skipped next time. A run
that has only the first was left half-copied by an interrupted import: it is marked deleted and
copied again. Experiments created by an import carry ``evalkit.mlflow.experiment_id``; only those
follow the MLflow experiment's deleted flag (an evalkit experiment that already had the name is
never deleted by an import).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evalkit.entities import (
    Experiment,
    LifecycleStage,
    Metric,
    Param,
    RunStatus,
    RunTag,
    ViewType,
)
from evalkit.errors import EvalkitError, InvalidArgument, InvalidState, NotFound
from evalkit.migrate.mlflow_source import (
    PARENT_TAG,
    USER_TAG,
    MlflowSource,
    SourceExperiment,
    SourceModelVersion,
    SourceRun,
    SourceRunData,
)
from evalkit.models.mlflow_models import source_identity
from evalkit.tracking.artifacts import (
    ArtifactRepository,
    artifact_scheme,
    get_artifact_repository,
    join_artifact_uri,
)
from evalkit.tracking.clock import now_ms
from evalkit.tracking.store import ImportedRun, TrackingStore
from evalkit.tracking.validation import checked_metric, checked_param, checked_tag

RUN_ID_TAG = "evalkit.mlflow.run_id"  # the MLflow run a run was copied from, set when it is created
IMPORTED_AT_TAG = "evalkit.mlflow.imported_at"  # written with the run's last values: the copy is whole
EXPERIMENT_ID_TAG = "evalkit.mlflow.experiment_id"  # on experiments an import created
MODEL_TAG = "evalkit.mlflow.registered_model"  # on registered models an import created
PLACEHOLDER_SOURCE = "evalkit-import:deleted-mlflow-version"
METRICS_PER_BATCH = 10_000  # metric values written per store call for a long history
READ_RUNS_PER_QUERY = 500  # runs whose values are read from the MLflow store at once
RUNS_PER_TRANSACTION = 500  # runs without artifacts written per transaction (import_runs)...
VALUES_PER_TRANSACTION = 200_000  # ...or fewer, when they hold more values than this
_STATUSES = {s.value for s in RunStatus}
_ARTIFACT_SCHEMES = ("file", "s3")
_MLFLOW_ARTIFACTS = "mlflow-artifacts"


@dataclass
class ImportSummary:
    """What an import copied (or, in a dry run, would copy), and what it could not map."""

    dry_run: bool = False
    experiments_created: list[str] = field(default_factory=list)
    experiments_matched: list[str] = field(default_factory=list)
    runs_copied: int = 0
    runs_already_imported: int = 0
    partial_runs_replaced: int = 0
    params: int = 0
    tags: int = 0
    metric_values: int = 0
    artifact_files: int = 0
    artifact_bytes: int = 0
    registered_models_created: int = 0
    registered_models_already_imported: int = 0
    model_versions: int = 0
    model_versions_already_imported: int = 0
    aliases: int = 0
    not_mapped: list[str] = field(default_factory=list)  # one line per value or thing left behind

    def lines(self) -> list[str]:
        """The summary as lines of text for the terminal."""
        would = "would copy" if self.dry_run else "copied"
        lines = [
            f"experiments: {len(self.experiments_created)} new"
            + (f" ({', '.join(self.experiments_created)})" if self.experiments_created else "")
            + f", {len(self.experiments_matched)} existing",
            f"runs: {self.runs_copied} {would}, {self.runs_already_imported} already imported"
            + (f", {self.partial_runs_replaced} half-copied by an interrupted import (deleted, copied again)"
               if self.partial_runs_replaced else ""),
            f"values {would}: {self.params} params, {self.tags} tags, {self.metric_values} metric values, "
            f"{self.artifact_files} artifact files ({self.artifact_bytes} bytes)",
            f"registered models: {self.registered_models_created} {would}, "
            f"{self.registered_models_already_imported} already imported; model versions: {self.model_versions} "
            f"{would}, {self.model_versions_already_imported} already imported; {self.aliases} aliases {would}",
        ]
        if self.not_mapped:
            lines.append(f"not mapped ({len(self.not_mapped)}):")
            lines += [f"  - {item}" for item in self.not_mapped]
        else:
            lines.append("not mapped: nothing")
        return lines


@dataclass
class _Target:
    """The evalkit experiment an MLflow experiment goes into."""

    experiment: Experiment | None  # None in a dry run when it would be created
    created_by_import: bool


class MlflowImporter:
    """Copies one MLflow store into one evalkit store; see the module docstring for the rules."""

    def __init__(
        self,
        source: MlflowSource,
        store: TrackingStore,
        *,
        artifacts_destination: str | None = None,
        dry_run: bool = False,
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:
        """``artifacts_destination`` is where an MLflow server keeps the artifacts that its runs
        name ``mlflow-artifacts:/...`` (its ``--artifacts-destination``, ``./mlartifacts`` by default)."""
        self.source = source
        self.store = store
        self.artifacts_destination = artifacts_destination
        self.summary = ImportSummary(dry_run=dry_run)
        self.progress = progress
        self._imported: dict[str, str] = {}  # MLflow run id -> evalkit run id, for parents
        self._other_users = 0  # runs whose MLflow user_id is not in their tag mlflow.user
        self._artifact_uris: dict[str, str] = {}  # MLflow run id -> its MLflow artifact URI

    def run(self) -> ImportSummary:
        """Copy everything; returns the summary (also for a dry run, which writes nothing)."""
        done, partial = self._previous_imports()
        self._imported.update(done)
        for experiment in self.source.experiments():
            self._import_experiment(experiment, done, partial)
        if self.summary.experiments_created:
            self.summary.not_mapped.append(
                "experiments' creation times and artifact locations: the new experiments have evalkit's own "
                "(the runs' artifacts are copied into them)")
        if self._other_users:
            self.summary.not_mapped.append(
                f"MLflow's user_id of {self._other_users} run(s): evalkit records the importing user as the "
                "runs' user (MLflow's tag mlflow.user, where MLflow's client set it, is copied)")
        import_registered_models(self.source, self.store, self.summary, self._imported, self._artifact_uris)
        for kind, count in self.source.unmapped_counts().items():
            self.summary.not_mapped.append(f"{count} {kind}: evalkit has no place for them yet")
        return self.summary

    # ---- what is there already -----------------------------------------------------------------

    def _previous_imports(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """MLflow run id -> evalkit run id of the runs copied whole, and of the half-copied ones
        that are still active (an interrupted import's)."""
        experiment_ids = [e.experiment_id for e in self.store.search_experiments(ViewType.ALL, max_results=50_000)]
        done: dict[str, str] = {}
        partial: dict[str, list[str]] = {}
        if not experiment_ids:
            return done, partial
        token = None
        while True:
            runs, token = self.store.search_runs(
                experiment_ids, f"tags.`{RUN_ID_TAG}` IS NOT NULL", ViewType.ALL, 5_000, page_token=token
            )
            for found in runs:
                mlflow_id = found.data.tags[RUN_ID_TAG]
                if IMPORTED_AT_TAG in found.data.tags:
                    done[mlflow_id] = found.info.run_id
                elif found.info.lifecycle_stage is LifecycleStage.ACTIVE:
                    partial.setdefault(mlflow_id, []).append(found.info.run_id)
            if token is None:
                return done, partial

    # ---- experiments -----------------------------------------------------------------------------

    def _import_experiment(
        self, experiment: SourceExperiment, done: dict[str, str], partial: dict[str, list[str]]
    ) -> None:
        all_runs = self.source.runs(experiment.experiment_id)
        self._artifact_uris.update({r.run_id: r.artifact_uri for r in all_runs if r.artifact_uri})
        runs = [r for r in _parents_first(all_runs) if r.run_id not in done]
        self.summary.runs_already_imported += len(all_runs) - len(runs)
        target = self._target_experiment(experiment)
        self.progress(f"experiment {experiment.name!r}: {len(runs)} run(s) to copy")
        if self.summary.dry_run:
            for chunk in _chunked(runs, READ_RUNS_PER_QUERY):
                data = self.source.runs_data(chunk)
                for source_run in chunk:
                    self.summary.partial_runs_replaced += len(partial.get(source_run.run_id, []))
                    self._count_run(source_run, data[source_run.run_id])
            return
        assert target.experiment is not None
        experiment_id = target.experiment.experiment_id
        was_deleted = target.experiment.lifecycle_stage is LifecycleStage.DELETED
        tags = {}
        if target.created_by_import:  # an evalkit experiment that had the name keeps its own tags
            tags = {k: v for k, v in experiment.tags.items()
                    if target.experiment.tags.get(k) != v
                    and self._mappable_tag(f"experiment {experiment.name!r}", k, v)}
        if was_deleted and (runs or tags):
            self.store.restore_experiment(experiment_id)  # runs and tags go only into active experiments
        for key, value in tags.items():
            self.store.set_experiment_tag(experiment_id, key, value)
        self._copy_runs(runs, experiment_id, partial)
        # experiments the import created follow MLflow's deleted flag; the others keep their own
        deleted = experiment.lifecycle_stage == "deleted" if target.created_by_import else was_deleted
        now_deleted = was_deleted and not (runs or tags)
        if deleted and not now_deleted:
            self.store.delete_experiment(experiment_id)
        elif now_deleted and not deleted:
            self.store.restore_experiment(experiment_id)

    def _copy_runs(self, runs: list[SourceRun], experiment_id: str, partial: dict[str, list[str]]) -> None:
        """Copy ``runs`` (parents first): runs without artifacts many per transaction
        (``import_runs``), a run with artifacts on its own (created, artifacts copied, then ended)."""
        batch: list[tuple[SourceRun, ImportedRun]] = []
        batch_values = 0

        def flush() -> None:
            nonlocal batch, batch_values
            if batch:
                for (source_run, imported), run_id in zip(batch, self.store.import_runs(
                        experiment_id, [imported for _, imported in batch])):
                    self._imported[source_run.run_id] = run_id
                    self._count_copied(imported)
            batch, batch_values = [], 0

        for chunk in _chunked(runs, READ_RUNS_PER_QUERY):
            data = self.source.runs_data(chunk)
            for source_run in chunk:
                for stale in partial.get(source_run.run_id, []):
                    self.store.delete_run(stale)
                    self.summary.partial_runs_replaced += 1
                if source_run.parent_run_id in {r.run_id for r, _ in batch}:
                    flush()  # the parent's evalkit id is known once it is written
                imported = self._prepared(source_run, data[source_run.run_id])
                repository = self._source_artifacts(source_run)
                files = list(_walk(repository, source_run, self.summary)) if repository is not None else []
                if files:
                    flush()
                    self._copy_run_with_artifacts(source_run, imported, experiment_id, repository, files)
                    continue
                batch.append((source_run, imported))
                batch_values += len(imported.metrics) + len(imported.params) + len(imported.tags)
                if len(batch) >= RUNS_PER_TRANSACTION or batch_values >= VALUES_PER_TRANSACTION:
                    flush()
        flush()

    def _target_experiment(self, experiment: SourceExperiment) -> _Target:
        existing = self.store.get_experiment_by_name(experiment.name)
        if existing is not None:
            created = existing.tags.get(EXPERIMENT_ID_TAG) is not None
            if experiment.name not in self.summary.experiments_matched:
                self.summary.experiments_matched.append(experiment.name)
            if created and existing.tags.get(EXPERIMENT_ID_TAG) != experiment.experiment_id:
                self.summary.not_mapped.append(
                    f"experiment {experiment.name!r} (MLflow id {experiment.experiment_id}): its runs join the "
                    f"evalkit experiment of the same name, imported before from MLflow id "
                    f"{existing.tags[EXPERIMENT_ID_TAG]}")
            return _Target(existing, created)
        self.summary.experiments_created.append(experiment.name)
        if self.summary.dry_run:
            return _Target(None, True)
        experiment_id = self.store.create_experiment(
            experiment.name, tags={EXPERIMENT_ID_TAG: experiment.experiment_id})
        return _Target(self.store.get_experiment(experiment_id), True)

    # ---- runs ------------------------------------------------------------------------------------

    def _count_run(self, source_run: SourceRun, data: SourceRunData) -> None:
        params, tags, metrics = self._mappable_values(source_run, data)
        self._note_run_mapping(source_run, data)
        self.summary.runs_copied += 1
        self.summary.params += len(params)
        self.summary.tags += len(tags)
        self.summary.metric_values += len(metrics)
        repository = self._source_artifacts(source_run)
        if repository is not None:
            for info in _walk(repository, source_run, self.summary):
                self.summary.artifact_files += 1
                self.summary.artifact_bytes += info.file_size or 0

    def _prepared(self, source_run: SourceRun, data: SourceRunData) -> ImportedRun:
        """The run as evalkit will hold it; what does not map is noted in the summary."""
        params, tags, metrics = self._mappable_values(source_run, data)
        status = self._note_run_mapping(source_run, data)
        parent_mlflow_id = source_run.parent_run_id
        parent = self._imported.get(parent_mlflow_id) if parent_mlflow_id else None
        if parent_mlflow_id and parent is None:
            self.summary.not_mapped.append(
                f"run {source_run.run_id}: parent run {parent_mlflow_id} is not in the store; "
                f"kept only as the tag {PARENT_TAG}")
        if parent is not None:  # the tag names the parent as evalkit knows it, like parent_run_id
            tags = [RunTag(PARENT_TAG, parent) if t.key == PARENT_TAG else t for t in tags]
        return ImportedRun(
            source_run.run_name or data.tags.get("mlflow.runName"), status, source_run.start_time,
            source_run.end_time, source_run.lifecycle_stage == "deleted", parent,
            {RUN_ID_TAG: source_run.run_id}, params, [*tags, RunTag(IMPORTED_AT_TAG, str(now_ms()))], metrics)

    def _copy_run_with_artifacts(self, source_run: SourceRun, imported: ImportedRun, experiment_id: str,
                                 repository: ArtifactRepository, files: list) -> None:
        """Created with its MLflow id, artifacts copied, then its values and status with the tag
        that says the copy is whole: an interruption leaves a run the next import replaces."""
        created = self.store.create_run(experiment_id, imported.run_name, imported.creation_tags,
                                        imported.parent_run_id, imported.start_time)
        run_id = created.info.run_id
        self._copy_artifacts(repository, files, created.info.artifact_uri)
        metrics = imported.metrics
        last = len(metrics) - (len(metrics) - 1) % METRICS_PER_BATCH - 1 if metrics else 0
        for start in range(0, last, METRICS_PER_BATCH):
            self.store.log_batch(run_id, metrics[start:start + METRICS_PER_BATCH])
        self.store.log_batch_and_update_run(run_id, imported.status, imported.end_time, metrics[last:],
                                            imported.params, imported.tags)
        if imported.deleted:
            self.store.delete_run(run_id)
        self._imported[source_run.run_id] = run_id
        self._count_copied(imported)

    def _count_copied(self, imported: ImportedRun) -> None:
        self.summary.runs_copied += 1
        self.summary.params += len(imported.params)
        self.summary.tags += len(imported.tags) - 1  # the import's own tag is not MLflow's
        self.summary.metric_values += len(imported.metrics)

    def _note_run_mapping(self, source_run: SourceRun, data: SourceRunData) -> RunStatus:
        """The evalkit status of the run; what does not map is noted in the summary."""
        if source_run.user_id and data.tags.get(USER_TAG) != source_run.user_id:
            self._other_users += 1
        if source_run.status in _STATUSES:
            return RunStatus(source_run.status)
        self.summary.not_mapped.append(
            f"run {source_run.run_id}: status {source_run.status} has no evalkit equivalent; imported as RUNNING")
        return RunStatus.RUNNING

    def _mappable_values(
        self, source_run: SourceRun, data: SourceRunData
    ) -> tuple[list[Param], list[RunTag], list[Metric]]:
        """The run's params, tags and metric values that evalkit accepts; the others are noted."""
        where = f"run {source_run.run_id}"
        params, tags, metrics = [], [], []
        for key, value in data.params.items():
            try:
                params.append(checked_param(Param(key, value)))
            except InvalidArgument as exc:
                self.summary.not_mapped.append(f"{where}: param {key!r} left out: {exc}")
        for key, value in data.tags.items():
            if self._mappable_tag(where, key, value):
                tags.append(RunTag(key, value))
        refused: dict[str, str] = {}
        for metric in data.metrics:
            if metric.key in refused:
                continue
            try:
                metrics.append(checked_metric(Metric(metric.key, metric.value, metric.timestamp, metric.step)))
            except InvalidArgument as exc:
                refused[metric.key] = str(exc)
        for key, reason in refused.items():
            count = sum(1 for m in data.metrics if m.key == key)
            self.summary.not_mapped.append(f"{where}: metric {key!r} ({count} values) left out: {reason}")
        metrics = [m for m in metrics if m.key not in refused]
        return params, tags, metrics

    def _mappable_tag(self, where: str, key: str, value: str) -> bool:
        if key.startswith("evalkit.mlflow."):
            self.summary.not_mapped.append(f"{where}: tag {key!r} left out: evalkit's import sets it")
            return False
        try:
            checked_tag(RunTag(key, value))
        except InvalidArgument as exc:
            self.summary.not_mapped.append(f"{where}: tag {key!r} left out: {exc}")
            return False
        return True

    # ---- artifacts -------------------------------------------------------------------------------

    def _source_artifacts(self, source_run: SourceRun) -> ArtifactRepository | None:
        """The repository of the MLflow run's artifacts, or None (noted) when evalkit cannot read it."""
        uri = source_run.artifact_uri
        if not uri:
            return None
        if uri.startswith(_MLFLOW_ARTIFACTS + ":"):
            if self.artifacts_destination is None:
                self.summary.not_mapped.append(
                    f"run {source_run.run_id}: artifacts at {uri} are served by an MLflow server: pass "
                    "--artifacts-destination (that server's --artifacts-destination) to copy them")
                return None
            path = uri.removeprefix(_MLFLOW_ARTIFACTS + ":")
            if path.startswith("//"):  # mlflow-artifacts://host:port/path
                path = path[2:].partition("/")[2]
            uri = join_artifact_uri(self.artifacts_destination, path)
        if artifact_scheme(uri) not in _ARTIFACT_SCHEMES:
            self.summary.not_mapped.append(
                f"run {source_run.run_id}: artifacts at {uri} not copied: evalkit reads artifacts from "
                f"{' and '.join(_ARTIFACT_SCHEMES)} locations")
            return None
        if artifact_scheme(uri) == "file" and not Path(uri.removeprefix("file://")).exists():
            return None  # MLflow creates the folder only when something is logged
        try:
            return get_artifact_repository(uri)
        except EvalkitError as exc:
            self.summary.not_mapped.append(f"run {source_run.run_id}: artifacts at {uri} not copied: {exc}")
            return None

    def _copy_artifacts(self, repository: ArtifactRepository, files: list, artifact_uri: str) -> None:
        target = get_artifact_repository(artifact_uri)
        with tempfile.TemporaryDirectory(prefix="evalkit-import-") as tmp:
            local = Path(tmp) / "file"
            for info in files:
                repository.download_file(info.path, local)
                target.upload_file(local, info.path)
                self.summary.artifact_files += 1
                self.summary.artifact_bytes += local.stat().st_size


def import_registered_models(source: MlflowSource, store: TrackingStore, summary: ImportSummary,
                             imported_runs: dict[str, str], artifact_uris: dict[str, str]) -> None:
    """Copy the MLflow store's registered models into evalkit's registry (nothing in a dry run).

    Models are matched by name, versions by number, so a second import adds nothing. A model the
    import creates carries the tag ``evalkit.mlflow.registered_model``; an evalkit model that had
    the name already is left alone (noted). Each version keeps its number (the numbers of deleted
    MLflow versions are skipped the way evalkit skips them: a placeholder version created and
    deleted, seen in the history), its description, tags and user, and moves to its MLflow stage
    (one move in the history, made by the import); then the aliases are set. A source inside an
    imported run's artifacts becomes ``runs:/<evalkit run id>/<path>``; flavor and bundle hash
    follow ``evalkit.models.mlflow_models.source_identity`` (MLflow models: flavor ``mlflow``)."""
    for model in source.registered_models():
        try:
            existing = store.get_registered_model(model.name)
        except NotFound:
            existing = None
        except InvalidState:  # a store without a registry
            summary.not_mapped.append(f"registered model {model.name!r}: {store.display_uri} holds no registry")
            continue
        if existing is not None and MODEL_TAG not in existing.tags:
            summary.not_mapped.append(
                f"registered model {model.name!r}: an evalkit model of that name exists (not imported): its "
                f"{len(model.versions)} MLflow version(s) are not copied")
            continue
        where = f"registered model {model.name!r}"
        tags = {k: v for k, v in model.tags.items() if _registry_tag_ok(summary, where, k, v)}
        present = set()
        if existing is None:
            summary.registered_models_created += 1
            if not summary.dry_run:
                store.create_registered_model(model.name, {**tags, MODEL_TAG: "true"}, model.description)
        else:
            summary.registered_models_already_imported += 1
            present = {v.version for v in store.search_model_versions(f"name = '{_quoted(model.name)}'", 50_000)}
        next_number = max(present, default=0) + 1
        for version in model.versions:
            if version.version in present:
                summary.model_versions_already_imported += 1
                continue
            if version.version < next_number:
                summary.not_mapped.append(f"{where} version {version.version}: its number is taken in evalkit")
                continue
            summary.model_versions += 1
            if not summary.dry_run:
                _copy_version(store, summary, model.name, version, next_number, imported_runs, artifact_uris)
            next_number = version.version + 1
        current = {} if existing is None else existing.aliases
        for alias, number in model.aliases.items():
            if current.get(alias) == number:
                continue
            summary.aliases += 1
            if not summary.dry_run:
                try:
                    store.set_registered_model_alias(model.name, alias, number)
                except EvalkitError as exc:
                    summary.aliases -= 1
                    summary.not_mapped.append(f"{where}: alias {alias!r} left out: {exc}")


def _copy_version(store: TrackingStore, summary: ImportSummary, name: str, version: SourceModelVersion,
                  next_number: int, imported_runs: dict[str, str], artifact_uris: dict[str, str]) -> None:
    where = f"registered model {name!r} version {version.version}"
    for _ in range(next_number, version.version):  # numbers MLflow deleted: taken and let go
        placeholder = store.create_model_version(name, PLACEHOLDER_SOURCE, *_identity(store, PLACEHOLDER_SOURCE))
        store.delete_model_version(name, placeholder.version)
    source, run_id = _version_source(version, imported_runs, artifact_uris)
    if version.run_id and run_id is None:
        summary.not_mapped.append(f"{where}: its run {version.run_id} was not imported; the version names no run")
    tags = {k: v for k, v in version.tags.items() if _registry_tag_ok(summary, where, k, v)}
    created = store.create_model_version(name, source, *_identity(store, source), run_id=run_id, tags=tags,
                                         description=version.description, user=version.user_id)
    if created.version != version.version:
        summary.not_mapped.append(f"{where} was numbered {created.version} in evalkit")
    if version.stage != "None":
        try:
            store.transition_model_version_stage(name, created.version, version.stage)
        except EvalkitError as exc:
            summary.not_mapped.append(f"{where}: stage {version.stage} left out: {exc}")


def _identity(store: TrackingStore, source: str) -> tuple[str, str]:
    try:
        return source_identity(store, source)
    except EvalkitError:  # the run's artifacts cannot be read: the version is still an MLflow model
        return source_identity(store, f"unread:{source}")


def _version_source(version: SourceModelVersion, imported_runs: dict[str, str],
                    artifact_uris: dict[str, str]) -> tuple[str, str | None]:
    """The version's source in evalkit's form and its evalkit run (None when the run was not imported)."""
    run_id = imported_runs.get(version.run_id) if version.run_id else None
    if run_id is None:
        return version.source, None
    source = version.source
    if source.startswith(f"runs:/{version.run_id}"):
        return f"runs:/{run_id}{source[len('runs:/') + len(version.run_id):]}", run_id
    root = artifact_uris.get(version.run_id, "")
    for candidate in {root, root.removeprefix("file://")} - {""}:
        if source.removeprefix("file://") == candidate.removeprefix("file://") or source.startswith(candidate + "/"):
            relative = source.removeprefix("file://")[len(candidate.removeprefix("file://")):].strip("/")
            return f"runs:/{run_id}/{relative}".rstrip("/"), run_id
    return source, run_id


def _registry_tag_ok(summary: ImportSummary, where: str, key: str, value: str) -> bool:
    if key.startswith("evalkit.mlflow."):
        summary.not_mapped.append(f"{where}: tag {key!r} left out: evalkit's import sets it")
        return False
    try:
        checked_tag(RunTag(key, value))
    except InvalidArgument as exc:
        summary.not_mapped.append(f"{where}: tag {key!r} left out: {exc}")
        return False
    return True


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")


def _chunked(runs: list[SourceRun], size: int) -> Iterator[list[SourceRun]]:
    for start in range(0, len(runs), size):
        yield runs[start:start + size]


def _walk(repository: ArtifactRepository, source_run: SourceRun, summary: ImportSummary) -> Iterator:
    try:
        yield from repository.walk_files()
    except EvalkitError as exc:
        summary.not_mapped.append(f"run {source_run.run_id}: artifacts not listed: {exc}")


def _parents_first(runs: Sequence[SourceRun]) -> list[SourceRun]:
    """``runs`` ordered so that a parent run comes before its children (nothing stops a child
    from starting before its parent)."""
    by_id = {r.run_id: r for r in runs}
    ordered: list[SourceRun] = []
    placed: set[str] = set()

    def place(run: SourceRun, seen: frozenset[str]) -> None:
        if run.run_id in placed:
            return
        parent = run.parent_run_id
        if parent in by_id and parent not in seen:
            place(by_id[parent], seen | {run.run_id})
        placed.add(run.run_id)
        ordered.append(run)

    for run in runs:
        place(run, frozenset())
    return ordered
