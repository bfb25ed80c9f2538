"""Rows per second of evaluate() with the local executor and with the Ray executor (1, 2, 3 workers),
against the fake OpenAI-compatible server in its own process, on a workload where the client's CPU
is the bottleneck (a low server latency and a high concurrency: the openai client's per-request
CPU, not the server's answer time, bounds the rate).

Each figure is one whole evaluate() (exact_match only, no report, cache off) after a warm-up
evaluation of 8 rows on the same executor: the Ray executor keeps its workers (``keep_workers``),
so the figure is the steady rate of warm workers, and the warm-up's time (Ray's worker start-up
included) is given apart. Speedups are over one Ray worker and over the local executor.

Run: ``.venv/bin/python bench/bench_ray.py [--rows 3000] [--latency 0.02] [--concurrency 64]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ray  # noqa: E402
from bench_runner import dataset, reset, server_stats, start_server  # noqa: E402

import evalkit as ek  # noqa: E402
from evalkit.inference.executors.ray.executor import RayExecutor  # noqa: E402

RUNNER_ONLY = {"evaluators": ["exact_match"], "report": False, "cache": "off", "progress": False}


def timed(url: str, rows: int, tag: str, concurrency: int, executor: str | RayExecutor) -> float:
    reset(url)
    data = dataset(rows, tag)
    start = time.perf_counter()
    result = ek.evaluate(model=f"openai:/gpt-4o?base_url={url}", data=data, targets="ground_truth",
                         concurrency=concurrency, executor=executor, **RUNNER_ONLY)
    elapsed = time.perf_counter() - start
    answered = int((result.tables["eval_results_table"]["status"] == "ok").sum())
    sent = len(server_stats(url)["messages_counts"])
    assert answered == rows and sent == rows, (answered, sent)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    ek.set_tracking_uri(f"sqlite:///{Path(os.environ.get('TMPDIR', '/tmp')) / f'bench_ray_{os.getpid()}.db'}")
    server, url = start_server(args.latency)
    cpus = os.cpu_count() or 2
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        print(f"{args.rows} rows, server latency {args.latency * 1000:g} ms, concurrency {args.concurrency} "
              f"per process, {cpus} cores shared by the client, the workers and the server")
        warmup = timed(url, 8, "local-start", args.concurrency, "local")
        local = args.rows / timed(url, args.rows, "local", args.concurrency, "local")
        print(f"  local executor:      {local:7.0f} rows/s (an 8-row evaluation: {warmup:.1f} s)")
        one = None
        for workers in (1, 2, 3):
            with RayExecutor(num_workers=workers, cpus_per_worker=cpus / workers, batch_size=args.batch_size,
                             keep_workers=True) as executor:
                startup = timed(url, 8, f"start{workers}", args.concurrency, executor)
                rate = args.rows / timed(url, args.rows, f"ray{workers}", args.concurrency, executor)
            one = one or rate
            print(f"  ray, {workers} worker(s):   {rate:7.0f} rows/s = {rate / one:.2f}x one worker, "
                  f"{rate / local:.2f}x local (start-up: the first 8-row evaluation took {startup:.1f} s)")
    finally:
        ray.shutdown()
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
