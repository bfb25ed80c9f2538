"""evaluate(executor="ray") on one local Ray cluster (tests/conftest.py: ray_cluster) against the fake
OpenAI server on 127.0.0.1: every row answered once, by several workers; one rate limit for the
cluster; a worker or the driver killed without losing rows or paying twice; the cache kept by the
driver; the same run as a local evaluation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import InvalidArgument
from evalkit.inference.executors import get_executor
from evalkit.inference.executors.ray.executor import RayExecutor
from evalkit.inference.executors.ray.limiter import ClusterLimiter
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer

pytestmark = pytest.mark.slow

# Workers take a quarter CPU each: the 2-CPU cluster then never waits for a killed driver's
# actors to give their CPUs back before it places the next evaluation's.
WORKER = {"num_workers": 2, "cpus_per_worker": 0.25}


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer(FakeConfig(latency=0.05)) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path, server, ray_cluster):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    server.config = FakeConfig(latency=0.05)
    server.reset_stats()


def frame(rows: int, tag: str = "") -> pd.DataFrame:
    return pd.DataFrame({
        "inputs": [f"{tag}Where is lamp {i}?" for i in range(rows)],
        "contexts": [[f"Lamp {i} is in aisle {i % 7}.", "Shipping takes three days."] for i in range(rows)],
        "ground_truth": [f"Lamp {i} is in aisle {i % 7}." for i in range(rows)],
    })


def uri(server: FakeOpenAIServer) -> str:
    return f"openai:/gpt-4o?base_url={server.base_url}"


def chat_counts(server: FakeOpenAIServer) -> list[int]:
    return list(server.stats.messages_counts().values())




def timed(result: ek.EvaluationResult) -> list[str]:
    """The results table's columns that hold how long calls took."""
    return [c for c in result.tables["eval_results_table"].columns if "latency" in c]

# The runner's own evaluators and two scorers: what differs between executors is how rows are answered.
EVALUATORS = ["exact_match", "token_f1", "latency", "cost"]


def test_every_row_answered_once_by_two_workers_as_a_local_run_and_cached_rows_stay_home(server):
    data = frame(48)
    local = ek.evaluate(model=uri(server), data=data, targets="ground_truth", cache="off", concurrency=8,
                        evaluators=EVALUATORS, progress=False, report=False)
    server.reset_stats()
    executor = RayExecutor(batch_size=6, concurrency=4, **WORKER)
    remote = ek.evaluate(model=uri(server), data=data, targets="ground_truth", progress=False,
                         evaluators=EVALUATORS, report=False, executor=executor)

    assert len(chat_counts(server)) == 48 and set(chat_counts(server)) == {1}  # each row asked exactly once
    assert sorted(executor.stats.answered_by) == list(range(48))
    assert len(set(executor.stats.answered_by.values())) == 2 and os.getpid() not in executor.stats.answered_by.values()
    # Parity: the same table and metrics, apart from the time the calls took.
    ours, theirs = (r.tables["eval_results_table"].drop(columns=timed(r)) for r in (remote, local))
    pd.testing.assert_frame_equal(ours, theirs)
    timing = ("latency/", "latency_total/", "time/", "throughput/")
    same = {k: v for k, v in remote.metrics.items() if not k.startswith(timing)}
    assert same == {k: v for k, v in local.metrics.items() if not k.startswith(timing)}
    assert same["cost/spent_usd"] > 0 and same["rows/total"] == 48
    assert ek.get_run(remote.run_id).data.params["executor"] == "ray"

    # The driver filled its cache with the workers' answers: a second run sends nothing to the cluster.
    server.reset_stats()
    again = RayExecutor(**WORKER)
    second = ek.evaluate(model=uri(server), data=data, targets="ground_truth", progress=False, report=False,
                         evaluators=EVALUATORS, executor=again)
    assert server.stats.requests == 0 and again.stats.batches == 0 and again.workers == []
    table = second.tables["eval_results_table"]
    assert table["cached"].all() and list(table["outputs"]) == list(remote.tables["eval_results_table"]["outputs"])


def test_one_rate_limit_holds_for_the_whole_cluster(server):
    server.config = FakeConfig(latency=0.01)
    per_second = 25
    ek.evaluate(model=uri(server), data=frame(75, tag="paced "), targets="ground_truth", cache="off",
                rate_limit={"rpm": per_second * 60}, progress=False, report=False, evaluators=EVALUATORS, executor="ray",
                executor_options={"batch_size": 5, "concurrency": 8, **WORKER})
    times = sorted(entry.time for entry in server.stats.request_log)
    assert len(times) == 75
    busiest = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    # Paced evenly: a second holds the rate plus its burst: slots granted at the window's edge and
    # used late by a worker (a worker holds at most one block; measured here 25-28 in a second).
    assert per_second - 3 <= busiest <= per_second + 4, busiest


def test_a_429_pauses_every_worker_and_shrinks_the_rate():
    import asyncio

    async def scenario() -> tuple[float, float, float, float]:
        limiter = ClusterLimiter(rpm=600, tpm=None)  # 10/s
        before = await limiter.grant(1, 0)
        await limiter.pause(2.0)
        after = await limiter.grant(2, 0)
        return before.request_delays[0], after.request_delays[0], after.paused_for, limiter.rpm

    first, paused, paused_for, rpm = asyncio.run(scenario())
    assert first == pytest.approx(0, abs=0.01)
    assert paused >= 1.99 and paused_for >= 1.99  # whoever asks next waits out the Retry-After
    assert rpm == pytest.approx(450)


def test_a_killed_worker_loses_no_row(server):
    server.config = FakeConfig(latency=0.1)
    executor = RayExecutor(batch_size=8, concurrency=4, **WORKER)
    killed: list[int] = []

    def kill_a_worker() -> None:
        import ray

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and server.stats.requests < 16:
            time.sleep(0.01)
        pid = ray.get(executor.workers[0].pid.remote())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    result = ek.evaluate(model=uri(server), data=frame(80, tag="kill "), targets="ground_truth", cache="off",
                         progress=False, report=False, evaluators=EVALUATORS, executor=executor)
    killer.join()
    table = result.tables["eval_results_table"]
    assert killed and executor.stats.workers_lost == 1
    assert list(table["row"]) == list(range(80)) and set(table["status"]) == {"ok"}
    counts = chat_counts(server)
    assert len(counts) == 80 and max(counts) <= 2
    assert sum(n == 2 for n in counts) <= 4  # only the dead worker's rows in flight were asked again


DRIVER = """
import sys, evalkit as ek
ek.set_tracking_uri(sys.argv[1])
ek.evaluate(model=f"openai:/gpt-4o?base_url={sys.argv[2]}", data=sys.argv[3], targets="ground_truth",
            cache="off", progress=False, evaluators=["exact_match", "token_f1", "latency", "cost"], executor="ray",
            executor_options={"address": sys.argv[4], "num_workers": 2, "cpus_per_worker": 0.25, "batch_size": 8,
                              "concurrency": 4})
"""


def test_a_killed_driver_resumes_paying_only_for_rows_in_flight(server, ray_cluster, tmp_path):
    server.config = FakeConfig(latency=0.1)
    rows = 160
    data = tmp_path / "qa.parquet"
    frame(rows, tag="driver ").to_parquet(data)
    store = str(tmp_path / "store.db")
    child = subprocess.Popen([sys.executable, "-c", DRIVER, store, server.base_url, str(data), ray_cluster],
                             env={**os.environ}, stderr=subprocess.PIPE, text=True)
    ek.set_tracking_uri(store)
    journal = None
    # A bound, not the expected time: a loaded machine can take a minute to start the child's workers.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:
        runs = ek.search_runs(output_format="list") if Path(store).exists() else []
        if runs:
            journal = Path(runs[0].info.artifact_uri) / "journal" / "rows.jsonl"
            if journal.exists() and len(journal.read_text().splitlines()) >= rows // 4:
                break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    _, stderr = child.communicate(timeout=30)
    answered_before = len(journal.read_text().splitlines()) if journal else 0
    assert 0 < answered_before < rows, stderr
    run = ek.search_runs(output_format="list")[0]
    assert run.info.status is ek.RunStatus.RUNNING
    result = ek.evaluate(model=uri(server), data=str(data), targets="ground_truth", cache="off", progress=False,
                         report=False, evaluators=EVALUATORS, resume=run.info.run_id, executor="ray",
                         executor_options=WORKER)
    counts = chat_counts(server)
    assert len(counts) == rows and max(counts) <= 2
    assert sum(n == 2 for n in counts) <= 2 * 4  # only rows in flight at the kill: 2 workers x 4
    table = result.tables["eval_results_table"]
    assert len(table) == rows and set(table["status"]) == {"ok"}
    assert ek.get_run(result.run_id).info.status is ek.RunStatus.FINISHED


def test_executors_are_chosen_by_name_and_bad_options_are_named():
    assert get_executor("local").name == "local" and get_executor("ray", {"num_workers": 3}).num_workers == 3
    with pytest.raises(InvalidArgument, match="unknown executor 'spark'.*local, ray"):
        get_executor("spark")
    with pytest.raises(InvalidArgument, match=r"executor_options\['batch_size'\] must be an integer"):
        get_executor("ray", {"batch_size": 0})
    with pytest.raises(InvalidArgument, match="forward_env.*NOT_SET_ANYWHERE"):
        get_executor("ray", {"forward_env": ["NOT_SET_ANYWHERE"]})


def test_a_refused_model_stops_the_run_at_the_first_answer(server):
    with pytest.raises(ek.EvalkitError, match="evaluation stopped before sending more requests.*does-not-exist"):
        ek.evaluate(model=f"openai:/does-not-exist?base_url={server.base_url}", data=frame(40, tag="refused "),
                    targets="ground_truth", cache="off", progress=False, report=False, evaluators=EVALUATORS,
                    executor="ray", executor_options={"batch_size": 20, "concurrency": 2, **WORKER})
    # What each worker had in flight (and the slot freed by the refusal) when the refusal came, not one per row
    assert server.stats.requests <= 2 * (2 + 2)


def test_the_cli_and_suite_file_take_the_executor(tmp_path):
    from click.testing import CliRunner

    from evalkit.cli.main import cli as main

    data = tmp_path / "qa.jsonl"
    frame(2).to_json(data, orient="records", lines=True)
    result = CliRunner().invoke(main, ["evaluate", "-m", "evalkit:/extractive", "-d", str(data), "-t", "ground_truth",
                                       "--executor", "ray", "--executor-option", "batch_size=0"])
    # refused before any request (the CLI's main() prints it as one error: line and exits 2)
    assert isinstance(result.exception, InvalidArgument)
    assert "executor_options['batch_size'] must be an integer" in str(result.exception)
    suite = tmp_path / "nightly.yaml"
    suite.write_text(f"suite: s\ndatasets:\n  - name: d\n    path: {data}\n    targets: ground_truth\nmodels:\n"
                     "  - name: m\n    uri: evalkit:/extractive\nexecutor: spark\n")
    result = CliRunner().invoke(main, ["run", str(suite)])
    assert "line 9, executor: unknown executor 'spark'" in f"{result.output}{result.exception}"
