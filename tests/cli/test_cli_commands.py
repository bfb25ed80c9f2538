"""The command line's newer commands and options, run through ``main()`` (its real error
handling) and checked against the store: read-only commands never create a store, ``runs search``
fits the terminal, ``evaluate``'s options reach the run, and runs and experiments are managed."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import evalkit as ek
from evalkit.cli.main import main
from evalkit.errors import (
    AlreadyExists,
    InvalidArgument,
    InvalidState,
    StoreUnavailable,
)
from evalkit.suite import tags as suite_tags
from evalkit.testing.fake_judge import judge_responder
from evalkit.testing.fake_openai import FakeOpenAIServer
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.stores import close_stores


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run ``evalkit ARGS...`` in this process, on the test's store unless ARGS name another;
    returns (exit code, stdout, stderr)."""
    def run(*args: str) -> tuple[int, str, str]:
        if args[0] != "--tracking-uri":
            args = ("--tracking-uri", ek.get_tracking_uri(), *args)
        monkeypatch.setattr(sys, "argv", ["evalkit", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def store(tmp_path) -> str:
    uri = str(tmp_path / "store.db")
    ek.set_tracking_uri(uri)
    return uri


# ---- read-only commands never create a store -----------------------------------------------------


READ_ONLY = [
    ["runs", "search"], ["runs", "search", "-e", "x", "--json"], ["runs", "show", "abc"],
    ["experiments", "list"], ["report", "abc"], ["history", "nightly", "--metric", "acc"],
    ["runs", "delete", "abc"], ["runs", "restore", "abc"], ["experiments", "rename", "a", "b"],
    ["experiments", "delete", "a"],
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_commands_on_a_missing_store_say_so_and_create_nothing(run_cli, tmp_path, command):
    missing = tmp_path / "nowhere" / "evalkit.db"
    code, out, err = run_cli("--tracking-uri", str(missing), *command)
    assert code == 2
    assert err == f"error: no tracking store at {missing}: the file does not exist (check the tracking URI: " \
                  "--tracking-uri or $EVALKIT_TRACKING_URI)\n"
    assert out == ""
    assert not missing.parent.exists()


def test_the_default_store_is_not_created_by_a_read_only_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "evalkit.cli", "runs", "search"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, env={k: v for k, v in os.environ.items() if "EVALKIT" not in k})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: no tracking store at {tmp_path / 'evalkit.db'}")
    assert len(done.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_store_is_not_turned_into_one(run_cli, tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    code, _, err = run_cli("--tracking-uri", str(empty), "experiments", "list")
    assert code == 2 and err.startswith("error: no tracking store at ") and "holds no evalkit tables" in err
    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []  # no table created
    with pytest.raises(StoreUnavailable, match="holds no evalkit tables"):
        TrackingClient(str(empty), create=False)


@pytest.mark.postgres
def test_an_empty_postgres_database_is_not_turned_into_a_store(postgres):
    uri = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    with pytest.raises(StoreUnavailable, match="no tracking store at postgresql.*: it holds no evalkit tables"):
        TrackingClient(uri, create=False)
    TrackingClient(uri).create_experiment("made")
    close_stores()
    assert TrackingClient(uri, create=False).get_experiment_by_name("made") is not None


def test_writing_commands_still_create_the_store(run_cli, tmp_path):
    path = tmp_path / "new" / "evalkit.db"
    code, out, _ = run_cli("--tracking-uri", str(path), "experiments", "create", "fresh")
    assert code == 0 and "created experiment 'fresh'" in out and path.is_file()


# ---- runs search fits the terminal -----------------------------------------------------------


@pytest.fixture
def wide_store(store) -> str:
    ek.set_experiment("wide")
    for name, shift in (("first", 0.0), ("second", 0.5)):
        with ek.start_run(run_name=name):
            ek.log_params({"model": f"model-{name}"})
            ek.log_metrics({f"metric_{i:02d}": 0.123456 + shift + i for i in range(20)})
            ek.log_metric("zz_latency_ms", 100 + shift)
    return store


def _table_lines(out: str) -> list[str]:
    return [line.rstrip() for line in out.splitlines() if line.strip() and line.lstrip()[0] in "┏┃┡│└"]


def test_runs_search_shows_what_fits_and_says_what_it_left_out(run_cli, wide_store, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    code, out, _ = run_cli("runs", "search", "-e", "wide")
    assert code == 0
    assert max(len(line) for line in _table_lines(out)) <= 120
    header = _table_lines(out)[1]
    assert ["run_id", "run_name", "status", "start_time"] == header.replace("┃", " ").split()[:4]
    shown = [cell for cell in header.replace("┃", " ").split() if cell.startswith("metrics.")]
    assert shown and shown == [f"metrics.metric_{i:02d}" for i in range(len(shown))]
    assert f"{21 - len(shown)} more columns: use -c to choose" in out

    monkeypatch.setenv("COLUMNS", "250")
    _, wider, _ = run_cli("runs", "search", "-e", "wide")
    assert max(len(line) for line in _table_lines(wider)) <= 250
    assert _table_lines(wider)[1].count("metrics.") > len(shown)


def test_runs_search_always_shows_the_filtered_and_sorted_columns(run_cli, wide_store, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # not even room for one metric beyond the four run columns
    code, out, _ = run_cli("runs", "search", "-e", "wide", "-f", "params.model != 'x' AND metrics.zz_latency_ms > 1",
                           "-o", "metrics.metric_07 DESC")
    assert code == 0
    header = _table_lines(out)[1].replace("┃", " ").split()
    assert header[4:] == ["params.model", "metrics.zz_latency_ms", "metrics.metric_07"]
    assert "19 more columns: use -c to choose" in out  # 21 metrics, 2 of them named
    assert out.index("second") < out.index("first")  # sorted by metric_07 DESC
    assert "model-second" in out and "100.5" in out


def test_runs_search_columns_choose_exactly(run_cli, wide_store, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli("runs", "search", "-e", "wide", "-c", "metrics.metric_19,params.model",
                           "-f", "metrics.metric_03 > 0")
    assert code == 0
    assert _table_lines(out)[1].replace("┃", " ").split()[4:] == ["metrics.metric_19", "params.model"]
    assert "more column" not in out
    code, out, _ = run_cli("runs", "search", "-e", "wide", "--json")
    assert len(json.loads(out)[0]["metrics"]) == 21  # JSON keeps every column


def test_runs_search_piped_uses_a_default_width(wide_store):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-m", "evalkit.cli", "--tracking-uri", wide_store, "runs", "search",
                           "-e", "wide"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    widths = [len(line) for line in _table_lines(done.stdout)]
    assert 120 < max(widths) <= 160 and "more columns: use -c to choose" in done.stdout


# ---- runs delete / restore -------------------------------------------------------------------


def test_runs_delete_and_restore(run_cli, store):
    ek.set_experiment("lifecycle")
    ids = []
    for name in ("a", "b", "c"):
        with ek.start_run(run_name=name) as run:
            ids.append(run.info.run_id)
    client = TrackingClient()
    code, out, _ = run_cli("runs", "delete", ids[0], ids[1])
    assert code == 0 and out.splitlines() == [f"deleted run {ids[0]}", f"deleted run {ids[1]}"]
    assert [r.info.lifecycle_stage.value for r in map(client.get_run, ids)] == ["deleted", "deleted", "active"]
    _, out, _ = run_cli("runs", "search", "-e", "lifecycle", "--view", "DELETED_ONLY", "--json")
    assert {r["info"]["run_id"] for r in json.loads(out)} == {ids[0], ids[1]}

    code, _, err = run_cli("runs", "restore", ids[0], "no-such-run")
    assert code == 2 and err == "error: no run with id 'no-such-run'\n"
    assert client.get_run(ids[0]).info.lifecycle_stage.value == "deleted"  # nothing changed

    code, out, _ = run_cli("runs", "restore", ids[0])
    assert code == 0 and out == f"restored run {ids[0]}\n"
    _, out, _ = run_cli("runs", "search", "-e", "lifecycle", "--json")
    assert {r["info"]["run_id"] for r in json.loads(out)} == {ids[0], ids[2]}
    code, _, err = run_cli("runs", "delete")
    assert code == 2 and "RUN_ID" in err


# ---- experiments create / rename / delete / restore ------------------------------------------


def test_experiments_create_rename_delete_restore(run_cli, store):
    code, out, _ = run_cli("experiments", "create", "nightly")
    assert code == 0 and out.startswith("created experiment 'nightly' (id ")
    experiment_id = TrackingClient().get_experiment_by_name("nightly").experiment_id
    assert run_cli("experiments", "create", "nightly")[2] == \
        f"error: an experiment named 'nightly' already exists (id {experiment_id})\n"
    run_cli("experiments", "create", "other")

    code, out, _ = run_cli("experiments", "rename", "nightly", "rag-nightly")
    assert code == 0 and out == f"renamed experiment 'nightly' (id {experiment_id}) to 'rag-nightly'\n"
    assert TrackingClient().get_experiment(experiment_id).name == "rag-nightly"
    assert run_cli("experiments", "rename", experiment_id, "v2")[0] == 0  # by id too
    code, _, err = run_cli("experiments", "rename", "v2", "other")
    assert code == 2 and "error: an experiment named 'other' already exists" in err
    code, _, err = run_cli("experiments", "rename", "v2", " ")
    assert code == 2 and err == "error: experiment name must be a non-empty string, got ' '\n"
    code, _, err = run_cli("experiments", "rename", "nightly", "x")
    assert code == 2 and err == "error: no experiment named 'nightly' (nor with that id)\n"

    code, out, _ = run_cli("experiments", "delete", "v2")
    assert code == 0 and out == f"deleted experiment 'v2' (id {experiment_id})\n"
    names = [e["name"] for e in json.loads(run_cli("experiments", "list", "--json")[1])]
    assert "v2" not in names and "other" in names
    deleted = json.loads(run_cli("experiments", "list", "--view", "DELETED_ONLY", "--json")[1])
    assert [e["name"] for e in deleted] == ["v2"]
    code, _, err = run_cli("experiments", "rename", "v2", "v3")
    assert code == 2 and "is deleted; restore it first" in err
    assert run_cli("experiments", "restore", "v2")[0] == 0
    assert TrackingClient().get_experiment(experiment_id).lifecycle_stage.value == "active"


def test_rename_experiment_in_the_store(tracking_uri):
    client = TrackingClient()
    first, second = client.create_experiment("first"), client.create_experiment("second")
    with ek.start_run(experiment_id=first, run_name="kept") as run:
        ek.log_metric("m", 1.0)
    client.rename_experiment(first, "renamed")
    assert client.get_experiment(first).name == "renamed" and client.get_experiment_by_name("first") is None
    assert client.get_run(run.info.run_id).info.experiment_id == first
    client.rename_experiment(first, "renamed")  # its own name: nothing to do
    with pytest.raises(AlreadyExists, match="'second' already exists"):
        client.rename_experiment(first, "second")
    with pytest.raises(InvalidArgument, match="non-empty string"):
        client.rename_experiment(first, "")
    client.delete_experiment(second)
    with pytest.raises(InvalidState, match="deleted"):
        client.rename_experiment(second, "third")
    assert client.get_experiment(second).name == "second"


# ---- report and history errors ---------------------------------------------------------------


def test_report_into_a_missing_folder_is_one_error_line(run_cli, store, tmp_path):
    with ek.start_run() as run:
        pass
    target = tmp_path / "missing" / "folder" / "x.html"
    code, out, err = run_cli("report", run.info.run_id, "-o", str(target))
    assert code == 2 and out == ""
    assert err == f"error: --output: folder {target.parent} does not exist; create it first " \
                  f"(mkdir -p {target.parent})\n"
    assert not target.parent.exists()


def _log_suite_pair(metrics: dict[str, float]) -> None:
    with ek.start_run(run_name="pair"):
        ek.set_tags({suite_tags.SUITE: "nightly", suite_tags.ROLE: "pair", suite_tags.DATASET: "qa",
                     suite_tags.MODEL: "gpt", suite_tags.STATUS: "passed"})
        ek.log_metrics(metrics)


def test_history_with_an_unknown_metric_is_one_error_line(run_cli, store):
    ek.set_experiment("suite")
    _log_suite_pair({"faithfulness/judge-v1/mean": 0.9, "latency/p95_ms": 120.0})
    _log_suite_pair({"faithfulness/judge-v1/mean": 0.8, "latency/p95_ms": 130.0})
    code, out, err = run_cli("history", "nightly", "--metric", "faithfulnes/mean")
    assert code == 2 and out == ""
    assert err == "error: --metric: no metric 'faithfulnes/mean'; metrics: faithfulness/judge-v1/mean, " \
                  "latency/p95_ms (in the runs of suite 'nightly')\n"
    assert run_cli("history", "nightly", "--metric", "nope", "--json")[0] == 2
    code, out, _ = run_cli("history", "nightly", "--metric", "latency/p95")
    assert code == 0 and "120" in out and "130" in out
    code, _, err = run_cli("history", "weekly", "--metric", "latency/p95")
    assert code == 2 and err == "error: suite 'weekly' has no runs in this tracking store\n"


# ---- evaluate's options ----------------------------------------------------------------------


@pytest.fixture
def qa_file(tmp_path) -> Path:
    path = tmp_path / "qa.jsonl"
    rows = [{"question_text": "Where is the Louvre?", "gold": "Paris.", "topic": "art",
             "passages": ["The Louvre is in Paris."]},
            {"question_text": "What colour is the sky?", "gold": "Blue.", "topic": "nature",
             "passages": ["The sky is blue."]}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def server(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    bodies: list[dict] = []

    def responder(body: dict) -> str:
        bodies.append(body)
        if body["model"] == "judge":
            return judge_responder(body)
        return "The Louvre is in Paris." if "Louvre" in json.dumps(body) else "The sky is blue."

    with FakeOpenAIServer(responder=responder) as fake:
        fake.bodies = bodies
        yield fake


def test_evaluate_takes_the_python_apis_options(run_cli, store, qa_file, server, tmp_path):
    prompt = tmp_path / "prompt.yaml"
    prompt.write_text("- role: system\n  content: You are terse. Topic {{ topic }}.\n"
                      "- role: user\n  content: \"{{ context }}\\nQ: {{ input }}\"\n", encoding="utf-8")
    code, _, err = run_cli("evaluate", "-m", f"openai:/answerer?base_url={server.base_url}", "-d", str(qa_file),
                           "--col-mapping", "inputs=question_text", "-t", "gold", "-e", "cli-eval",
                           "--run-name", "baseline", "--cache", "off")
    assert code == 0, err
    baseline = ek.search_runs(experiment_names="cli-eval", output_format="list")[0]
    server.bodies.clear()
    code, out, err = run_cli(
        "evaluate", "-m", f"openai:/answerer?base_url={server.base_url}", "-d", str(qa_file),
        "--col-mapping", "inputs=question_text", "--col-mapping", "context=passages", "--col-mapping", "targets=gold",
        "--prompt", str(prompt), "--model-type", "retrieval-augmented", "--evaluators", "exact_match,faithfulness",
        "--judge", f"openai:/judge?base_url={server.base_url}", "--baseline", baseline.info.run_id,
        "-e", "cli-eval", "--run-name", "options", "--cache", "off",
    )
    assert code == 0, err
    model_calls = [b for b in server.bodies if b["model"] == "answerer"]
    assert sorted(b["messages"][0]["content"] for b in model_calls) == ["You are terse. Topic art.",
                                                                        "You are terse. Topic nature."]
    assert any(b["messages"][1]["content"] == "The Louvre is in Paris.\nQ: Where is the Louvre?" for b in model_calls)
    assert any(b["model"] == "judge" for b in server.bodies)
    run = ek.search_runs(experiment_names="cli-eval", filter_string="attributes.run_name = 'options'",
                         output_format="list")[0]
    assert run.info.run_id in out and "report: " in out
    assert run.data.params["model_type"] == "retrieval-augmented"
    assert run.data.params["judge_uri"].startswith("openai:/judge")
    faithfulness = [k for k in run.data.metrics if k.startswith("faithfulness/") and k.endswith("/mean")]
    assert faithfulness and "judge" in faithfulness[0] and run.data.metrics[faithfulness[0]] == 1.0
    assert run.data.metrics["exact_match/v1/mean"] == 0.0  # "The sky is blue." is not "Blue."
    assert not any(k.startswith(("token_f1", "toxicity")) for k in run.data.metrics)  # only what was asked


def test_evaluate_default_evaluators_plus_named_ones(run_cli, store, qa_file, server):
    code, _, err = run_cli("evaluate", "-m", f"openai:/answerer?base_url={server.base_url}", "-d", str(qa_file),
                           "--col-mapping", "inputs=question_text", "-t", "gold", "--model-type", "text",
                           "--evaluators", "default,exact_match", "-e", "mixed", "--cache", "off")
    assert code == 0, err
    metrics = ek.search_runs(experiment_names="mixed", output_format="list")[0].data.metrics
    assert "exact_match/v1/mean" in metrics and any(k.startswith("toxicity/") for k in metrics)
    assert not any(k.startswith("token_f1/") for k in metrics)  # not a default of model type 'text'


@pytest.mark.parametrize(("args", "files", "expected"), [
    (["--col-mapping", "question_text"], {}, "Invalid value for --col-mapping: 'question_text': use KEY=VALUE"),
    (["--col-mapping", "question=question_text"], {}, "Invalid value for --col-mapping: unknown key(s) 'question'"),
    (["--col-mapping", "inputs="], {}, "Invalid value for --col-mapping: no column given for 'inputs'"),
    (["--prompt", "{p}"], {"p.txt": "Q: {{ input }"}, "Invalid value for --prompt"),
    (["--prompt", "{p}"], {"p.json": '{"role": "user"}'}, "must hold a list of {role, content} messages"),
    (["--prompt", "{p}"], {"p.yaml": "- role: user\n  content: [x"}, "is not valid YAML"),
    (["--prompt", "{p}"], {"p.json": '[{"role": "assistant", "content": "x"}]'}, "has role 'assistant'"),
    (["--prompt", "{p}"], {}, "Invalid value for '--prompt': File"),
    (["--model-type", "chat"], {}, "Invalid value for '--model-type': 'chat' is not one of"),
    (["--evaluators", " , "], {}, "Invalid value for --evaluators: give 'default' or comma-separated"),
    (["--judge", "gpt-4o"], {}, "Invalid value for --judge"),
    (["--baseline", "nope"], {}, "Invalid value for --baseline: no run with id 'nope'"),
])
def test_evaluate_bad_options_are_named_before_any_call(run_cli, store, qa_file, server, tmp_path, args, files,
                                                          expected):
    TrackingClient()  # the store exists, empty
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    args = [arg.replace("{p}", str(tmp_path / (next(iter(files), "absent.txt")))) for arg in args]
    code, out, err = run_cli("evaluate", "-m", f"openai:/answerer?base_url={server.base_url}", "-d", str(qa_file),
                             "-t", "gold", "--col-mapping", "inputs=question_text", *args)
    assert code == 2 and expected in err, err
    assert server.stats.requests == 0
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)  # no run started


def test_evaluate_unknown_evaluator_is_an_error_before_any_call(run_cli, store, qa_file, server):
    code, _, err = run_cli("evaluate", "-m", f"openai:/answerer?base_url={server.base_url}", "-d", str(qa_file),
                           "-t", "gold", "--col-mapping", "inputs=question_text", "--evaluators", "exact_mach")
    assert code == 2 and err.startswith("error: unknown evaluator 'exact_mach'; available: ")
    assert server.stats.requests == 0
