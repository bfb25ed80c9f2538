"""MLflow's client against ``mlflow server`` and against ``evalkit server`` (its MLflow API), on SQLite.

Issue 13's server benchmark (MLflow's side) and issue 18's: the same MLflow client code, logging
10,000 values and creating 1,000 runs, against MLflow's server and evalkit's, side by side::

    /work/wt/mlflow-venv/bin/python bench/bench_server_mlflow.py --server both \
        --evalkit-python .venv/bin/python [--json out.json]

MLflow is not an evalkit dependency: run this with the Python of a separate virtualenv that has
mlflow and psutil, e.g.::

    python3 -m venv /work/wt/mlflow-venv && /work/wt/mlflow-venv/bin/pip install mlflow psutil
    /work/wt/mlflow-venv/bin/python bench/bench_server_mlflow.py [--memory] [--json out.json]

``--server evalkit`` (or ``both``) starts ``evalkit server`` with ``--evalkit-python`` (a Python
that has evalkit's ``server`` extra) instead of, or after, ``mlflow server``; the workloads and
the memory readings are the same, through evalkit's ``/api/2.0/mlflow`` routes.

The workload (runs, keys, values, filter) is ``bench/server_workload.py``, which evalkit's side
(``bench_server.py``) imports too. The server runs as MLflow starts it by default (its own worker
count) on 127.0.0.1 with a fresh SQLite database and artifact folder in a temporary folder;
``--workers N`` passes a worker count. Memory is the resident set of the server's whole process
tree (the ``mlflow server`` process and every worker), summed.

Figures: log_metric called 10,000 times, the same 10,000 values in log_batch calls of 1,000
(MLflow's per-request limit), 1,000 runs created with 5 params and 5 metrics each (create_run,
one log_batch, set_terminated: the fewest requests MLflow's client needs), the median of
search_runs over 2,000 runs, and with ``--memory`` the server's memory after 1,000,000 values are
logged (log_batch, 1,000 per call) and their histories read back.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run at" line per run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mlflow  # noqa: E402
import server_workload as w  # noqa: E402 - the shared workload lives beside this script
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((w.HOST, 0))
        return sock.getsockname()[1]


def start_server(folder: Path, port: int, workers: int | None, jobs: bool) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--default-artifact-root", str(folder / "artifacts"),
        "--host", w.HOST, "--port", str(port),
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
    # MLflow 3 starts a job runner and its huey consumers beside the web workers unless told not to
    env = {**os.environ, **({} if jobs else {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})}
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env,
                              start_new_session=True)
    wait_for_health(server, folder, port, "mlflow server")  # kills the group (workers too) if it fails
    return server


def start_evalkit_server(folder: Path, port: int, workers: int | None, python: str) -> subprocess.Popen:
    """``evalkit server`` on a fresh SQLite file and artifact folder, in its own process group."""
    # absolute (the server runs in the temporary folder), but not resolved: a venv's python is a symlink
    command = [os.path.abspath(python), "-m", "evalkit.cli", "server", "--backend-store-uri", f"sqlite:///{folder / 'evalkit.db'}",
               "--default-artifact-root", str(folder / "artifacts"), "--host", w.HOST, "--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    wait_for_health(server, folder, port, "evalkit server")
    return server


def wait_for_health(server: subprocess.Popen, folder: Path, port: int, name: str) -> None:
    deadline = time.monotonic() + 600  # minutes on a loaded machine
    while time.monotonic() < deadline:
        if server.poll() is not None:
            os.killpg(server.pid, 9)
            raise SystemExit(f"{name} exited with {server.returncode}: see {folder / 'server.log'}")
        try:
            with urllib.request.urlopen(f"http://{w.HOST}:{port}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    os.killpg(server.pid, 9)
    raise SystemExit(f"{name} did not answer /health within 600 s: see {folder / 'server.log'}")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever is left of it 30 s later."""
    os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        server.poll()  # reaps the server itself, so that only live workers keep the group
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def tree_memory_mb(pid: int, kind: str = "rss") -> float:
    """Memory of the process and all its descendants, in MB (10^6 bytes): ``rss`` summed (what the
    issue asks for; pages shared between workers count once per worker) or ``pss`` (shared pages
    split between the processes that share them, so the sum is what the tree really holds)."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            info = process.memory_full_info() if kind == "pss" else process.memory_info()
            total += getattr(info, kind)
        except psutil.NoSuchProcess:
            pass
    return total / 1e6


def tree_rss_mb(pid: int) -> float:
    return tree_memory_mb(pid, "rss")


def wait_until_settled(pid: int, window: float = 30.0, limit: float = 600.0) -> float:
    """Wait until the server's process tree has kept its process count and (within 2 %) its RSS
    for ``window`` seconds; return the seconds waited. MLflow 3's job runner starts its huey
    consumers a while after /health answers, so memory read at once would miss them."""
    start = time.monotonic()
    stable_since, last = start, (process_count(pid), tree_rss_mb(pid))
    while time.monotonic() - start < limit:
        time.sleep(1.0)
        now = (process_count(pid), tree_rss_mb(pid))
        if now[0] != last[0] or abs(now[1] - last[1]) > 0.02 * last[1]:
            stable_since, last = time.monotonic(), now
        elif time.monotonic() - stable_since >= window:
            break
    return time.monotonic() - start


def process_count(pid: int) -> int:
    return 1 + len(psutil.Process(pid).children(recursive=True))


class PeakSampler:
    """The largest tree RSS seen while a block runs (sampled every 0.1 s)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> PeakSampler:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            self._stop.wait(0.1)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_mb(self.pid))


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_log_metric(client: MlflowClient, experiment_id: str) -> float:
    run_id = client.create_run(experiment_id).info.run_id

    def work() -> None:
        for i in range(w.LOG_VALUES):
            client.log_metric(run_id, w.LOG_METRIC_KEY, w.log_value(i), timestamp=w.BASE_TIMESTAMP_MS + i, step=i)

    seconds = timed(work)
    client.set_terminated(run_id)
    assert len(client.get_metric_history(run_id, w.LOG_METRIC_KEY)) == w.LOG_VALUES
    return seconds


def bench_log_batch(client: MlflowClient, experiment_id: str) -> float:
    run_id = client.create_run(experiment_id).info.run_id
    metrics = [Metric(w.LOG_METRIC_KEY, w.log_value(i), w.BASE_TIMESTAMP_MS + i, i) for i in range(w.LOG_VALUES)]

    def work() -> None:
        for start in range(0, w.LOG_VALUES, w.LOG_BATCH_SIZE):
            client.log_batch(run_id, metrics=metrics[start:start + w.LOG_BATCH_SIZE])

    seconds = timed(work)
    client.set_terminated(run_id)
    assert len(client.get_metric_history(run_id, w.LOG_METRIC_KEY)) == w.LOG_VALUES
    return seconds


def create_runs(client: MlflowClient, experiment_id: str, count: int) -> None:
    for i in range(count):
        run_id = client.create_run(experiment_id).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, w.BASE_TIMESTAMP_MS + i, 0) for k, v in w.run_metrics(i).items()],
            params=[Param(k, v) for k, v in w.run_params(i).items()],
        )
        client.set_terminated(run_id)


def bench_search(client: MlflowClient, experiment_id: str) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(w.SEARCH_REPEATS):
        start = time.perf_counter()
        runs = client.search_runs(
            [experiment_id], w.SEARCH_FILTER, order_by=list(w.SEARCH_ORDER_BY), max_results=w.SEARCH_MAX_RESULTS
        )
        times.append(time.perf_counter() - start)
        found = len(runs)
    if found != w.search_expected_count():
        raise SystemExit(f"search_runs found {found} runs, expected {w.search_expected_count()}")
    values = [r.data.metrics["m2"] for r in runs]
    assert values == sorted(values, reverse=True), "search_runs did not order by metrics.m2 DESC"
    return statistics.median(times), found


def bench_memory(client: MlflowClient, experiment_id: str, pid: int) -> dict[str, float]:
    per_run = w.MEMORY_VALUES // w.MEMORY_RUNS
    run_ids = []
    start = time.perf_counter()
    with PeakSampler(pid) as logging_peak:
        for _ in range(w.MEMORY_RUNS):
            run_id = client.create_run(experiment_id).info.run_id
            for first in range(0, per_run, w.MEMORY_BATCH_SIZE):
                client.log_batch(run_id, metrics=[
                    Metric(w.MEMORY_METRIC_KEY, w.memory_value(i), w.BASE_TIMESTAMP_MS + i, i)
                    for i in range(first, first + w.MEMORY_BATCH_SIZE)
                ])
            client.set_terminated(run_id)
            run_ids.append(run_id)
            print(f"memory: {len(run_ids) * per_run:,} values logged, {tree_rss_mb(pid):.0f} MB", flush=True)
    log_seconds = time.perf_counter() - start
    after_logging = tree_rss_mb(pid)
    start = time.perf_counter()
    with PeakSampler(pid) as reading_peak:
        for run_id in run_ids:
            history = client.get_metric_history(run_id, w.MEMORY_METRIC_KEY)
            if len(history) != per_run:
                raise SystemExit(f"history of run {run_id} has {len(history)} values, expected {per_run}")
    read_seconds = time.perf_counter() - start
    time.sleep(w.MEMORY_IDLE_SECONDS)
    return {
        "log_1m_seconds": round(log_seconds, 1),
        "read_1m_seconds": round(read_seconds, 1),
        "rss_peak_while_logging_mb": round(logging_peak.peak, 1),
        "rss_after_logging_mb": round(after_logging, 1),
        "rss_peak_while_reading_mb": round(reading_peak.peak, 1),
        "rss_after_reading_mb": round(tree_rss_mb(pid), 1),
        "pss_after_reading_mb": round(tree_memory_mb(pid, "pss"), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=("mlflow", "evalkit", "both"), default="mlflow",
                        help="which server MLflow's client talks to (both: one after the other, side by side)")
    parser.add_argument("--evalkit-python", default=".venv/bin/python",
                        help="the Python that runs `evalkit server` (has evalkit's server extra)")
    parser.add_argument("--memory", action="store_true",
                        help="also log 1,000,000 values and read their histories (several minutes)")
    parser.add_argument("--memory-only", action="store_true",
                        help="measure only the memory: idle, then after the 1,000,000 values (implies --memory)")
    parser.add_argument("--idle-only", action="store_true", help="measure only the idle server's memory")
    parser.add_argument("--no-jobs", action="store_true",
                        help="start MLflow's server with MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false (web workers only)")
    parser.add_argument("--workers", type=int, default=None, help="server --workers (default: each server's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the server's workers

    kinds = ("mlflow", "evalkit") if args.server == "both" else (args.server,)
    results = {kind: bench_server(kind, args) for kind in kinds}
    if len(kinds) == 2:
        print(side_by_side(results))
    figures = results if len(kinds) == 2 else results[kinds[0]]
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def bench_server(kind: str, args: argparse.Namespace) -> dict[str, object]:
    """The figures of one server (``mlflow`` or ``evalkit``), driven by MLflow's client."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-server-") as tmp:
        folder = Path(tmp)
        port = free_port()
        started = time.perf_counter()
        if kind == "mlflow":
            server = start_server(folder, port, args.workers, jobs=not args.no_jobs)
        else:
            server = start_evalkit_server(folder, port, args.workers, args.evalkit_python)
        try:
            results: dict[str, object] = {
                "server": kind, "mlflow_client_version": mlflow.__version__,
                "server_start_seconds": round(time.perf_counter() - started, 1),
                "workers": args.workers or "the server's default",
            }
            if kind == "mlflow":
                results["job_execution"] = not args.no_jobs
            time.sleep(w.MEMORY_IDLE_SECONDS)
            results["settle_seconds"] = round(wait_until_settled(server.pid), 1)
            results["server_processes"] = process_count(server.pid)
            results["rss_idle_mb"] = round(tree_rss_mb(server.pid), 1)
            results["pss_idle_mb"] = round(tree_memory_mb(server.pid, "pss"), 1)
            mlflow.set_tracking_uri(f"http://{w.HOST}:{port}")
            client = MlflowClient()

            if not (args.memory_only or args.idle_only):
                experiment = client.create_experiment(w.LOG_EXPERIMENT)
                results["log_metric_10k_seconds"] = round(bench_log_metric(client, experiment), 2)
                results["log_batch_10k_seconds"] = round(bench_log_batch(client, experiment), 2)
                print(json.dumps(results), flush=True)

                experiment = client.create_experiment(w.RUNS_EXPERIMENT)
                results["create_1000_runs_seconds"] = round(timed(lambda: create_runs(client, experiment, w.RUNS_COUNT)), 2)
                print(json.dumps(results), flush=True)

                experiment = client.create_experiment(w.SEARCH_EXPERIMENT)
                create_runs(client, experiment, w.SEARCH_RUNS)
                median, found = bench_search(client, experiment)
                results["search_2000_runs_median_seconds"] = round(median, 4)
                results["search_matches"] = found
                results["rss_after_small_workloads_mb"] = round(tree_rss_mb(server.pid), 1)
                print(json.dumps(results), flush=True)

            if (args.memory or args.memory_only) and not args.idle_only:
                results.update(bench_memory(client, client.create_experiment(w.MEMORY_EXPERIMENT), server.pid))
        finally:
            stop_server(server)
        return results


def side_by_side(results: dict[str, dict[str, object]]) -> str:
    """A table of every figure both servers have: MLflow's, evalkit's, and MLflow's over evalkit's."""
    mlflow_figures, evalkit_figures = results["mlflow"], results["evalkit"]
    lines = [f"{'figure':36} {'mlflow server':>14} {'evalkit server':>15} {'ratio':>7}"]
    for key, theirs in mlflow_figures.items():
        ours = evalkit_figures.get(key)
        if isinstance(theirs, (int, float)) and isinstance(ours, (int, float)) and key.endswith(("_seconds", "_mb")):
            ratio = f"{theirs / ours:.1f}x" if ours else "-"
            lines.append(f"{key:36} {theirs:>14} {ours:>15} {ratio:>7}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
