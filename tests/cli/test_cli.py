"""The command line, in process through click and once end to end as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

import evalkit as ek
from evalkit.cli.main import cli


@pytest.fixture
def store(tmp_path) -> str:
    uri = str(tmp_path / "cli.db")
    ek.set_tracking_uri(uri)
    ek.set_experiment("cli-exp")
    for name, acc, model in [("alpha", 0.9, "gpt-4o"), ("beta", 0.6, "llama-3")]:
        with ek.start_run(run_name=name):
            ek.log_params({"model": model})
            ek.log_metrics({"acc": acc, "faithfulness/v1/mean": acc / 2})
            ek.log_text("x", "notes.txt")
    ek.flush()
    return uri


def _invoke(store: str, *args: str):
    return CliRunner().invoke(cli, ["--tracking-uri", store, *args], catch_exceptions=False)


def test_runs_search_table_and_json(store, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # room for every metric (xdist workers set COLUMNS=80)
    result = _invoke(store, "runs", "search", "--experiment", "cli-exp", "--filter", "metrics.acc > 0.5",
                     "--order-by", "metrics.acc DESC")
    assert result.exit_code == 0, result.output
    assert "2 run(s)" in result.output and result.output.index("alpha") < result.output.index("beta")
    assert "metrics.faithfulness/v1/mean" in result.output and "params.model" not in result.output
    result = _invoke(store, "runs", "search", "-e", "cli-exp", "--columns", "params.model,metrics.acc")
    assert "params.model" in result.output and "llama-3" in result.output
    result = _invoke(store, "runs", "search", "-e", "cli-exp", "--columns", "model")
    assert result.exit_code == 2 and "columns start with metrics." in result.output
    result = _invoke(store, "runs", "search", "-e", "cli-exp", "-f", "metrics.`faithfulness/v1/mean` < 0.4", "--json")
    payload = json.loads(result.output)
    assert [r["info"]["run_name"] for r in payload] == ["beta"]
    assert payload[0]["params"] == {"model": "llama-3"}


def test_runs_show_and_experiments_list(store):
    run_id = ek.search_runs(experiment_names="cli-exp", filter_string="params.model = 'gpt-4o'")["run_id"][0]
    result = _invoke(store, "runs", "show", run_id)
    assert result.exit_code == 0 and "alpha" in result.output and "notes.txt" in result.output
    shown = json.loads(_invoke(store, "runs", "show", run_id, "--json").output)
    assert shown["metrics"]["acc"] == 0.9 and shown["artifacts"][0]["path"] == "notes.txt"
    listed = json.loads(_invoke(store, "experiments", "list", "--json").output)
    assert [e["name"] for e in listed] == ["cli-exp"]
    assert "cli-exp" in _invoke(store, "experiments", "list").output


def test_errors_are_one_clear_line_and_exit_code_2(store):
    env = {**os.environ, "EVALKIT_TRACKING_URI": store}
    command = [sys.executable, "-m", "evalkit.cli", "runs", "search", "-e", "cli-exp", "-f", "metrics.acc >> 1"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "metrics.acc >> 1" in done.stderr and "^" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "evalkit.cli", "runs", "show", "nope"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 2 and "no run with id 'nope'" in done.stderr
    done = subprocess.run([sys.executable, "-m", "evalkit.cli", "runs", "search", "-e", "missing"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and "no experiment named 'missing'" in done.stderr


def test_demo_runs_a_real_offline_evaluation(tmp_path):
    done = subprocess.run([sys.executable, "-m", "evalkit.demo"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"})
    assert done.returncode == 0, done.stderr
    assert f"tracking store: sqlite:///{tmp_path / 'evalkit.db'}" in done.stdout
    assert "exact_match/v1/mean" in done.stdout and "latency/p95_ms" in done.stdout
    for name in ("answer_relevancy", "context_precision", "context_recall"):
        assert f"{name}/offline-v1/mean" in done.stdout
    ek.set_tracking_uri(str(tmp_path / "evalkit.db"))
    frame = ek.search_runs(experiment_names="evalkit-demo")
    assert frame.loc[0, "run_id"] in done.stdout
    assert frame.loc[0, "metrics.rows/answered"] == frame.loc[0, "metrics.rows/total"] >= 50


def test_evaluate_command_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    data = tmp_path / "qa.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"Where is lamp {i}?", "contexts": [f"Lamp {i} is in aisle 4."],
                                          "ground_truth": f"Lamp {i} is in aisle 4."}) for i in range(6)))
    store = str(tmp_path / "cli.db")
    result = CliRunner().invoke(cli, ["--tracking-uri", store, "evaluate", "--model", "evalkit:/extractive",
                                      "--data", str(data), "--targets", "ground_truth", "-e", "cli-eval"])
    assert result.exit_code == 0, result.output
    run_id = re.search(r"run_id: (\w+)", result.output).group(1)
    assert re.search(r"exact_match/v1/mean\s*│\s*1\s", result.output), result.output
    resumed = CliRunner().invoke(cli, ["--tracking-uri", store, "evaluate", "--resume", run_id])
    assert resumed.exit_code == 0, resumed.output
    assert f"run_id: {run_id}" in resumed.output


def test_evaluate_command_reports_bad_input_in_one_line(tmp_path):
    data = tmp_path / "qa.csv"
    data.write_text("question,answer\nq1,a1\n")
    env = {**os.environ, "EVALKIT_TRACKING_URI": str(tmp_path / "x.db")}
    done = subprocess.run([sys.executable, "-m", "evalkit.cli", "evaluate", "--model", "evalkit:/extractive",
                           "--data", str(data), "--targets", "ground_truth"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2 and "'ground_truth'" in done.stderr and "Traceback" not in done.stderr
