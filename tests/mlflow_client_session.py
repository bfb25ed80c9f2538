"""MLflow's own client against an evalkit server: run in the MLflow virtualenv (``tests/mlflow_venv.py``)
by ``tests/server/test_mlflow_api.py``, in ONE process (each import of mlflow costs seconds).

Usage: ``python mlflow_client_session.py CONFIG.json OUT.json``. CONFIG names the open server
(``url``), a prefix for experiment names, and a server with tokens (``auth_url``, an editor and a
reader token). It drives the article's sections 3 and 5 as written, ``MlflowClient`` calls,
scikit-learn's autolog and artifacts up and down, and writes to OUT what MLflow's client read
back, for the test to compare with what evalkit reads.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

config = json.loads(Path(sys.argv[1]).read_text())
out: dict = {"errors": {}}
prefix = config["prefix"]
os.chdir(config["workdir"])


def error_code(call) -> str | None:
    try:
        call()
    except MlflowException as exc:
        return exc.error_code
    return None


def run_view(run) -> dict:
    return {"run_id": run.info.run_id, "run_name": run.info.run_name, "status": run.info.status,
            "experiment_id": run.info.experiment_id, "lifecycle_stage": run.info.lifecycle_stage,
            "start_time": run.info.start_time, "end_time": run.info.end_time, "artifact_uri": run.info.artifact_uri,
            "params": dict(run.data.params), "tags": dict(run.data.tags),
            "metrics": {k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v)
                        for k, v in run.data.metrics.items()}}


mlflow.set_tracking_uri(config["url"])
client = MlflowClient()

# ---- the article, section 3, with `mlflow` as written (evaluate()'s numbers given) ---------------
Path("evaluation_report.html").write_text("<html><body>faithfulness 0.91</body></html>")
Path("confusion_matrix.png").write_bytes(bytes(range(256)) * 40)
eval_results = {"faithfulness": 0.91, "answer_relevancy": 0.87}
avg_latency, total_cost, num_queries, p95_latency = 412.5, 1.25, 50, 980.0
training_losses = [1.0, 0.6, 0.4, 0.3]

mlflow.set_experiment(f"{prefix}-rag")
with mlflow.start_run(run_name="rag-pipeline-v2"):
    mlflow.log_params({
        "chunk_size": 512,
        "chunk_overlap": 50,
        "embedding_model": "text-embedding-3-small",
        "top_k": 5,
        "llm_model": "gpt-4o",
        "temperature": 0.1,
    })
    mlflow.log_metrics({
        "faithfulness": eval_results["faithfulness"],
        "answer_relevancy": eval_results["answer_relevancy"],
        "avg_latency_ms": avg_latency,
        "cost_per_query_usd": total_cost / num_queries,
        "p95_latency_ms": p95_latency,
    })
    mlflow.log_artifact("evaluation_report.html")
    mlflow.log_artifact("confusion_matrix.png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(training_losses)
    mlflow.log_figure(fig, "training_curve.png")
    out["article_run_id"] = mlflow.active_run().info.run_id
out["article_run"] = run_view(mlflow.get_run(out["article_run_id"]))
out["article_artifacts"] = sorted(f.path for f in client.list_artifacts(out["article_run_id"]))
downloaded = Path(mlflow.artifacts.download_artifacts(run_id=out["article_run_id"], dst_path="down"))
out["downloaded"] = {p.relative_to(downloaded).as_posix(): p.stat().st_size
                     for p in downloaded.rglob("*") if p.is_file()}
out["report_text"] = (downloaded / "evaluation_report.html").read_text()

# ---- the article, section 5 ----------------------------------------------------------------------
mlflow.set_experiment(f"{prefix}-sentiment")
for name, f1, lr in [("a", 0.95, "2e-5"), ("b", 0.92, "2e-5"), ("c", 0.97, "3e-5"), ("d", 0.85, "2e-5")]:
    with mlflow.start_run(run_name=f"run-{name}"):
        mlflow.log_param("learning_rate", lr)
        mlflow.log_metric("eval_f1", f1)
best_runs = mlflow.search_runs(
    experiment_names=[f"{prefix}-sentiment"],
    filter_string="metrics.eval_f1 > 0.90 AND params.learning_rate = '2e-5'",
    order_by=["metrics.eval_f1 DESC"],
    max_results=5,
)
print(best_runs[["run_id", "params.learning_rate", "metrics.eval_f1", "start_time"]])
out["best_runs"] = [{"run_id": r["run_id"], "eval_f1": r["metrics.eval_f1"], "lr": r["params.learning_rate"]}
                    for _, r in best_runs.iterrows()]
run_a = mlflow.get_run(out["best_runs"][0]["run_id"])
run_b = mlflow.get_run(out["best_runs"][1]["run_id"])
print(f"Run A F1: {run_a.data.metrics['eval_f1']:.4f}")
print(f"Run B F1: {run_b.data.metrics['eval_f1']:.4f}")
out["f1_diff"] = f"{run_b.data.metrics['eval_f1'] - run_a.data.metrics['eval_f1']:+.4f}"

# ---- MlflowClient ----------------------------------------------------------------------------------
experiment_id = client.create_experiment(f"{prefix}-client", tags={"team": "nlp"})
out["client_experiment_id"] = experiment_id
client.set_experiment_tag(experiment_id, "stage", "dev")
experiment = client.get_experiment(experiment_id)
out["experiment"] = {"name": experiment.name, "tags": dict(experiment.tags),
                     "artifact_location": experiment.artifact_location,
                     "lifecycle_stage": experiment.lifecycle_stage}
out["experiment_by_name"] = client.get_experiment_by_name(f"{prefix}-client").experiment_id
out["missing_experiment"] = client.get_experiment_by_name(f"{prefix}-no-such")
found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%' AND tags.team = 'nlp'")
out["searched_experiments"] = [e.name for e in found]
out["errors"]["duplicate_experiment"] = error_code(lambda: client.create_experiment(f"{prefix}-client"))
out["errors"]["unknown_run"] = error_code(lambda: client.get_run("0" * 32))
out["errors"]["bad_filter"] = error_code(lambda: client.search_runs([experiment_id], "metrics.x >>> 1"))

runs = []
for i in range(5):
    run = client.create_run(experiment_id, run_name=f"client-{i}", tags={"idx": str(i)})
    runs.append(run.info.run_id)
    for step in range(20):
        client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1) + i, step=step, timestamp=1_700_000_000_000 + step)
    client.log_param(run.info.run_id, "lr", f"0.{i + 1}")
    client.set_tag(run.info.run_id, "kind", "even" if i % 2 == 0 else "odd")
    client.log_batch(run.info.run_id, metrics=[Metric("acc", 0.5 + i / 10, 1_700_000_000_500, 0),
                                               Metric("nan_metric", float("nan"), 1_700_000_000_500, 0)],
                     params=[Param("batch", "32")], tags=[RunTag("temp", "x")])
    client.delete_tag(run.info.run_id, "temp")
    client.set_terminated(run.info.run_id)
out["client_runs"] = runs
out["client_run_views"] = {r: run_view(client.get_run(r)) for r in runs}
out["history"] = [(m.step, m.value, m.timestamp) for m in client.get_metric_history(runs[2], "loss")]
out["errors"]["write_to_finished"] = error_code(lambda: client.log_metric(runs[0], "late", 1.0))
mlflow.set_experiment(experiment_id=experiment_id)
with mlflow.start_run(run_id=runs[0]):  # MLflow's way to reopen a run: it sets RUNNING again
    mlflow.log_metric("late", 2.0)
out["reopened"] = run_view(client.get_run(runs[0]))
pages, token = [], None
while True:
    page = client.search_runs([experiment_id], "params.batch = '32'", order_by=["metrics.acc DESC"], max_results=2,
                              page_token=token)
    pages.append([r.info.run_name for r in page])
    token = page.token
    if not token:
        break
out["search_pages"] = pages
out["search_or"] = sorted(r.info.run_name for r in client.search_runs(
    [experiment_id], "(tags.kind = 'odd' AND metrics.acc > 0.75) OR attributes.run_name = 'client-0'"))
client.delete_run(runs[4])
out["after_delete"] = sorted(r.info.run_name for r in client.search_runs([experiment_id]))
out["deleted_only"] = [r.info.run_name for r in client.search_runs([experiment_id], run_view_type=2)]
out["errors"]["write_to_deleted"] = error_code(lambda: client.log_metric(runs[4], "late", 1.0))
client.restore_run(runs[4])
out["after_restore"] = len(client.search_runs([experiment_id]))
client.rename_experiment(experiment_id, f"{prefix}-client-renamed")
client.delete_experiment(experiment_id)
out["deleted_experiment_stage"] = client.get_experiment(experiment_id).lifecycle_stage
client.restore_experiment(experiment_id)
out["restored_experiment"] = client.get_experiment(experiment_id).name

with mlflow.start_run(run_name="parent") as parent:
    with mlflow.start_run(run_name="child", nested=True) as child:
        mlflow.log_metric("child_metric", 3.0)
out["parent_child"] = [parent.info.run_id, child.info.run_id]
out["children"] = [r.info.run_id for r in client.search_runs(
    [experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")]

# ---- scikit-learn autolog on a tiny model ----------------------------------------------------------
from sklearn.datasets import load_iris  # noqa: E402  (bundled with scikit-learn: no network)
from sklearn.linear_model import LogisticRegression  # noqa: E402

mlflow.set_experiment(f"{prefix}-sklearn")
mlflow.sklearn.autolog(log_models=False)
X, y = load_iris(return_X_y=True)
with mlflow.start_run(run_name="iris-logreg") as run:
    LogisticRegression(max_iter=200, C=0.5).fit(X, y)
out["sklearn_run"] = run_view(mlflow.get_run(run.info.run_id))
out["sklearn_inputs"] = len(mlflow.get_run(run.info.run_id).inputs.dataset_inputs)
mlflow.sklearn.autolog(disable=True)

# ---- auth: a token via MLFLOW_TRACKING_TOKEN, a missing one, a reader's -------------------------------
mlflow.set_tracking_uri(config["auth_url"])
os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
out["errors"]["no_token"] = error_code(lambda: MlflowClient().search_experiments())
os.environ["MLFLOW_TRACKING_TOKEN"] = config["editor_token"]
mlflow.set_experiment(f"{prefix}-auth")
with mlflow.start_run(run_name="with-token") as run:
    mlflow.log_metric("m", 1.5)
    mlflow.log_text("hello", "notes/hello.txt")
out["auth_run_id"] = run.info.run_id
out["auth_run"] = run_view(mlflow.get_run(run.info.run_id))
out["auth_artifact"] = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/hello.txt")
os.environ["MLFLOW_TRACKING_TOKEN"] = config["reader_token"]
reader = MlflowClient()
out["reader_search"] = [r.info.run_name for r in reader.search_runs([run.info.experiment_id])]
out["errors"]["reader_writes"] = error_code(lambda: reader.create_run(run.info.experiment_id))

Path(sys.argv[2]).write_text(json.dumps(out, indent=1))
