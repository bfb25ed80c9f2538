"""``evalkit import-mlflow``: MLflow stores built by MLflow's own client, copied and compared run by run.

The stores (a file store and a SQLite store) are built once per session by
``tests/mlflow_store_builder.py`` running in the MLflow virtualenv (``tests/mlflow_venv.py``),
which also writes down what MLflow's client reads back from them: the tests compare evalkit's copy
with that, value by value. Without that virtualenv the tests skip, unless
``EVALKIT_REQUIRE_MLFLOW=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow_venv import mlflow_python_for_tests

from evalkit.cli.main import cli
from evalkit.entities import Run, ViewType
from evalkit.migrate.mlflow_import import (
    IMPORTED_AT_TAG,
    MODEL_TAG,
    RUN_ID_TAG,
    MlflowImporter,
)
from evalkit.migrate.mlflow_source import (
    MlflowSource,
    SourceExperiment,
    SourceMetric,
    SourceModelVersion,
    SourceRegisteredModel,
    SourceRun,
    SourceRunData,
)
from evalkit.tracking.artifacts import get_artifact_repository
from evalkit.tracking.registry import MLFLOW_FLAVOR
from evalkit.tracking.schemes import open_tracking_store
from evalkit.tracking.store import TrackingStore
from evalkit.tracking.stores import close_stores

BUILDER = Path(__file__).resolve().parents[1] / "mlflow_store_builder.py"
UNMAPPABLE = {"params": {"précision"}, "metrics": {"latency_é"}}  # MLflow allows non-ASCII keys, evalkit does not


@dataclass
class MlflowStore:
    uri: str  # what `evalkit import-mlflow` is given
    expected: dict  # what MLflow's client read back from it


def build_stores(folder: Path, uris: dict[str, str]) -> dict[str, dict]:
    """Build a store at each URI with MLflow's client (in parallel); what MLflow read back, by name."""
    python = mlflow_python_for_tests()
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}  # MLflow 3 keeps its file store behind this flag
    builders = {
        kind: subprocess.Popen(
            [str(python), str(BUILDER), uri, str(folder / f"artifacts-{kind}"), str(folder / f"{kind}.json")],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for kind, uri in uris.items()
    }
    for kind, process in builders.items():
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"building the MLflow {kind} store failed:\n{output[-3000:]}"
    return {kind: json.loads((folder / f"{kind}.json").read_text()) for kind in uris}


@pytest.fixture(scope="session")
def mlflow_stores(tmp_path_factory) -> dict[str, MlflowStore]:
    folder = tmp_path_factory.mktemp("mlflow-stores")
    uris = {"file": f"file://{folder}/mlruns", "sqlite": f"sqlite:///{folder}/mlflow.db"}
    expected = build_stores(folder, uris)
    return {"file": MlflowStore(f"{folder}/mlruns", expected["file"]),
            "sqlite": MlflowStore(uris["sqlite"], expected["sqlite"])}


@pytest.fixture(scope="session")
def mlflow_postgres_store(tmp_path_factory, postgres) -> MlflowStore:
    uri = postgres.create_database("mlflow_source").replace("postgresql://", "postgresql+psycopg://")
    expected = build_stores(tmp_path_factory.mktemp("mlflow-postgres"), {"postgresql": uri})
    return MlflowStore(uri.replace("postgresql+psycopg://", "postgresql://"), expected["postgresql"])


@pytest.fixture(params=["file", "sqlite", pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.slow])])
def mlflow_store(request) -> MlflowStore:
    if request.param == "postgresql":
        return request.getfixturevalue("mlflow_postgres_store")
    return request.getfixturevalue("mlflow_stores")[request.param]


@pytest.fixture
def target(tmp_path, monkeypatch) -> str:
    """A fresh evalkit store, with its artifacts beside it."""
    monkeypatch.setenv("EVALKIT_ARTIFACT_ROOT", str(tmp_path / "evalkit-artifacts"))
    yield f"sqlite:///{tmp_path}/evalkit.db"
    close_stores()


def import_mlflow(target: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--tracking-uri", target, "import-mlflow", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def imported_runs(store: TrackingStore) -> dict[str, Run]:
    """MLflow run id -> the evalkit run copied whole from it."""
    ids = [e.experiment_id for e in store.search_experiments(ViewType.ALL)]
    runs, _ = store.search_runs(ids, f"tags.`{IMPORTED_AT_TAG}` IS NOT NULL", ViewType.ALL, 1000)
    by_mlflow_id = {run.data.tags[RUN_ID_TAG]: run for run in runs}
    assert len(by_mlflow_id) == len(runs), "an MLflow run was imported twice"
    return by_mlflow_id


def history_key(item: list) -> tuple:
    return item[0], item[1], str(item[2])


def as_json(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if abs(value) == 1.7976931348623157e308:  # MLflow's SQL store writes infinity as the largest float
        return "Infinity" if value > 0 else "-Infinity"
    return value


def test_import_copies_every_run_value_by_value(mlflow_store, target):
    output = import_mlflow(target, mlflow_store.uri)
    store = open_tracking_store(target)
    runs = imported_runs(store)
    expected_runs = [(e, r) for e in mlflow_store.expected["experiments"] for r in e["runs"]]
    assert len(runs) == len(expected_runs) == 6

    for experiment, expected in expected_runs:
        run = runs[expected["run_id"]]
        copied_experiment = store.get_experiment(run.info.experiment_id)
        assert copied_experiment.name == experiment["name"]
        assert copied_experiment.lifecycle_stage.value == experiment["lifecycle_stage"]
        assert experiment["tags"].items() <= copied_experiment.tags.items()
        info = run.info
        assert (info.run_name, info.status.value, info.start_time, info.end_time, info.lifecycle_stage.value) == (
            expected["run_name"], expected["status"], expected["start_time"], expected["end_time"],
            expected["lifecycle_stage"])
        assert run.data.params == {k: v for k, v in expected["params"].items() if k not in UNMAPPABLE["params"]}

        tags = {k: v for k, v in run.data.tags.items() if not k.startswith("evalkit.mlflow.")}
        parent = expected["tags"].get("mlflow.parentRunId")
        if parent is not None:  # the parent is the evalkit copy of MLflow's parent, in the column and the tag
            assert info.parent_run_id == runs[parent].info.run_id == tags.pop("mlflow.parentRunId")
            expected["tags"] = {k: v for k, v in expected["tags"].items() if k != "mlflow.parentRunId"}
        else:
            assert info.parent_run_id is None
        assert tags == expected["tags"]
        assert IMPORTED_AT_TAG in run.data.tags

        expected_metrics = {k: v for k, v in expected["metrics"].items() if k not in UNMAPPABLE["metrics"]}
        assert set(run.data.metrics) == set(expected_metrics)
        for key, history in expected_metrics.items():
            copied = [[m.step, m.timestamp, as_json(m.value)] for m in store.get_metric_history(info.run_id, key)]
            wanted = [[step, ts, as_json(value) if not isinstance(value, str) else value] for step, ts, value in history]
            assert sorted(copied, key=history_key) == sorted(wanted, key=history_key), key

        repository = get_artifact_repository(info.artifact_uri)
        assert {f.path: f.file_size for f in repository.walk_files()} == expected["artifacts"]
        if "tables/rows.csv" in expected["artifacts"]:
            assert repository.read_bytes("tables/rows.csv") == b"q,a\n1,2\n" * 50

    loss = next(r for _, r in expected_runs if r["run_name"] == "nightly-parent")["metrics"]["loss"]
    assert len(loss) == 121, "the builder's history is what the test expects"
    # what could not be mapped is named, not dropped silently
    assert "param 'précision' left out" in output
    assert "metric 'latency_é' (1 values) left out" in output
    assert "runs: 6 copied, 0 already imported" in output
    assert_registry_copied(store, mlflow_store.expected, runs)
    assert ("registered models: 2 copied, 0 already imported; model versions: 3 copied, 0 already imported; "
            "2 aliases copied") in output


def assert_registry_copied(store: TrackingStore, expected: dict, runs: dict[str, Run]) -> None:
    """evalkit's registry holds MLflow's models with their versions, stages, aliases, tags and descriptions."""
    assert len(expected["registered_models"]) == 2
    for wanted in expected["registered_models"]:
        model = store.get_registered_model(wanted["name"])
        assert model.description == (wanted["description"] or "")
        assert model.tags == {**wanted["tags"], MODEL_TAG: "true"}
        assert model.aliases == {alias: int(number) for alias, number in wanted["aliases"].items()}
        versions = {v.version: v for v in store.search_model_versions(f"name = '{wanted['name']}'")}
        assert set(versions) == {int(n) for n in wanted["versions"]}
        for number, version in wanted["versions"].items():
            copied = versions[int(number)]
            assert (copied.current_stage, copied.description, copied.tags, copied.flavor) == (
                version["stage"], version["description"] or "", version["tags"], MLFLOW_FLAVOR)
            if version["run_id"] is None:
                assert (copied.source, copied.run_id) == (version["source"], None)
            else:  # the source names the evalkit copy of the run, and the same files in it
                run_id = runs[version["run_id"]].info.run_id
                assert (copied.source, copied.run_id) == (f"runs:/{run_id}/reports", run_id)
    stages = [(e.version, e.to_value) for e in store.get_model_version_history("rag-model") if e.kind == "stage"]
    assert stages == [(1, "Archived"), (2, "Production"), (3, "Staging")]


def test_a_second_import_duplicates_nothing(mlflow_store, target):
    import_mlflow(target, mlflow_store.uri)
    store = open_tracking_store(target)
    before = {k: (r.info.run_id, len(store.get_metric_history(r.info.run_id, "loss"))) for k, r in imported_runs(store).items()}

    output = import_mlflow(target, mlflow_store.uri)

    assert "runs: 0 copied, 6 already imported" in output
    assert "experiments: 0 new" in output
    assert ("registered models: 0 copied, 2 already imported; model versions: 0 copied, 3 already imported; "
            "0 aliases copied") in output
    assert len(store.search_model_versions("name = 'rag-model'")) == 3
    after = {k: (r.info.run_id, len(store.get_metric_history(r.info.run_id, "loss"))) for k, r in imported_runs(store).items()}
    assert after == before
    assert len(store.search_experiments(ViewType.ALL)) == 3


def test_dry_run_prints_what_it_would_copy_and_writes_nothing(mlflow_stores, target):
    output = import_mlflow(target, mlflow_stores["sqlite"].uri, "--dry-run")

    assert "dry run, nothing written" in output
    assert "experiments: 3 new (Default, rag-eval, old-experiment)" in output
    assert "runs: 6 would copy, 0 already imported" in output
    # 121 + 1 + 2 + 1 values of the parent, 1 of each other run but the one with a refused key (1 of 2)
    assert "values would copy: 5 params, 8 tags, 130 metric values, 3 artifact files (418 bytes)" in output
    assert "param 'précision' left out" in output
    assert ("registered models: 2 would copy, 0 already imported; model versions: 3 would copy, "
            "0 already imported; 2 aliases would copy") in output
    assert not Path(target.removeprefix("sqlite:///")).exists(), "a dry run created the evalkit store"


def test_an_interrupted_import_is_finished_without_a_duplicate(mlflow_stores, target):
    source = mlflow_stores["sqlite"]
    parent = next(r for e in source.expected["experiments"] for r in e["runs"] if r["run_name"] == "nightly-parent")
    store = open_tracking_store(target)
    # what a crash right after the run was created leaves: the id tag, without the tag of a whole copy
    experiment_id = store.create_experiment("rag-eval")
    half = store.create_run(experiment_id, "nightly-parent", tags={RUN_ID_TAG: parent["run_id"]})

    output = import_mlflow(target, source.uri)

    assert "1 half-copied by an interrupted import" in output
    assert "experiments: 2 new (Default, old-experiment), 1 existing" in output
    assert store.get_run(half.info.run_id).info.lifecycle_stage.value == "deleted"
    copied = imported_runs(store)[parent["run_id"]]
    assert copied.info.run_id != half.info.run_id
    assert len(store.get_metric_history(copied.info.run_id, "loss")) == 121
    # the existing experiment took the runs and, not being the import's, keeps no MLflow id
    assert copied.info.experiment_id == experiment_id


def test_a_store_that_is_not_mlflow_is_refused_by_name(tmp_path, target):
    evalkit_db = tmp_path / "other.db"
    open_tracking_store(f"sqlite:///{evalkit_db}").close()
    result = CliRunner().invoke(cli, ["--tracking-uri", target, "import-mlflow", f"sqlite:///{evalkit_db}"])
    assert result.exit_code != 0
    assert "is not an MLflow tracking database" in str(result.exception)

    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["--tracking-uri", target, "import-mlflow", str(empty)])
    assert "is not an MLflow file store" in str(result.exception)

    result = CliRunner().invoke(cli, ["--tracking-uri", target, "import-mlflow", str(tmp_path / "missing")])
    assert "no MLflow store at" in str(result.exception)


class OneRunSource(MlflowSource):
    """An MLflow store of one run whose artifacts an MLflow server kept (``mlflow-artifacts:/``)."""

    display_uri = "test"

    def __init__(self, artifact_uri: str, status: str = "FINISHED") -> None:
        self.run = SourceRun("a" * 32, "1", "served", status, 1000, 2000, "active", artifact_uri, "ana")

    def experiments(self) -> list[SourceExperiment]:
        return [SourceExperiment("1", "served", "mlflow-artifacts:/1", "active", 1, 1)]

    def runs(self, experiment_id: str) -> list[SourceRun]:
        return [self.run]

    def run_data(self, run: SourceRun) -> SourceRunData:
        return SourceRunData(params={"p": "1"}, metrics=[SourceMetric("m", 0.5, 1500, 0)])

    def unmapped_counts(self) -> dict[str, int]:
        return {"traces": 2}

    def registered_models(self) -> list:
        return []


@pytest.mark.parametrize("uri", ["mlflow-artifacts:/1/runid/artifacts", "mlflow-artifacts://127.0.0.1:5000/1/runid/artifacts"])
def test_artifacts_an_mlflow_server_kept_are_read_from_its_destination(tmp_path, target, uri):
    destination = tmp_path / "mlartifacts"
    (destination / "1" / "runid" / "artifacts" / "plots").mkdir(parents=True)
    (destination / "1" / "runid" / "artifacts" / "plots" / "curve.txt").write_text("0.1 0.2")
    store = open_tracking_store(target)

    without = MlflowImporter(OneRunSource(uri), store, dry_run=True).run()
    summary = MlflowImporter(OneRunSource(uri), store, artifacts_destination=str(destination)).run()

    assert any("pass --artifacts-destination" in line for line in without.not_mapped)
    assert (summary.runs_copied, summary.artifact_files) == (1, 1)
    assert "2 traces: evalkit has no place for them yet" in summary.not_mapped
    run = imported_runs(store)["a" * 32]
    assert get_artifact_repository(run.info.artifact_uri).read_bytes("plots/curve.txt") == b"0.1 0.2"


def test_a_status_evalkit_does_not_have_is_imported_as_running_and_reported(target):
    store = open_tracking_store(target)
    summary = MlflowImporter(OneRunSource("", status="SCHEDULED"), store).run()
    assert imported_runs(store)["a" * 32].info.status.value == "RUNNING"
    assert any("status SCHEDULED has no evalkit equivalent" in line for line in summary.not_mapped)


class RegistrySource(OneRunSource):
    """One run and two registered models: "gap" lost its version 2 in MLflow; "taken" exists in evalkit."""

    def registered_models(self) -> list[SourceRegisteredModel]:
        def version(number: int, stage: str) -> SourceModelVersion:
            return SourceModelVersion(number, f"runs:/{'a' * 32}/model", "a" * 32, stage, "", "ana")

        return [SourceRegisteredModel("gap", "", {}, {"best": 3}, [version(1, "Archived"), version(3, "Production")]),
                SourceRegisteredModel("taken", "", {}, {}, [version(1, "None")])]


def test_registered_models_keep_their_version_numbers_and_never_join_an_evalkit_model(target):
    store = open_tracking_store(target)
    store.create_registered_model("taken")

    summary = MlflowImporter(RegistrySource(""), store).run()
    again = MlflowImporter(RegistrySource(""), store).run()

    run_id = imported_runs(store)["a" * 32].info.run_id
    versions = {v.version: v for v in store.search_model_versions("name = 'gap'")}
    assert {n: (v.current_stage, v.source, v.run_id) for n, v in versions.items()} == {
        1: ("Archived", f"runs:/{run_id}/model", run_id), 3: ("Production", f"runs:/{run_id}/model", run_id)}
    assert store.get_model_version_by_alias("gap", "best").version == 3
    assert [e.version for e in store.get_model_version_history("gap") if e.kind == "deleted"] == [2]
    assert store.search_model_versions("name = 'taken'") == []
    assert any("'taken': an evalkit model of that name exists" in line for line in summary.not_mapped)
    assert (summary.model_versions, again.model_versions, again.model_versions_already_imported) == (2, 0, 2)
