"""Rows per second of evaluate() with the local executor and with the Ray executor (1, 2, 3 workers),
against the fake OpenAI-compatible server in its own process, on two workloads where the client's
CPU is the bottleneck:

- ``requests``: a low server latency and a high concurrency, exact_match only: the openai client's
  per-request CPU, not the server's answer time, bounds the rate;
- ``scoring``: long texts (contexts of about 6 KB, targets and answers of about 1 KB, every row's
  words its own) scored with the retrieval-augmented default evaluators, all offline: scoring, not
  the requests, is the CPU cost. Ray runs with ``score_on_workers``, so each worker scores the rows
  it answers; the driver only journals, prices and writes them.

Each figure is one whole evaluate() (no report, cache off) after a warm-up evaluation on the same
executor: the Ray executor keeps its workers (``keep_workers``), so the figure is the steady rate
of warm workers (their evaluators' models loaded), and the warm-up's time (Ray's worker start-up
included) is given apart. Speedups are over one Ray worker and over the local executor.

Run: ``.venv/bin/python bench/bench_ray.py [--workload requests|scoring|both] [--rows 3000]
[--latency 0.02] [--concurrency 64] [--scoring-rows 1000] [--scoring-latency 0.005]``
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
import ray  # noqa: E402
from bench_runner import dataset, reset, server_stats, start_server  # noqa: E402

import evalkit as ek  # noqa: E402
from evalkit.inference.executors.ray.executor import RayExecutor  # noqa: E402

QUIET = {"report": False, "cache": "off", "progress": False}
RUNNER_ONLY = {"evaluators": ["exact_match"], **QUIET}
# The retrieval-augmented defaults, every one offline (no judge): token overlaps, embeddings, classifier.
OFFLINE_SCORING = {"model_type": "retrieval-augmented", **QUIET}

_SYLLABLES = ["ka", "lo", "mer", "tis", "ban", "dro", "vel", "sun", "pra", "gor", "ith", "nel", "qua", "rob", "zen"]
WORDS = sorted({a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES[:6]})  # 1,350 words


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(WORDS, k=words)).capitalize() + "."


def long_texts(rows: int, tag: str) -> pd.DataFrame:
    """Rows whose texts are long and all different: the first passage opens with a sentence of
    160 words (the fake server answers with it, so answers are about 1 KB), three more passages of
    200 words, and a target of 150 words sharing about half of its words with the answer."""
    inputs, contexts, targets = [], [], []
    for i in range(rows):
        rng = random.Random(f"{tag}-{i}")
        answer = _sentence(rng, 160)
        passages = [f"{answer} {' '.join(_sentence(rng, 20) for _ in range(2))}",
                    *(" ".join(_sentence(rng, 20) for _ in range(10)) for _ in range(3))]
        inputs.append(f"[{tag}] What does report {i} say about {' '.join(rng.choices(WORDS, k=3))}?")
        contexts.append(passages)
        targets.append(" ".join(answer.split()[:75]) + " " + _sentence(rng, 75))
    return pd.DataFrame({"inputs": inputs, "contexts": contexts, "ground_truth": targets})


def timed(url: str, data: pd.DataFrame, concurrency: int, executor: str | RayExecutor, options: dict[str, Any],
          ) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one evaluate()."""
    reset(url)
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a default evaluator whose extra is missing: listed below instead
        result = ek.evaluate(model=f"openai:/gpt-4o?base_url={url}", data=data, targets="ground_truth",
                             concurrency=concurrency, executor=executor, **options)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    rows = len(data)
    answered = int((result.tables["eval_results_table"]["status"] == "ok").sum())
    sent = len(server_stats(url)["messages_counts"])
    assert answered == rows and sent == rows, (answered, sent)
    return elapsed, cpu


def compare(url: str, rows: int, concurrency: int, batch_size: int, cpus: int, make: Any, options: dict[str, Any],
            warmup_rows: Any, **ray_options: Any) -> None:
    """Print the local executor's rows/s and Ray's with 1, 2 and 3 workers on ``make(rows, tag)``."""
    warmup, _ = timed(url, make(warmup_rows(1), "local-start"), concurrency, "local", options)
    wall, cpu = timed(url, make(rows, "local"), concurrency, "local", options)
    local = rows / wall
    print(f"  local executor:      {local:7.0f} rows/s, {cpu / rows * 1000:.2f} ms of CPU a row "
          f"(a {warmup_rows(1)}-row evaluation: {warmup:.1f} s)")
    one = None
    for workers in (1, 2, 3):
        with RayExecutor(num_workers=workers, cpus_per_worker=cpus / workers, batch_size=batch_size,
                         keep_workers=True, **ray_options) as executor:
            startup, _ = timed(url, make(warmup_rows(workers), f"start{workers}"), concurrency, executor, options)
            wall, cpu = timed(url, make(rows, f"ray{workers}"), concurrency, executor, options)
        rate = rows / wall
        one = one or rate
        print(f"  ray, {workers} worker(s):   {rate:7.0f} rows/s = {rate / one:.2f}x one worker, "
              f"{rate / local:.2f}x local, the driver's CPU {cpu / rows * 1000:.2f} ms a row (start-up: the first "
              f"{warmup_rows(workers)}-row evaluation took {startup:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", choices=["requests", "scoring", "both"], default="both")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--scoring-rows", type=int, default=1000)
    parser.add_argument("--scoring-latency", type=float, default=0.005)
    parser.add_argument("--scoring-batch-size", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    ek.set_tracking_uri(f"sqlite:///{Path(os.environ.get('TMPDIR', '/tmp')) / f'bench_ray_{os.getpid()}.db'}")
    cpus = os.cpu_count() or 2
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        if args.workload in ("requests", "both"):
            server, url = start_server(args.latency)
            try:
                print(f"requests: {args.rows} rows, server latency {args.latency * 1000:g} ms, concurrency "
                      f"{args.concurrency} per process, exact_match only, {cpus} cores shared by the client, "
                      "the workers and the server")
                compare(url, args.rows, args.concurrency, args.batch_size, cpus, dataset, RUNNER_ONLY, lambda n: 8)
            finally:
                server.terminate()
                server.wait()
        if args.workload in ("scoring", "both"):
            server, url = start_server(args.scoring_latency)
            try:
                print(f"scoring: {args.scoring_rows} rows of long texts, the retrieval-augmented default evaluators "
                      f"offline, server latency {args.scoring_latency * 1000:g} ms, concurrency {args.concurrency} "
                      f"per process, batches of {args.scoring_batch_size}, Ray with score_on_workers")
                # A warm-up gives every worker batches, so that each has loaded its evaluators' models.
                compare(url, args.scoring_rows, args.concurrency, args.scoring_batch_size, cpus, long_texts,
                        OFFLINE_SCORING, lambda n: 2 * n * args.scoring_batch_size, score_on_workers=True)
            finally:
                server.terminate()
                server.wait()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
