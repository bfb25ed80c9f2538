"""Speed of the embedded offline model (``evalkit:/extractive``): 10,000 answers to the bundled
dataset's questions, one call at a time (the median of ``--repeat`` runs). Goal: under 2 s, so that
the offline path of ``make demo`` and of CI suites costs nothing next to the evaluators.

Run: ``.venv/bin/python bench/bench_offline_model.py [--calls 10000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from evalkit.evaluation.data import load_dataset
from evalkit.evaluation.prompts import resolve_prompt
from evalkit.inference.providers.offline import OfflineExtractiveModel

RAG_QA = Path(__file__).resolve().parents[1] / "datasets" / "rag_qa.jsonl"
GOAL_SECONDS = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    dataset = load_dataset(str(RAG_QA))
    template = resolve_prompt(None, has_contexts=True)
    rows = dataset.frame.to_dict(orient="records")
    messages = [template.render(q, c, r) for q, c, r in zip(dataset.inputs(), dataset.contexts(), rows, strict=True)]
    model = OfflineExtractiveModel()

    async def run() -> float:
        start = time.perf_counter()
        for i in range(args.calls):
            await model.generate(messages[i % len(messages)], {})
        return time.perf_counter() - start

    times = [asyncio.run(run()) for _ in range(args.repeat)]
    median = statistics.median(times)
    print(f"evalkit:/extractive, {args.calls:,} calls: median {median:.2f} s over {args.repeat} runs "
          f"({args.calls / median:,.0f} calls/s); goal < {GOAL_SECONDS:g} s: {'met' if median < GOAL_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    main()
