"""The nightly job end to end: ``evalkit run`` exit codes, JUnit and Markdown content, baseline
resolution and ``evalkit history``, against the embedded model and the fake OpenAI server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from suite_files import DATASET, OFFLINE, ROOT, write_suite

import evalkit as ek
from evalkit.cli.main import cli
from evalkit.suite import run_suite, tags
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer


def run(path: Path, out: Path, *extra: str):
    return CliRunner().invoke(cli, ["run", str(path), "--out", str(out), "--no-progress", *extra])


def junit(out: Path) -> ET.Element:
    return ET.parse(out / "junit.xml").getroot()


def test_first_run_passes_with_baseline_gates_skipped_then_the_next_compares(tmp_path):
    path = write_suite(tmp_path, OFFLINE)
    first = run(path, tmp_path / "out1")
    assert first.exit_code == 0, first.output
    root = junit(tmp_path / "out1")
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("3", "0", "0", "1")
    skipped = root.find(".//testcase/skipped")
    assert "no baseline yet" in skipped.get("message")
    summary = (tmp_path / "out1" / "summary.md").read_text()
    assert "all gates passed" in summary and "| faithfulness/mean \\>= 0.85 | ✅ passed |" in summary
    assert list((tmp_path / "out1" / "reports").glob("*.html"))

    second = run(path, tmp_path / "out2")
    assert second.exit_code == 0, second.output
    client = ek.TrackingClient()
    parents, _ = client.search_runs(client.get_experiment_by_name("nightly-test").experiment_id,
                                    f"tags.`{tags.ROLE}` = 'parent'", order_by=["attributes.start_time"])
    assert len(parents) == 2 and parents[1].data.tags[tags.BASELINE] == parents[0].info.run_id
    paired = [case for case in junit(tmp_path / "out2").iter("testcase") if "regression" in case.get("name")]
    assert len(paired) == 1 and next(iter(paired[0])).tag == "system-out"
    # Every child is tagged for history, and carries its gates as an artifact.
    child = next(r for r in client.search_runs(parents[1].info.experiment_id, f"tags.`{tags.ROLE}` = 'pair'")[0]
                 if r.data.tags[tags.BASELINE])
    assert {tags.SUITE, tags.DATASET, tags.MODEL, tags.DATASET_DIGEST, tags.STATUS} <= set(child.data.tags)
    gates = json.loads(client.load_text(child.info.run_id, tags.GATES_FILE))
    assert gates["status"] == "passed" and len(gates["gates"]) == 3


def test_failed_threshold_exits_1_with_the_worst_rows_and_is_never_the_baseline(tmp_path):
    good = write_suite(tmp_path, OFFLINE)
    assert run(good, tmp_path / "out-good").exit_code == 0
    strict = write_suite(tmp_path, OFFLINE.replace("faithfulness/mean >= 0.85", "answer_correctness/mean >= 0.9"),
                         "strict.yaml")
    result = run(strict, tmp_path / "out")
    assert result.exit_code == 1, result.output
    failure = junit(tmp_path / "out").find(".//failure")
    assert failure.get("type") == "threshold" and "not >= 0.9" in failure.get("message")
    assert "worst rows:" in failure.text and "input:" in failure.text
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "a gate failed (regression)" in summary and "<details>" in summary

    again = run(good, tmp_path / "out-again")
    assert again.exit_code == 0
    # The baseline is the last *passing* suite run, not the failed one in between.
    client = ek.TrackingClient()
    experiment = client.get_experiment_by_name("nightly-test").experiment_id
    parents, _ = client.search_runs(experiment, f"tags.`{tags.ROLE}` = 'parent'", order_by=["attributes.start_time"])
    assert [p.data.tags[tags.STATUS] for p in parents] == ["passed", "failed", "passed"]
    assert parents[2].data.tags[tags.BASELINE] == parents[0].info.run_id


def test_explicit_baseline_run_id_from_the_command_line(tmp_path):
    path = write_suite(tmp_path, OFFLINE)
    first = run_suite(path, tmp_path / "a")
    plain = ek.evaluate(model="evalkit:/extractive", data=DATASET, targets="ground_truth", cache="off", report=False,
                        progress=False)
    result = run(path, tmp_path / "b", "--baseline", plain.run_id)
    assert result.exit_code == 0, result.output
    client = ek.TrackingClient()
    assert first.exit_code == 0
    parent = client.search_runs(client.get_experiment_by_name("nightly-test").experiment_id,
                                f"tags.`{tags.BASELINE}` = '{plain.run_id}'")[0]
    assert parent, "the explicit run became the baseline"
    # Different rows (40 of 84): paired by input, and the gate says so.
    gate = next(c for c in junit(tmp_path / "b").iter("testcase") if "regression" in c.get("name"))
    assert "40 of 40 rows paired by input" in gate.find("system-out").text
    unknown = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "c"), "--baseline", "nope"])
    assert isinstance(unknown.exception, ek.InvalidArgument) and "nope" in str(unknown.exception)


@pytest.fixture()
def fake(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    answers = {"mode": "good"}
    truths = [json.loads(line) for line in DATASET.read_text().splitlines()]

    def responder(body):
        """The reference answer to the question asked; in "bad" mode, no answer to every other one."""
        text = body["messages"][-1]["content"]
        position, truth = next((i, row["ground_truth"]) for i, row in enumerate(truths) if row["question"] in text)
        return "I cannot say." if answers["mode"] == "bad" and position % 2 else truth

    with FakeOpenAIServer(FakeConfig(), responder=responder) as server:
        server.answers = answers
        yield server


def hosted(server: FakeOpenAIServer, extra: str = "") -> str:
    return f"""models:
  - name: assistant
    uri: openai:/gpt-4o-mini?base_url={server.base_url}
cache: off
max_attempts: 1
timeout: 5
{extra}thresholds:
  - error_rate <= 2%
baseline:
  rules:
    - metric: answer_correctness/mean
    - metric: cost/per_query_usd
      tolerance: 50%
"""


def test_a_significant_regression_against_the_baseline_exits_1(tmp_path, fake):
    path = write_suite(tmp_path, hosted(fake))
    assert run(path, tmp_path / "before").exit_code == 0
    fake.answers["mode"] = "bad"
    result = run(path, tmp_path / "after")
    assert result.exit_code == 1, result.output
    failure = junit(tmp_path / "after").find(".//failure")
    assert failure.get("type") == "paired" and "significant regression" in failure.get("message")
    assert "I cannot say." in failure.text  # the rows that dropped most, with the new answer


def test_an_endpoint_that_is_down_exits_2_not_1(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = write_suite(tmp_path, OFFLINE.replace("evalkit:/extractive", f"openai:/gpt-4o-mini?base_url=http://127.0.0.1:{port}/v1")
                       .replace("cache: off", "cache: off\nmax_attempts: 1\ntimeout: 2"))
    result = run(path, tmp_path / "out")
    assert result.exit_code == 2, result.output
    root = junit(tmp_path / "out")
    assert root.get("errors") == root.get("tests") == "3" and root.get("failures") == "0"
    assert "endpoint looks down" in root.find(".//error").get("message")
    assert "could not run every gate" in (tmp_path / "out" / "summary.md").read_text()


def test_budget_exceeded_exits_2(tmp_path, fake):
    path = write_suite(tmp_path, hosted(fake, "budget_usd: 0.0001\n"))
    result = run(path, tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "budget_usd=0.0001 was reached" in junit(tmp_path / "out").find(".//error").get("message")


def test_a_bad_suite_file_exits_2_naming_line_and_key_and_calls_nothing(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"suite: bad\ndatasets:\n  - name: d\n    path: {DATASET}\nmodels:\n  - name: m\n"
                    "    uri: evalkit:/extractive\n    temprature: 0\nthresholds:\n  - faithfulness/mean >= 0.8\n")
    done = subprocess.run([sys.executable, "-m", "evalkit.cli", "run", str(path), "--out", str(tmp_path / "out")],
                          check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert "bad.yaml, line 8, models[0].temprature: unknown key" in done.stderr
    assert not (tmp_path / "evalkit.db").exists()  # nothing ran, nothing was tracked
    error = ET.parse(tmp_path / "out" / "junit.xml").getroot().find(".//error")
    assert "temprature" in error.text


def test_history_lists_runs_and_flags_a_model_snapshot_change(tmp_path, fake):
    path = write_suite(tmp_path, hosted(fake))
    assert run(path, tmp_path / "1").exit_code == 0
    assert run(path, tmp_path / "2").exit_code == 0
    fake.config.snapshots["gpt-4o-mini"] = "gpt-4o-mini-2026-11-01"
    assert run(path, tmp_path / "3").exit_code == 0
    result = CliRunner().invoke(cli, ["history", str(path), "--metric", "answer_correctness/mean", "--json"])
    assert result.exit_code == 0, result.output
    points = json.loads(result.output)
    assert len(points) == 3 and [p["snapshot_changed"] for p in points] == [False, False, True]
    assert points[0]["metric"] == "answer_correctness/f1sim-v1/mean" and points[0]["value"] > 0
    table = CliRunner().invoke(cli, ["history", "nightly-test", "--metric", "answer_correctness/mean", "--last", "2"])
    assert table.exit_code == 0 and "snapshot changed" in table.output and table.output.count("rag_qa × assistant") == 2


@pytest.mark.slow
def test_the_example_suite_runs_offline_night_after_night(tmp_path):
    """The README's nightly job, as a scheduler runs it: a subprocess, twice, the second compared
    with the first."""
    command = [sys.executable, "-m", "evalkit.cli", "run", str(ROOT / "examples" / "nightly.yaml"), "--no-progress"]
    for night in ("1", "2"):
        done = subprocess.run([*command, "--out", night], check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    root = junit(tmp_path / "2")
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("10", "0", "0", "0")
    history = subprocess.run([sys.executable, "-m", "evalkit.cli", "history", "rag-nightly", "--metric",
                              "faithfulness/mean"], check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert history.returncode == 0 and history.stdout.count("rag_qa × extractive") == 2


def test_history_until_a_run_leaves_out_later_runs(tmp_path):
    from evalkit.suite import metric_history

    path = write_suite(tmp_path, OFFLINE)
    first = run_suite(path, tmp_path / "1")
    run_suite(path, tmp_path / "2")
    client = ek.TrackingClient()
    child = first.pairs[0].run_id
    everything = metric_history(client, "nightly-test", "faithfulness/mean")
    as_of_first = metric_history(client, "nightly-test", "faithfulness/mean", until=client.get_run(child).info.start_time)
    assert len(everything) == 2 and [p.run_id for p in as_of_first] == [child]
