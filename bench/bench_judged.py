"""Judged faithfulness + answer_correctness at 64-way concurrency: evalkit against ragas, on the
same rows and the same fake judge (``judged_responder``: both tools get the same decisions).

The fake server runs in its own process (its CPU is not the client's) with 200 ms latency. Cases:

- evalkit: ``ek.evaluate(evaluators=["faithfulness", "answer_correctness"], concurrency=64,
  cache="off")``, embeddings from the server's endpoint;
- ragas ``aevaluate`` (the classic batch API; ``evaluate`` is its sync wrapper) with
  ``RunConfig(max_workers=64)``, ``llm_factory`` and the server's embeddings;
- ragas collections API (``Faithfulness``/``AnswerCorrectness.ascore``): every (row, metric)
  gathered under a 64-slot semaphore;
- both ragas cases with the ``AsyncOpenAI()`` client ragas documents (httpx underneath, whose
  connection pool costs CPU quadratic in the requests in flight) and with one on aiohttp, as
  evalkit uses;
- for reference, ragas's metrics inside evalkit through the adapter (``ragas:<metric>``; each
  evaluator bounds its rows at 64, so up to 128 requests are in flight).

Prints rows/s, wall and client CPU seconds, the server's CPU seconds, requests served, the mean
scores, and evalkit's speed-up over the fastest ragas case.

Run: ``.venv/bin/python bench/bench_judged.py [--rows 200] [--latency 0.2] [--concurrency 64]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TMP = Path(tempfile.mkdtemp(prefix="evalkit-bench-judged-"))
# ragas's usage tracking off before ragas loads (see evaluators/ragas_adapter.py); ragas writes
# <user data dir>/ragas/uuid.json even so: keep it out of the home directory.
os.environ["RAGAS_DO_NOT_TRACK"] = "true"
os.environ["XDG_DATA_HOME"] = str(TMP / "xdg")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
# The server process imports the responder from here.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))

import pandas as pd  # noqa: E402
from bench_runner import reset, server_stats, start_server  # noqa: E402

import evalkit as ek  # noqa: E402

MODEL, EMBEDDINGS = "gpt-4o-mini", "text-embedding-3-small"
_COLOURS = ["red", "blue", "green", "black", "white", "yellow"]
_CITIES = ["Lyon", "Porto", "Turin", "Ghent", "Graz", "Bergen"]


def rag_rows(count: int, seed: int = 0) -> pd.DataFrame:
    """RAG rows about made-up lamps: 2-3 context passages, a 2-3 sentence answer that gets some
    facts wrong or adds some the passages lack, and a 2-sentence ground truth."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        lamp = f"Lamp {i}"
        colour, city, weight, price = rng.choice(_COLOURS), rng.choice(_CITIES), rng.randint(2, 9), rng.randint(20, 90)
        facts = {"colour": f"{lamp} is painted {colour}.", "city": f"{lamp} was made in {city}.",
                 "weight": f"{lamp} weighs {weight} kilograms.", "price": f"{lamp} costs {price} euros."}
        wrong = {"colour": f"{lamp} is painted {rng.choice([c for c in _COLOURS if c != colour])}.",
                 "city": f"{lamp} was made in {rng.choice([c for c in _CITIES if c != city])}.",
                 "weight": f"{lamp} weighs {weight + 1} kilograms.", "price": f"{lamp} costs {price + 5} euros."}
        known = rng.sample(list(facts), rng.randint(2, 3))
        told = rng.sample(list(facts), rng.randint(2, 3))
        rows.append({
            "question": f"What do you know about {lamp}?",
            "contexts": [facts[k] + " It is sold in our shops." for k in known],
            "answer": " ".join(facts[k] if rng.random() < 0.7 else wrong[k] for k in told),
            "ground_truth": " ".join(facts[k] for k in known[:2]),
        })
    return pd.DataFrame(rows)


def run_evalkit(base_url: str, data: pd.DataFrame, concurrency: int, evaluators: list[str]) -> dict[str, float]:
    config = {"answer_correctness": {"embeddings": f"openai:/{EMBEDDINGS}?base_url={base_url}"},
              "ragas:answer_correctness": {"embeddings": EMBEDDINGS}}
    result = ek.evaluate(data=data, predictions="answer", targets="ground_truth", judge=f"openai:/{MODEL}?base_url={base_url}",
                         evaluators=evaluators, concurrency=concurrency, cache="off", progress=False,
                         evaluator_config={k: v for k, v in config.items() if k in evaluators})
    means = {k: v for k, v in result.metrics.items() if k.endswith("/mean")}
    return {("faithfulness" if "faithfulness" in k else "answer_correctness"): v for k, v in means.items()}


def _ragas_client(base_url: str, transport: str) -> Any:
    """ragas's documented client (``AsyncOpenAI()``, httpx underneath), or one on aiohttp."""
    import openai

    http_client = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
    return openai.AsyncOpenAI(base_url=base_url, api_key=os.environ["OPENAI_API_KEY"], http_client=http_client)


def run_ragas_aevaluate(base_url: str, data: pd.DataFrame, concurrency: int, transport: str) -> dict[str, float]:
    from ragas import RunConfig, aevaluate
    from ragas.embeddings import OpenAIEmbeddings
    from ragas.llms import llm_factory
    from ragas.metrics._answer_correctness import AnswerCorrectness
    from ragas.metrics._faithfulness import Faithfulness

    from datasets import Dataset

    dataset = Dataset.from_list([{"user_input": r.question, "retrieved_contexts": r.contexts, "response": r.answer,
                                  "reference": r.ground_truth} for r in data.itertuples()])

    # Timed on purpose: it is the API most ragas users run (evaluate() wraps it).
    warnings.filterwarnings("ignore", r"aevaluate\(\) is deprecated", DeprecationWarning)

    async def run() -> Any:
        client = _ragas_client(base_url, transport)
        try:  # in our own loop, so that the client closes in the loop its connections belong to
            return await aevaluate(dataset, metrics=[Faithfulness(), AnswerCorrectness()],
                                   llm=llm_factory(MODEL, client=client),
                                   embeddings=OpenAIEmbeddings(client=client, model=EMBEDDINGS),
                                   run_config=RunConfig(max_workers=concurrency), show_progress=False)
        finally:
            await client.close()

    scores = asyncio.run(run()).to_pandas()
    return {name: float(scores[name].mean()) for name in ("faithfulness", "answer_correctness")}


def run_ragas_collections(base_url: str, data: pd.DataFrame, concurrency: int, transport: str) -> dict[str, float]:
    from ragas.embeddings import OpenAIEmbeddings
    from ragas.llms import llm_factory
    from ragas.metrics.collections import AnswerCorrectness, Faithfulness

    async def run() -> dict[str, float]:
        client = _ragas_client(base_url, transport)
        llm = llm_factory(MODEL, client=client)
        faithfulness = Faithfulness(llm=llm)
        correctness = AnswerCorrectness(llm=llm, embeddings=OpenAIEmbeddings(client=client, model=EMBEDDINGS))
        # abatch_score has no concurrency limit: bound it ourselves, like the other cases
        slots = asyncio.Semaphore(concurrency)

        async def bounded(job: Any) -> float:
            async with slots:
                return (await job).value

        rows = list(data.itertuples())
        try:
            values = await asyncio.gather(
                *(bounded(faithfulness.ascore(user_input=r.question, response=r.answer, retrieved_contexts=r.contexts))
                  for r in rows),
                *(bounded(correctness.ascore(user_input=r.question, response=r.answer, reference=r.ground_truth))
                  for r in rows),
            )
        finally:
            await client.close()
        return {"faithfulness": float(pd.Series(values[:len(rows)]).mean()),
                "answer_correctness": float(pd.Series(values[len(rows):]).mean())}

    return asyncio.run(run())


def server_cpu(pid: int) -> float | None:
    """CPU seconds the server process has used (Linux's /proc; None elsewhere): when it nears the
    wall time, the server, not the client, sets the pace."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def measure(base_url: str, server_pid: int, run: Callable[[], dict[str, float]]) -> dict[str, Any]:
    reset(base_url)
    served, cpu, wall = server_cpu(server_pid), time.process_time(), time.perf_counter()
    means = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = server_cpu(server_pid)
    return {"wall": wall, "cpu": cpu, "server_cpu": None if served is None or after is None else after - served,
            "requests": server_stats(base_url)["requests"], "means": means}


Case = Callable[[str, pd.DataFrame], dict[str, float]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    ek.set_tracking_uri(str(TMP / "bench.db"))
    data, n = rag_rows(args.rows), args.concurrency
    evalkit_case: Case = lambda url, d: run_evalkit(url, d, n, ["faithfulness", "answer_correctness"])  # noqa: E731
    ragas_cases: dict[str, Case] = {}
    for transport in ("httpx", "aiohttp"):
        ragas_cases[f"ragas aevaluate, max_workers={n}, {transport}"] = \
            lambda url, d, t=transport: run_ragas_aevaluate(url, d, n, t)
        ragas_cases[f"ragas collections .ascore, semaphore {n}, {transport}"] = \
            lambda url, d, t=transport: run_ragas_collections(url, d, n, t)
    cases = {"evalkit": evalkit_case, **ragas_cases, "ragas metrics in evalkit (ragas:*, aiohttp)":
             lambda url, d: run_evalkit(url, d, n, ["ragas:faithfulness", "ragas:answer_correctness"])}
    server, base_url = start_server(args.latency, ["--responder", "judged_responder:responder"])
    try:
        # One-time costs (imports, clients, prompt templates) are paid here, outside the figures.
        for case in cases.values():
            case(base_url, data.head(4))
        print(f"{args.rows} rows x faithfulness + answer_correctness, fake judge latency {args.latency * 1000:.0f} ms, "
              f"concurrency {n}, evalkit cache off, ragas telemetry off, {os.cpu_count()} CPUs")
        print(f"{'case':<48} {'rows/s':>7} {'wall s':>7} {'CPU s':>6} {'server CPU s':>12} {'requests':>9} "
              f"{'faithf.':>8} {'ans.corr.':>9}")
        results = {}
        for name, case in cases.items():
            results[name] = r = measure(base_url, server.pid, lambda case=case: case(base_url, data))
            served = "n/a" if r["server_cpu"] is None else f"{r['server_cpu']:.2f}"
            print(f"{name:<48} {args.rows / r['wall']:>7.1f} {r['wall']:>7.2f} {r['cpu']:>6.2f} {served:>12} "
                  f"{r['requests']:>9} {r['means']['faithfulness']:>8.4f} {r['means']['answer_correctness']:>9.4f}")
    finally:
        server.terminate()
        server.wait()
    fastest = min(ragas_cases, key=lambda name: results[name]["wall"])
    print(f"evalkit speed-up over the fastest ragas case ({fastest}): "
          f"{results[fastest]['wall'] / results['evalkit']['wall']:.2f}x wall, "
          f"{results[fastest]['cpu'] / results['evalkit']['cpu']:.2f}x client CPU")


if __name__ == "__main__":
    main()
