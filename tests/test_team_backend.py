"""The team configuration end to end: an evaluation, its report, a resumed evaluation and a suite
night with artifacts on S3 (moto's server), on SQLite and on PostgreSQL, then read back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
import warnings

import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import EvaluationFailed
from evalkit.suite import run_suite
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer

pytestmark = pytest.mark.s3


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def team_store(request, s3_bucket, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("EVALKIT_ARTIFACT_ROOT", f"{s3_bucket}/evalkit")
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'team.db'}"
    else:
        uri = request.getfixturevalue("postgres").create_database(f"team_{uuid.uuid4().hex[:12]}")
    ek.set_tracking_uri(uri)
    return s3_bucket


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({
        "inputs": [f"What colour is lamp {i}?" for i in range(rows)],
        "contexts": [[f"Context: Lamp {i} is painted blue."] for i in range(rows)],
        "ground_truth": [f"Lamp {i} is painted blue." for i in range(rows)],
    })


def test_an_evaluation_with_artifacts_on_s3_resumes_and_reports(team_store, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-team-0000000000")
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    with FakeOpenAIServer(FakeConfig()) as server:
        model = f"openai:/gpt-4o?base_url={server.base_url}"
        original = server._answer
        down = {"yes": True}

        async def answer(request, digest, build):  # noqa: ANN001, ANN202 - the endpoint is down at first
            if down["yes"]:
                return server._reply(503, {"error": {"message": "overloaded", "type": "server_error", "code": None}})
            return await original(request, digest, build)

        server._answer = answer
        with pytest.raises(EvaluationFailed) as info:
            ek.evaluate(model=model, data=frame(6), targets="ground_truth", max_attempts=1, progress=False)
        run_id = info.value.run_id
        assert not list(tmp_path.rglob("s3:*"))  # nothing written to a local folder named after the URI
        down["yes"] = False
        result = ek.evaluate(model=model, data=frame(6), targets="ground_truth", resume=run_id, cache="off",
                             progress=False)
    assert result.run_id == run_id and result.metrics["rows/answered"] == 6
    assert result.artifacts["report"] == f"{ek.get_run(run_id).info.artifact_uri}/report.html"
    assert result.artifacts["report"].startswith(f"{team_store}/evalkit/")
    client = ek.TrackingClient()
    names = {f.path for f in client.list_artifacts(run_id)}
    assert {"eval_results_table.json", "eval_results_table.parquet", "report.html", "journal", "evaluators.json"} <= names
    assert len(client.load_table(run_id, "eval_results_table.parquet")) == 6
    assert "lamp 5" in client.load_text(run_id, "report.html")
    journal = client.load_text(run_id, "journal/rows.jsonl").splitlines()
    assert len(journal) == 12  # 6 failed rows, then the same 6 answered


def test_a_suite_night_with_artifacts_on_s3(team_store, tmp_path):
    frame(5).to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    suite = tmp_path / "suite.yaml"
    suite.write_text("suite: team-night\ndatasets:\n  - name: d\n    path: d.jsonl\n    targets: ground_truth\n"
                     "models:\n  - name: m\n    uri: evalkit:/extractive\nthresholds:\n  - error_rate <= 0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_suite(suite, tmp_path / "out")
    assert result.exit_code == 0, [g.message for p in result.pairs for g in p.gates]
    pair = result.pairs[0]
    assert pair.report_path is not None and "team-night" in pair.report_path.read_text()
    artifact_uri = ek.get_run(pair.run_id).info.artifact_uri
    assert artifact_uri.startswith(f"{team_store}/evalkit/")
    assert ek.TrackingClient().load_text(pair.run_id, "gates.json")


CHILD = """
import sys, evalkit as ek
ek.set_tracking_uri(sys.argv[1])
ek.evaluate(model=f"openai:/gpt-4o?base_url={sys.argv[2]}", data=sys.argv[3], targets="ground_truth",
            concurrency=4, cache="off", progress=False)
"""


@pytest.mark.slow
def test_sigkill_then_resume_with_artifacts_on_s3_and_the_report_read_back(team_store, tmp_path, monkeypatch):
    """The team configuration end to end: a run killed mid-way resumes without asking again for
    the rows it had, and `evalkit report` renders it back from S3."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-team-0000000000")
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache" / "responses.db"))
    rows = 120
    data = tmp_path / "qa.jsonl"
    frame(rows).to_json(data, orient="records", lines=True)
    uri = ek.get_tracking_uri()
    with FakeOpenAIServer(FakeConfig(latency=0.05)) as server:
        child = subprocess.Popen([sys.executable, "-c", CHILD, uri, server.base_url, str(data)], env=os.environ.copy())
        spool = None
        deadline = time.monotonic() + 180  # generous: a loaded machine starts the child slowly
        while time.monotonic() < deadline:
            runs = ek.search_runs(output_format="list")
            if runs:
                spool = tmp_path / "cache" / "journals" / f"{runs[0].info.run_id}.jsonl"
                if spool.exists() and len(spool.read_text().splitlines()) >= rows // 3:
                    break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert spool is not None and spool.exists(), "the child never journalled a row before the deadline"
        run_id = runs[0].info.run_id
        answered = len(spool.read_text().splitlines())
        assert 0 < answered < rows
        server.reset_stats()
        result = ek.evaluate(model=f"openai:/gpt-4o?base_url={server.base_url}", data=str(data),
                             targets="ground_truth", resume=run_id, cache="off", progress=False)
        assert server.stats.requests <= rows - answered + 4  # the rows left, and at most those in flight
    assert result.metrics["rows/answered"] == rows
    assert ek.get_run(run_id).info.artifact_uri.startswith(f"{team_store}/evalkit/")
    out = tmp_path / "report.html"
    process = subprocess.run([sys.executable, "-c", "from evalkit.cli.main import main; main()", "--tracking-uri", uri,
                              "report", run_id, "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    assert "lamp 119" in out.read_text()


def test_a_spooled_journal_reaches_s3_during_a_long_run_not_once_per_row(s3_bucket, tmp_path, monkeypatch):
    from evalkit.evaluation.journal import JOURNAL_FILE, JournalLocation, read_journal
    from evalkit.inference.runner.records import RowOutcome, RowStatus
    from evalkit.tracking.artifacts import get_artifact_repository

    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache" / "responses.db"))
    repository = get_artifact_repository(f"{s3_bucket}/exp/run-1/artifacts")
    uploads = []
    monkeypatch.setattr(repository, "upload_file", lambda *args: uploads.append(args))
    location = JournalLocation(repository, "run-1")
    clock = iter([0.0, 1.0, 2.0, 31.0, 31.0, 32.0, 33.0])  # opened, then five appends (one uploads)
    monkeypatch.setattr("evalkit.evaluation.journal.time.monotonic", lambda: next(clock))
    journal = location.open()
    for i in range(5):
        journal.append(RowOutcome(i, RowStatus.OK, output=f"a{i}"))
    journal.close()
    assert len(uploads) == 1  # the append at 31 s, not one per row
    assert uploads[0][1] == JOURNAL_FILE and len(read_journal(location.path)) == 5
