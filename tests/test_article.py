"""The article's sections 3 and 5 (../shared/seed), with ``import evalkit as ek`` for ``import mlflow``.

Only the ragas call and the model-loading lines are replaced, by fixed numbers.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import evalkit as ek  # noqa: E402


def test_section_3_manual_logging(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evaluation_report.html").write_text("<html></html>")
    (tmp_path / "confusion_matrix.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    eval_results = {"faithfulness": 0.91, "answer_relevancy": 0.87}  # stands in for ragas.evaluate
    avg_latency, total_cost, num_queries, p95_latency = 812.0, 1.25, 50, 1430.0
    training_losses = [0.9, 0.5, 0.3]

    with ek.start_run(run_name="rag-pipeline-v2"):
        ek.log_params({
            "chunk_size": 512,
            "chunk_overlap": 50,
            "embedding_model": "text-embedding-3-small",
            "top_k": 5,
            "llm_model": "gpt-4o",
            "temperature": 0.1,
        })
        ek.log_metrics({
            "faithfulness": eval_results["faithfulness"],
            "answer_relevancy": eval_results["answer_relevancy"],
            "avg_latency_ms": avg_latency,
            "cost_per_query_usd": total_cost / num_queries,
            "p95_latency_ms": p95_latency,
        })
        ek.log_artifact("evaluation_report.html")
        ek.log_artifact("confusion_matrix.png")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot(training_losses)
        ek.log_figure(fig, "training_curve.png")
        run_id = ek.active_run().info.run_id

    run = ek.get_run(run_id)
    assert run.data.params["chunk_size"] == "512" and run.data.params["temperature"] == "0.1"
    assert run.data.metrics["cost_per_query_usd"] == 0.025
    artifacts = {a.path for a in ek.TrackingClient().list_artifacts(run_id)}
    assert artifacts == {"evaluation_report.html", "confusion_matrix.png", "training_curve.png"}


def test_section_5_querying_and_comparing_runs():
    ek.set_experiment("sentiment-classifier-v3")
    ids = {}
    for name, lr, f1 in [("a", "2e-5", 0.91), ("b", "2e-5", 0.94), ("c", "5e-5", 0.96), ("d", "2e-5", 0.85)]:
        with ek.start_run(run_name=name) as run:
            ek.log_params({"learning_rate": lr})
            ek.log_metrics({"eval_f1": f1})
        ids[name] = run.info.run_id

    best_runs = ek.search_runs(
        experiment_names=["sentiment-classifier-v3"],
        filter_string="metrics.eval_f1 > 0.90 AND params.learning_rate = '2e-5'",
        order_by=["metrics.eval_f1 DESC"],
        max_results=5,
    )
    print(best_runs[["run_id", "params.learning_rate", "metrics.eval_f1", "start_time"]])
    assert list(best_runs["run_id"]) == [ids["b"], ids["a"]]

    run_a = ek.get_run(ids["a"])
    run_b = ek.get_run(ids["b"])
    print(f"Run A F1: {run_a.data.metrics['eval_f1']:.4f}")
    print(f"Run B F1: {run_b.data.metrics['eval_f1']:.4f}")
    diff = run_b.data.metrics["eval_f1"] - run_a.data.metrics["eval_f1"]
    print(f"Diff: {diff:+.4f}")
    assert f"{diff:+.4f}" == "+0.0300"
