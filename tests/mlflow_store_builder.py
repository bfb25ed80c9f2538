"""Builds an MLflow tracking store with MLflow's own client, and prints what MLflow reads back.

Run with the Python of the MLflow virtualenv (tests/mlflow_venv.py), never evalkit's: mlflow is not
an evalkit dependency. ``python mlflow_store_builder.py TRACKING_URI ARTIFACT_ROOT OUT.json``
fills the store at TRACKING_URI (``file:///.../mlruns`` or ``sqlite:///...``), with artifacts under
ARTIFACT_ROOT, and writes to OUT.json every experiment and run as MLflow's client sees them:
params, tags, the full history of every metric, and every artifact with its size. The import tests
compare evalkit's copy with that file.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.tracking import MlflowClient

T0 = 1_700_000_000_000


def build(client: MlflowClient, artifact_root: str) -> None:
    exp = client.create_experiment("rag-eval", artifact_location=f"{artifact_root}/rag-eval",
                                   tags={"team": "search", "mlflow.note.content": "nightly runs"})
    parent = client.create_run(exp, run_name="nightly-parent", start_time=T0)
    pid = parent.info.run_id
    client.log_batch(pid, params=[Param("model", "gpt-4o-mini"), Param("temperature", "0.2"),
                                  Param("prompt/template", "Answer: {q}")],
                     tags=[RunTag("owner", "ana")])
    # 120 values of one metric, two values at the same step, a NaN and both infinities
    history = [Metric("loss", 1.0 / (i + 1), T0 + 10 * i, i) for i in range(120)]
    history += [Metric("loss", 0.5, T0 + 5000, 3), Metric("faithfulness/v1/mean", math.nan, T0 + 1, 0),
                Metric("diverge", math.inf, T0 + 2, 0), Metric("diverge", -math.inf, T0 + 3, 1)]
    client.log_batch(pid, metrics=history)
    client.log_metric(pid, "accuracy", 0.75, timestamp=T0 + 7, step=2)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "summary.txt").write_text("all good\n")
        (Path(tmp) / "tables").mkdir()
        (Path(tmp) / "tables" / "rows.csv").write_text("q,a\n1,2\n" * 50)
        client.log_artifact(pid, str(Path(tmp) / "summary.txt"))
        client.log_artifacts(pid, str(Path(tmp) / "tables"), artifact_path="tables")
        client.log_artifact(pid, str(Path(tmp) / "summary.txt"), artifact_path="reports/deep")
    client.set_terminated(pid, "FINISHED", end_time=T0 + 60_000)

    child = client.create_run(exp, run_name="child-a", start_time=T0 + 100,
                              tags={"mlflow.parentRunId": pid})
    client.log_metric(child.info.run_id, "accuracy", 0.5, timestamp=T0 + 101, step=0)
    client.log_param(child.info.run_id, "fold", "1")
    client.set_terminated(child.info.run_id, "FAILED", end_time=T0 + 200)

    killed = client.create_run(exp, run_name="killed-then-deleted", start_time=T0 + 300)
    client.log_metric(killed.info.run_id, "loss", 2.0, timestamp=T0 + 301)
    client.set_terminated(killed.info.run_id, "KILLED", end_time=T0 + 400)
    client.delete_run(killed.info.run_id)

    running = client.create_run(exp, run_name="still-running", start_time=T0 + 500)
    # evalkit keys are ASCII: these two cannot be mapped and must be reported, not lost silently
    client.log_batch(running.info.run_id, params=[Param("précision", "haute"), Param("ok", "yes")],
                     metrics=[Metric("latency_é", 3.0, T0 + 501, 0), Metric("latency", 3.0, T0 + 501, 0)])

    gone = client.create_experiment("old-experiment", artifact_location=f"{artifact_root}/old")
    old = client.create_run(gone, run_name="old-run", start_time=T0 + 1000)
    client.log_metric(old.info.run_id, "score", 1.0, timestamp=T0 + 1001)
    client.set_terminated(old.info.run_id, "FINISHED", end_time=T0 + 1002)
    client.delete_experiment(gone)

    default = client.create_run("0", run_name="in-default", start_time=T0 + 2000)
    client.log_metric(default.info.run_id, "score", 0.25, timestamp=T0 + 2001)
    client.set_terminated(default.info.run_id, "FINISHED", end_time=T0 + 2002)

    client.create_registered_model("rag-model", description="the nightly model", tags={"team": "search"})
    source = f"{client.get_run(pid).info.artifact_uri}/reports"
    client.create_model_version("rag-model", source, run_id=pid, tags={"validated": "yes"}, description="first")
    client.create_model_version("rag-model", source, run_id=pid)
    client.create_model_version("rag-model", "s3://elsewhere/model")  # a source outside any run
    client.transition_model_version_stage("rag-model", 1, "Production")
    client.transition_model_version_stage("rag-model", 2, "Production", archive_existing_versions=True)  # int: MLflow on PostgreSQL fails with "2"
    client.transition_model_version_stage("rag-model", 3, "Staging")
    client.set_registered_model_alias("rag-model", "champion", "2")
    client.set_registered_model_alias("rag-model", "previous", "1")
    client.create_registered_model("empty-model")


def snapshot(client: MlflowClient) -> dict:
    experiments = []
    for exp in client.search_experiments(view_type=ViewType.ALL):
        runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=1000)
        experiments.append({
            "experiment_id": exp.experiment_id, "name": exp.name, "lifecycle_stage": exp.lifecycle_stage,
            "tags": dict(exp.tags), "runs": [run_snapshot(client, run) for run in runs],
        })
    models = []
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        models.append({
            "name": model.name, "description": model.description, "tags": dict(model.tags),
            "aliases": dict(model.aliases),
            "versions": {v.version: {"stage": v.current_stage, "source": v.source, "run_id": v.run_id or None,
                                     "description": v.description, "tags": dict(v.tags)} for v in versions},
        })
    return {"mlflow_version": mlflow.__version__, "experiments": experiments, "registered_models": models}


def run_snapshot(client: MlflowClient, run) -> dict:  # noqa: ANN001
    info = run.info
    histories = {
        key: sorted([[m.step, m.timestamp, _json_float(m.value)] for m in client.get_metric_history(info.run_id, key)],
                    key=lambda item: (item[0], item[1], str(item[2])))
        for key in run.data.metrics
    }
    return {
        "run_id": info.run_id, "run_name": info.run_name, "status": info.status,
        "start_time": info.start_time, "end_time": info.end_time, "lifecycle_stage": info.lifecycle_stage,
        "artifact_uri": info.artifact_uri, "params": dict(run.data.params), "tags": dict(run.data.tags),
        "metrics": histories, "artifacts": artifacts(client, info.run_id, None),
    }


def artifacts(client: MlflowClient, run_id: str, path: str | None) -> dict[str, int]:
    found: dict[str, int] = {}
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found.update(artifacts(client, run_id, item.path))
        else:
            found[item.path] = item.file_size
    return found


def _json_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def main() -> None:
    tracking_uri, artifact_root, out = sys.argv[1:4]
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    build(client, artifact_root)
    Path(out).write_text(json.dumps(snapshot(client), indent=1))


if __name__ == "__main__":
    main()
