"""``make demo``: a real evaluation, offline, on the bundled RAG dataset.

The embedded extractive model (``evalkit:/extractive``) answers each question from its retrieved
passages; the default evaluators score the answers with their offline methods (no judge is
configured), evalkit logs the run into the embedded store (./evalkit.db) and prints the metrics
and the run id. No key and no network are needed.
"""

from __future__ import annotations

from pathlib import Path

import evalkit as ek
from evalkit.cli.output import print_table

DATASET = Path(__file__).resolve().parent.parent / "datasets" / "rag_qa.jsonl"
SHOWN = ("rows/total", "rows/answered", "error_count", "error_rate",
         "exact_match/v1/mean", "token_f1/v1/mean", "answer_correctness/f1sim-v1/mean",
         "faithfulness/kprecision-v1/mean", "faithfulness/kprecision-v1/rows_scored",
         "faithfulness/kprecision-v1/rows_not_applicable", "answer_relevancy/offline-v1/mean",
         "context_precision/offline-v1/mean", "context_recall/offline-v1/mean",
         "toxicity/offline-v1/mean", "toxicity/offline-v1/ratio",
         "latency/p50_ms", "latency/p95_ms", "latency/p99_ms", "tokens/input", "tokens/output", "cost/total_usd")


def main() -> None:
    result = ek.evaluate(
        model="evalkit:/extractive",
        data=DATASET,
        targets="ground_truth",
        model_type="retrieval-augmented",  # adds answer relevancy and the retrieval metrics
        experiment="evalkit-demo",
        run_name="extractive-baseline",
        cache="off",  # the embedded model is free and fast: fresh latency figures on every demo
    )
    print_table(f"evalkit:/extractive on {DATASET.name}", ["metric", "value"],
                [(name, result.metrics[name]) for name in SHOWN if name in result.metrics])
    run = ek.get_run(result.run_id)
    print(f"tracking store: {ek.get_tracking_uri()}")
    print(f"run id:         {result.run_id}")
    print(f"results table:  {result.artifacts['json']}")
    print(f"report:         {result.artifacts.get('report', '(no report renderer installed)')}")
    print(f"next:           .venv/bin/evalkit runs show {run.info.run_id}")


if __name__ == "__main__":
    main()
