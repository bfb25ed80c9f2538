"""evaluate(executor="ray") on one local Ray cluster (tests/conftest.py: ray_cluster) against the fake
OpenAI server on 127.0.0.1: every row answered once, by several workers; one rate limit for the
cluster; a worker or the driver killed without losing rows or paying twice; the cache kept by the
driver; the same run as a local evaluation, also when the workers score the rows (score_on_workers)."""

from __future__ import annotations

import json
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
from evalkit.evaluation.scoring import EvalRow, Score
from evalkit.inference.executors import get_executor
from evalkit.inference.executors.ray.executor import RayExecutor
from evalkit.inference.executors.ray.limiter import ClusterLimiter
from evalkit.inference.tokens import count_message_tokens
from evalkit.testing.fake_judge import judge_responder
from evalkit.testing.fake_openai import (
    FakeConfig,
    FakeOpenAIServer,
    default_answer,
    messages_hash,
)

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
    server.responder = default_answer
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
    # Kept workers, both started by a first evaluation: on a loaded machine a worker can take
    # seconds to start, and the other would meanwhile answer every batch of a cold start
    # (the executor does not wait for the slowest worker before it starts answering).
    with RayExecutor(batch_size=6, concurrency=4, keep_workers=True, **WORKER) as executor:
        ek.evaluate(model=uri(server), data=frame(2, tag="warm-up "), targets="ground_truth", cache="off",
                    progress=False, evaluators=EVALUATORS, report=False, executor=executor)
        assert len(executor.stats.nodes) == 2  # both configured
        server.reset_stats()
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


def busiest_second(times: list[float], weights: list[float]) -> float:
    """The most weight that arrived within any 1-second window starting at an arrival."""
    return max(sum(w for t, w in zip(times[i:], weights[i:]) if t < start + 1.0) for i, start in enumerate(times))


def test_one_token_budget_holds_for_the_whole_cluster(server):
    tokens: dict[str, int] = {}

    def counting(body: dict) -> str:  # what each request weighs in the budget, as the caller counts it
        tokens[messages_hash(body["messages"])] = count_message_tokens(body["messages"], "gpt-4o")
        return default_answer(body)

    server.config = FakeConfig(latency=0.01)
    server.responder = counting
    per_second = 1000  # tokens: about 12 rows a second at this data's 84 tokens a row
    block = 2
    ek.evaluate(model=uri(server), data=frame(60, tag="tokens "), targets="ground_truth", cache="off",
                rate_limit={"tpm": per_second * 60}, progress=False, report=False, evaluators=EVALUATORS,
                executor="ray", executor_options={"batch_size": 5, "concurrency": 8, "limiter_block": block, **WORKER})
    log = server.stats.request_log
    assert len(log) == 60 and len(tokens) == 60
    times, weights = [e.time for e in log], [tokens[e.messages_hash] for e in log]
    largest, total = max(weights), sum(weights)
    # The budget's burst (a second's worth, as locally) plus a block of requests held by each worker.
    allowance = per_second + 2 * block * largest
    assert busiest_second(times, weights) <= per_second + allowance
    # Held for the whole run, not per worker: two workers with a budget each would take half the time.
    spread = times[-1] - times[0]
    assert per_second * spread >= total - allowance, (total, spread)


def test_a_429_seen_by_one_worker_pauses_every_worker_and_no_row_is_lost_or_paid_twice(server):
    # Seeded: the 22nd and 51st requests get a 429 with Retry-After 2.5 s.
    retry_after = 2.5
    rows = 80
    with RayExecutor(batch_size=5, concurrency=4, keep_workers=True, **WORKER) as executor:
        # Both workers started first (see the first test), so that both answer.
        ek.evaluate(model=uri(server), data=frame(2, tag="warm-up "), targets="ground_truth", cache="off",
                    progress=False, evaluators=EVALUATORS, report=False, executor=executor)
        server.config = FakeConfig(latency=0.02, rate_429=0.03, retry_after=retry_after, seed=11)
        server.reset_stats()
        result = ek.evaluate(model=uri(server), data=frame(rows, tag="429 "), targets="ground_truth", cache="off",
                             rate_limit={"rpm": 3000}, progress=False, report=False, evaluators=EVALUATORS,
                             executor=executor)
    table = result.tables["eval_results_table"]
    refused = server.stats.faults["429"]
    assert refused == 2 and set(table["status"]) == {"ok"} and list(table["row"]) == list(range(rows))
    # Nothing lost, nothing paid twice: one 200 per row; the refused rows were asked once more.
    assert server.stats.by_status[200] == rows
    assert len(chat_counts(server)) == rows and sum(chat_counts(server)) == rows + refused
    assert len(set(executor.stats.answered_by.values())) == 2
    # Every worker held off: the first request of a row asked twice is the one refused; a worker
    # learns of another's 429 within 0.2 s (plus a round trip), then nobody asks until it is over.
    log = server.stats.request_log
    seen: set[str] = set()
    refused_at = []
    for entry in log:
        if entry.messages_hash not in seen and server.stats.messages_counts()[entry.messages_hash] == 2:
            refused_at.append(entry.time)
        seen.add(entry.messages_hash)
    assert len(refused_at) == 2
    for at in refused_at:
        during = [e.time - at for e in log if at + 0.7 <= e.time <= at + retry_after - 0.1]
        assert during == [], during


def test_warm_workers_serve_a_second_evaluation_and_the_cost_budget_holds_across_them(server):
    import ray

    with RayExecutor(batch_size=4, concurrency=4, keep_workers=True, **WORKER) as executor:
        ek.evaluate(model=uri(server), data=frame(16, tag="warm "), targets="ground_truth", cache="off",
                    progress=False, report=False, evaluators=EVALUATORS, executor=executor)
        first = set(executor.stats.answered_by.values())
        # Both workers started; one may have answered all 16 rows before the other was up.
        assert executor.stats.workers_started == 2 and 1 <= len(first) <= 2 and len(executor.workers) == 2

        # The limiter is kept too, and started afresh: a pause left from the first evaluation (a
        # 429's Retry-After) does not hold up the second.
        limiter = executor.limiter
        ray.get(limiter.pause.remote(60.0))

        # The same workers, reconfigured (not restarted), answer the next evaluation, under a budget.
        server.reset_stats()
        budget = 0.01  # about 30 of the 80 rows, at max_tokens 20
        started = time.monotonic()
        result = ek.evaluate(model=uri(server), data=frame(80, tag="budget "), targets="ground_truth", cache="off",
                             inference_params={"max_tokens": 20}, max_cost_usd=budget, progress=False,
                             report=False, evaluators=EVALUATORS, executor=executor)
        assert executor.stats.workers_started == 0 and set(executor.stats.answered_by.values()) >= first
        assert executor.limiter is limiter and time.monotonic() - started < 45
        assert ray.get(limiter.paused_for.remote()) == 0.0
    assert executor.workers == [] and executor.limiter is None  # the with block shut them down
    table, metrics = result.tables["eval_results_table"], result.metrics
    answered, skipped = (table["status"] == "ok").sum(), (table["status"] == "skipped").sum()
    assert 10 <= answered < 80 and answered + skipped == 80  # nothing lost: the rest recorded skipped
    assert metrics["cost/spent_usd"] <= budget
    # Rows skipped for the budget never reached the server; every row sent was answered and kept.
    assert server.stats.by_status[200] == len(chat_counts(server)) == answered
    assert len(set(executor.stats.answered_by.values())) == 2
    assert ek.get_run(result.run_id).data.tags["evalkit.stopped_reason"] == "max_cost_usd"


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
    # Asked twice: only rows of the batches the workers held at the kill (2 workers x batch_size 8).
    # Not just the 2 x 4 in flight: Ray stops a dead driver's actors within moments, not at once,
    # and meanwhile a worker goes on through its batch, whose answers no one journals.
    assert sum(n == 2 for n in counts) <= 2 * 8
    table = result.tables["eval_results_table"]
    assert len(table) == rows and set(table["status"]) == {"ok"}
    assert ek.get_run(result.run_id).info.status is ek.RunStatus.FINISHED


TWO_NODES = """
import json, sys
import ray
from ray.cluster_utils import Cluster
import evalkit as ek
from evalkit.inference.executors.ray.executor import RayExecutor
from test_ray_executor import EVALUATORS, frame

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
cluster.add_node(num_cpus=2)
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
ek.set_tracking_uri(sys.argv[1])

def run(rows, tag):
    return ek.evaluate(model=f"openai:/gpt-4o?base_url={sys.argv[2]}", data=frame(rows, tag=tag),
                       targets="ground_truth", cache="off", progress=False, report=False, evaluators=EVALUATORS,
                       executor=executor)

# Kept workers: the first evaluation waits for both to start (a worker on a fresh node can take
# seconds), so that in the second both are up and share the rows.
with RayExecutor(num_workers=2, cpus_per_worker=1, batch_size=4, concurrency=4, keep_workers=True) as executor:
    run(4, "warm-up ")
    placed = sorted(executor.stats.nodes.values())
    result = run(24, "nodes ")
    answered_on = {row: executor.stats.nodes[pid] for row, pid in executor.stats.answered_by.items()}
print(json.dumps({"nodes": sorted(node["NodeID"] for node in ray.nodes() if node["Alive"]), "placed": placed,
                  "answered_on": answered_on, "status": sorted(set(result.tables["eval_results_table"]["status"]))}))
ray.shutdown()
cluster.shutdown()
"""


def test_workers_are_spread_over_the_nodes_of_a_two_node_cluster(server, tmp_path):
    # Its own driver process: this one is connected to the session's cluster, and a Ray driver
    # connects to one cluster at a time.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    child = subprocess.run([sys.executable, "-c", TWO_NODES, str(tmp_path / "store.db"), server.base_url],
                           env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert len(report["nodes"]) == 2 and report["status"] == ["ok"]
    assert report["placed"] == report["nodes"]  # one worker on each node
    assert sorted(map(int, report["answered_on"])) == list(range(24))
    assert set(report["answered_on"].values()) == set(report["nodes"])  # rows answered on both nodes
    assert len(chat_counts(server)) == 28 and set(chat_counts(server)) == {1}


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


# The retrieval-augmented defaults scored offline, but faithfulness, asked of the judge (on the driver).
OFFLINE = {name: {"method": "offline"} for name in ("answer_correctness", "answer_relevancy", "context_precision",
                                                     "context_recall")}


def where_scored() -> object:
    """An evaluator (pickled to the workers by value: a function made here) saying which process
    scored each row, and which row it was given."""

    @ek.evaluator(name="scored_in")
    def scored_in(row: EvalRow) -> Score:
        return Score(float(len(row.output or "")), justification=f"{os.getpid()} {row.index}")

    return scored_in


def scoring_processes(result: ek.EvaluationResult) -> list[int]:
    """The process that scored each row with ``where_scored``, checking it was given that row."""
    table = result.tables["eval_results_table"]
    said = [text.split() for text in table["scored_in/justification"]]
    assert [int(index) for _, index in said] == list(table["row"])
    assert list(table["scored_in/score"]) == [float(len(output)) for output in table["outputs"]]
    return [int(pid) for pid, _ in said]


def test_workers_score_the_offline_evaluators_and_the_run_is_the_local_one(server):
    server.responder = judge_responder
    run = dict(model=uri(server), data=frame(24, tag="scored "), targets="ground_truth", cache="off", progress=False,
               report=False, model_type="retrieval-augmented", judge=f"openai:/gpt-4o-mini?base_url={server.base_url}",
               evaluator_config=OFFLINE, extra_metrics=[where_scored()])
    local = ek.evaluate(**run)
    executor = RayExecutor(batch_size=6, concurrency=4, score_on_workers=True, **WORKER)
    remote = ek.evaluate(**run, executor=executor)

    # Every row was scored by the worker that answered it, none by the driver.
    assert scoring_processes(remote) == [executor.stats.answered_by[row] for row in range(24)]
    assert executor.stats.scored_by == executor.stats.answered_by and os.getpid() not in executor.stats.scored_by.values()
    assert set(scoring_processes(local)) == {os.getpid()}
    # Parity: the same table (but for the time calls took and who scored) and the same metrics.
    names = [info.name for info in remote.evaluators]
    assert names[:8] == ["exact_match", "token_f1", "answer_correctness", "faithfulness", "answer_relevancy",
                         "context_precision", "context_recall", "toxicity"]
    assert remote.evaluators[3].version == "judge-v1" and remote.metrics["judge/calls"] > 0
    differ = [*timed(remote), "scored_in/justification"]
    pd.testing.assert_frame_equal(remote.tables["eval_results_table"].drop(columns=differ),
                                  local.tables["eval_results_table"].drop(columns=differ), check_exact=True)
    timing = ("latency/", "latency_total/", "time/", "throughput/")
    same = {k: v for k, v in remote.metrics.items() if not k.startswith(timing)}
    assert same == {k: v for k, v in local.metrics.items() if not k.startswith(timing)}
    assert same["faithfulness/judge-v1/rows_scored"] == 24 and same["context_recall/offline-v1/rows_scored"] == 24
    assert ek.get_run(remote.run_id).data.params["executor_score_on_workers"] == "true"


def test_rows_never_sent_to_a_worker_are_scored_by_the_driver(server):
    data = frame(16, tag="mixed ")
    run = dict(model=uri(server), targets="ground_truth", progress=False, report=False,
               evaluators=["exact_match", "token_f1", "latency", "cost"], extra_metrics=[where_scored()])
    ek.evaluate(data=data.iloc[::2].reset_index(drop=True), **run)  # the even rows' answers go to the cache
    executor = RayExecutor(batch_size=4, concurrency=4, score_on_workers=True, **WORKER)
    result = ek.evaluate(data=data, executor=executor, **run)

    table = result.tables["eval_results_table"]
    scored_in = scoring_processes(result)
    assert list(table["cached"]) == [row % 2 == 0 for row in range(16)]
    assert sorted(executor.stats.scored_by) == list(range(1, 16, 2))
    assert all(pid == (os.getpid() if row % 2 == 0 else executor.stats.answered_by[row])
               for row, pid in enumerate(scored_in))
    # Each row got its own scores, whoever scored it.
    assert list(table["exact_match/score"]) == [1.0 if output == target else 0.0
                                                for output, target in zip(table["outputs"], table["targets"])]
    assert result.metrics["token_f1/v1/rows_scored"] == 16


def test_score_on_workers_is_refused_when_not_a_flag_or_when_the_evaluators_cannot_be_sent(server):
    import threading as threads

    class Locked:  # an evaluator holding what cannot be pickled
        name, version = "locked", "v1"
        lock = threads.Lock()

        async def score(self, rows, context):
            return [Score(1.0) for _ in rows]

        def aggregate(self, scores):
            return {}

    run = dict(model=uri(server), data=frame(4, tag="refused "), targets="ground_truth", progress=False, report=False,
               evaluators=["exact_match"], executor="ray")
    with pytest.raises(InvalidArgument, match=r"executor_options\['score_on_workers'\] must be true or false, got 'yes'"):
        ek.evaluate(**run, executor_options={"score_on_workers": "yes", **WORKER})
    locked = Locked()
    locked.lock = threads.Lock()
    with pytest.raises(InvalidArgument, match=r"score_on_workers'\]: the evaluators cannot be sent to the Ray workers"
                                              r" \(TypeError: cannot pickle '_thread.lock'"):
        ek.evaluate(**run, extra_metrics=[locked], executor_options={"score_on_workers": True, **WORKER})
    assert server.stats.requests == 0
