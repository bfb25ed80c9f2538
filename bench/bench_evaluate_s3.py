"""evaluate() with artifacts on S3 against artifacts on local disk: 2,000 rows of given predictions,
the default offline evaluators and the report, the same store (SQLite) either way; moto's
``moto_server`` in its own process stands in for S3. Prints each wall time (median of ``--repeat``)
and their ratio (goal: under 1.2x).

Run: ``.venv/bin/python bench/bench_evaluate_s3.py [--rows 2000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import pandas as pd
from bench_artifacts import start_moto

import evalkit as ek

GOAL = 1.2


def rows(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "inputs": [f"Which aisle holds lamp {i}?" for i in range(n)],
        "contexts": [[f"Lamp {i} sits in aisle {i % 17}.", f"Lamp {i} costs {i % 50} euros."] for i in range(n)],
        "ground_truth": [f"Lamp {i} is in aisle {i % 17}." for i in range(n)],
        "answer": [f"It is in aisle {i % 17}." for i in range(n)],
    })


def timed_evaluation(root: str, data: pd.DataFrame, folder: Path) -> float:
    os.environ["EVALKIT_ARTIFACT_ROOT"] = root
    ek.set_tracking_uri(str(folder / f"{uuid.uuid4().hex}.db"))  # a new store: the root applies to it
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ek.evaluate(data=data, predictions="answer", targets="ground_truth", model_type="retrieval-augmented",
                    progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import boto3

    data = rows(args.rows)
    server, endpoint = start_moto()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL_S3": endpoint, "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        with tempfile.TemporaryDirectory(prefix="evalkit-bench-") as tmp:
            folder = Path(tmp)
            timed_evaluation(str(folder / "warm"), data.head(50), folder)  # load the models once
            local, s3 = [], []
            for _ in range(args.repeat):  # alternated, so drift in the machine's load hits both
                local.append(timed_evaluation(str(folder / "artifacts"), data, folder))
                s3.append(timed_evaluation(f"s3://{bucket}/evalkit", data, folder))
    finally:
        server.terminate()
        server.wait(timeout=10)
    ratio = statistics.median(s3) / statistics.median(local)
    print(f"evaluate(), {args.rows:,} rows of predictions, offline defaults and the report (median of {args.repeat}):")
    print(f"  artifacts on local disk: {statistics.median(local):.2f} s  ({', '.join(f'{t:.2f}' for t in local)})")
    print(f"  artifacts on S3 (moto):  {statistics.median(s3):.2f} s  ({', '.join(f'{t:.2f}' for t in s3)})")
    print(f"  ratio {ratio:.2f}x; goal < {GOAL}x: {'met' if ratio < GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
