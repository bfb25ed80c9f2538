"""The tracking store's behaviour, run once on SQLite and once on a real PostgreSQL server."""

from __future__ import annotations

import math
import re

import pytest

import evalkit as ek
from evalkit.entities import Metric, Param, RunTag


@pytest.fixture
def client(tracking_uri: str) -> ek.TrackingClient:
    return ek.TrackingClient(tracking_uri)


@pytest.fixture
def experiment_id(client: ek.TrackingClient) -> str:
    return client.create_experiment("exp", tags={"team": "rag"})


def test_experiments_are_unique_taggable_and_soft_deleted(client, experiment_id):
    experiment = client.get_experiment(experiment_id)
    assert experiment.name == "exp" and experiment.tags == {"team": "rag"}
    assert experiment.artifact_location.endswith(f"/{experiment_id}")
    with pytest.raises(ek.AlreadyExists, match="'exp' already exists"):
        client.create_experiment("exp")
    client.set_experiment_tag(experiment_id, "owner", "ana")
    assert client.get_experiment_by_name("exp").tags == {"team": "rag", "owner": "ana"}
    assert client.get_experiment_by_name("missing") is None

    client.delete_experiment(experiment_id)
    assert [e.name for e in client.search_experiments()] == []
    assert [e.name for e in client.search_experiments("DELETED_ONLY")] == ["exp"]
    with pytest.raises(ek.InvalidState, match="deleted"):
        client.create_run(experiment_id)
    client.restore_experiment(experiment_id)
    assert [e.name for e in client.search_experiments(name_like="ex%")] == ["exp"]


def test_unknown_ids_raise_not_found(client):
    with pytest.raises(ek.NotFound, match="no run with id 'nope'"):
        client.get_run("nope")
    with pytest.raises(ek.NotFound, match="no experiment with id '999'"):
        client.get_experiment("999")
    with pytest.raises(ek.NotFound, match="no experiment with id 'abc'"):
        client.create_run("abc")
    with pytest.raises(ek.NotFound):
        client.log_metric("0" * 32, "m", 1.0)


def test_run_lifecycle_and_data_round_trip(client, experiment_id):
    run = client.create_run(experiment_id, run_name="first", tags={"stage": "dev"})
    run_id = run.info.run_id
    assert run.info.status is ek.RunStatus.RUNNING and run.info.end_time is None
    client.log_batch(
        run_id,
        metrics=[Metric("acc", 0.5, 1000, 0), Metric("acc", 0.75, 1001, 1), Metric("loss", 2.0, 1000, 0)],
        params=[Param("lr", 0.01), Param("model", "gpt-4o")],
        tags=[RunTag("stage", "prod")],
    )
    info = client.set_terminated(run_id, "FINISHED")
    assert info.status is ek.RunStatus.FINISHED and info.end_time >= info.start_time

    stored = client.get_run(run_id)
    assert stored.info.run_name == "first"
    assert stored.data.params == {"lr": "0.01", "model": "gpt-4o"}
    assert stored.data.metrics == {"acc": 0.75, "loss": 2.0}
    assert stored.data.tags == {"stage": "prod"}
    assert [(m.value, m.step) for m in client.get_metric_history(run_id, "acc")] == [(0.5, 0), (0.75, 1)]


def test_latest_metric_is_highest_step_then_latest_time(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "m", 3.0, step=5, timestamp=100)
    client.log_metric(run_id, "m", 1.0, step=2, timestamp=999)  # older step logged later: not latest
    client.flush()
    client.log_metric(run_id, "m", 4.0, step=5, timestamp=101)  # same step, newer time: latest
    client.log_metric(run_id, "m", 0.0, step=1, timestamp=5000)
    assert client.get_run(run_id).data.metrics["m"] == 4.0
    assert len(client.get_metric_history(run_id, "m")) == 4


def test_params_are_immutable_even_across_flushes(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "lr", "0.01")
    client.flush()
    client.log_param(run_id, "lr", "0.01")  # the same value again is fine
    with pytest.raises(ek.InvalidArgument, match=r"param 'lr' .* is already '0.01'.*tried '0.02'"):
        client.log_param(run_id, "lr", "0.02")
    # a second client (no in-memory cache of the first) sees the stored value
    other = ek.TrackingClient(client.tracking_uri)
    other.store._known_params.clear()
    with pytest.raises(ek.InvalidArgument, match="params cannot change"):
        other.log_batch(run_id, params=[Param("lr", "0.03")])
    assert client.get_run(run_id).data.params == {"lr": "0.01"}


def test_invalid_values_are_refused_and_nothing_of_the_batch_is_written(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    cases = [
        ([Metric("ok", 1.0, 1, 0), Metric("bad", "high", 1, 0)], "metric 'bad' must be a real number, got str"),
        ([Metric("ok", 1.0, 1, 0), Metric("bad", None, 1, 0)], "got NoneType"),
        ([Metric("bad key!", 1.0, 1, 0)], r"contains '!'"),
        ([Metric("ok", 1.0, 1, 1.5)], "step of metric 'ok' must be an integer"),
        ([Metric("ok", 1.0, -1, 0)], "timestamp of metric 'ok'"),
    ]
    for metrics, message in cases:
        with pytest.raises(ek.InvalidArgument, match=message):
            client.log_batch(run_id, metrics=metrics, params=[Param("p", "v")])
    with pytest.raises(ek.InvalidArgument, match="keys may hold only"):
        client.log_param(run_id, "lr=1", 1)
    with pytest.raises(ek.InvalidArgument, match="the limit is 250"):
        client.set_tag(run_id, "k" * 251, "v")
    run = client.get_run(run_id)
    assert run.data.metrics == {} and run.data.params == {}


def test_the_key_rule_names_exactly_the_characters_allowed_and_suggests_an_ascii_key(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    allowed = "keys may hold only the ASCII letters A-Z and a-z, the digits 0-9, '_', '-', '.', '/' and space"
    with pytest.raises(ek.InvalidArgument, match=re.escape(f"metric key 'précision@1' contains '@é': {allowed}; "
                                                           "e.g. 'precision_1'")):
        client.log_metric(run_id, "précision@1", 0.5)
    with pytest.raises(ek.InvalidArgument, match=re.escape(f"contains 'ностчь': {allowed}") + "$"):
        client.set_tag(run_id, "точность", "x")
    client.log_metric(run_id, "Top-1 acc/v2.x_y", 0.5)  # every allowed character at once
    assert client.get_run(run_id).data.metrics == {"Top-1 acc/v2.x_y": 0.5}


def test_nan_and_infinity_are_stored_and_nan_never_matches_a_search(client, experiment_id):
    run_id = client.create_run(experiment_id, run_name="weird").info.run_id
    client.log_batch(run_id, metrics=[Metric("nan", float("nan"), 1, 0), Metric("inf", float("inf"), 1, 0),
                                      Metric("ninf", float("-inf"), 1, 0)])
    metrics = client.get_run(run_id).data.metrics
    assert math.isnan(metrics["nan"]) and metrics["inf"] == math.inf and metrics["ninf"] == -math.inf
    assert math.isnan(client.get_metric_history(run_id, "nan")[0].value)
    for condition in ("metrics.nan > 0", "metrics.nan < 0", "metrics.nan = 0", "metrics.nan != 0"):
        assert client.search_runs([experiment_id], condition)[0] == []
    assert len(client.search_runs([experiment_id], "metrics.inf > 1e308")[0]) == 1
    assert len(client.search_runs([experiment_id], "metrics.nan IS NOT NULL")[0]) == 1


def test_writes_to_finished_or_deleted_runs_are_refused(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.set_terminated(run_id)
    with pytest.raises(ek.InvalidState, match="is FINISHED: only RUNNING runs accept writes"):
        client.log_metric(run_id, "m", 1.0)
    with pytest.raises(ek.InvalidState):
        client.log_text(run_id, "x", "a.txt")
    client.update_run(run_id, "RUNNING")  # reopening is explicit
    client.log_metric(run_id, "m", 1.0)
    client.delete_run(run_id)
    with pytest.raises(ek.InvalidState, match="is deleted"):
        client.log_metric(run_id, "m", 2.0)
    assert client.get_run(run_id).data.metrics == {"m": 1.0}


def test_delete_and_restore_control_search_visibility(client, experiment_id):
    keep = client.create_run(experiment_id, run_name="keep").info.run_id
    gone = client.create_run(experiment_id, run_name="gone").info.run_id
    client.delete_run(gone)
    names = lambda view: sorted(r.info.run_name for r in client.search_runs([experiment_id], run_view_type=view)[0])  # noqa: E731
    assert names("ACTIVE_ONLY") == ["keep"]
    assert names("DELETED_ONLY") == ["gone"]
    assert names("ALL") == ["gone", "keep"]
    client.restore_run(gone)
    assert names("ACTIVE_ONLY") == ["gone", "keep"]
    assert client.get_run(keep).info.lifecycle_stage.value == "active"


def test_nested_runs_record_their_parent(client, experiment_id):
    parent = client.create_run(experiment_id).info.run_id
    child = client.create_run(experiment_id, parent_run_id=parent).info.run_id
    assert client.get_run(child).info.parent_run_id == parent
    found, _ = client.search_runs([experiment_id], f"attributes.parent_run_id = '{parent}'")
    assert [r.info.run_id for r in found] == [child]
    with pytest.raises(ek.NotFound):
        client.create_run(experiment_id, parent_run_id="f" * 32)


# ---- search -----------------------------------------------------------------------------------


@pytest.fixture
def populated(client, experiment_id) -> dict[str, str]:
    """Five runs with known params, metrics, tags and times."""
    specs = {
        "a": dict(metrics={"acc": 0.9, "faithfulness/v1/mean": 0.8}, params={"model": "gpt-4o", "lr": "2e-5"}, tags={"team": "RAG"}),
        "b": dict(metrics={"acc": 0.7, "faithfulness/v1/mean": 0.95}, params={"model": "gpt-4o-mini", "lr": "1e-4"}, tags={"team": "rag"}),
        "c": dict(metrics={"acc": 0.5}, params={"model": "llama-3", "lr": "2e-5"}, tags={}),
        "d": dict(metrics={"acc": 0.95}, params={"model": "o1's model"}, tags={"team": "search"}),
        "e": dict(metrics={}, params={}, tags={}),
    }
    ids = {}
    for i, (name, spec) in enumerate(specs.items()):
        run_id = client.create_run(experiment_id, run_name=name, start_time=1_000 + i).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, 1, 0) for k, v in spec["metrics"].items()],
            params=[Param(k, v) for k, v in spec["params"].items()],
            tags=[RunTag(k, v) for k, v in spec["tags"].items()],
        )
        client.set_terminated(run_id, "FAILED" if name == "c" else "FINISHED", end_time=2_000 + i)
        ids[name] = run_id
    return ids


def _names(client, experiment_id, filter_string=None, order_by=None, **kwargs) -> list[str]:
    runs, _ = client.search_runs([experiment_id], filter_string, order_by=order_by, **kwargs)
    return [r.info.run_name for r in runs]


@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("metrics.acc > 0.8", {"a", "d"}),
        ("metrics.acc >= 0.9", {"a", "d"}),
        ("metrics.acc < 0.7", {"c"}),
        ("metrics.acc <= 0.7", {"b", "c"}),
        ("metrics.acc = 0.5", {"c"}),
        ("metrics.acc != 0.5", {"a", "b", "d"}),
        ("metrics.`faithfulness/v1/mean` > 0.9", {"b"}),
        ("params.lr = '2e-5'", {"a", "c"}),
        ("params.lr = 2e-5", {"a", "c"}),
        ("params.model != 'gpt-4o'", {"b", "c", "d"}),
        ("params.model LIKE 'gpt%'", {"a", "b"}),
        ("params.model LIKE 'GPT%'", set()),
        ("params.model ILIKE 'GPT%'", {"a", "b"}),
        ("params.model NOT LIKE 'gpt%'", {"c", "d"}),
        ("params.model = 'o1\\'s model'", {"d"}),
        ("params.model LIKE 'gpt\\%'", set()),
        ("params.model LIKE 'gpt_4o'", {"a"}),
        ("params.model LIKE 'gpt\\_4o'", set()),
        ("params.model IN ('llama-3', 'gpt-4o')", {"a", "c"}),
        ("params.model NOT IN ('llama-3', 'gpt-4o')", {"b", "d"}),
        ("params.lr IS NULL", {"d", "e"}),
        ("tags.team IS NOT NULL", {"a", "b", "d"}),
        ("tags.team = 'rag'", {"b"}),
        ("tags.team ILIKE 'rag'", {"a", "b"}),
        ("metrics.acc IS NULL", {"e"}),
        ("attributes.status = 'FAILED'", {"c"}),
        ("attributes.status IN ('FAILED', 'finished') AND metrics.acc < 0.8", {"b", "c"}),
        ("attributes.run_name LIKE '%a%'", {"a"}),
        ("attributes.start_time >= 1003", {"d", "e"}),
        ("attributes.end_time < 2001", {"a"}),
        # OR, NOT and parentheses, which MLflow lacks
        ("metrics.acc > 0.9 OR params.model = 'llama-3'", {"c", "d"}),
        ("NOT metrics.acc > 0.6", {"c", "e"}),
        ("(params.lr = '2e-5' OR tags.team = 'search') AND metrics.acc > 0.6", {"a", "d"}),
        ("params.lr = '2e-5' OR tags.team = 'search' AND metrics.acc > 0.96", {"a", "c"}),
        ("NOT (tags.team IS NULL OR tags.team = 'rag')", {"a", "d"}),
        ("NOT attributes.end_time > 2002", {"a", "b", "c"}),
    ],
)
def test_filter_semantics(client, experiment_id, populated, filter_string, expected):
    assert set(_names(client, experiment_id, filter_string)) == expected


def test_filters_cannot_inject_sql(client, experiment_id, populated):
    hostile = [
        "params.model = 'x'' OR ''1''=''1'",
        "params.model = 'x\\' OR 1=1 --'",
        "tags.team = 'rag'; DROP TABLE runs; --'",
        "metrics.`acc') OR 1=1 --` > 0",
    ]
    for text in hostile:
        try:
            assert _names(client, experiment_id, text) == []
        except ek.FilterSyntaxError:
            pass
    assert len(_names(client, experiment_id)) == 5  # the table is still there, whole


def test_order_by_puts_missing_values_last_and_pages_are_stable(client, experiment_id, populated):
    assert _names(client, experiment_id, order_by=["metrics.acc DESC"]) == ["d", "a", "b", "c", "e"]
    assert _names(client, experiment_id, order_by=["metrics.acc ASC"]) == ["c", "b", "a", "d", "e"]
    assert _names(client, experiment_id, order_by=["params.model"]) == ["a", "b", "c", "d", "e"]
    assert _names(client, experiment_id, order_by=["attributes.start_time"]) == ["a", "b", "c", "d", "e"]
    assert _names(client, experiment_id) == ["e", "d", "c", "b", "a"]  # newest first by default
    assert _names(client, experiment_id, "metrics.acc > 0", order_by=["metrics.`acc` DESC"], max_results=2) == ["d", "a"]

    seen, token = [], None
    while True:
        page, token = client.search_runs([experiment_id], order_by=["metrics.acc DESC"], max_results=2, page_token=token)
        seen += [r.info.run_name for r in page]
        if token is None:
            break
    assert seen == ["d", "a", "b", "c", "e"]


def test_mlflow_run_name_tag_filters_and_sorts_on_the_run_name(client, experiment_id, populated):
    """MLflow keeps the run name in the mlflow.runName tag; filters written for MLflow work unchanged."""
    assert _names(client, experiment_id, "tags.mlflow.runName = 'b'") == ["b"]
    assert set(_names(client, experiment_id, "tags.mlflow.runName IN ('a', 'c') OR tags.`mlflow.runName` LIKE 'e%'")) \
        == {"a", "c", "e"}
    assert _names(client, experiment_id, "tags.mlflow.runName IS NULL") == []
    assert _names(client, experiment_id, order_by=["tags.mlflow.runName DESC"]) == ["e", "d", "c", "b", "a"]
    assert _names(client, experiment_id, "metrics.acc > 0", order_by=["tags.mlflow.runName"]) == ["a", "b", "c", "d"]
    frame = ek.search_runs([experiment_id], filter_string="tags.mlflow.runName = 'd'")
    assert frame["run_name"].tolist() == ["d"]


def test_search_errors_name_the_problem(client, experiment_id, populated):
    with pytest.raises(ek.FilterSyntaxError) as info:
        client.search_runs([experiment_id], "metrics.acc > 0.5 AND")
    assert "metrics.acc > 0.5 AND" in str(info.value) and "^" in str(info.value)
    with pytest.raises(ek.InvalidArgument, match="max_results"):
        client.search_runs([experiment_id], max_results=0)
    with pytest.raises(ek.InvalidArgument, match="page token"):
        client.search_runs([experiment_id], page_token="garbage!")
    with pytest.raises(ek.InvalidArgument, match="run_view_type"):
        client.search_runs([experiment_id], run_view_type="SOME")
