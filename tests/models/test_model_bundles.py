"""Model bundles and the llm flavor: content hashes, immutability, loading by every URI form, and
bad input refused before anything is logged."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

import evalkit as ek
from evalkit.models.bundle import MANIFEST, bundle_hash, load_bundle, save_bundle

PROMPT = [{"role": "system", "content": "Answer from the context."}, {"role": "user", "content": "Question: {{ input }}"}]


def test_a_bundle_is_data_with_a_manifest_and_a_hash_of_its_files(tmp_path):
    manifest = save_bundle("evalkit:/extractive", tmp_path / "a", "llm", prompt=PROMPT,
                           inference_params={"temperature": 0}, retrieval={"top_k": 5, "chunk_size": 512})
    files = {p.name for p in (tmp_path / "a").iterdir()}
    assert files == {MANIFEST, "llm.json"}  # no pickle, nothing but data
    spec = json.loads((tmp_path / "a" / "llm.json").read_text())
    assert spec["prompt"] == PROMPT and spec["retrieval"] == {"top_k": 5, "chunk_size": 512}
    assert manifest.bundle_hash == bundle_hash(manifest.files) and len(manifest.bundle_hash) == 64
    # Same content, same hash wherever and whenever it is saved; any change, another hash.
    again = save_bundle("evalkit:/extractive", tmp_path / "b", "llm", prompt=PROMPT,
                        inference_params={"temperature": 0}, retrieval={"chunk_size": 512, "top_k": 5})
    other = save_bundle("evalkit:/extractive", tmp_path / "c", "llm", prompt=PROMPT,
                        inference_params={"temperature": 0}, retrieval={"top_k": 3, "chunk_size": 512})
    assert again.bundle_hash == manifest.bundle_hash != other.bundle_hash


def test_a_changed_bundle_file_is_refused_when_loading(tmp_path):
    save_bundle("evalkit:/extractive", tmp_path / "a", "llm")
    spec = tmp_path / "a" / "llm.json"
    spec.write_text(spec.read_text().replace("extractive", "extractive "))
    with pytest.raises(ek.InvalidState, match="does not match its manifest.*llm.json"):
        load_bundle(tmp_path / "a")


@pytest.mark.parametrize("model, options, message", [
    ("nope:/x", {}, "unknown model URI scheme 'nope'"),
    ("openai:/gpt-4o?api_key=sk-123", {}, "do not put an API key"),
    (None, {}, "needs a model URI"),
    ("evalkit:/extractive", {"entrypoint": "no_such_module_xyz:answer"}, "cannot be imported: ModuleNotFoundError"),
    ("evalkit:/extractive", {"entrypoint": "json:no_such_function"}, "has no attribute 'no_such_function'"),
    ("evalkit:/extractive", {"entrypoint": "json"}, "must be 'module:function'"),
    ("evalkit:/extractive", {"prompt": "{{ input"}, "prompt user template line 1"),
    ("evalkit:/extractive", {"retrieval": {"embedder": object()}}, "retrieval settings must be JSON"),
    ("evalkit:/extractive", {"temperature": 0}, "unknown option.*temperature"),
])
def test_bad_llm_bundles_are_refused_and_nothing_is_logged(model, options, message):
    with ek.start_run() as run:
        with pytest.raises(ek.InvalidArgument, match=message):
            ek.log_model(model, **options)
    assert ek.TrackingClient().list_artifacts(run.info.run_id) == []


def test_an_unknown_flavor_names_the_installed_ones():
    with pytest.raises(ek.InvalidArgument, match="unknown model flavor 'pickle'.*llm"):
        ek.log_model("evalkit:/extractive", flavor="pickle")


def test_a_logged_model_loads_by_run_uri_and_predicts_on_lists_and_frames():
    with ek.start_run():
        info = ek.log_model("evalkit:/extractive", artifact_path="bot", prompt=PROMPT)
    assert info.model_uri == f"runs:/{info.run_id}/bot" and info.flavor == "llm"
    model = ek.load_model(info.model_uri)
    assert model.predict(["What is the capital of France?"]) == ["I don't know."]
    frame = pd.DataFrame({"inputs": ["a?", "b?"]})
    assert ek.pyfunc.load_model(info.model_uri).predict(frame) == ["I don't know.", "I don't know."]
    with pytest.raises(ek.InvalidArgument, match="'inputs' or 'question' column"):
        model.predict(pd.DataFrame({"text": ["a"]}))


def test_an_entrypoint_bundle_calls_the_application_function(monkeypatch, tmp_path):
    (tmp_path / "my_rag_app.py").write_text("def answer(question):\n    return 'app: ' + question\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with ek.start_run():
        info = ek.log_model(None, entrypoint="my_rag_app:answer", retrieval={"top_k": 4})
    assert ek.load_model(info.model_uri).predict(["hi"]) == ["app: hi"]
    sys.modules.pop("my_rag_app")
    (tmp_path / "my_rag_app.py").unlink()
    with pytest.raises(ek.InvalidArgument, match="entrypoint 'my_rag_app:answer' cannot be imported"):
        ek.load_model(info.model_uri)


def test_run_uris_without_a_model_are_clear_errors():
    with ek.start_run() as run:
        ek.log_text("x", "notes/readme.txt")
        ek.log_model("evalkit:/extractive")
    run_id = run.info.run_id
    with pytest.raises(ek.InvalidArgument, match="has no model at 'notes'.*its models are at: model"):
        ek.load_model(f"runs:/{run_id}/notes")
    with pytest.raises(ek.NotFound, match="no run with id 'nope'"):
        ek.load_model("runs:/nope/model")
    with pytest.raises(ek.InvalidArgument, match="not a model bundle URI"):
        ek.load_model("s3://bucket/model")
