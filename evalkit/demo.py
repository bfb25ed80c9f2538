"""``make demo``: log a small, real run into the embedded store and say where it went.

Until ``evaluate()`` lands this trains a tiny logistic-regression classifier with NumPy on
synthetic data, logging its params, a loss curve, its accuracy and a predictions table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import evalkit as ek


def _log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    clipped = np.clip(probabilities, 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))


def _train(features: np.ndarray, labels: np.ndarray, learning_rate: float, epochs: int) -> np.ndarray:
    weights = np.zeros(features.shape[1])
    for epoch in range(epochs):
        probabilities = 1 / (1 + np.exp(-features @ weights))
        ek.log_metric("train_loss", _log_loss(probabilities, labels), step=epoch)
        weights -= learning_rate * features.T @ (probabilities - labels) / len(labels)
    return weights


def main() -> None:
    rng = np.random.default_rng(7)
    features = np.hstack([rng.normal(size=(400, 3)), np.ones((400, 1))])
    true_weights = np.array([2.0, -1.0, 0.5, 0.2])
    labels = (features @ true_weights + rng.normal(scale=0.5, size=400) > 0).astype(float)
    train, test = slice(0, 300), slice(300, 400)
    params = {"learning_rate": 0.5, "epochs": 200, "features": 3, "train_rows": 300, "test_rows": 100}

    ek.set_experiment("evalkit-demo")
    with ek.start_run(run_name="logistic-regression-demo") as run:
        ek.log_params(params)
        weights = _train(features[train], labels[train], params["learning_rate"], params["epochs"])
        probabilities = 1 / (1 + np.exp(-features[test] @ weights))
        predictions = (probabilities > 0.5).astype(float)
        ek.log_metrics({
            "test_accuracy": float(np.mean(predictions == labels[test])),
            "test_loss": _log_loss(probabilities, labels[test]),
        })
        ek.log_table(pd.DataFrame({"label": labels[test], "prediction": predictions}), "predictions.json")

    stored = ek.get_run(run.info.run_id)
    print(f"tracking store: {ek.get_tracking_uri()}")
    print(f"experiment:     evalkit-demo (id {stored.info.experiment_id})")
    print(f"run:            {stored.info.run_id} ({stored.info.run_name}, {stored.info.status.value})")
    for key, value in sorted(stored.data.metrics.items()):
        print(f"  {key:16} {value:.4f}")
    print(f"artifacts:      {stored.info.artifact_uri}")
    print(f"next: .venv/bin/evalkit runs show {stored.info.run_id}")


if __name__ == "__main__":
    main()
