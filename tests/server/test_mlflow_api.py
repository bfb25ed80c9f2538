"""MLflow's REST API on evalkit server, with MLflow's own client as the client under test.

One subprocess in the MLflow virtualenv (``tests/mlflow_client_session.py``) drives the article's
sections 3 and 5, ``MlflowClient`` calls, scikit-learn's autolog, artifacts and auth against the
session's server (and a second, in-process server with tokens); the tests then read the same runs
through evalkit's ``TrackingClient`` and the web UI. Without the MLflow virtualenv the tests skip,
unless ``EVALKIT_REQUIRE_MLFLOW=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow_venv import mlflow_python_for_tests
from server_fixture import serve_in_thread

from evalkit.entities import ViewType
from evalkit.server.app import create_app
from evalkit.server.auth import TokenStore
from evalkit.server.auth.roles import required_role
from evalkit.server.config import ServerConfig
from evalkit.tracking.client import TrackingClient

SESSION_SCRIPT = Path(__file__).resolve().parents[1] / "mlflow_client_session.py"
ARTICLE_PARAMS = {"chunk_size": "512", "chunk_overlap": "50", "embedding_model": "text-embedding-3-small",
                  "top_k": "5", "llm_model": "gpt-4o", "temperature": "0.1"}
ARTICLE_METRICS = {"faithfulness": 0.91, "answer_relevancy": 0.87, "avg_latency_ms": 412.5,
                   "cost_per_query_usd": 0.025, "p95_latency_ms": 980.0}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> Iterator[dict]:
    """A server with tokens, in this process (uvicorn in a thread), and an editor and a reader token."""
    folder = tmp_path_factory.mktemp("mlflow-auth")
    config = ServerConfig(f"sqlite:///{folder / 'server.db'}", str(folder / "artifacts"), auth_enabled=True,
                          access_log=False)
    app = create_app(config)
    tokens = TokenStore.open(app.state.store.engine)
    editor, reader = tokens.create("mlflow-editor", "editor")[1], tokens.create("mlflow-reader", "reader")[1]
    with serve_in_thread(app) as url:
        yield {"url": url, "editor": editor, "reader": reader}


@pytest.fixture(scope="module")
def session(tracking_server, auth_server, tmp_path_factory) -> dict:
    """What MLflow's client did and read back (one subprocess for every test of this module)."""
    python = mlflow_python_for_tests()
    folder = tmp_path_factory.mktemp("mlflow-client")
    prefix = f"mlf-{uuid.uuid4().hex[:8]}"
    config = {"url": tracking_server.url, "prefix": prefix, "workdir": str(folder),
              "auth_url": auth_server["url"], "editor_token": auth_server["editor"],
              "reader_token": auth_server["reader"]}
    (folder / "config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "EVALKIT_"))}
    done = subprocess.run([str(python), str(SESSION_SCRIPT), str(folder / "config.json"), str(folder / "out.json")],
                          cwd=folder, env={**env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"MLflow's client failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return {**json.loads((folder / "out.json").read_text()), "prefix": prefix, "stdout": done.stdout}


@pytest.fixture
def evalkit_client(tracking_server) -> TrackingClient:
    return TrackingClient(tracking_server.url)


def test_the_articles_section_3_logs_into_evalkit_unchanged(session, evalkit_client, tracking_server):
    run = evalkit_client.get_run(session["article_run_id"])
    assert run.info.run_name == "rag-pipeline-v2" and run.info.status.value == "FINISHED"
    assert run.data.params == ARTICLE_PARAMS
    assert run.data.metrics == pytest.approx(ARTICLE_METRICS)
    seen = session["article_run"]
    assert seen["params"] == ARTICLE_PARAMS and seen["metrics"] == pytest.approx(ARTICLE_METRICS)
    assert seen["tags"]["mlflow.runName"] == "rag-pipeline-v2" and seen["tags"]["mlflow.source.type"] == "LOCAL"
    assert seen["tags"]["mlflow.source.type"] == run.data.tags["mlflow.source.type"]
    assert seen["artifact_uri"] == f"mlflow-artifacts:/{run.info.experiment_id}/{run.info.run_id}/artifacts"
    # the artifacts went through MLflow's proxy routes into the run's evalkit artifacts, and back
    files = ["confusion_matrix.png", "evaluation_report.html", "training_curve.png"]
    assert session["article_artifacts"] == files
    repository = evalkit_client.artifact_repository(run.info.run_id)
    assert sorted(f.path for f in repository.list_artifacts()) == files
    assert repository.read_bytes("confusion_matrix.png") == bytes(range(256)) * 40
    assert repository.read_bytes("training_curve.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert session["downloaded"]["confusion_matrix.png"] == 256 * 40
    assert session["report_text"] == "<html><body>faithfulness 0.91</body></html>"
    page = httpx.get(f"{tracking_server.url}/runs/{run.info.run_id}", timeout=30)
    assert page.status_code == 200
    assert "rag-pipeline-v2" in page.text and "text-embedding-3-small" in page.text and "faithfulness" in page.text


def test_the_articles_section_5_queries_find_the_runs_evalkit_finds(session, evalkit_client):
    assert [(r["eval_f1"], r["lr"]) for r in session["best_runs"]] == [(0.95, "2e-5"), (0.92, "2e-5")]
    assert session["f1_diff"] == "-0.0300"
    experiment = evalkit_client.get_experiment_by_name(f"{session['prefix']}-sentiment")
    runs, _ = evalkit_client.store.search_runs([experiment.experiment_id],
                                               "metrics.eval_f1 > 0.90 AND params.learning_rate = '2e-5'",
                                               order_by=["metrics.eval_f1 DESC"])
    assert [r.info.run_id for r in runs] == [r["run_id"] for r in session["best_runs"]]
    assert "Run A F1: 0.9500" in session["stdout"]


def test_mlflow_client_calls_map_onto_the_store(session, evalkit_client):
    prefix, experiment_id = session["prefix"], session["client_experiment_id"]
    experiment = evalkit_client.get_experiment(experiment_id)
    assert experiment.name == session["restored_experiment"] == f"{prefix}-client-renamed"
    assert experiment.tags == {"team": "nlp", "stage": "dev"} == session["experiment"]["tags"]
    assert session["experiment"]["artifact_location"] == f"mlflow-artifacts:/{experiment_id}"
    assert session["experiment_by_name"] == experiment_id and session["missing_experiment"] is None
    assert session["searched_experiments"] == [f"{prefix}-client"]
    assert session["deleted_experiment_stage"] == "deleted" and experiment.lifecycle_stage.value == "active"
    assert session["errors"] == {
        "duplicate_experiment": "RESOURCE_ALREADY_EXISTS", "unknown_run": "RESOURCE_DOES_NOT_EXIST",
        "bad_filter": "INVALID_PARAMETER_VALUE", "write_to_deleted": "INVALID_PARAMETER_VALUE",
        "write_to_finished": "INVALID_PARAMETER_VALUE",
        "no_token": "UNAUTHENTICATED", "reader_writes": "PERMISSION_DENIED"}
    for i, run_id in enumerate(session["client_runs"]):
        run, seen = evalkit_client.get_run(run_id), session["client_run_views"][run_id]
        assert run.info.run_name == seen["run_name"] == f"client-{i}" and run.info.status.value == "FINISHED"
        assert run.data.params == seen["params"] == {"lr": f"0.{i + 1}", "batch": "32"}
        assert run.data.tags["idx"] == seen["tags"]["idx"] == str(i) and "temp" not in run.data.tags
        assert run.data.tags["kind"] == ("even" if i % 2 == 0 else "odd")
        assert run.data.metrics["acc"] == seen["metrics"]["acc"] == pytest.approx(0.5 + i / 10)
        assert math.isnan(run.data.metrics["nan_metric"]) and seen["metrics"]["nan_metric"] == "nan"
        assert run.data.metrics["loss"] == seen["metrics"]["loss"] == pytest.approx(1 / 20 + i)
        ended = session["reopened"] if i == 0 else seen  # run 0 was reopened and ended again
        assert run.info.end_time == ended["end_time"] and run.info.start_time == seen["start_time"]
    reopened = evalkit_client.get_run(session["client_runs"][0])
    assert reopened.data.metrics["late"] == session["reopened"]["metrics"]["late"] == 2.0
    assert reopened.info.status.value == session["reopened"]["status"] == "FINISHED"
    history = evalkit_client.get_metric_history(session["client_runs"][2], "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [tuple(h) for h in session["history"]]
    assert [m.step for m in history] == list(range(20))
    assert session["search_pages"] == [["client-4", "client-3"], ["client-2", "client-1"], ["client-0"]]
    assert session["search_or"] == ["client-0", "client-3"]
    assert session["after_delete"] == ["client-0", "client-1", "client-2", "client-3"]
    assert session["deleted_only"] == ["client-4"] and session["after_restore"] == 5
    parent_id, child_id = session["parent_child"]
    assert evalkit_client.get_run(child_id).info.parent_run_id == parent_id and session["children"] == [child_id]
    assert evalkit_client.store.count_runs([experiment_id], None, ViewType.ALL) == 7


def test_scikit_learn_autolog_logs_params_and_metrics(session, evalkit_client):
    seen = session["sklearn_run"]
    run = evalkit_client.get_run(seen["run_id"])
    assert run.info.run_name == "iris-logreg"
    assert run.data.params == seen["params"] and run.data.params["C"] == "0.5" and run.data.params["max_iter"] == "200"
    assert run.data.metrics == pytest.approx(seen["metrics"])
    assert 0.9 < run.data.metrics["training_accuracy_score"] <= 1.0
    assert run.data.tags["estimator_name"] == seen["tags"]["estimator_name"] == "LogisticRegression"
    assert session["sklearn_inputs"] >= 1  # the training set, logged with log-inputs


def test_mlflow_tokens_and_roles(session, auth_server):
    assert session["auth_run"]["metrics"] == {"m": 1.5} and session["auth_artifact"] == "hello"
    assert session["auth_run"]["tags"]["mlflow.user"] == "mlflow-editor"  # the token's name, not the OS user
    assert session["reader_search"] == ["with-token"]
    answer = httpx.post(f"{auth_server['url']}/api/2.0/mlflow/runs/search", json={"experiment_ids": ["0"]})
    assert answer.status_code == 401 and answer.json()["error_code"] == "UNAUTHENTICATED"


def test_mlflow_errors_and_searches_have_mlflow_shapes(tracking_server):
    url = f"{tracking_server.url}/api/2.0/mlflow"
    missing = httpx.get(f"{url}/runs/get", params={"run_id": "f" * 32})
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    no_route = httpx.post(f"{url}/no-such-thing", json={})
    assert no_route.status_code == 404 and no_route.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    too_many = httpx.post(f"{url}/runs/search", json={"experiment_ids": ["0"], "max_results": 50_001})
    assert too_many.status_code == 400 and too_many.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    escape = httpx.get(f"{tracking_server.url}/api/2.0/mlflow-artifacts/artifacts", params={"path": "../../etc"})
    assert escape.status_code == 400 and escape.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert httpx.get(f"{tracking_server.url}/api/v1/runs/{'f' * 32}").json()["error_code"] == "NOT_FOUND"


@pytest.mark.parametrize("method,path,needed", [
    ("POST", "/api/2.0/mlflow/runs/search", "reader"),
    ("POST", "/api/2.0/mlflow/experiments/search", "reader"),
    ("GET", "/api/2.0/mlflow/runs/get", "reader"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/1/x", "reader"),
    ("POST", "/api/v1/runs/search", "reader"),  # evalkit's own client searches with POST too
    ("POST", "/api/2.0/mlflow/runs/log-batch", "editor"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/x", "editor"),
])
def test_the_role_rule_lets_readers_search_with_post(method, path, needed):
    assert required_role(method, path) == needed



def test_a_reader_token_searches_with_evalkits_client_too(session, auth_server, monkeypatch):
    monkeypatch.setenv("EVALKIT_TRACKING_TOKEN", auth_server["reader"])
    client = TrackingClient(auth_server["url"])
    run = client.get_run(session["auth_run_id"])
    runs, _ = client.store.search_runs([run.info.experiment_id])
    assert [r.info.run_name for r in runs] == ["with-token"] and run.data.metrics == {"m": 1.5}
