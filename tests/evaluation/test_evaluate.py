"""evaluate() end to end through the public API, against the embedded model and the fake
OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

import evalkit as ek
from evalkit.testing import assert_eval
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]
RAG_QA = REPO / "datasets" / "rag_qa.jsonl"
SECRET = "sk-test-SECRET0123456789abcdef"


@pytest.fixture
def server():
    with FakeOpenAIServer(FakeConfig(latency=0.0)) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _key_and_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def frame(rows: int = 20, tag: str = "") -> pd.DataFrame:
    return pd.DataFrame({
        "inputs": [f"{tag}What colour is lamp {i}?" for i in range(rows)],
        "contexts": [[f"Lamp {i} is painted blue.", "Shipping takes three days."] for i in range(rows)],
        "ground_truth": [f"Lamp {i} is painted blue." for i in range(rows)],
    })


def uri(server: FakeOpenAIServer, model: str = "gpt-4o") -> str:
    return f"openai:/{model}?base_url={server.base_url}"


# ---- the offline path (what make demo runs) ----------------------------------------------------


def test_offline_evaluation_on_the_bundled_dataset_logs_a_complete_run():
    result = ek.evaluate(model="evalkit:/extractive", data=str(RAG_QA), targets="ground_truth",
                         experiment="offline", progress=False)
    table = result.tables["eval_results_table"]
    rows = sum(1 for _ in RAG_QA.open())
    assert len(table) == rows and list(table["row"]) == list(range(rows))
    assert set(table["status"]) == {"ok"}
    assert {"inputs", "contexts", "targets", "outputs", "latency_ms", "total_latency_ms", "input_tokens",
            "output_tokens", "cost_usd", "cached", "error", "exact_match/score", "exact_match/justification"} <= set(table.columns)
    metrics = result.metrics
    assert metrics["rows/total"] == rows and metrics["error_count"] == 0 and metrics["error_rate"] == 0
    assert 0 <= metrics["exact_match/v1/mean"] <= 1 and metrics["exact_match/v1/rows_scored"] == rows
    assert metrics["latency/p50_ms"] <= metrics["latency/p90_ms"] <= metrics["latency/p99_ms"] <= metrics["latency/max_ms"]
    assert metrics["cost/total_usd"] == 0.0 and metrics["tokens/estimated_rows"] == rows

    run = ek.get_run(result.run_id)
    assert run.info.status is ek.RunStatus.FINISHED
    params = run.data.params
    assert params["model_uri"] == "evalkit:/extractive" and params["model_snapshot"] == "evalkit-extractive-1"
    assert params["dataset_rows"] == str(rows) and len(params["dataset_digest"]) == 16
    assert params["evaluators"] == ("exact_match@v1,token_f1@v1,answer_correctness@f1sim-v1,faithfulness@kprecision-v1,"
                                    "toxicity@offline-v1,latency@v1,cost@v1")
    assert params["evalkit_version"] == ek.__version__
    assert params["data_path"] == str(RAG_QA) and "prompt_digest" in params
    assert "git_commit" not in params  # the test's working folder is no git repository
    assert run.data.metrics["exact_match/v1/mean"] == pytest.approx(metrics["exact_match/v1/mean"])
    client = ek.TrackingClient()
    stored = client.load_table(result.run_id, "eval_results_table.parquet")
    assert list(stored["outputs"]) == list(table["outputs"])
    assert json.loads(Path(result.artifacts["json"]).read_text())["columns"][0] == "row"


def test_git_commit_is_logged_inside_a_repository(tmp_path):
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    result = ek.evaluate(model="evalkit:/extractive", data=frame(2), progress=False)
    assert ek.get_run(result.run_id).data.params["git_commit"] == head


def test_evaluate_takes_a_hugging_face_dataset_and_a_csv_path(tmp_path):
    import datasets

    data = frame(5).assign(contexts=lambda f: f["contexts"].map(json.dumps))
    data.to_csv(tmp_path / "qa.csv", index=False)
    from_csv = ek.evaluate(model="evalkit:/extractive", data=tmp_path / "qa.csv", targets="ground_truth", progress=False)
    from_hf = ek.evaluate(model="evalkit:/extractive", data=datasets.Dataset.from_pandas(frame(5)),
                          targets="ground_truth", progress=False)
    assert from_csv.metrics["exact_match/v1/mean"] == 1.0 == from_hf.metrics["exact_match/v1/mean"]
    assert ek.get_run(from_csv.run_id).data.params["dataset_digest"] == ek.get_run(from_hf.run_id).data.params["dataset_digest"]


# ---- OpenAI-compatible endpoints -------------------------------------------------------------------


def test_openai_model_uri_with_exact_usage_cost_and_snapshot(server):
    result = ek.evaluate(model=uri(server), data=frame(30), targets="ground_truth", concurrency=8,
                         inference_params={"temperature": 0, "max_tokens": 64}, progress=False)
    table = result.tables["eval_results_table"]
    assert server.stats.requests == 30 and set(table["status"]) == {"ok"}
    assert not table["usage_estimated"].any() and (table["input_tokens"] > 0).all()
    expected = (table["input_tokens"] * 2.50 + table["output_tokens"] * 10.00) / 1e6  # gpt-4o list price
    assert table["cost_usd"].tolist() == pytest.approx(expected.tolist())
    assert result.metrics["cost/model_usd"] == pytest.approx(expected.sum())
    assert result.metrics["cost/per_1k_queries_usd"] == pytest.approx(expected.sum() / 30 * 1000)
    assert result.estimated_cost_usd > 0 and result.metrics["cost/estimated_usd"] == result.estimated_cost_usd
    params = ek.get_run(result.run_id).data.params
    assert params["model_snapshot"] == "gpt-4o-2024-08-06"
    assert params["model_uri"] == f"openai:/gpt-4o?base_url={server.base_url}"
    assert json.loads(params["inference_params"]) == {"max_tokens": 64, "temperature": 0}


def test_missing_usage_is_estimated_with_tiktoken_and_flagged(server):
    server.config.rate_missing_usage = 1.0
    result = ek.evaluate(model=uri(server), data=frame(5), targets="ground_truth", progress=False)
    table = result.tables["eval_results_table"]
    assert table["usage_estimated"].all() and (table["input_tokens"] > 10).all()
    assert result.metrics["tokens/estimated_rows"] == 5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(data=pd.DataFrame({"prompt_text": ["q"]}), targets=None), "no inputs column: tried .* has .prompt_text."),
        (dict(data=pd.DataFrame({"inputs": []}), targets=None), "no rows"),
        (dict(data=pd.DataFrame({"inputs": ["q", 3]}), targets=None), "row 1"),
        (dict(data=pd.DataFrame({"inputs": ["q", "r"], "ground_truth": ["a", None]}), targets="ground_truth"), "ground_truth"),
        (dict(targets="answer_col"), "answer_col"),
        (dict(model="mystery:/model"), "unknown model URI scheme 'mystery'"),
        (dict(inference_params={"temperature": 5}), "temperature=5"),
        (dict(inference_params={"max_tokens": 0}), "max_tokens=0"),
        (dict(evaluators=["exact_match", "nonsense"]), "unknown evaluator 'nonsense'; available: .*exact_match.*faithfulness"),
        (dict(concurrency=0), "concurrency"),
        (dict(rate_limit=-1), "rate_limit"),
        (dict(cache="sometimes"), "sometimes"),
        (dict(prompt="{{ missing_var }}"), "missing_var"),
    ],
)
def test_bad_input_fails_before_any_request(server, kwargs, message):
    arguments = dict(model=uri(server), data=frame(3), targets="ground_truth", progress=False) | kwargs
    with pytest.raises(ek.InvalidArgument, match=message):
        ek.evaluate(**arguments)
    assert server.stats.requests == 0


def test_missing_api_key_fails_before_any_request(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ek.InvalidArgument, match="OPENAI_API_KEY is not set"):
        ek.evaluate(model="openai:/gpt-4o", data=frame(3), progress=False)
    assert ek.search_runs(experiment_names=None).empty


def test_unknown_model_stops_the_run_on_the_first_answers(server):
    with pytest.raises(ek.EvalkitError, match="model 'does-not-exist' not found") as info:
        ek.evaluate(model=uri(server, "does-not-exist"), data=frame(50), concurrency=4, progress=False)
    assert server.stats.requests <= 4 + 4  # the requests already in flight, none after
    run = ek.search_runs(output_format="list")[0]
    assert run.info.status is ek.RunStatus.FAILED
    assert SECRET not in str(info.value)


def test_the_api_key_never_lands_in_params_tags_artifacts_logs_or_errors(monkeypatch, capfd, caplog):
    with FakeOpenAIServer(require_api_key=SECRET) as server:
        result = ek.evaluate(model=uri(server), data=frame(5), targets="ground_truth", progress=True)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET[:-1] + "X")  # a wrong key: 401 quoting it back
        with pytest.raises(ek.EvalkitError) as info:
            ek.evaluate(model=uri(server), data=frame(5, "again "), progress=False)
    assert SECRET not in str(info.value) and SECRET[:-1] not in str(info.value)
    for run in ek.search_runs(output_format="list"):
        assert SECRET[:12] not in json.dumps([run.data.params, run.data.tags])
        for path in Path(run.info.artifact_uri).rglob("*"):
            if path.is_file():
                assert SECRET[:12].encode() not in path.read_bytes(), path
    out, err = capfd.readouterr()
    assert SECRET[:12] not in out + err + caplog.text
    assert result.metrics["rows/answered"] == 5


# ---- cache -------------------------------------------------------------------------------------------


def test_second_run_is_served_from_the_cache_keeping_original_latency_and_cost(server):
    data = frame(20)
    first = ek.evaluate(model=uri(server), data=data, targets="ground_truth", progress=False)
    server.reset_stats()
    second = ek.evaluate(model=uri(server), data=data, targets="ground_truth", progress=False)
    assert server.stats.requests == 0
    one, two = first.tables["eval_results_table"], second.tables["eval_results_table"]
    assert two["cached"].all() and not one["cached"].any()
    assert two["latency_ms"].tolist() == pytest.approx(one["latency_ms"].tolist())
    assert two["cost_usd"].tolist() == pytest.approx(one["cost_usd"].tolist())
    assert second.metrics["cache/hits"] == 20 and second.metrics["cache/misses"] == 0
    assert second.metrics["cost/spent_usd"] == 0 and second.metrics["cost/model_usd"] == pytest.approx(first.metrics["cost/model_usd"])


def test_a_fully_cached_run_reports_its_latency_as_nan_with_no_row_timed(server):
    """The README's result.metrics["latency/p95_ms"] never raises KeyError: cached rows are left out
    of the percentiles, so with every row cached the figure is NaN, logged as such, and cannot pass a gate."""
    data = frame(6)
    ek.evaluate(model=uri(server), data=data, targets="ground_truth", progress=False)
    second = ek.evaluate(model=uri(server), data=data, targets="ground_truth", progress=False)
    for name in ("latency/p50_ms", "latency/p95_ms", "latency/mean_ms", "latency/max_ms", "latency_total/p95_ms"):
        assert math.isnan(second.metrics[name]), name
    assert second.metrics["latency/rows_scored"] == 0 and second.metrics["latency/rows_not_applicable"] == 6
    assert math.isnan(ek.get_run(second.run_id).data.metrics["latency/p95_ms"])  # stored as it is
    with pytest.raises(AssertionError, match="latency/p95_ms is nan"):
        assert_eval(second, "latency/p95 <= 2000")
    html = Path(second.artifacts["report"]).read_text()
    assert "nan ms" not in html and "No latency: answers were given (predictions) or all came from the cache" in html


def test_cache_is_keyed_by_model_and_parameters_and_modes_work(server):
    data = frame(4)
    ek.evaluate(model=uri(server), data=data, progress=False)
    for kwargs in (dict(model=uri(server, "gpt-4o-mini")), dict(inference_params={"temperature": 0.5}), dict(cache="off"),
                   dict(cache="refresh")):
        server.reset_stats()
        ek.evaluate(**(dict(model=uri(server), data=data, progress=False) | kwargs))
        assert server.stats.requests == 4, kwargs
    server.reset_stats()
    ek.evaluate(model=uri(server, "gpt-4.1"), data=data, cache="read-only", progress=False)
    ek.evaluate(model=uri(server, "gpt-4.1"), data=data, cache="read-only", progress=False)
    assert server.stats.requests == 8  # read-only never writes, so it never hits either


# ---- callables and predictions ------------------------------------------------------------------


def test_python_callables_sync_async_and_batched():
    def answer(question: str, contexts: list[str]) -> str:
        return contexts[0]

    async def answer_async(question: str) -> str:
        return "unknown"

    calls = []

    def answer_batch(questions: list[str]) -> list[str]:
        calls.append(len(questions))
        return [q.upper() for q in questions]

    assert ek.evaluate(model=answer, data=frame(6), targets="ground_truth", progress=False).metrics["exact_match/v1/mean"] == 1.0
    assert ek.evaluate(model=answer_async, data=frame(6), targets="ground_truth", progress=False).metrics["exact_match/v1/mean"] == 0.0
    result = ek.evaluate(model=ek.batch(answer_batch, size=4), data=frame(6), progress=False)
    assert calls == [4, 2] and result.tables["eval_results_table"]["outputs"][0].startswith("WHAT COLOUR")
    params = ek.get_run(result.run_id).data.params
    assert params["model_uri"].endswith("answer_batch")


def test_a_failing_callable_row_is_recorded_and_counted_not_dropped():
    def flaky(question: str) -> str:
        if "lamp 3?" in question:
            raise RuntimeError("backend exploded")
        return "ok"

    result = ek.evaluate(model=flaky, data=frame(6), targets="ground_truth", progress=False)
    table = result.tables["eval_results_table"]
    assert len(table) == 6 and table.loc[3, "status"] == "failed"
    assert "backend exploded" in table.loc[3, "error"] and pd.isna(table.loc[3, "outputs"])
    assert result.metrics["error_count"] == 1 and result.metrics["error_rate"] == pytest.approx(1 / 6)
    assert result.metrics["exact_match/v1/rows_failed"] == 1 and result.metrics["exact_match/v1/rows_scored"] == 5


def test_predictions_computed_elsewhere():
    data = frame(4).assign(answer=lambda f: f["ground_truth"])
    result = ek.evaluate(data=data, predictions="answer", targets="ground_truth", progress=False)
    assert result.metrics["exact_match/v1/mean"] == 1.0
    assert ek.get_run(result.run_id).data.params["model_uri"] == "predictions:answer"


def test_inside_an_active_run_evaluate_logs_into_it_and_leaves_it_open():
    with ek.start_run(run_name="outer") as run:
        result = ek.evaluate(model="evalkit:/extractive", data=frame(3), targets="ground_truth", progress=False)
        assert result.run_id == run.info.run_id
        assert ek.get_run(run.info.run_id).info.status is ek.RunStatus.RUNNING
    assert ek.get_run(run.info.run_id).info.status is ek.RunStatus.FINISHED


# ---- budget and resume -------------------------------------------------------------------------------


def test_max_cost_usd_stops_cleanly_and_resume_finishes_the_rest(server):
    prices = {"gpt-4o": {"input": 10_000.0, "output": 10_000.0, "cached_input": 10_000.0}}
    data = frame(40)
    result = ek.evaluate(model=uri(server), data=data, targets="ground_truth", concurrency=1, prices=prices,
                         max_cost_usd=5.0, inference_params={"max_tokens": 20}, progress=False)
    table = result.tables["eval_results_table"]
    answered = table[table["status"] == "ok"]
    assert 0 < len(answered) < 40 and result.stopped_reason == "max_cost_usd"
    assert answered["cost_usd"].sum() <= 5.0
    assert set(table["status"]) == {"ok", "skipped"} and result.metrics["rows/skipped"] == 40 - len(answered)
    assert ek.get_run(result.run_id).data.tags["evalkit.stopped_reason"] == "max_cost_usd"

    requested = server.stats.requests
    resumed = ek.evaluate(model=uri(server), data=data, targets="ground_truth", prices=prices, resume=result.run_id,
                          inference_params={"max_tokens": 20}, progress=False)
    assert resumed.run_id == result.run_id and set(resumed.tables["eval_results_table"]["status"]) == {"ok"}
    assert server.stats.requests - requested == 40 - len(answered)


def test_resume_refuses_different_data(server):
    result = ek.evaluate(model=uri(server), data=frame(3), progress=False)
    with pytest.raises(ek.InvalidArgument, match="dataset_digest"):
        ek.evaluate(model=uri(server), data=frame(4), resume=result.run_id, progress=False)


@pytest.mark.slow
def test_faults_end_with_every_row_answered_or_recorded_as_failed():
    config = FakeConfig(rate_429=0.10, retry_after=0.05, rate_500=0.05, rate_hang=0.02, seed=7)
    with FakeOpenAIServer(config) as server:
        result = ek.evaluate(model=uri(server), data=frame(300), targets="ground_truth", concurrency=32,
                             timeout=0.5, progress=False)
    table = result.tables["eval_results_table"]
    assert len(table) == 300 and set(table["status"]) <= {"ok", "failed"}
    assert (table["status"] == "ok").sum() + result.metrics["error_count"] == 300
    assert table.loc[table["status"] == "failed", "error"].notna().all()
    assert result.metrics["retries"] > 30  # the faults really happened and were retried
    assert server.stats.by_status[429] > 0 and server.stats.by_status[500] > 0


def test_a_tolerance_gate_on_the_nan_latency_of_a_cached_run_is_an_error_not_a_pass(server, tmp_path):
    from evalkit.suite.gates import ERROR, Comparison, compare
    from evalkit.suite.job import _scores

    data = frame(6)
    baseline = ek.evaluate(model=uri(server), data=data, progress=False)
    cached = ek.evaluate(model=uri(server), data=data, progress=False)
    client = ek.TrackingClient()
    gate = compare(Comparison("latency/p95", "tolerance", tolerance=0.2, relative=True),
                   _scores(client, cached.run_id, tmp_path), _scores(client, baseline.run_id, tmp_path))
    assert gate.status == ERROR and "cannot be compared" in gate.message
