"""Speed of the offline default evaluators over synthetic RAG rows with the answers given.

Builds 10,000 rows (question, answer, target, 3 contexts of ~40 words), then times each
evaluator's ``score`` + ``aggregate`` under ``asyncio.run`` (the median of ``--repeat`` runs, as
other work on the machine adds noise). The embedding model's one-off load is timed on its own
line and counted in the total. For comparison: MLflow's
``evaluate(model_type="question-answering")`` took 4.4 s for 200 rows.

Run: ``.venv/bin/python bench/bench_offline_evaluators.py [--rows 10000] [--repeat 5] [--seed 0]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from evalkit.evaluators import embeddings
from evalkit.evaluators.answer_correctness_offline import OfflineAnswerCorrectness
from evalkit.evaluators.exact_match import ExactMatch
from evalkit.evaluators.faithfulness_offline import OfflineFaithfulness
from evalkit.evaluators.token_f1 import TokenF1

from evalkit.evaluation.scoring import EvalRow, Evaluator, ScoringContext

MLFLOW_QA_SECONDS, MLFLOW_QA_ROWS = 4.4, 200
GOAL_SECONDS = 3.0

FUNCTION_WORDS = "the a an of in on at to for with by from and or but is was are were it this that which as".split()
CONTENT_WORDS = """
    river capital city population century museum bridge tower station harbour island mountain
    valley forest lake coast border province county village market church castle palace garden
    university library hospital airport railway highway canal factory mine farm vineyard
    king queen emperor president minister general bishop scientist painter writer composer
    engineer architect explorer merchant soldier farmer teacher doctor lawyer judge
    built founded discovered invented wrote painted designed ruled conquered signed opened
    closed destroyed restored moved elected appointed born died married crowned defeated
    ancient medieval modern royal national northern southern eastern western central
    famous large small old new first last second third largest oldest highest longest
    war treaty battle empire kingdom republic revolution election parliament constitution
    gold silver iron copper coal salt wheat wine wool cotton silk tea coffee sugar
    eighteen nineteen twenty hundred thousand million 1066 1492 1789 1815 1914 1945 2001
    Paris London Rome Berlin Madrid Vienna Prague Lisbon Dublin Athens Cairo Delhi Tokyo
    """.split()


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(CONTENT_WORDS) if rng.random() < 0.6 else rng.choice(FUNCTION_WORDS)
                    for _ in range(count))


def synthetic_rows(count: int, seed: int) -> list[EvalRow]:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        contexts = [words(rng, rng.randint(35, 45)) + "." for _ in range(3)]
        target = words(rng, rng.randint(2, 8))
        # A mix of exact, partly right and unrelated answers, as a real run has.
        kind = rng.random()
        if kind < 0.3:
            output = target.capitalize() + "."
        elif kind < 0.7:
            output = f"The answer is {target}, {words(rng, rng.randint(4, 12))}."
        else:
            output = words(rng, rng.randint(5, 20)) + "."
        rows.append(EvalRow(index, f"What about {words(rng, 6)}?", output, target, contexts))
    return rows


def timed(evaluator: Evaluator, rows: list[EvalRow], repeat: int) -> tuple[float, dict[str, float]]:
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        aggregates = evaluator.aggregate(asyncio.run(evaluator.score(rows, ScoringContext())))
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), aggregates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = synthetic_rows(args.rows, args.seed)

    start = time.perf_counter()
    embeddings.model()
    figures = [("embedding model load (once per process)", time.perf_counter() - start, None)]
    for evaluator in (ExactMatch(), TokenF1(), OfflineFaithfulness(), OfflineAnswerCorrectness()):
        seconds, aggregates = timed(evaluator, rows, args.repeat)
        figures.append((f"{evaluator.name}/{evaluator.version}", seconds, aggregates.get("mean")))
    total = sum(seconds for _, seconds, _ in figures)

    print(f"offline evaluators, {args.rows:,} rows (score + aggregate, median of {args.repeat})")
    print(f"{'evaluator':<42}{'seconds':>9}{'rows/s':>11}{'mean':>8}")
    for label, seconds, mean in figures:
        rate = f"{args.rows / seconds:>11,.0f}" if mean is not None else f"{'':>11}"
        print(f"{label:<42}{seconds:>9.3f}{rate}{'' if mean is None else f'{mean:>8.3f}'}")
    print(f"{'total':<42}{total:>9.3f}{args.rows / total:>11,.0f}   goal < {GOAL_SECONDS:.0f} s")
    print(f"{f'MLflow question-answering, {MLFLOW_QA_ROWS} rows':<42}{MLFLOW_QA_SECONDS:>9.3f}"
          f"{MLFLOW_QA_ROWS / MLFLOW_QA_SECONDS:>11,.0f}")


if __name__ == "__main__":
    main()
