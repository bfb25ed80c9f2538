"""The article's section 4 with evalkit, evaluate() and the CLI on registered models, and
promotion by suite: promoted only when every gate passes, with the suite run as evidence."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import evalkit as ek
from evalkit import TrackingClient
from evalkit.cli.main import cli
from evalkit.suite import SuiteConfigError, run_suite

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "datasets" / "rag_qa.jsonl"
PROMPT = [{"role": "system", "content": "Classify the sentiment of the review as positive or negative."},
          {"role": "user", "content": "{{ input }}"}]


def test_article_section_4_the_model_registry(tracking_uri):
    with ek.start_run() as active:
        ek.log_model("evalkit:/extractive", prompt=PROMPT, inference_params={"temperature": 0})
    client = TrackingClient()

    # Register a model from a completed run
    run_id = active.info.run_id  # From ek.active_run().info.run_id
    model_uri = f"runs:/{run_id}/model"
    result = ek.register_model(
        model_uri=model_uri,
        name="SentimentClassifier",
        tags={"team": "nlp", "use_case": "product-reviews"},
    )
    print(f"Model version: {result.version}")
    # Add description and stage transition
    client.update_model_version(
        name="SentimentClassifier",
        version=result.version,
        description="RoBERTa-base fine-tuned on 50k product reviews. F1=0.94",
    )
    # Promote to Staging (requires passing eval gates first)
    client.transition_model_version_stage(
        name="SentimentClassifier",
        version=result.version,
        stage="Staging",
        archive_existing_versions=False,
    )
    # After QA sign-off, promote to Production
    client.transition_model_version_stage(
        name="SentimentClassifier",
        version=result.version,
        stage="Production",
        archive_existing_versions=True,  # Auto-archives previous Production version
    )
    # Load Production model in your serving code (always loads latest Production version)
    model = ek.pyfunc.load_model(model_uri="models:/SentimentClassifier/Production")
    prediction = model.predict(["This product is amazing!"])

    assert len(prediction) == 1 and isinstance(prediction[0], str)
    version = client.get_model_version("SentimentClassifier", result.version)
    assert (version.current_stage, version.description, version.tags["use_case"]) == (
        "Production", "RoBERTa-base fine-tuned on 50k product reviews. F1=0.94", "product-reviews")
    assert [(e.from_value, e.to_value) for e in client.get_model_version_history("SentimentClassifier")] == [
        ("None", "Staging"), ("Staging", "Production")]


def registered_bot(retrieval: dict) -> ek.ModelInfo:
    with ek.start_run():
        return ek.log_model("evalkit:/extractive", retrieval=retrieval, registered_model_name="RAGBot")


def test_evaluate_runs_a_registered_bundle_and_records_which(tmp_path):
    info = registered_bot({"top_k": 5})
    TrackingClient().set_registered_model_alias("RAGBot", "champion", 1)
    result = ek.evaluate(model="models:/RAGBot@champion", data=str(DATASET), targets="ground_truth",
                         evaluators=["exact_match"], cache="off", report=False, progress=False)
    params = ek.get_run(result.run_id).data.params
    assert (params["model_source"], params["model_bundle_hash"], params["registered_model_name"],
            params["registered_model_version"], params["model_uri"]) == (
        "models:/RAGBot/1", info.bundle_hash, "RAGBot", "1", "evalkit:/extractive")
    with pytest.raises(ek.InvalidArgument, match="with its own prompt"):
        ek.evaluate(model="models:/RAGBot/1", data=str(DATASET), prompt="{{ input }}")
    with pytest.raises(ek.InvalidArgument, match="with its own inference params"):
        ek.evaluate(model=info.model_uri, data=str(DATASET), inference_params={"temperature": 1})
    # The CLI takes the same URIs.
    out = CliRunner().invoke(cli, ["evaluate", "--model", "models:/RAGBot/1", "--data", str(DATASET), "--targets",
                                   "ground_truth", "--evaluators", "exact_match", "--cache", "off"])
    assert out.exit_code == 0, out.output
    run_id = out.output.strip().splitlines()[-1].split()[-1]
    assert ek.get_run(run_id).data.params["model_bundle_hash"] == info.bundle_hash


def write_suite(folder: Path, threshold: str, model_uri: str = "evalkit:/extractive", name: str = "suite.yaml") -> Path:
    path = folder / name
    path.write_text(f"suite: nightly\ndatasets:\n  - name: rag_qa\n    path: {DATASET}\n    targets: ground_truth\n"
                    f"    limit: 10\nmodels:\n  - name: ragbot\n    uri: {model_uri}\ncache: off\n"
                    f"evaluators: [token_f1]\nthresholds:\n  - {threshold}\n")
    return path


def test_a_suite_naming_an_unknown_registered_model_fails_before_any_call(tmp_path):
    with pytest.raises(SuiteConfigError, match="line 9, models\\[0\\].uri: no registered model named 'Nope'"):
        run_suite(write_suite(tmp_path, "token_f1/mean >= 0.2", "models:/Nope/1"), tmp_path / "out")


@pytest.mark.slow
def test_promote_with_a_suite_moves_only_on_passing_gates(tmp_path):
    registered_bot({"top_k": 5})
    registered_bot({"top_k": 3})
    client = TrackingClient()
    client.update_registered_model("RAGBot", evidence_required=["Production", "@champion"])
    strict, passing = write_suite(tmp_path, "token_f1/mean >= 0.99", name="strict.yaml"), write_suite(
        tmp_path, "token_f1/mean >= 0.2")
    runner = CliRunner()

    failed = runner.invoke(cli, ["models", "promote", "RAGBot", "1", "--to", "Production", "--suite", str(strict),
                                 "--out", str(tmp_path / "o1"), "--no-progress"])
    assert failed.exit_code == 1, failed.output
    assert "not promoted" in failed.output
    assert client.get_model_version("RAGBot", 1).current_stage == "None"

    passed = runner.invoke(cli, ["models", "promote", "RAGBot", "1", "--to", "Production", "--suite", str(passing),
                                 "--out", str(tmp_path / "o2"), "--no-progress"])
    assert passed.exit_code == 0, passed.output
    evidence = passed.output.split("suite run: ")[1].split()[0]
    assert client.get_model_version("RAGBot", 1).current_stage == "Production"
    last = client.get_model_version_history("RAGBot")[-1]
    assert (last.version, last.to_value, last.evidence_run_id) == (1, "Production", evidence)

    # That run evaluated version 1: it is no evidence for version 2.
    reused = runner.invoke(cli, ["models", "promote", "RAGBot", "2", "--to", "@champion", "--evidence", evidence])
    assert isinstance(reused.exception, ek.InvalidState) and "not this version's bundle" in str(reused.exception)
    assert client.get_registered_model("RAGBot").aliases == {}
    alias = runner.invoke(cli, ["models", "promote", "RAGBot", "1", "--to", "@champion", "--evidence", evidence])
    assert alias.exit_code == 0, alias.output
    assert client.get_model_version_by_alias("RAGBot", "champion").version == 1

    history = runner.invoke(cli, ["models", "history", "RAGBot"])
    assert history.exit_code == 0 and evidence in history.output and "@champion" in history.output
    shown = runner.invoke(cli, ["models", "show", "RAGBot"])
    assert shown.exit_code == 0 and "Production" in shown.output and "@champion" in shown.output
    listed = runner.invoke(cli, ["models", "list"])
    assert listed.exit_code == 0 and "Production: v1" in listed.output
