"""A SQLite store is a file you can copy: after a run ends, or the process that logged it exits,
the ``.db`` file alone (without its ``-wal`` and ``-shm`` companions) holds every committed run."""

from __future__ import annotations

import itertools
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import SQLAlchemyError

import evalkit as ek
from evalkit.errors import EvalkitError, NotFound
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.sql.store import CHECKPOINT_DELAY_SECONDS
from evalkit.tracking.stores import close_store, close_stores


def _log_in_subprocess(store: Path, code: str) -> None:
    script = "import os\nimport evalkit as ek\nek.set_tracking_uri(os.environ['STORE'])\n" + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "STORE": str(store), "HOME": str(store.parent)})
    assert done.returncode == 0, done.stderr


def _copy_db_alone(store: Path, tmp_path: Path) -> str:
    copy = tmp_path / "copy" / "evalkit.db"
    copy.parent.mkdir()
    shutil.copyfile(store, copy)  # only the .db: no -wal, no -shm
    assert not copy.with_name("evalkit.db-wal").exists()
    return str(copy)


def _runs_of(uri: str) -> dict[str, ek.Run]:
    client = TrackingClient(uri, create=False)
    experiment = client.get_experiment_by_name("copied")
    if experiment is None:
        raise NotFound("no experiment 'copied'")
    runs, _ = client.search_runs([experiment.experiment_id], max_results=100)
    return {run.info.run_name: run for run in runs}


@pytest.fixture
def held_open(tmp_path):
    """Another process's connection to the store, as a notebook or a second job would hold:
    SQLite then never folds the log into the file on its own when the logging process exits."""
    store = tmp_path / "evalkit.db"
    TrackingClient(str(store))  # creates the store
    close_stores()
    reader = sqlite3.connect(store)
    reader.execute("SELECT count(*) FROM runs").fetchone()
    yield store
    reader.close()


def test_a_run_that_ended_is_in_the_db_file_alone_within_a_second(held_open, tmp_path):
    ek.set_tracking_uri(str(held_open))
    ek.set_experiment("copied")
    with ek.start_run(run_name="fluent"):
        ek.log_params({"model": "gpt-4o", "temperature": 0})
        for step in range(3):
            ek.log_metric("acc", 0.5 + step / 10, step=step)
    client = TrackingClient()
    run = client.create_run(client.get_experiment_by_name("copied").experiment_id, run_name="client")
    client.log_param(run.info.run_id, "k", "v")
    client.log_metric(run.info.run_id, "loss", 1.5)
    client.set_terminated(run.info.run_id, "FAILED")
    ended = time.monotonic()
    # The process goes on (a notebook, a long job): the store stays open, the log is not empty.
    runs = _runs_in_copy_when(lambda found: set(found) == {"fluent", "client"}, held_open, tmp_path)
    assert time.monotonic() - ended < CHECKPOINT_DELAY_SECONDS + 3  # slack for a loaded machine
    assert held_open.with_name("evalkit.db-wal").stat().st_size > 0
    assert runs["fluent"].data.params == {"model": "gpt-4o", "temperature": "0"}
    assert runs["fluent"].data.metrics == {"acc": pytest.approx(0.7)}
    assert runs["fluent"].info.status.value == "FINISHED"
    assert runs["client"].data.params == {"k": "v"} and runs["client"].data.metrics == {"loss": 1.5}
    assert runs["client"].info.status.value == "FAILED"


def _runs_in_copy_when(done, store: Path, tmp_path: Path) -> dict[str, ek.Run]:
    """The runs in a copy of the .db file alone, copied again until ``done(runs)``."""
    deadline = time.monotonic() + CHECKPOINT_DELAY_SECONDS + 10
    for attempt in itertools.count():
        copy = tmp_path / f"copy-{attempt}" / "evalkit.db"
        copy.parent.mkdir()
        shutil.copyfile(store, copy)  # only the .db: no -wal, no -shm
        try:
            runs = _runs_of(str(copy))
        except (EvalkitError, SQLAlchemyError):  # not there yet, or copied mid-checkpoint
            runs = {}
        finally:
            close_store(str(copy))  # only the copy's: closing the logged store would checkpoint it
        if done(runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.1)
    raise AssertionError("unreachable")


def test_values_flushed_at_exit_are_in_the_db_file_alone(held_open, tmp_path):
    _log_in_subprocess(held_open, """
        ek.set_experiment("copied")
        ek.start_run(run_name="never-ended")  # ended FINISHED at exit
        ek.log_param("p", 1)
        ek.log_metrics({"a": 1.0, "b": 2.0})
        client = ek.TrackingClient()
        run = client.create_run(client.get_experiment_by_name("copied").experiment_id, run_name="left-running")
        client.log_metric(run.info.run_id, "c", 3.0)  # buffered: written by the exit flush
    """)
    runs = _runs_of(_copy_db_alone(held_open, tmp_path))  # at once: the exit checkpointed
    assert runs["never-ended"].info.status.value == "FINISHED"
    assert runs["never-ended"].data.params == {"p": "1"} and runs["never-ended"].data.metrics == {"a": 1.0, "b": 2.0}
    assert runs["left-running"].info.status.value == "RUNNING" and runs["left-running"].data.metrics == {"c": 3.0}


def test_an_evaluate_run_is_in_the_db_file_alone(held_open, tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"inputs": "What is 2+2?", "ground_truth": "4"}\n{"inputs": "Capital of France?", '
                    '"ground_truth": "Paris"}\n', encoding="utf-8")
    _log_in_subprocess(held_open, f"""
        result = ek.evaluate(model=lambda question: "4", data={str(data)!r}, targets="ground_truth",
                             experiment="copied", run_name="evaluated", evaluators=["exact_match"], report=False)
    """)
    run = _runs_of(_copy_db_alone(held_open, tmp_path))["evaluated"]
    assert run.info.status.value == "FINISHED"
    assert run.data.metrics["exact_match/v1/mean"] == pytest.approx(0.5)
