"""evaluate() throughput against the fake OpenAI-compatible server (in its own process).

First, the issue's end-to-end figure (``--end-to-end-rows``, 2,000 by default): the whole default
evaluation (the question-answering evaluators and the HTML report, into a SQLite store) at
concurrency 64 and 256, as a share of the bound (rows x latency / concurrency, the wall time of an
endpoint-bound run) and the client's CPU time per row from the call of evaluate() to its return
(this process only: the server's CPU is not counted). Beside each, the same requests sent without
evalkit, through its openai client alone and through a bare aiohttp session: the shares of the bound
that the SDK and this machine (client and server on 2 cores) leave. ``--only-end-to-end`` stops there.

Then, for 1,000 rows at 200 ms server latency: rows/s at concurrency 16, 64 and 256 as a
fraction of the bound (concurrency / 0.2 s) and the client's CPU time per request; the floor of a
bare aiohttp session; the request rate held under a 600 requests-per-minute limit; and a second run
served from the cache. The throughput figures time the model-calling path (exact_match only, no
report: what the issue's goal was set on); the cache figure is given for that evaluation and for
the full default one (seven evaluators and the HTML report), whose fixed cost does not shrink.

Run: ``.venv/bin/python bench/bench_runner.py [--end-to-end-rows 2000] [--only-end-to-end] [--rows 1000]
[--latency 0.2] [--rpm-seconds 60]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd

import evalkit as ek
from evalkit.heap import existing_objects_frozen
from evalkit.inference.sync import run_sync

RUNNER_ONLY = {"evaluators": ["exact_match"], "report": False}


def start_server(latency: float, extra: list[str] | None = None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "evalkit.testing.fake_openai", "--port", "0", "--latency", str(latency), *(extra or [])],
        stdout=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return process, match.group(1)


def server_stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.replace("/v1", "/_stats")) as response:
        return json.load(response)


def reset(base_url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(base_url.replace("/v1", "/_reset"), method="POST")).close()


def dataset(rows: int, tag: str) -> pd.DataFrame:
    return pd.DataFrame({
        "inputs": [f"[{tag}] What colour is lamp {i}?" for i in range(rows)],
        "contexts": [[f"Lamp {i} is painted blue. It ships in {i % 7 + 1} days."] for i in range(rows)],
        "ground_truth": [f"Lamp {i} is painted blue." for i in range(rows)],
    })


def timed_evaluate(base_url: str, frame: pd.DataFrame, **kwargs) -> tuple[float, float, ek.EvaluationResult]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = ek.evaluate(model=f"openai:/gpt-4o?base_url={base_url}", data=frame, targets="ground_truth",
                         progress=False, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, result


async def plain_aiohttp(base_url: str, concurrency: int, rows: int) -> tuple[float, float]:
    """The floor: the same requests from a bare aiohttp session, no SDK and no evalkit.
    Returns (wall seconds, client CPU seconds)."""
    import aiohttp

    semaphore = asyncio.Semaphore(concurrency)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": ""}]}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one(i: int) -> None:
            async with semaphore:
                payload = {**body, "messages": [{"role": "user", "content": f"floor {concurrency} {i}"}]}
                async with session.post(f"{base_url}/chat/completions", json=payload,
                                        headers={"Authorization": "Bearer sk-bench"}) as response:
                    await response.json()

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(rows)))
        return time.perf_counter() - wall, time.process_time() - cpu


async def sdk_calls_only(base_url: str, concurrency: int, rows: int) -> tuple[float, float]:
    """The same requests through evalkit's chat model (the openai client) alone: no runner, journal,
    scoring or store. Returns (wall seconds, client CPU seconds)."""
    from evalkit.inference.providers.openai_chat import OpenAIChatModel

    model = OpenAIChatModel("openai:/gpt-4o", "gpt-4o", base_url, "sk-bench", max_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await model.generate([{"role": "user", "content": f"sdk {concurrency} {i}"}], {})

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(rows)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await model.aclose()
    return wall, cpu


def end_to_end(base_url: str, rows: int, latency: float, repeats: int) -> None:
    """The default evaluation (evaluators and report) at concurrency 64 and 256: share of the bound
    and client CPU per row, each the best of ``repeats`` runs (the machine may be shared)."""
    print(f"end to end: {rows} rows, default evaluators + HTML report, fake server latency "
          f"{latency * 1000:.0f} ms, cache off (best of {repeats})")
    print(f"{'concurrency':>11} {'wall':>8} {'bound':>8} {'of bound':>9} {'CPU/row':>10}   "
          f"{'SDK calls only':>14}   {'plain aiohttp':>13}")
    for concurrency in (64, 256):
        best: tuple[float, float] | None = None
        for attempt in range(repeats):
            reset(base_url)
            wall, cpu, result = timed_evaluate(base_url, dataset(rows, f"e2e{concurrency}-{attempt}"),
                                               concurrency=concurrency, cache="off")
            assert result.metrics["rows/answered"] == rows, result.metrics
            assert "report" in result.artifacts, "the report was not rendered"
            best = (wall, cpu) if best is None else (min(best[0], wall), min(best[1], cpu))
        wall, cpu = best
        bound = rows * latency / concurrency
        # What the same requests cost without evalkit: through evalkit's openai client alone, and
        # through a bare aiohttp session (no SDK): the shares of the bound this machine allows.
        # With the collector treated as evaluate() treats it (the process's heap frozen).
        with existing_objects_frozen():
            sdk_wall, sdk_cpu = run_sync(sdk_calls_only(base_url, concurrency, rows))
            floor_wall, floor_cpu = run_sync(plain_aiohttp(base_url, concurrency, rows))
        print(f"{concurrency:>11} {wall:>7.2f}s {bound:>7.2f}s {bound / wall:>8.0%} {cpu / rows * 1000:>7.2f} ms   "
              f"{bound / sdk_wall:>4.0%} {sdk_cpu / rows * 1000:>5.2f} ms   {bound / floor_wall:>4.0%} "
              f"{floor_cpu / rows * 1000:>5.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--end-to-end-rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1, help="end-to-end runs per concurrency (best is shown)")
    parser.add_argument("--only-end-to-end", action="store_true")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rpm-seconds", type=float, default=60.0, help="how long to run at 600 requests/minute")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-bench-"))
    os.environ["EVALKIT_CACHE_PATH"] = str(tmp / "cache.db")
    ek.set_tracking_uri(str(tmp / "bench.db"))

    server, base_url = start_server(args.latency)
    try:
        # One-time costs (imports, tokenizer files) are paid here, outside the figures.
        timed_evaluate(base_url, dataset(20, "warm-up"), concurrency=4, cache="off")
        end_to_end(base_url, args.end_to_end_rows, args.latency, args.repeats)
        if args.only_end_to_end:
            return
        print(f"{args.rows} rows, fake server latency {args.latency * 1000:.0f} ms, cache off")
        print(f"{'concurrency':>11} {'rows/s':>8} {'bound':>8} {'of bound':>9} {'CPU/request':>12}")
        for concurrency in (16, 64, 256):
            reset(base_url)
            wall, cpu, result = timed_evaluate(base_url, dataset(args.rows, f"c{concurrency}"),
                                               concurrency=concurrency, cache="off", **RUNNER_ONLY)
            assert result.metrics["rows/answered"] == args.rows, result.metrics
            requests = server_stats(base_url)["requests"]
            bound = concurrency / args.latency
            rate = args.rows / wall
            print(f"{concurrency:>11} {rate:>8.0f} {bound:>8.0f} {rate / bound:>8.0%} {cpu / requests * 1000:>10.2f} ms")

        for concurrency in (64, 256):
            wall, cpu = asyncio.run(plain_aiohttp(base_url, concurrency, args.rows))
            rate, bound = args.rows / wall, concurrency / args.latency
            print(f"{'floor ' + str(concurrency):>11} {rate:>8.0f} {bound:>8.0f} {rate / bound:>8.0%} "
                  f"{cpu / args.rows * 1000:>10.2f} ms   (plain aiohttp session, no SDK)")

        rpm_rows = int(args.rpm_seconds * 10)
        reset(base_url)
        wall, _, result = timed_evaluate(base_url, dataset(rpm_rows, "rpm"), concurrency=64, cache="off", rate_limit=600)
        stats = server_stats(base_url)
        times = sorted(stats["chat_request_times"])
        measured = (len(times) - 1) / (times[-1] - times[0]) * 60
        print(f"rate limit 600/min: {measured:.1f} requests/min over {len(times)} requests "
              f"({(measured - 600) / 600:+.2%}), 429s: {stats['by_status'].get('429', 0)}")

        for label, options in (("exact_match, no report", RUNNER_ONLY), ("default evaluators + report", {})):
            frame = dataset(args.rows, f"cache {label}")
            reset(base_url)
            first, _, _ = timed_evaluate(base_url, frame, concurrency=64, cache="on", **options)
            reset(base_url)
            second, _, result = timed_evaluate(base_url, frame, concurrency=64, cache="on", **options)
            requests = server_stats(base_url)["requests"]
            print(f"cache ({label}): first run {first:.2f} s, second run {second:.3f} s "
                  f"({second / first:.1%} of the first), {requests} requests, {result.metrics['cache/hits']:.0f} hits")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
