"""The tracking server's speed and memory, evalkit's side: each workload is one function, written
against the MLflow-compatible fluent API both projects share, so an MLflow run of the same
workloads only needs another ``Target`` (the side-by-side script imports this module).

Workloads (both servers on SQLite in a fresh folder, the client on the same machine, one process):

1. ``log_metrics``: 10,000 values of one metric logged one call at a time in one run
   (``log_metric(key, value, step=i)``), timed until ``end_run`` returns (every value stored).
2. ``create_runs``: 1,000 runs, each ``start_run``, ``log_params`` (5 params), ``log_metrics``
   (5 metrics), ``end_run``.
3. ``search``: ``search_runs`` over 2,000 runs (the 1,000 of workload 2 and 1,000 more) with two
   conditions and an order, ``metrics.m0 > 0.5 AND params.p0 = 'a'`` ordered by ``metrics.m1 DESC``,
   through REST; the median of 10 calls.
4. ``memory``: the server's resident memory (VmRSS of its process) idle after start, after
   1,000,000 metric values were logged (100 runs x 10,000 values, batches of 10,000 values through
   ``log_batch``), and after each of those 100 histories was read back whole; plus the peak (VmHWM).

Run: ``.venv/bin/python bench/bench_server.py --target evalkit [--skip-memory]``
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx


@dataclass
class Target:
    """A tracking server and its client library: ``api`` is the fluent module (``evalkit`` or
    ``mlflow``), ``client()`` a client with ``log_batch(run_id, metrics=[...])`` and
    ``get_metric_history(run_id, key)``, ``metric`` the class ``Metric(key, value, timestamp, step)``."""

    name: str
    api: ModuleType
    client: Callable[[], Any]
    metric: type
    server_command: Callable[[Path, int], list[str]]
    ready_path: str = "/health"


def evalkit_target() -> Target:
    import evalkit
    from evalkit.entities import Metric

    def command(folder: Path, port: int) -> list[str]:
        return [sys.executable, "-m", "evalkit.cli", "server", "--backend-store-uri", f"sqlite:///{folder / 'bench.db'}",
                "--default-artifact-root", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]

    return Target("evalkit", evalkit, evalkit.TrackingClient, Metric, command)


TARGETS = {"evalkit": evalkit_target}


# ---- the server ------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def rss_mb(self, field: str = "VmRSS") -> float:
        """Resident memory of the server and its child processes (uvicorn's workers), in MB."""
        total = 0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found for child in [child, *map(str, _children(int(child)))]]


def start(target: Target, folder: Path) -> Server:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(target.server_command(folder, port), stdout=log, stderr=log, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + target.ready_path, timeout=1).status_code == 200:
                return Server(url, process)
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{target.name} server did not start: see {folder / 'server.log'}")


# ---- the workloads -----------------------------------------------------------------------------


def log_metrics(target: Target, values: int = 10_000) -> float:
    """Seconds to log ``values`` values one call at a time, until ``end_run`` has stored them."""
    api = target.api
    api.set_experiment("bench-log-metrics")
    started = time.perf_counter()
    api.start_run()
    for step in range(values):
        api.log_metric("loss", 1.0 / (step + 1), step=step)
    api.end_run()
    return time.perf_counter() - started


def create_runs(target: Target, runs: int = 1000, experiment: str = "bench-runs", offset: int = 0) -> float:
    """Seconds to create ``runs`` runs with 5 params and 5 metrics each."""
    api = target.api
    api.set_experiment(experiment)
    started = time.perf_counter()
    for i in range(offset, offset + runs):
        api.start_run()
        api.log_params({f"p{k}": "ab"[(i + k) % 2] for k in range(5)})
        api.log_metrics({f"m{k}": ((i * 7919 + k * 104729) % 1000) / 1000 for k in range(5)})
        api.end_run()
    return time.perf_counter() - started


def search(target: Target, experiment: str = "bench-runs", repeat: int = 10) -> tuple[float, int]:
    """Median seconds of one search with two conditions and an order, and how many runs it found."""
    api = target.api
    times, found = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        result = api.search_runs(experiment_names=[experiment], filter_string="metrics.m0 > 0.5 AND params.p0 = 'a'",
                                 order_by=["metrics.m1 DESC"], max_results=5000)
        times.append(time.perf_counter() - started)
        found = len(result)
    return statistics.median(times), found


def memory(target: Target, server: Server, runs: int = 100, values: int = 10_000, batch: int = 10_000) -> dict[str, float]:
    """The server's RSS (MB) idle, after ``runs * values`` values were logged, after their histories were read."""
    api = target.api
    idle = server.rss_mb()
    client = target.client()
    api.set_experiment("bench-memory")
    run_ids = []
    for _ in range(runs):
        run = api.start_run()
        run_ids.append(run.info.run_id)
        for first in range(0, values, batch):
            now = int(time.time() * 1000)
            client.log_batch(run.info.run_id, metrics=[target.metric("big", float(step), now, step)
                                                       for step in range(first, min(first + batch, values))])
        api.end_run()
    logged = server.rss_mb()
    for run_id in run_ids:
        assert len(client.get_metric_history(run_id, "big")) == values
    return {"idle_mb": idle, "after_logging_mb": logged, "after_reading_mb": server.rss_mb(),
            "peak_mb": server.rss_mb("VmHWM")}


def run_all(target: Target, folder: Path, skip_memory: bool = False) -> dict[str, Any]:
    """Every workload against a fresh server of ``target``; the figures by name."""
    server = start(target, folder)
    try:
        target.api.set_tracking_uri(server.url)
        figures: dict[str, Any] = {"idle_rss_mb": server.rss_mb()}
        figures["log_10k_metrics_s"] = log_metrics(target)
        figures["create_1000_runs_s"] = create_runs(target)
        create_runs(target, offset=1000)  # 2,000 runs to search
        figures["search_2000_runs_s"], figures["search_found"] = search(target)
        if not skip_memory:
            figures["memory"] = memory(target, server)
        return figures
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), default="evalkit")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the 1,000,000-value workload")
    args = parser.parse_args()
    target = TARGETS[args.target]()
    with tempfile.TemporaryDirectory(prefix="bench-server-") as folder:
        os.chdir(folder)
        figures = run_all(target, Path(folder), args.skip_memory)
    for name, value in figures.items():
        print(f"{target.name:8} {name:22} {value if not isinstance(value, float) else round(value, 3)}")


if __name__ == "__main__":
    main()
