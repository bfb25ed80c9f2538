"""The article's loop end to end (../shared/seed, sections 2, 4 and 5), ``ek`` for ``mlflow``:
train with autolog inside a named run, register ``runs:/<id>/model`` as SentimentClassifier,
describe it, promote it through Staging to Production (archiving the previous Production
version), load ``models:/SentimentClassifier/Production`` and predict, then find the run by its
eval metric. The tiny BERT of tiny_bert.py stands in for RoBERTa."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("transformers")
# MERGE: the registry (issue 15) lives on another branch; the lead removes this line at merge.

import tiny_bert  # noqa: E402
from transformers import Trainer, TrainingArguments  # noqa: E402

import evalkit as ek  # noqa: E402


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def train(tmp_path, tokenizer, data, run_name: str, learning_rate: float, epochs: int) -> str:
    training_args = TrainingArguments(
        output_dir=str(tmp_path / run_name), num_train_epochs=epochs, learning_rate=learning_rate,
        per_device_train_batch_size=8, warmup_steps=2, weight_decay=0.01, logging_steps=1,
        eval_strategy="epoch", save_strategy="no", disable_tqdm=True, use_cpu=True, seed=0,
    )
    with ek.start_run(run_name=run_name):
        trainer = Trainer(model=tiny_bert.model(), args=training_args, train_dataset=data, eval_dataset=data,
                          processing_class=tokenizer, compute_metrics=accuracy)
        trainer.train()
        return ek.active_run().info.run_id


def test_train_register_promote_serve_and_search(tmp_path):
    tokenizer = tiny_bert.tokenizer(tmp_path)
    data = tiny_bert.rows(tokenizer, 40)

    # section 2: autologging
    ek.transformers.autolog(log_every_n_steps=10)
    try:
        ek.set_experiment("sentiment-classifier-v3")
        previous_id = train(tmp_path, tokenizer, data, "tiny-bert-1ep-lr2e5", 2e-5, 1)
        run_id = train(tmp_path, tokenizer, data, "tiny-bert-3ep-lr5e3", 5e-3, 3)
    finally:
        ek.transformers.autolog(disable=True)
    run = ek.get_run(run_id)
    assert run.data.params["learning_rate"] == "0.005" and run.data.params["num_train_epochs"] == "3"
    assert {"train_loss", "eval_loss", "eval_accuracy"} <= set(run.data.metrics)

    # section 4: the registry, staging to production
    client = ek.TrackingClient()
    old = ek.register_model(f"runs:/{previous_id}/model", "SentimentClassifier")
    client.transition_model_version_stage("SentimentClassifier", old.version, "Production")
    result = ek.register_model(model_uri=f"runs:/{run_id}/model", name="SentimentClassifier",
                               tags={"team": "nlp", "use_case": "product-reviews"})
    assert result.version == old.version + 1
    client.update_model_version(name="SentimentClassifier", version=result.version,
                                description="tiny BERT fine-tuned on 40 product reviews")
    client.transition_model_version_stage(name="SentimentClassifier", version=result.version, stage="Staging",
                                          archive_existing_versions=False)
    client.transition_model_version_stage(name="SentimentClassifier", version=result.version, stage="Production",
                                          archive_existing_versions=True)
    assert client.get_model_version("SentimentClassifier", old.version).current_stage == "Archived"
    assert client.get_model_version("SentimentClassifier", result.version).description.startswith("tiny BERT")

    model = ek.load_model(model_uri="models:/SentimentClassifier/Production")
    prediction = model.predict(["This product is amazing!"])
    assert prediction == ek.load_model(f"runs:/{run_id}/model").predict(["This product is amazing!"])
    assert prediction[0]["label"] in ("POSITIVE", "NEGATIVE") and 0 <= prediction[0]["score"] <= 1

    # section 5: querying experiments
    best_runs = ek.search_runs(
        experiment_names=["sentiment-classifier-v3"],
        filter_string="metrics.eval_accuracy >= 0.0 AND params.learning_rate = '0.005'",
        order_by=["metrics.eval_accuracy DESC"],
        max_results=5,
    )
    assert list(best_runs["run_id"]) == [run_id]
    assert best_runs["params.learning_rate"][0] == "0.005"
    runs = ek.search_runs(experiment_names=["sentiment-classifier-v3"], order_by=["metrics.eval_accuracy DESC"])
    assert set(runs["run_id"]) == {run_id, previous_id}
