"""An evaluation killed mid-run (SIGKILL or Ctrl-C) resumes without asking for answered rows again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

import evalkit as ek

pytestmark = pytest.mark.slow

ROWS = 300
CONCURRENCY = 8
CHILD = """
import sys, evalkit as ek
ek.set_tracking_uri(sys.argv[1])
ek.evaluate(model=f"openai:/gpt-4o?base_url={sys.argv[2]}", data=sys.argv[3], targets="ground_truth",
            concurrency=int(sys.argv[4]), cache="off", progress=False)
"""


@pytest.fixture
def server_url():
    # 300 rows at 0.1 s, 8 at a time, take about 4 s: the signal, sent after a third of them,
    # lands mid-run even on a loaded machine.
    process = subprocess.Popen([sys.executable, "-m", "evalkit.testing.fake_openai", "--port", "0", "--latency", "0.1"],
                               stdout=subprocess.PIPE, text=True)
    url = re.search(r"(http://\S+)", process.stdout.readline()).group(1)
    yield url
    process.terminate()
    process.wait()


def _stats(url: str) -> dict:
    with urllib.request.urlopen(url.replace("/v1", "/_stats")) as response:
        return json.load(response)


def _interrupt_and_resume(tmp_path: Path, url: str, sig: signal.Signals, monkeypatch) -> tuple[ek.EvaluationResult, dict]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    data = tmp_path / "qa.parquet"
    pd.DataFrame({
        "inputs": [f"Where is lamp {i}?" for i in range(ROWS)],
        "contexts": [[f"Lamp {i} is in aisle {i % 9}."] for i in range(ROWS)],
        "ground_truth": [f"Lamp {i} is in aisle {i % 9}." for i in range(ROWS)],
    }).to_parquet(data)
    store = str(tmp_path / "store.db")
    child = subprocess.Popen([sys.executable, "-c", CHILD, store, url, str(data), str(CONCURRENCY)],
                             env={**os.environ, "EVALKIT_CACHE_PATH": str(tmp_path / "cache.db")},
                             stderr=subprocess.PIPE, text=True)
    ek.set_tracking_uri(store)
    journal = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = ek.search_runs(output_format="list") if Path(store).exists() else []
        if runs:
            journal = Path(runs[0].info.artifact_uri) / "journal" / "rows.jsonl"
            if journal.exists() and len(journal.read_text().splitlines()) >= ROWS // 3:
                break
        time.sleep(0.02)
    child.send_signal(sig)
    _, stderr = child.communicate(timeout=30)
    run = ek.search_runs(output_format="list")[0]
    answered_before = len(journal.read_text().splitlines())
    assert 0 < answered_before < ROWS
    result = ek.evaluate(model=f"openai:/gpt-4o?base_url={url}", data=str(data), targets="ground_truth",
                         resume=run.info.run_id, cache="off", progress=False)
    return result, {"status_after_kill": run.info.status, "answered_before": answered_before, "stderr": stderr,
                    "run": run}


def _assert_each_row_requested_once_but_in_flight(url: str, result: ek.EvaluationResult) -> None:
    counts = _stats(url)["messages_counts"]
    assert len(counts) == ROWS  # every row was asked for
    twice = [h for h, n in counts.items() if n == 2]
    assert all(n <= 2 for n in counts.values())
    assert len(twice) <= CONCURRENCY  # only the rows in flight at the kill were asked again
    table = result.tables["eval_results_table"]
    assert len(table) == ROWS and set(table["status"]) == {"ok"}
    assert ek.get_run(result.run_id).info.status is ek.RunStatus.FINISHED


def test_sigkill_then_resume_pays_only_for_rows_in_flight(tmp_path, server_url, monkeypatch):
    result, info = _interrupt_and_resume(tmp_path, server_url, signal.SIGKILL, monkeypatch)
    assert info["status_after_kill"] is ek.RunStatus.RUNNING  # nobody could mark it
    _assert_each_row_requested_once_but_in_flight(server_url, result)


def test_ctrl_c_marks_the_run_killed_and_resume_finishes_it(tmp_path, server_url, monkeypatch):
    result, info = _interrupt_and_resume(tmp_path, server_url, signal.SIGINT, monkeypatch)
    assert info["status_after_kill"] is ek.RunStatus.KILLED
    run_id = info["run"].info.run_id
    # Ctrl-C says which run and how to go on, and the run keeps why it stopped.
    resume = f"evalkit --tracking-uri {tmp_path / 'store.db'} evaluate --resume {run_id}"
    assert f"run {run_id} is KILLED" in info["stderr"] and resume in info["stderr"], info["stderr"]
    assert info["run"].data.tags["evalkit.failure_reason"].startswith("interrupted (Ctrl-C) with ")
    _assert_each_row_requested_once_but_in_flight(server_url, result)
