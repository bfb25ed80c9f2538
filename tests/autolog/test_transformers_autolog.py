"""ek.transformers.autolog() with real torch and transformers: a tiny BERT built from a config,
trained for two epochs on 40 synthetic reviews (nothing downloaded from a model hub)."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: no hub lookups at all

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("transformers")
import tiny_bert  # noqa: E402  (tests/autolog/tiny_bert.py)
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

import evalkit as ek  # noqa: E402
from evalkit.autolog.transformers import MODEL_CONFIG_ARTIFACT, as_params  # noqa: E402
from evalkit.tracking.validation import MAX_PARAM_VALUE_LENGTH  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tiny_bert.tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def data(tokenizer):
    return tiny_bert.rows(tokenizer, 40)


@pytest.fixture(autouse=True)
def _autolog_off():
    yield
    ek.transformers.autolog(disable=True)


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def training_args(tmp_path, **overrides) -> TrainingArguments:
    values = dict(output_dir=str(tmp_path / "results"), num_train_epochs=2, learning_rate=2e-3,
                  per_device_train_batch_size=8, weight_decay=0.01, logging_steps=1, eval_strategy="epoch",
                  save_strategy="no", disable_tqdm=True, use_cpu=True, seed=0)
    return TrainingArguments(**{**values, **overrides})


def test_article_section_2_training_in_a_named_run_logs_params_metrics_and_a_loadable_model(
        tmp_path, tokenizer, data):
    ek.transformers.autolog(log_every_n_steps=2)
    ek.set_experiment("sentiment-classifier-v3")
    with ek.start_run(run_name="tiny-bert-2ep") as run:
        trainer = Trainer(model=tiny_bert.model(), args=training_args(tmp_path), train_dataset=data,
                          eval_dataset=data[:10], processing_class=tokenizer, compute_metrics=accuracy)
        trainer.train()
    run_id = run.info.run_id
    logged = ek.get_run(run_id)
    assert logged.info.status.value == "FINISHED" and logged.info.run_name == "tiny-bert-2ep"
    params = logged.data.params
    assert params["learning_rate"] == "0.002" and params["num_train_epochs"] == "2"
    assert params["per_device_train_batch_size"] == "8" and params["weight_decay"] == "0.01"
    assert params["model.hidden_size"] == "32" and params["model.num_hidden_layers"] == "2"
    assert params["model.id2label.0"] == "NEGATIVE"
    assert {"loss", "eval_loss", "eval_accuracy", "train_loss", "learning_rate", "epoch"} <= set(logged.data.metrics)
    # 10 steps logged by the Trainer at every step, thinned to every 2nd plus each epoch's last
    assert [m.step for m in ek.get_metric_history(run_id, "loss")] == [1, 3, 5, 7, 9, 10]
    assert [m.step for m in ek.get_metric_history(run_id, "eval_loss")] == [5, 10]

    files = {f.path for f in ek.TrackingClient().list_artifacts(run_id, "model")}
    assert {"model/model.safetensors", "model/config.json", "model/tokenizer.json", "model/training_args.json",
            "model/evalkit-model.json"} <= files
    model = ek.load_model(f"runs:/{run_id}/model")
    prediction = model.predict(["This product is amazing!"])
    assert len(prediction) == 1 and prediction[0]["label"] in ("POSITIVE", "NEGATIVE")
    assert 0.0 <= prediction[0]["score"] <= 1.0
    # the same answer as the trained model's own pipeline
    from transformers import pipeline

    direct = pipeline("text-classification", model=trainer.model, tokenizer=tokenizer, device="cpu")
    assert direct(["This product is amazing!"])[0]["label"] == prediction[0]["label"]
    assert direct(["This product is amazing!"])[0]["score"] == pytest.approx(prediction[0]["score"], abs=1e-5)


class Explode(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise RuntimeError("loss went to the moon")


def test_without_a_run_train_starts_one_and_marks_it_failed_with_the_reason_when_training_raises(
        tmp_path, tokenizer, data):
    ek.transformers.autolog(log_models=False)
    trainer = Trainer(model=tiny_bert.model(), args=training_args(tmp_path, eval_strategy="no"),
                      train_dataset=data, callbacks=[Explode()])
    with pytest.raises(RuntimeError, match="moon"):
        trainer.train()
    assert ek.active_run() is None
    runs = ek.search_runs(filter_string="tags.`evalkit.source` = 'autolog.transformers'", output_format="list")
    assert len(runs) == 1
    run = ek.get_run(runs[0].info.run_id)
    assert run.info.status.value == "FAILED"
    assert "RuntimeError: loss went to the moon" in run.data.tags["evalkit.failure_reason"]
    assert run.data.params["learning_rate"] == "0.002" and "loss" in run.data.metrics
    assert not ek.TrackingClient().list_artifacts(run.info.run_id, "model")


def test_long_values_are_cut_with_a_marker_and_kept_whole_and_many_params_do_not_fail(tmp_path, tokenizer, data):
    ek.transformers.autolog(log_models=False)
    model = tiny_bert.model()
    model.config.long_note = "x" * (MAX_PARAM_VALUE_LENGTH + 500)
    for i in range(600):  # params beyond any per-request limit
        setattr(model.config, f"extra_{i}", i)
    model.config.__dict__["weird key é"] = "kept"
    trainer = Trainer(model=model, args=training_args(tmp_path, num_train_epochs=1, eval_strategy="no"),
                      train_dataset=data[:16])
    trainer.train()
    run_id = ek.search_runs(output_format="list")[0].info.run_id
    run = ek.get_run(run_id)
    assert run.info.status.value == "FINISHED"
    note = run.data.params["model.long_note"]
    assert len(note) == MAX_PARAM_VALUE_LENGTH and note.endswith(f"whole value is in the run's {MODEL_CONFIG_ARTIFACT}]")
    assert run.data.params["model.extra_599"] == "599" and run.data.params["model.weird key _"] == "kept"
    whole = json.loads(ek.TrackingClient().load_text(run_id, MODEL_CONFIG_ARTIFACT))
    assert whole["long_note"] == "x" * (MAX_PARAM_VALUE_LENGTH + 500)


def test_as_params_flattens_and_never_drops_a_value():
    params = as_params({"a": {"b": 1, "c": [1, 2]}, "d": None, "hub_token": "<HUB_TOKEN>", "e" * 300: "long key"},
                       "", "autolog/x.json")
    assert params["a.b"] == "1" and params["a.c"] == "[1, 2]" and params["d"] == "None"
    assert params["e" * 250] == "long key"


def test_a_failing_autolog_never_stops_training_and_disable_restores_the_trainer(
        tmp_path, tokenizer, data, monkeypatch, caplog):
    original_init = Trainer.__init__
    ek.transformers.autolog(log_models=False)
    assert Trainer.__init__ is not original_init

    def broken(*args, **kwargs):
        raise RuntimeError("autolog bug")

    monkeypatch.setattr("evalkit.autolog.transformers._log_params", broken)
    with ek.start_run() as run:
        Trainer(model=tiny_bert.model(), args=training_args(tmp_path, num_train_epochs=1, eval_strategy="no"),
                train_dataset=data[:16]).train()
    assert "training goes on" in caplog.text and "loss" in ek.get_run(run.info.run_id).data.metrics
    ek.transformers.autolog(disable=True)
    assert Trainer.__init__ is original_init
