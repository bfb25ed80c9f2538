"""Failures at run time are loud: an endpoint that is down, a judge that cannot work, a Ctrl-C.
Each ends the run FAILED (or KILLED) with its reason stored on the run, and says how to resume."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings

import pandas as pd
import pytest

import evalkit as ek
from evalkit.cli.main import cli
from evalkit.errors import EvaluationFailed, EvaluationWarning
from evalkit.evaluation.engine import CANARY_ROWS
from evalkit.testing.fake_judge import judge_responder
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer
from evalkit.tracking.run_tags import FAILURE_REASON

KEY = "sk-test-model-key-0123456789"


@pytest.fixture(autouse=True)
def _key_and_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({
        "inputs": [f"What colour is lamp {i}?" for i in range(rows)],
        "contexts": [[f"Lamp {i} is painted blue."] for i in range(rows)],
        "ground_truth": [f"Lamp {i} is painted blue." for i in range(rows)],
    })


def dead_url() -> str:
    """A loopback port nothing listens on: every connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def chat_requests(server: FakeOpenAIServer, model: str) -> int:
    return sum(entry.model == model for entry in server.stats.request_log)


# ---- outages ---------------------------------------------------------------------------------


def test_a_dead_endpoint_fails_the_run_with_its_reason_and_a_resume_command(tmp_path):
    data = tmp_path / "qa.csv"
    frame(4).assign(contexts=lambda f: f.contexts.str[0]).to_csv(data, index=False)
    with pytest.raises(EvaluationFailed) as info:
        ek.evaluate(model=f"openai:/gpt-4o?base_url={dead_url()}", data=str(data), targets="ground_truth",
                    max_attempts=2, progress=False)
    failed = info.value
    assert failed.counts == {"rows": 4, "answered": 0, "failed": 4, "skipped": 0}
    assert failed.endpoint.startswith("http://127.0.0.1:")
    assert failed.resume_command == f"evalkit evaluate --resume {failed.run_id}"
    assert "no row was answered" in failed.reason and failed.resume_command in str(failed)
    run = ek.get_run(failed.run_id)
    assert run.info.status is ek.RunStatus.FAILED
    assert run.data.tags[FAILURE_REASON] == failed.reason
    # the reason is searchable, and the report (logged before the run ended) says it
    found = ek.search_runs(filter_string=f"tags.`{FAILURE_REASON}` LIKE '%no row was answered%'")
    assert list(found["run_id"]) == [failed.run_id]
    report = (tmp_path / "evalkit-artifacts").rglob("report.html")
    html = next(report).read_text()
    assert "no row was answered" in html and "FAILED" in html


def test_the_cli_exits_2_on_a_dead_endpoint_and_prints_the_resume_command(tmp_path):
    data = tmp_path / "qa.jsonl"
    frame(3).to_json(data, orient="records", lines=True)
    process = subprocess.run(
        [sys.executable, "-c", "from evalkit.cli.main import main; main()", "evaluate", "--model",
         f"openai:/gpt-4o?base_url={dead_url()}", "--data", str(data), "--targets", "ground_truth"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, env={**os.environ, "OPENAI_API_KEY": KEY},
    )
    assert process.returncode == 2, process.stderr
    assert "error: evaluation failed: no row was answered" in process.stderr
    assert "Resume with: evalkit evaluate --resume" in process.stderr
    run = ek.search_runs(output_format="list")[0]
    assert run.info.status is ek.RunStatus.FAILED and FAILURE_REASON in run.data.tags
    shown = subprocess.run([sys.executable, "-c", "from evalkit.cli.main import main; main()", "runs", "show",
                            run.info.run_id], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert "failure_reason" in shown.stdout and "no row was answered" in shown.stdout


@pytest.mark.parametrize("failing, outage", [(5, True), (4, False)])
def test_half_the_rows_failing_transiently_is_an_outage_and_fewer_a_warning(failing, outage):
    """10 rows, a server that answers 500 to ``failing`` of them every time."""
    data = frame(10)
    doomed = {f"What colour is lamp {i}?" for i in range(failing)}

    with FakeOpenAIServer(FakeConfig()) as server:
        original = server._answer

        async def answer(request, digest, build):  # noqa: ANN001, ANN202 - wraps the server's own
            body = await request.json()
            if any(q in body["messages"][-1]["content"] for q in doomed):
                return server._reply(500, {"error": {"message": "boom", "type": "server_error", "code": None}})
            return await original(request, digest, build)

        server._answer = answer
        kwargs = dict(model=f"openai:/gpt-4o?base_url={server.base_url}", data=data, targets="ground_truth",
                      max_attempts=1, progress=False, evaluators=["exact_match"])
        if outage:
            with pytest.raises(EvaluationFailed, match="5 of 10 rows failed on connection errors"):
                ek.evaluate(**kwargs)
        else:
            with pytest.warns(EvaluationWarning, match=r"4 of 10 rows failed .*most common error \(4 rows\): HTTP 500"):
                result = ek.evaluate(**kwargs)
            assert result.metrics["error_count"] == 4
            assert ek.get_run(result.run_id).info.status is ek.RunStatus.FINISHED


def test_a_refused_key_before_any_answer_is_recorded_on_the_run():
    with FakeOpenAIServer(require_api_key="sk-other-key-0123456789") as server:
        with pytest.raises(ek.EvalkitError, match="refused"):
            ek.evaluate(model=f"openai:/gpt-4o?base_url={server.base_url}", data=frame(6), concurrency=2,
                        progress=False)
    run = ek.search_runs(output_format="list")[0]
    assert run.info.status is ek.RunStatus.FAILED
    assert "the API key was refused" in run.data.tags[FAILURE_REASON]
    assert KEY not in run.data.tags[FAILURE_REASON]


def test_an_exception_in_a_with_block_is_the_runs_failure_reason():
    with pytest.raises(ValueError):
        with ek.start_run() as run:
            raise ValueError("the data file was empty")
    stored = ek.get_run(run.info.run_id)
    assert stored.info.status is ek.RunStatus.FAILED
    assert stored.data.tags[FAILURE_REASON] == "ValueError: the data file was empty"


# ---- the judge is checked before the model is paid for -------------------------------------------


@pytest.mark.parametrize("fault", ["refused key", "unknown model", "no usable JSON"])
def test_a_judge_that_cannot_work_stops_the_run_after_a_handful_of_model_calls(monkeypatch, fault):
    monkeypatch.setenv("JUDGE_KEY", KEY if fault != "refused key" else "sk-wrong-judge-key-000000")
    responder = None if fault == "no usable JSON" else judge_responder
    with FakeOpenAIServer(FakeConfig(), responder=responder, require_api_key=KEY) as server:
        judge_model = "does-not-exist" if fault == "unknown model" else "gpt-4o-mini"
        with pytest.raises(EvaluationFailed, match="the judge could not score any of the first") as info:
            ek.evaluate(model=f"openai:/gpt-4o?base_url={server.base_url}", data=frame(40), targets="ground_truth",
                        judge=f"openai:/{judge_model}?base_url={server.base_url}&api_key_env=JUDGE_KEY",
                        concurrency=8, progress=False)
        assert chat_requests(server, "gpt-4o") == CANARY_ROWS  # not 40: the rest were never sent
    failed = info.value
    assert failed.counts["answered"] == CANARY_ROWS and failed.counts["skipped"] == 40 - CANARY_ROWS
    table = ek.TrackingClient().load_table(failed.run_id, "eval_results_table.parquet")
    assert (table["status"] == "skipped").sum() == 40 - CANARY_ROWS
    assert ek.get_run(failed.run_id).data.tags[FAILURE_REASON] == failed.reason


def test_once_the_judge_works_resume_answers_only_the_rows_left(monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-wrong-judge-key-000000")
    with FakeOpenAIServer(FakeConfig(), responder=judge_responder, require_api_key=KEY) as server:
        judge = f"openai:/gpt-4o-mini?base_url={server.base_url}&api_key_env=JUDGE_KEY"
        model = f"openai:/gpt-4o?base_url={server.base_url}"
        with pytest.raises(EvaluationFailed) as info:
            ek.evaluate(model=model, data=frame(12), targets="ground_truth", judge=judge, progress=False)
        monkeypatch.setenv("JUDGE_KEY", KEY)
        result = ek.evaluate(model=model, data=frame(12), targets="ground_truth", judge=judge, progress=False,
                             resume=info.value.run_id, cache="off")
        assert chat_requests(server, "gpt-4o") == 12  # each row answered once over both runs
    assert result.metrics["faithfulness/judge-v1/rows_scored"] == 12
    assert ek.get_run(result.run_id).info.status is ek.RunStatus.FINISHED


def test_a_broken_judge_on_given_predictions_fails_before_judging_every_row(monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-wrong-judge-key-000000")
    data = frame(30).assign(answer=lambda f: f.ground_truth)
    with FakeOpenAIServer(FakeConfig(), responder=judge_responder, require_api_key=KEY) as server:
        with pytest.raises(EvaluationFailed, match="the API key was refused"):
            ek.evaluate(data=data, predictions="answer", targets="ground_truth",
                        judge=f"openai:/gpt-4o-mini?base_url={server.base_url}&api_key_env=JUDGE_KEY", progress=False)
        assert server.stats.requests <= 2 * CANARY_ROWS  # the canary's splits, not 30 rows of them


def test_an_evaluator_that_scores_no_row_is_a_loud_warning():
    @ek.evaluator
    def always_breaks(row: ek.EvalRow) -> float:
        raise RuntimeError("scorer misconfigured")

    with pytest.warns(EvaluationWarning, match="always_breaks/v1 scored no row: 5 failed"):
        result = ek.evaluate(model="evalkit:/extractive", data=frame(5), extra_metrics=["always_breaks"],
                             progress=False)
    assert result.unscored == {"always_breaks/v1": "always_breaks/v1 scored no row: 5 failed (see its justification column)"}
    assert "always_breaks/v1/mean" not in result.metrics


def test_the_cli_summary_calls_an_unscored_evaluator_an_error(tmp_path, monkeypatch):
    data = tmp_path / "qa.jsonl"
    frame(3).to_json(data, orient="records", lines=True)
    plugin = tmp_path / "plugin_evaluators.py"
    plugin.write_text("import evalkit as ek\n\n@ek.evaluator\ndef always_breaks(row):\n    raise RuntimeError('no')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("plugin_evaluators")
    from click.testing import CliRunner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)
        outcome = CliRunner().invoke(cli, ["evaluate", "-m", "evalkit:/extractive", "-d", str(data),
                                           "--evaluators", "exact_match,always_breaks"])
    assert outcome.exit_code == 2, outcome.output
    assert "error: always_breaks/v1 scored no row: 3 failed" in outcome.output


def test_an_evaluator_that_scores_no_row_is_an_error_gate_in_a_suite(tmp_path):
    from evalkit.suite import run_suite

    @ek.evaluator
    def never_scores(row: ek.EvalRow) -> float:
        raise RuntimeError("scorer misconfigured")

    frame(4).to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    suite = tmp_path / "suite.yaml"
    suite.write_text("suite: unscored\ndatasets:\n  - name: d\n    path: d.jsonl\n    targets: ground_truth\n"
                     "models:\n  - name: m\n    uri: evalkit:/extractive\nevaluators: [exact_match]\n"
                     "extra_metrics: [never_scores]\nthresholds:\n  - exact_match/mean >= 0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)
        result = run_suite(suite, tmp_path / "out")
    assert result.exit_code == 2
    gates = {gate.name: gate for gate in result.pairs[0].gates}
    assert gates["exact_match/mean >= 0"].status == "passed"
    assert gates["never_scores/v1 scored"].status == "error"
    assert "never_scores/v1 scored no row: 4 failed" in gates["never_scores/v1 scored"].message
    assert 'type="scored"' in (tmp_path / "out" / "junit.xml").read_text()
