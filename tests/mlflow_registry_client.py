"""MLflow's own client against evalkit server's registry routes; prints what it saw as JSON.

Run with the Python of the MLflow virtualenv (tests/mlflow_venv.py), never evalkit's:
``python mlflow_registry_client.py SERVER_URL EXPERIMENT MODEL GUARDED_MODEL OUT.json``. It logs two
tiny scikit-learn models with ``mlflow.sklearn.log_model``, registers them, and walks the registry
calls MLflow users make (describe, tag, alias, Staging -> Production with archiving, latest
versions, ``models:/`` loading). ``GUARDED_MODEL`` was created by the test with an evidence rule on
Production: moving an MLflow model there must be refused.
"""

from __future__ import annotations

import json
import sys

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

X = np.array([[0.0], [1.0], [2.0], [3.0]])


def error_code(call) -> str:  # noqa: ANN001
    try:
        call()
    except MlflowException as exc:
        return f"{exc.error_code}: {exc.message}"
    return "no error"


def main() -> None:
    url, experiment, name, guarded, out = sys.argv[1:6]
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment(experiment)
    client = MlflowClient()
    run_ids, artifact_uris = [], []
    for labels in ([0, 0, 1, 1], [1, 1, 0, 0]):  # version 2 predicts the opposite of version 1
        with mlflow.start_run() as run:
            mlflow.log_param("C", "1.0")
            info = mlflow.sklearn.log_model(LogisticRegression().fit(X, np.array(labels)), name="model",
                                            pip_requirements=["scikit-learn"])
            run_ids.append(run.info.run_id)
            artifact_uris.append(run.info.artifact_uri)
    seen: dict = {"run_ids": run_ids, "artifact_uris": artifact_uris, "logged_model_uri": info.model_uri}
    v1 = mlflow.register_model(f"runs:/{run_ids[0]}/model", name)
    v2 = mlflow.register_model(f"runs:/{run_ids[1]}/model", name)
    seen["versions"] = [v1.version, v2.version]

    client.update_registered_model(name, description="predicts the class of x")
    client.update_model_version(name, "1", description="the first fit")
    client.set_registered_model_tag(name, "team", "search")
    client.set_registered_model_tag(name, "scratch", "x")
    client.delete_registered_model_tag(name, "scratch")
    client.set_model_version_tag(name, "1", "validated", "yes")
    client.set_model_version_tag(name, "2", "scratch", "x")
    client.delete_model_version_tag(name, "2", "scratch")
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    client.delete_registered_model_alias(name, "challenger")

    client.transition_model_version_stage(name, "1", "Staging")
    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "Staging")
    moved = client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    seen["moved"] = {"version": moved.version, "stage": moved.current_stage}

    model = client.get_registered_model(name)
    seen["model"] = {"description": model.description, "tags": model.tags, "aliases": model.aliases,
                     "latest": sorted((v.version, v.current_stage) for v in model.latest_versions)}
    one = client.get_model_version(name, "1")
    seen["version1"] = {"stage": one.current_stage, "description": one.description, "tags": one.tags,
                        "aliases": list(one.aliases), "run_id": one.run_id, "source": one.source}
    seen["by_alias"] = client.get_model_version_by_alias(name, "champion").version
    seen["latest"] = sorted((v.version, v.current_stage)
                            for v in client.get_latest_versions(name, ["Production", "Archived"]))
    seen["download_uri"] = client.get_model_version_download_uri(name, "2")
    seen["search_models"] = [m.name for m in client.search_registered_models(f"name = '{name}'")]
    seen["search_versions"] = sorted(v.version for v in client.search_model_versions(f"name = '{name}'"))
    seen["predict"] = {uri: mlflow.pyfunc.load_model(uri).predict(X).tolist()
                       for uri in (f"models:/{name}/Production", f"models:/{name}@champion", f"models:/{name}/1", info.model_uri)}

    client.create_registered_model(f"{name}-tmp")
    client.rename_registered_model(f"{name}-tmp", f"{name}-renamed")
    client.delete_registered_model(f"{name}-renamed")
    seen["errors"] = {
        "missing": error_code(lambda: client.get_registered_model(f"{name}-renamed")),
        "taken": error_code(lambda: client.create_registered_model(name)),
        "bad_stage": error_code(lambda: client.transition_model_version_stage(name, "1", "Live")),
    }
    guarded_version = mlflow.register_model(f"runs:/{run_ids[0]}/model", guarded).version
    seen["guarded"] = {
        "staging": client.transition_model_version_stage(guarded, guarded_version, "Staging").current_stage,
        "production": error_code(lambda: client.transition_model_version_stage(guarded, guarded_version,
                                                                               "Production")),
    }
    with open(out, "w") as handle:
        json.dump(seen, handle, indent=1)


if __name__ == "__main__":
    main()
