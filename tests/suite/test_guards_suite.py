"""Guards for the nightly job's verdict: an outage outranks a regression in the exit code, half
or more of the rows failing transiently is an outage (and just under half is not), and the
suite file's secret check ignores case. Each test fails on a small bug planted in the source."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli.main import cli
from evalkit.suite import run_suite
from evalkit.suite.config import SuiteConfigError, load_suite
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "datasets" / "rag_qa.jsonl"
ROWS = 10


def suite_file(folder: Path, body: str, rows: int = ROWS) -> Path:
    path = folder / "suite.yaml"
    path.write_text(f"suite: guards\ndatasets:\n  - name: rag_qa\n    path: {DATASET}\n    targets: ground_truth\n"
                    f"    limit: {rows}\ncache: off\nmax_attempts: 1\ntimeout: 5\n{body}")
    return path


def dead_endpoint() -> str:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


def test_an_outage_outranks_a_regression_in_the_exit_code(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    for order in ("regression-first", "outage-first"):
        models = [("extractive", "evalkit:/extractive"), ("down", f"openai:/gpt-4o-mini?base_url={dead_endpoint()}")]
        if order == "outage-first":
            models.reverse()
        listed = "".join(f"  - name: {name}\n    uri: {uri}\n" for name, uri in models)
        folder = tmp_path / order
        folder.mkdir()
        # The extractive model cannot reach this bar: its pair fails (a regression), the other errs.
        path = suite_file(folder, f"models:\n{listed}thresholds:\n  - answer_correctness/mean >= 0.999\n")
        result = run_suite(path, folder / "out", progress=False)
        statuses = {pair.model: pair.status for pair in result.pairs}
        assert statuses == {"extractive": "failed", "down": "error"}, order
        assert result.status == "error" and result.exit_code == 2, order
    cli_result = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "cli"), "--no-progress"])
    assert cli_result.exit_code == 2, cli_result.output


def test_a_failed_gate_alone_exits_1_and_passing_gates_exit_0(tmp_path):
    body = "models:\n  - name: extractive\n    uri: evalkit:/extractive\nthresholds:\n  - answer_correctness/mean >= {}\n"
    failing = run_suite(suite_file(tmp_path, body.format(0.999)), tmp_path / "a", progress=False)
    assert (failing.status, failing.exit_code) == ("failed", 1)
    passing = run_suite(suite_file(tmp_path, body.format(0.0)), tmp_path / "b", progress=False)
    assert (passing.status, passing.exit_code) == ("passed", 0)


def seed_failing(rows: int, failing: int, rate: float = 0.5) -> int:
    """A seed for which exactly ``failing`` of the server's first ``rows`` fault draws hit."""
    for seed in range(10_000):
        rng = random.Random(seed)
        if sum(rng.random() < rate for _ in range(rows)) == failing:
            return seed
    raise AssertionError("no seed found")


@pytest.mark.parametrize(("failing", "outage"), [(5, True), (4, False)])
def test_half_the_rows_failing_transiently_is_an_outage_just_under_half_is_not(tmp_path, monkeypatch, failing,
                                                                              outage):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    # concurrency 1 and max_attempts 1: row i gets the server's i-th fault draw, a 500 or an answer.
    with FakeOpenAIServer(FakeConfig(seed=seed_failing(ROWS, failing), rate_500=0.5)) as server:
        path = suite_file(tmp_path, f"concurrency: 1\nmodels:\n  - name: assistant\n"
                                    f"    uri: openai:/gpt-4o-mini?base_url={server.base_url}\n"
                                    "thresholds:\n  - error_rate <= 100%\n")
        result = run_suite(path, tmp_path / "out", progress=False)
        assert server.stats.faults["500"] == failing
    pair = result.pairs[0]
    if outage:
        assert (pair.status, result.exit_code) == ("error", 2), pair.error
        assert pair.error and f"{failing} of {ROWS} rows" in pair.error
        assert all(gate.status == "error" for gate in pair.gates)
    else:
        assert (pair.status, result.exit_code) == ("passed", 0), pair.error
        assert pair.metrics["error_count"] == failing


@pytest.mark.parametrize("key", ["api_key", "API_KEY", "OpenAI_Api_Key", "Password", "AUTHORIZATION", "x-Token"])
def test_a_secret_named_key_is_refused_whatever_its_case(tmp_path, key):
    path = suite_file(tmp_path, f"models:\n  - name: m\n    uri: evalkit:/extractive\n    params:\n"
                                f"      {key}: hunter2-value\n")
    with pytest.raises(SuiteConfigError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert "secrets do not belong in a suite file" in message
    assert f"line 14, models[0].params.{key}:" in message, message
    assert "hunter2-value" not in message
