"""MLflow's own client on evalkit server's registry routes, then the same registry read by evalkit.

One subprocess in the MLflow virtualenv (tests/mlflow_registry_client.py) logs two scikit-learn
models with ``mlflow.sklearn.log_model``, registers, describes, tags, aliases and promotes them, and
loads ``models:/`` URIs; this test checks what it saw and reads the same models through evalkit's
``TrackingClient`` pointed at the same server. Without the MLflow virtualenv it skips, unless
``EVALKIT_REQUIRE_MLFLOW=1`` (CI), where it fails.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from mlflow_venv import mlflow_python_for_tests

from evalkit.errors import InvalidState
from evalkit.tracking.client import TrackingClient

SCRIPT = Path(__file__).resolve().parents[1] / "mlflow_registry_client.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_session(tracking_server, tmp_path_factory) -> dict:
    python = mlflow_python_for_tests()
    suffix = uuid.uuid4().hex[:8]
    names = {"experiment": f"mlflow-registry-{suffix}", "model": f"Classifier-{suffix}",
             "guarded": f"Guarded-{suffix}"}
    TrackingClient(tracking_server.url).create_registered_model(names["guarded"], evidence_required=["Production"])
    out = tmp_path_factory.mktemp("mlflow-registry") / "seen.json"
    done = subprocess.run([str(python), str(SCRIPT), tracking_server.url, names["experiment"], names["model"],
                           names["guarded"], str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return {"seen": json.loads(out.read_text()), **names}


@pytest.fixture
def evalkit_client(tracking_server) -> TrackingClient:
    """evalkit's client on the same server (one per test: stores are closed between tests)."""
    return TrackingClient(tracking_server.url)


def test_mlflow_client_registers_promotes_and_loads_models(mlflow_session):
    seen, name = mlflow_session["seen"], mlflow_session["model"]
    assert seen["versions"] == ["1", "2"]
    assert seen["moved"] == {"version": "2", "stage": "Production"}
    assert seen["model"] == {"description": "predicts the class of x", "tags": {"team": "search"},
                             "aliases": {"champion": "1"}, "latest": [["1", "Archived"], ["2", "Production"]]}
    first_run = seen["run_ids"][0]
    # a version's source follows the rule of the run's artifact_uri: its path under the artifact root
    for run_id, uri in zip(seen["run_ids"], seen["artifact_uris"]):
        assert uri.startswith("mlflow-artifacts:/") and uri.endswith(f"/{run_id}/artifacts"), uri
    assert seen["version1"] == {"stage": "Archived", "description": "the first fit", "tags": {"validated": "yes"},
                                "aliases": ["champion"], "run_id": first_run,
                                "source": f"{seen['artifact_uris'][0]}/model"}
    assert seen["by_alias"] == "1"
    assert seen["latest"] == [["1", "Archived"], ["2", "Production"]]
    assert seen["download_uri"] == f"{seen['artifact_uris'][1]}/model"
    assert seen["search_models"] == [name]
    assert seen["search_versions"] == ["1", "2"]
    # version 2 (Production) predicts the opposite of version 1 (@champion and /1)
    assert seen["predict"] == {f"models:/{name}/Production": [1, 1, 0, 0], f"models:/{name}@champion": [0, 0, 1, 1],
                               f"models:/{name}/1": [0, 0, 1, 1], seen["logged_model_uri"]: [1, 1, 0, 0]}
    errors = seen["errors"]
    assert errors["missing"].startswith("RESOURCE_DOES_NOT_EXIST: ") and "no registered model named" in errors["missing"]
    assert errors["taken"].startswith("RESOURCE_ALREADY_EXISTS: ")
    assert errors["bad_stage"].startswith("INVALID_PARAMETER_VALUE: ") and "unknown stage 'Live'" in errors["bad_stage"]
    assert seen["guarded"]["staging"] == "Staging"
    assert seen["guarded"]["production"].startswith("INVALID_PARAMETER_VALUE: ")  # evalkit's INVALID_STATE
    assert "MLflow model (flavor mlflow), not an evalkit bundle" in seen["guarded"]["production"]


def test_evalkit_reads_the_registry_mlflow_wrote(mlflow_session, evalkit_client):
    seen, name, client = mlflow_session["seen"], mlflow_session["model"], evalkit_client
    model = client.get_registered_model(name)
    assert (model.description, model.tags, model.aliases) == ("predicts the class of x", {"team": "search"},
                                                              {"champion": 1})
    versions = {v.version: v for v in client.search_model_versions(f"name = '{name}'")}
    assert {n: v.current_stage for n, v in versions.items()} == {1: "Archived", 2: "Production"}
    for number, run_id in zip((1, 2), seen["run_ids"]):
        version = versions[number]
        assert (version.source, version.run_id, version.flavor) == (f"runs:/{run_id}/model", run_id, "mlflow")
        mlmodel = client.artifact_repository(run_id).read_bytes("model/MLmodel")
        assert version.bundle_hash == hashlib.sha256(mlmodel).hexdigest()
    # the history records every move MLflow's client made, the archiving included
    moves = [(e.version, e.from_value, e.to_value) for e in client.get_model_version_history(name) if e.kind == "stage"]
    assert moves == [(1, "None", "Staging"), (1, "Staging", "Production"), (2, "None", "Staging"),
                     (1, "Production", "Archived"),
                     (2, "Staging", "Production")]
    aliases = [(e.alias, e.from_value, e.to_value) for e in client.get_model_version_history(name)
               if e.kind == "alias"]
    assert aliases == [("champion", None, "1"), ("challenger", None, "2"), ("challenger", "2", None)]
    # the run keeps the logged model's record; MLflow 3's models:/<model id> loads it
    run = client.get_run(seen["run_ids"][1])
    assert run.data.params == {"C": "1.0"}
    assert seen["logged_model_uri"] == f"models:/{run.data.tags['evalkit.mlflow.logged_models']}"
    # an evidence rule cannot be met by an MLflow model, even with a run named as evidence
    with pytest.raises(InvalidState, match="not an evalkit bundle"):
        client.transition_model_version_stage(mlflow_session["guarded"], 1, "Production",
                                              evidence_run_id=seen["run_ids"][0])


def test_mlflow_errors_have_mlflow_codes(tracking_server):
    base = f"{tracking_server.url}/api/2.0/mlflow"
    missing = httpx.get(f"{base}/registered-models/get", params={"name": "no-such-model"})
    assert (missing.status_code, missing.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    no_name = httpx.post(f"{base}/registered-models/create", json={})
    assert no_name.status_code == 400
    assert no_name.json()["error_code"] == "INVALID_PARAMETER_VALUE" and "name" in no_name.json()["message"]
    not_json = httpx.post(f"{base}/model-versions/transition-stage", content=b"{nope")
    assert not_json.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    outside = httpx.get(f"{tracking_server.url}/api/2.0/mlflow-artifacts/artifacts", params={"path": "../x"})
    assert (outside.status_code, outside.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
