"""One evaluation config: evaluate(), the suite file and ``evalkit evaluate`` build the same
EvalConfig, refuse a bad option with the same words, and planning sends no request."""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd
import pytest

import evalkit as ek
from evalkit.cli.evaluate import evaluate_command, evaluate_config
from evalkit.evaluation.config import EvalConfig, RateLimit
from evalkit.evaluation.engine import execute
from evalkit.evaluation.plan import option_of, plan
from evalkit.inference.cache import CacheMode
from evalkit.suite import SuiteConfigError, load_suite
from evalkit.suite.preflight import preflight
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]
RAG_QA = REPO / "datasets" / "rag_qa.jsonl"


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer(FakeConfig(latency=0.0)) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _key(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-anything-000000")
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def frame(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"inputs": [f"Where is lamp {i}?" for i in range(rows)],
                         "contexts": [[f"Lamp {i} is in aisle 4."] for i in range(rows)],
                         "ground_truth": ["Aisle 4." for _ in range(rows)]})


# ---- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    (dict(concurrency=0), "concurrency: Input should be greater than or equal to 1, got 0"),
    (dict(concurrency=5000), "concurrency: Input should be less than or equal to 4096, got 5000"),
    (dict(concurrency=True), "concurrency: Input should be a valid integer, got True"),
    (dict(timeout="soon"), "timeout must be a positive number of seconds per request, got 'soon'"),
    (dict(max_attempts=21), "max_attempts: Input should be less than or equal to 20, got 21"),
    (dict(max_cost_usd=0), "max_cost_usd must be a positive number of US dollars, got 0"),
    (dict(rate_limit={"rpm": 600, "rph": 1}), "rate_limit must be requests per minute or"),
    (dict(judge_rate_limit={"tpm": -5}), "rate_limit['tpm'] must be a positive number, got -5"),
    (dict(cache="sometimes"), "invalid cache mode 'sometimes'"),
    (dict(model_type="chat"), "unknown model_type 'chat'; use one of question-answering"),
    (dict(judge="gpt-4o"), "judge: malformed model URI 'gpt-4o'"),
    (dict(model=42), "model must be a model URI, a callable or batch(fn), got int"),
    (dict(col_mapping={"question": "q"}), "unknown key(s) 'question' in col_mapping"),
    (dict(inference_params={"temperature": 5}), "inference_params: inference param temperature=5 must be"),
    (dict(prompt="{{ input }"), "prompt user template line 1: unexpected"),
    (dict(tags={"team": 7}), "tags.team: Input should be a valid string, got 7"),
    (dict(predictions="answer"), "pass either model= or predictions=, not both"),
    (dict(model=None), "evaluate() needs a model, or predictions="),
])
def test_each_bad_option_is_named_with_its_value(options, message):
    with pytest.raises(ek.InvalidArgument) as caught:
        EvalConfig.build(**({"model": "evalkit:/extractive", "data": "qa.jsonl"} | options))
    assert message in str(caught.value)


def test_every_bad_option_is_reported_at_once():
    with pytest.raises(ek.InvalidArgument) as caught:
        EvalConfig.build(model="evalkit:/extractive", concurrency=0, timeout=0, cache="sometimes")
    assert all(name in str(caught.value) for name in ("concurrency", "timeout", "'sometimes'"))


def test_evaluate_takes_exactly_the_configs_options():
    parameters = inspect.signature(ek.evaluate).parameters
    assert list(parameters) == list(EvalConfig.model_fields)
    assert [p.name for p in parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD] == ["model", "data", "targets"]
    assert parameters["concurrency"].default == 16 and parameters["cache"].default == "on"
    with pytest.raises(TypeError, match="concurency"):
        ek.evaluate(model="evalkit:/extractive", data=frame(), concurency=4)


def test_values_are_kept_in_one_form():
    config = EvalConfig.build(model="evalkit:/extractive", rate_limit=600, cache=True, inference_params=None)
    assert config.rate_limit == RateLimit(600.0, None) and config.cache is CacheMode.ON
    assert config.inference_params == {} and config.extra_metrics == [] and config.evaluator_config == {}
    assert EvalConfig.build(model="evalkit:/extractive", rate_limit={"rpm": 600}) == config.model_copy(
        update={"cache": CacheMode.ON})


# ---- plan: everything before the first paid call -------------------------------------------------


def test_plan_resolves_everything_and_sends_no_request(server):
    model, judge = f"openai:/gpt-4o?base_url={server.base_url}", f"openai:/gpt-4o-mini?base_url={server.base_url}"
    before = server.stats.requests
    planned = plan(EvalConfig.build(model=model, judge=judge, data=frame(), targets="ground_truth",
                                    model_type="retrieval-augmented", max_cost_usd=1.0))
    assert server.stats.requests == before  # nothing sent: not the model, not the judge
    assert planned.model.uri == f"openai:/gpt-4o?base_url={server.base_url}" and planned.judge is not None
    assert planned.dataset.num_rows == 3 and planned.dataset.context_column == "contexts"
    assert "faithfulness" in [e.name for e in planned.evaluators]
    assert [i.name for i in planned.infos] == [e.name for e in planned.evaluators]
    assert planned.template.system and "Context:" in planned.template.user  # the RAG default, from the data
    result = execute(plan(planned.config.model_copy(update={"judge": None, "model_type": "question-answering"})))
    assert server.stats.requests == before + 3 and result.metrics["rows/answered"] == 3


@pytest.mark.parametrize(("options", "option", "words"), [
    (dict(targets="answer"), "data", "targets column 'answer' is not in the data"),
    (dict(prompt="{{ missing_var }}"), "prompt", "missing_var"),
    (dict(evaluators=["nonsense"]), "evaluators", "unknown evaluator 'nonsense'"),
    (dict(max_cost_usd=1.0, model="openai:/private-llm"), "max_cost_usd", "needs a price for 'private-llm'"),
])
def test_plan_errors_say_which_option(server, options, option, words):
    config = EvalConfig.build(**({"model": f"openai:/gpt-4o?base_url={server.base_url}", "data": frame()} | options))
    with pytest.raises(ek.InvalidArgument, match=words) as caught:
        plan(config)
    assert option_of(caught.value) == option


# ---- the suite file and evaluate() refuse the same thing with the same words -------------------------


SUITE = f"""suite: nightly
datasets:
  - name: rag_qa
    path: {RAG_QA}
    targets: ground_truth
models:
  - name: extractive
    uri: evalkit:/extractive
"""


@pytest.mark.parametrize(("line", "options", "key"), [
    ("concurrency: 0", dict(concurrency=0), "concurrency"),
    ("timeout: -1", dict(timeout=-1), "timeout"),
    ("max_attempts: 0", dict(max_attempts=0), "max_attempts"),
    ("cache: sometimes", dict(cache="sometimes"), "cache"),
    ("rate_limit: {rpm: -1}", dict(rate_limit={"rpm": -1}), "rate_limit"),
    ("judge: nosuch:/model", dict(judge="nosuch:/model"), "judge"),
    ("judge_params: {temprature: 0}", dict(judge="evalkit:/extractive", judge_params={"temprature": 0}),
     "judge_params"),
    ("model_type: chat", dict(model_type="chat"), "model_type"),
    ("evaluators: [exact_match, nonsense]", dict(evaluators=["exact_match", "nonsense"]), "evaluators"),
    ("models:\n  - name: hot\n    uri: evalkit:/extractive\n    params: {temperature: 9}",
     dict(inference_params={"temperature": 9}), "models[0].params"),
    ("models:\n  - name: odd\n    uri: evalkit:/extractive\n    prompt: '{{ missing_var }}'",
     dict(prompt="{{ missing_var }}"), "models[0].prompt"),
])
def test_the_suite_and_evaluate_give_the_same_error(tmp_path, line, options, key):
    body = SUITE.split("models:")[0] + line + "\n" if line.startswith("models:") else SUITE + line + "\n"
    path = tmp_path / "nightly.yaml"
    path.write_text(body)
    with pytest.raises(SuiteConfigError) as in_suite:
        preflight(load_suite(path))
    (_, where, message), = in_suite.value.problems
    with pytest.raises(ek.InvalidArgument) as in_python:
        ek.evaluate(**({"model": "evalkit:/extractive", "data": str(RAG_QA), "targets": "ground_truth",
                        "progress": False} | options))
    assert where == key
    assert message.removesuffix(" (dataset rag_qa)") in str(in_python.value)
    assert ek.search_runs().empty  # neither started a run


# ---- the command line builds the config the Python API builds ---------------------------------------


def test_the_cli_and_the_python_api_build_equal_configs(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question_text": "Where?", "gold": "Here.", "passages": ["Here."]}\n')
    prompt = tmp_path / "prompt.yaml"
    prompt.write_text("- role: system\n  content: Be terse.\n- role: user\n  content: '{{ context }} {{ input }}'\n")
    args = ["-m", "openai:/gpt-4o", "-d", str(data), "-t", "gold", "--col-mapping", "inputs=question_text",
            "--col-mapping", "context=passages", "--prompt", str(prompt), "--model-type", "retrieval-augmented",
            "--evaluators", "default,exact_match", "--judge", "openai:/gpt-4o-mini", "-e", "nightly",
            "--run-name", "cli", "-p", "temperature=0", "-p", "max_tokens=64", "-c", "8", "--rpm", "600",
            "--cache", "refresh", "--max-cost-usd", "2.5", "--timeout", "30"]
    ctx = evaluate_command.make_context("evaluate", args)
    from_cli = evaluate_config(**ctx.params)
    from_python = EvalConfig.build(
        model="openai:/gpt-4o", data=str(data), targets="gold",
        col_mapping={"inputs": "question_text", "context": "passages"},
        prompt=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "{{ context }} {{ input }}"}],
        model_type="retrieval-augmented", evaluators="default", extra_metrics=["exact_match"],
        judge="openai:/gpt-4o-mini", experiment="nightly", run_name="cli",
        inference_params={"temperature": 0, "max_tokens": 64}, concurrency=8, rate_limit=600, cache="refresh",
        max_cost_usd=2.5, timeout=30,
    )
    assert from_cli == from_python
    defaults = evaluate_config(**evaluate_command.make_context("evaluate", ["-m", "evalkit:/extractive",
                                                                           "-d", str(data)]).params)
    assert defaults == EvalConfig.build(model="evalkit:/extractive", data=str(data))


def test_the_suite_file_takes_evalconfigs_run_options_with_their_rules():
    from evalkit.suite.config import SUITE_OPTIONS, SuiteSpec

    assert {"model_type", "evaluators", "judge", "judge_params", "concurrency", "rate_limit", "cache", "timeout",
            "max_attempts"} <= set(SUITE_OPTIONS)
    assert not {"model", "data", "max_cost_usd", "resume"} & set(SUITE_OPTIONS)  # set per pair by the suite
    for name in SUITE_OPTIONS:
        assert SuiteSpec.model_fields[name].description == EvalConfig.model_fields[name].description
    assert SuiteSpec.model_fields["cache"].default == "refresh"  # the one default a nightly job changes
