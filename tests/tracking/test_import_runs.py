"""``TrackingStore.import_runs``: whole runs written at once (the SQL store: one transaction per call)."""

from __future__ import annotations

import math

import pytest

from evalkit.entities import Metric, Param, RunStatus, RunTag, ViewType
from evalkit.errors import InvalidArgument
from evalkit.tracking.schemes import open_tracking_store
from evalkit.tracking.store import ImportedRun, TrackingStore


@pytest.fixture
def store(tmp_path, monkeypatch) -> TrackingStore:
    monkeypatch.setenv("EVALKIT_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    opened = open_tracking_store(f"sqlite:///{tmp_path}/store.db")
    yield opened
    opened.close()


def test_import_runs_writes_whole_runs_with_their_history(store):
    experiment_id = store.create_experiment("imported")
    parent = store.create_run(experiment_id, "parent").info.run_id
    history = [Metric("loss", 1.0, 10, 0), Metric("loss", math.nan, 20, 1), Metric("loss", 0.5, 30, 1)]
    ids = store.import_runs(experiment_id, [
        ImportedRun("child", RunStatus.FAILED, 1000, 2000, parent_run_id=parent, creation_tags={"source": "a"},
                    params=[Param("lr", "0.1")], tags=[RunTag("team", "nlp")], metrics=history),
        ImportedRun("gone", RunStatus.FINISHED, 3000, 4000, deleted=True),
    ])

    child = store.get_run(ids[0])
    assert (child.info.run_name, child.info.status, child.info.start_time, child.info.end_time,
            child.info.parent_run_id) == ("child", RunStatus.FAILED, 1000, 2000, parent)
    assert child.data.params == {"lr": "0.1"}
    assert child.data.tags == {"source": "a", "team": "nlp"}
    assert child.data.metrics == {"loss": 0.5}  # highest step, then latest time
    assert [(m.step, m.timestamp) for m in store.get_metric_history(ids[0], "loss")] == [(0, 10), (1, 20), (1, 30)]
    assert store.get_run(ids[1]).info.lifecycle_stage.value == "deleted"
    assert child.info.artifact_uri.endswith(f"{ids[0]}/artifacts")


def test_import_runs_is_all_or_nothing(store):
    experiment_id = store.create_experiment("refused")
    with pytest.raises(InvalidArgument, match="latency_é"):
        store.import_runs(experiment_id, [ImportedRun("ok", RunStatus.FINISHED, 1, 2),
                                          ImportedRun("bad", RunStatus.FINISHED, 1, 2,
                                                      metrics=[Metric("latency_é", 1.0, 1, 0)])])
    assert store.search_runs([experiment_id], None, ViewType.ALL)[0] == []
