"""The RAG metrics: judged answer relevancy + context precision + context recall at 64-way
concurrency, evalkit against ragas 0.4.3 on the same rows and the same fake judge
(``judged_responder``: both tools get the same decisions); then the offline versions over
10,000 rows.

The fake server runs in its own process (its CPU is not the client's) with 200 ms latency. The
rows are ``bench_judged.rag_rows``: made-up lamps with 2-3 context passages each. Cases:

- evalkit: ``ek.evaluate(evaluators=["answer_relevancy", "context_precision", "context_recall"],
  concurrency=64, cache="off")``, embeddings from the server's endpoint (as ragas's);
- ragas ``aevaluate`` (the classic batch API; ``evaluate`` is its sync wrapper) with its
  AnswerRelevancy, ContextPrecision and ContextRecall, ``RunConfig(max_workers=64)``,
  ``llm_factory`` and the server's embeddings through ragas's LangChain wrapper (the classic
  AnswerRelevancy calls LangChain's synchronous ``embed_query``; the transport named is the LLM's);
- ragas collections API (``ragas.metrics.collections``, ``.ascore``): every (row, metric)
  gathered under a 64-slot semaphore;
- both ragas cases with the ``AsyncOpenAI()`` client ragas documents (httpx underneath) and with
  one on aiohttp, as evalkit uses;
- for reference, the same ragas metrics inside evalkit (``ragas:<metric>``), which send through
  evalkit's judge (each evaluator bounds its rows at 64).

Prints rows/s, wall and client CPU seconds, the server's CPU seconds, requests served (chat and
embeddings), the mean scores, and evalkit's speed-up over ragas as users run it (``aevaluate``
with the default client) and over the fastest ragas case.

Run: ``.venv/bin/python bench/bench_rag.py [--rows 200] [--latency 0.2] [--concurrency 64]
[--offline-rows 10000] [--skip-judged]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd  # noqa: E402
from bench_judged import (  # sets up the environment first
    EMBEDDINGS,
    MODEL,
    TMP,
    _ragas_client,
    measure,
    rag_rows,
)
from bench_offline_evaluators import synthetic_rows  # noqa: E402
from bench_runner import start_server  # noqa: E402

import evalkit as ek  # noqa: E402
from evalkit.evaluation.scoring import ScoringContext  # noqa: E402

METRICS = ("answer_relevancy", "context_precision", "context_recall")
OFFLINE_GOAL_SECONDS = 3.0


def run_evalkit(base_url: str, data: pd.DataFrame, concurrency: int, evaluators: list[str]) -> dict[str, float]:
    embeddings = {"embeddings": f"openai:/{EMBEDDINGS}?base_url={base_url}"}
    config = {name: embeddings for name in ("answer_relevancy", "ragas:answer_relevancy") if name in evaluators}
    result = ek.evaluate(data=data, predictions="answer", targets="ground_truth", judge=f"openai:/{MODEL}?base_url={base_url}",
                         evaluators=evaluators, concurrency=concurrency, cache="off", progress=False, report=False,
                         evaluator_config=config)
    return {name: value for key, value in result.metrics.items() if key.endswith("/mean")
            for name in METRICS if name in key}


def _ragas_dataset(data: pd.DataFrame) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"user_input": r.question, "retrieved_contexts": r.contexts, "response": r.answer,
                               "reference": r.ground_truth} for r in data.itertuples()])


def run_ragas_aevaluate(base_url: str, data: pd.DataFrame, concurrency: int, transport: str) -> dict[str, float]:
    from langchain_openai import OpenAIEmbeddings as LangChainOpenAIEmbeddings
    from ragas import RunConfig, aevaluate
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.llms import llm_factory
    from ragas.metrics._answer_relevance import AnswerRelevancy
    from ragas.metrics._context_precision import ContextPrecision
    from ragas.metrics._context_recall import ContextRecall

    dataset = _ragas_dataset(data)
    warnings.filterwarnings("ignore", r"aevaluate\(\) is deprecated", DeprecationWarning)
    # The classic AnswerRelevancy calls the LangChain interface (embed_query, embed_documents), as
    # ragas's legacy embedding_factory builds it; built here to leave out langchain-openai's
    # token-count check, which needs a tiktoken download and sends token ids the fake refuses.
    embeddings = LangchainEmbeddingsWrapper(LangChainOpenAIEmbeddings(
        model=EMBEDDINGS, base_url=base_url, api_key=os.environ["OPENAI_API_KEY"], check_embedding_ctx_length=False))

    async def run() -> Any:
        client = _ragas_client(base_url, transport)
        try:
            return await aevaluate(dataset, metrics=[AnswerRelevancy(), ContextPrecision(), ContextRecall()],
                                   llm=llm_factory(MODEL, client=client),
                                   embeddings=embeddings, run_config=RunConfig(max_workers=concurrency),
                                   show_progress=False)
        finally:
            await client.close()

    scores = asyncio.run(run()).to_pandas()
    return {name: float(scores[name].mean()) for name in METRICS}


def run_ragas_collections(base_url: str, data: pd.DataFrame, concurrency: int, transport: str) -> dict[str, float]:
    from ragas.embeddings import OpenAIEmbeddings
    from ragas.llms import llm_factory
    from ragas.metrics.collections import (
        AnswerRelevancy,
        ContextPrecision,
        ContextRecall,
    )

    async def run() -> dict[str, float]:
        client = _ragas_client(base_url, transport)
        llm = llm_factory(MODEL, client=client)
        metrics = {"answer_relevancy": AnswerRelevancy(llm=llm, embeddings=OpenAIEmbeddings(client=client, model=EMBEDDINGS)),
                   "context_precision": ContextPrecision(llm=llm), "context_recall": ContextRecall(llm=llm)}
        slots = asyncio.Semaphore(concurrency)

        async def bounded(job: Any) -> float:
            async with slots:
                return (await job).value

        rows = list(data.itertuples())
        jobs = {
            "answer_relevancy": [metrics["answer_relevancy"].ascore(user_input=r.question, response=r.answer) for r in rows],
            "context_precision": [metrics["context_precision"].ascore(user_input=r.question, reference=r.ground_truth,
                                                                      retrieved_contexts=r.contexts) for r in rows],
            "context_recall": [metrics["context_recall"].ascore(user_input=r.question, reference=r.ground_truth,
                                                                retrieved_contexts=r.contexts) for r in rows],
        }
        try:
            values = await asyncio.gather(*(bounded(job) for name in METRICS for job in jobs[name]))
        finally:
            await client.close()
        return {name: float(pd.Series(values[i * len(rows):(i + 1) * len(rows)]).mean()) for i, name in enumerate(METRICS)}

    return asyncio.run(run())


Case = Callable[[str, pd.DataFrame], dict[str, float]]


def judged(args: argparse.Namespace) -> None:
    data, n = rag_rows(args.rows), args.concurrency
    users = "ragas aevaluate, httpx (as users run it)"
    cases: dict[str, Case] = {
        "evalkit": lambda url, d: run_evalkit(url, d, n, list(METRICS)),
        users: lambda url, d: run_ragas_aevaluate(url, d, n, "httpx"),
        "ragas aevaluate, aiohttp": lambda url, d: run_ragas_aevaluate(url, d, n, "aiohttp"),
        f"ragas collections .ascore, sem. {n}, httpx": lambda url, d: run_ragas_collections(url, d, n, "httpx"),
        f"ragas collections .ascore, sem. {n}, aiohttp": lambda url, d: run_ragas_collections(url, d, n, "aiohttp"),
        "ragas metrics in evalkit (ragas:*)": lambda url, d: run_evalkit(url, d, n, [f"ragas:{m}" for m in METRICS]),
    }
    server, base_url = start_server(args.latency, ["--responder", "judged_responder:responder"])
    try:
        for case in cases.values():  # one-time costs (imports, clients, prompt templates) outside the figures
            case(base_url, data.head(4))
        print(f"{args.rows} rows x {' + '.join(METRICS)}, fake judge latency {args.latency * 1000:.0f} ms, "
              f"concurrency {n}, evalkit cache off, ragas telemetry off, {os.cpu_count()} CPUs")
        print(f"{'case':<46} {'rows/s':>7} {'wall s':>7} {'CPU s':>6} {'server CPU':>10} {'requests':>9} "
              f"{'ans.rel.':>8} {'ctx.prec.':>9} {'ctx.rec.':>8}")
        results = {}
        for name, case in cases.items():
            results[name] = r = measure(base_url, server.pid, lambda case=case: case(base_url, data))
            served = "n/a" if r["server_cpu"] is None else f"{r['server_cpu']:.2f}"
            means = r["means"]
            print(f"{name:<46} {args.rows / r['wall']:>7.1f} {r['wall']:>7.2f} {r['cpu']:>6.2f} {served:>10} "
                  f"{r['requests']:>9} {means['answer_relevancy']:>8.4f} {means['context_precision']:>9.4f} "
                  f"{means['context_recall']:>8.4f}")
    finally:
        server.terminate()
        server.wait()
    ragas_cases = [name for name in cases if name.startswith("ragas ") and "evalkit" not in name]
    fastest = min(ragas_cases, key=lambda name: results[name]["wall"])
    ours = results["evalkit"]
    for label, name in (("ragas as users run it", users), (f"the fastest ragas case ({fastest})", fastest)):
        print(f"evalkit speed-up over {label}: {results[name]['wall'] / ours['wall']:.2f}x wall, "
              f"{results[name]['cpu'] / ours['cpu']:.2f}x client CPU, {results[name]['requests']} vs {ours['requests']} requests")


def offline(rows_count: int, repeat: int) -> None:
    """Each offline evaluator on its own (wall and CPU seconds: on a busy machine the CPU time is
    the steadier figure), then the three in one ``ek.evaluate`` as a user runs them, where they
    overlap: the embedding runs in a worker thread while the token metrics run."""
    from evalkit.evaluators import embeddings
    from evalkit.evaluators.answer_relevancy_offline import OfflineAnswerRelevancy
    from evalkit.evaluators.context_precision_offline import OfflineContextPrecision
    from evalkit.evaluators.context_recall_offline import OfflineContextRecall

    rows = synthetic_rows(rows_count, 0)
    start, cpu = time.perf_counter(), time.process_time()
    embeddings.model()
    load, load_cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"\noffline RAG metrics, {rows_count:,} rows (score + aggregate, median of {repeat})")
    print(f"{'evaluator':<34}{'wall s':>8}{'CPU s':>8}{'rows/s':>10}{'mean':>8}")
    print(f"{'embedding model load (once)':<34}{load:>8.3f}{load_cpu:>8.3f}")
    total, total_cpu = load, load_cpu
    for evaluator in (OfflineAnswerRelevancy(), OfflineContextPrecision(), OfflineContextRecall()):
        walls, cpus = [], []
        for _ in range(repeat):
            start, cpu = time.perf_counter(), time.process_time()
            aggregates = evaluator.aggregate(asyncio.run(evaluator.score(rows, ScoringContext())))
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        wall, cpu_s = statistics.median(walls), statistics.median(cpus)
        total, total_cpu = total + wall, total_cpu + cpu_s
        print(f"{evaluator.name + '/' + evaluator.version:<34}{wall:>8.3f}{cpu_s:>8.3f}{rows_count / wall:>10,.0f}"
              f"{aggregates['mean']:>8.3f}")
    print(f"{'sum, with the model load':<34}{total:>8.3f}{total_cpu:>8.3f}   goal < {OFFLINE_GOAL_SECONDS:.0f} s")
    frame = pd.DataFrame({"question": [r.input for r in rows], "answer": [r.output for r in rows],
                          "ground_truth": [r.target for r in rows], "contexts": [r.contexts for r in rows]})
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        ek.evaluate(data=frame, predictions="answer", targets="ground_truth", evaluators=list(METRICS), report=False,
                    progress=False, experiment="bench-rag-offline")
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    print(f"{'ek.evaluate of the three (all of it)':<34}{statistics.median(walls):>8.3f}{statistics.median(cpus):>8.3f}"
          "   (reading the frame, scoring, logging the run and its 10,000-row table)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--offline-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-judged", action="store_true")
    args = parser.parse_args()
    ek.set_tracking_uri(str(TMP / "bench.db"))
    if not args.skip_judged:
        judged(args)
    offline(args.offline_rows, args.repeat)


if __name__ == "__main__":
    main()
