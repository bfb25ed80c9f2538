"""``TrackingClient``: the tracking store addressed with explicit experiment and run ids."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from evalkit.entities import (
    Experiment,
    FileInfo,
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
from evalkit.errors import InvalidArgument
from evalkit.redaction import redact
from evalkit.tracking import hooks, run_tags
from evalkit.tracking.artifacts import ArtifactRepository, get_artifact_repository
from evalkit.tracking.clock import now_ms
from evalkit.tracking.store import TrackingStore
from evalkit.tracking.stores import open_store

if TYPE_CHECKING:
    import pandas as pd  # loaded by the methods that read or write tables, not by `import evalkit`


class TrackingClient:
    """Read and write experiments, runs and artifacts by id.

    ``TrackingClient()`` talks to the current tracking URI; ``TrackingClient("postgresql://...")``
    to another store. Values logged here are buffered like the fluent API's, and every read
    flushes first, so a read always sees what was logged before it.
    """

    def __init__(self, tracking_uri: str | None = None, create: bool = True) -> None:
        """``create=False`` refuses to create a store that does not exist yet (for read-only use):
        it raises :class:`~evalkit.errors.StoreUnavailable` naming it instead."""
        self._tracking_uri, store = open_store(tracking_uri, create)
        self.store: TrackingStore = store

    @classmethod
    def for_store(cls, store: TrackingStore) -> TrackingClient:
        """A client over an already open ``store`` (the one a server serves), instead of opening
        one from a tracking URI."""
        client = cls.__new__(cls)
        client._tracking_uri, client.store = store.display_uri, store
        return client

    @property
    def tracking_uri(self) -> str:
        """The store's tracking URI, normalised (a SQLite path is absolute)."""
        return self._tracking_uri

    # ---- experiments -------------------------------------------------------------------------

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        """Create an experiment and return its id. Names are unique."""
        return self.store.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment called ``name``, or None."""
        return self.store.get_experiment_by_name(name)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Rename an active experiment; names stay unique (``AlreadyExists`` otherwise)."""
        self.store.rename_experiment(experiment_id, new_name)

    def get_or_create_default_experiment(self) -> str:
        """The id of the experiment called "Default", created if it does not exist yet."""
        return self.store.get_or_create_default_experiment()

    def search_experiments(
        self, view_type: ViewType | str = ViewType.ACTIVE_ONLY, name_like: str | None = None, max_results: int = 1000
    ) -> list[Experiment]:
        """Experiments by deleted flag, optionally whose name matches a SQL LIKE pattern."""
        return self.store.search_experiments(_view_type(view_type), name_like, max_results)

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self.store.set_experiment_tag(experiment_id, key, value)

    def delete_experiment(self, experiment_id: str) -> None:
        self.store.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> None:
        self.store.restore_experiment(experiment_id)

    # ---- runs --------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        tags: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        start_time: int | None = None,
    ) -> Run:
        """Start a RUNNING run in the experiment; a name like ``swift-otter-412`` is made up if none is given."""
        return self.store.create_run(experiment_id, run_name, tags, parent_run_id, start_time)

    def get_run(self, run_id: str) -> Run:
        """The run's info and its params, tags and latest metric values."""
        return self.store.get_run(run_id)

    def set_terminated(self, run_id: str, status: RunStatus | str = RunStatus.FINISHED, end_time: int | None = None,
                       reason: str | None = None) -> RunInfo:
        """End a run with FINISHED, FAILED or KILLED; its buffered values are written first.

        ``reason`` says why a run FAILED or was KILLED; it is stored (secrets removed) in the
        ``evalkit.failure_reason`` tag, which ``evalkit runs show``, the report and searches show.
        Run-end hooks (``evalkit.tracking.hooks``) write what they buffered first."""
        hooks.run_ending(run_id)
        if reason:
            self.set_tag(run_id, run_tags.FAILURE_REASON, redact(reason)[:run_tags.REASON_LIMIT])
        return self.store.update_run(run_id, status, end_time)

    def update_run(self, run_id: str, status: RunStatus | str) -> RunInfo:
        """Set a run's status; RUNNING reopens an ended run for more writes."""
        return self.store.update_run(run_id, status)

    def delete_run(self, run_id: str) -> None:
        """Mark a run deleted: searches skip it unless asked for deleted runs."""
        self.store.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self.store.restore_run(run_id)

    def search_runs(
        self,
        experiment_ids: Sequence[str] | str,
        filter_string: str | None = None,
        run_view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | str | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        """One page of matching runs and the token of the next page (None after the last).

        ``filter_string`` uses the grammar documented in the README: for example
        ``metrics.`faithfulness/v1/mean` > 0.8 AND (params.model = 'gpt-4o' OR tags.team = 'rag')``.
        """
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        return self.store.search_runs(ids, filter_string, _view_type(run_view_type), max_results, order_by, page_token)

    # ---- logging -----------------------------------------------------------------------------

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        """Params are immutable: logging another value for the same key raises InvalidArgument."""
        self.store.log_batch(run_id, params=[Param(key, value)])

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
        """Add a value to the metric's history; NaN and +/-inf are kept as they are."""
        self.store.log_batch(run_id, metrics=[Metric(key, value, now_ms() if timestamp is None else timestamp, step)])

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        """Tags are mutable: setting one again replaces its value."""
        self.store.log_batch(run_id, tags=[RunTag(key, value)])

    def delete_tag(self, run_id: str, key: str) -> None:
        self.store.delete_tag(run_id, key)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Log many values at once; all are checked before any is written."""
        self.store.log_batch(run_id, metrics, params, tags)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every logged value of the metric, by step then time."""
        return self.store.get_metric_history(run_id, key)

    def flush(self) -> None:
        """Write every buffered value now."""
        self.store.flush()

    # ---- model registry ----------------------------------------------------------------------
    # MLflow's names and arguments; the rules are the store's (evalkit.tracking.store).

    def create_registered_model(self, name: str, tags: dict[str, Any] | None = None, description: str | None = None,
                                evidence_required: Sequence[str] | None = None) -> RegisteredModel:
        """Create a registered model with no versions. ``evidence_required`` lists the stages and
        ``@aliases`` (e.g. ``["Production", "@champion"]``) a version only reaches by naming a
        passing nightly-job run that evaluated it."""
        return self.store.create_registered_model(name, tags, description, evidence_required)

    def get_registered_model(self, name: str) -> RegisteredModel:
        return self.store.get_registered_model(name)

    def search_registered_models(self, filter_string: str | None = None, max_results: int = 100,
                                 order_by: Sequence[str] | str | None = None,
                                 page_token: str | None = None) -> list[RegisteredModel]:
        """Registered models matching e.g. ``"name LIKE 'rag%' AND tags.team = 'nlp'"``, sorted by
        ``order_by`` (``name``, ``creation_timestamp``, ``last_updated_timestamp`` [ASC|DESC])."""
        return self.store.search_registered_models(filter_string, max_results, order_by, page_token)[0]

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        return self.store.rename_registered_model(name, new_name)

    def update_registered_model(self, name: str, description: str | None = None,
                                evidence_required: Sequence[str] | None = None) -> RegisteredModel:
        """Change the description and/or the evidence rule (a rule change goes into the history)."""
        return self.store.update_registered_model(name, description, evidence_required)

    def delete_registered_model(self, name: str) -> None:
        self.store.delete_registered_model(name)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        self.store.set_registered_model_tag(name, key, value)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self.store.delete_registered_model_tag(name, key)

    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict[str, Any] | None = None, description: str | None = None) -> ModelVersion:
        """Register the bundle at ``source`` (``runs:/<run_id>/<path>``) as the next version of
        ``name``; its bundle hash and flavor are read from the bundle's manifest."""
        from evalkit.models.resolve import locate

        location = locate(source, self)
        manifest = location.manifest()
        return self.store.create_model_version(name, source, manifest.bundle_hash, manifest.flavor,
                                               run_id or location.run_id, tags, description)

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        return self.store.get_model_version(name, version)

    def update_model_version(self, name: str, version: int | str, description: str) -> ModelVersion:
        return self.store.update_model_version(name, version, description)

    def delete_model_version(self, name: str, version: int | str) -> None:
        self.store.delete_model_version(name, version)

    def set_model_version_tag(self, name: str, version: int | str, key: str, value: Any) -> None:
        self.store.set_model_version_tag(name, version, key, value)

    def delete_model_version_tag(self, name: str, version: int | str, key: str) -> None:
        self.store.delete_model_version_tag(name, version, key)

    def search_model_versions(self, filter_string: str | None = None, max_results: int = 1000,
                              order_by: Sequence[str] | str | None = None) -> list[ModelVersion]:
        """Versions matching e.g. ``"name = 'RAGBot'"`` or ``"run_id = '...'"``, newest first."""
        return self.store.search_model_versions(filter_string, max_results, order_by)

    def transition_model_version_stage(self, name: str, version: int | str, stage: Stage | str,
                                       archive_existing_versions: bool = False,
                                       evidence_run_id: str | None = None) -> ModelVersion:
        """Move a version to None, Staging, Production or Archived; ``archive_existing_versions``
        archives the versions already in that stage. Where the model requires evidence for the
        stage, ``evidence_run_id`` names the passing nightly-job run that evaluated this version."""
        return self.store.transition_model_version_stage(name, version, stage, archive_existing_versions,
                                                         evidence_run_id)

    def get_latest_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        """The newest version in each of ``stages`` (all stages by default)."""
        return self.store.get_latest_versions(name, stages)

    def set_registered_model_alias(self, name: str, alias: str, version: int | str,
                                   evidence_run_id: str | None = None) -> None:
        """Point ``alias`` (e.g. ``champion``) at ``version``, so ``models:/<name>@<alias>`` loads it."""
        self.store.set_registered_model_alias(name, alias, version, evidence_run_id)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.store.delete_registered_model_alias(name, alias)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self.store.get_model_version_by_alias(name, alias)

    def get_model_version_history(self, name: str, version: int | str | None = None) -> list[ModelVersionEvent]:
        """Every stage transition, alias move and evidence-rule change of the model (or of one
        version), oldest first, with who, when and the evidence run."""
        return self.store.get_model_version_history(name, version)

    # ---- artifacts ---------------------------------------------------------------------------

    def artifact_repository(self, run_id: str) -> ArtifactRepository:
        """The repository holding the run's artifacts, chosen by the scheme of its ``artifact_uri``
        (a local folder, ``s3://...`` or a plugin's scheme). Paths given to it are relative to the
        run's artifact root and cannot leave it."""
        return get_artifact_repository(self.get_run(run_id).info.artifact_uri)

    def _writable_artifacts(self, run_id: str) -> ArtifactRepository:
        repository = self.artifact_repository(run_id)
        self.store.check_writable(run_id)
        return repository

    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a local file into the run's artifacts, under the folder ``artifact_path``."""
        self._writable_artifacts(run_id).log_artifact(local_path, artifact_path)

    def log_artifacts(self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a local folder's files into the run's artifacts."""
        self._writable_artifacts(run_id).log_artifacts(local_dir, artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._writable_artifacts(run_id).write_bytes(artifact_file, text.encode("utf-8"))

    def log_dict(self, run_id: str, dictionary: dict[str, Any], artifact_file: str) -> None:
        """Save a dict as JSON, or as YAML when ``artifact_file`` ends in .yaml or .yml."""
        suffix = PurePosixPath(artifact_file).suffix.lower()
        if suffix in (".yaml", ".yml"):
            import yaml  # datasets depends on PyYAML; imported here as only YAML needs it

            data = yaml.safe_dump(dictionary, sort_keys=False)
        else:
            data = json.dumps(dictionary, indent=2, default=str)
        self.log_text(run_id, data, artifact_file)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        """Save a matplotlib figure (PNG, SVG, PDF... by the file's extension), or a plotly
        figure as HTML."""
        suffix = PurePosixPath(artifact_file).suffix.lower().lstrip(".")
        if hasattr(figure, "savefig"):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=suffix or "png", bbox_inches="tight")
            data = buffer.getvalue()
        elif hasattr(figure, "to_html") and suffix == "html":
            data = figure.to_html(include_plotlyjs=True).encode("utf-8")
        else:
            raise InvalidArgument(
                f"log_figure takes a matplotlib figure (or a plotly figure saved as .html), got {type(figure).__name__}"
            )
        self._writable_artifacts(run_id).write_bytes(artifact_file, data)

    def log_table(self, run_id: str, data: pd.DataFrame | dict[str, Any], artifact_file: str) -> None:
        """Save a table as .json (columns and rows), .parquet or .csv."""
        import pandas as pd

        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        suffix = PurePosixPath(artifact_file).suffix.lower()
        if suffix == ".json":
            payload = frame.to_json(orient="split", index=False, date_format="iso", default_handler=str).encode()
        elif suffix == ".parquet":
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            payload = buffer.getvalue()
        elif suffix == ".csv":
            payload = frame.to_csv(index=False).encode()
        else:
            raise InvalidArgument(f"log_table writes .json, .parquet or .csv files, not {artifact_file!r}")
        self._writable_artifacts(run_id).write_bytes(artifact_file, payload)

    def load_table(self, run_id: str, artifact_file: str) -> pd.DataFrame:
        """Read back a table saved with ``log_table``."""
        import pandas as pd

        data = self.artifact_repository(run_id).read_bytes(artifact_file)
        suffix = PurePosixPath(artifact_file).suffix.lower()
        if suffix == ".json":
            payload = json.loads(data)
            return pd.DataFrame(payload["data"], columns=payload["columns"])
        if suffix == ".parquet":
            return pd.read_parquet(io.BytesIO(data))
        if suffix == ".csv":
            return pd.read_csv(io.BytesIO(data))
        raise InvalidArgument(f"load_table reads .json, .parquet or .csv files, not {artifact_file!r}")

    def load_text(self, run_id: str, artifact_file: str) -> str:
        return self.artifact_repository(run_id).read_bytes(artifact_file).decode("utf-8")

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """Files and folders directly under ``path`` in the run's artifacts."""
        return self.artifact_repository(run_id).list_artifacts(path)

    def download_artifacts(self, run_id: str, path: str, dst_path: str | os.PathLike[str] | None = None) -> str:
        """Copy an artifact file or folder to ``dst_path`` (a new temporary folder by default)."""
        destination = Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp(prefix="evalkit-"))
        return self.artifact_repository(run_id).download_artifacts(path, destination)


def _view_type(value: ViewType | str) -> ViewType:
    try:
        return ViewType(value.upper() if isinstance(value, str) else value)
    except ValueError:
        raise InvalidArgument(
            f"unknown run_view_type {value!r}: use one of {', '.join(v.value for v in ViewType)}"
        ) from None

