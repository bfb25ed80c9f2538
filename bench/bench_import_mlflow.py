"""``evalkit import-mlflow`` speed: an MLflow SQLite store of 10,000 runs with 100 metric steps each.

Run: ``.venv/bin/python bench/bench_import_mlflow.py --mlflow-python /path/to/mlflow-venv/bin/python
[--runs 10000] [--steps 100]``. MLflow (in its own virtualenv, as in tests/mlflow_venv.py) creates
the empty database with its own schema; the rows are then written straight into its tables (MLflow's
client would take far longer to log a million values than the import takes to copy them). The store
is built once and kept in ``/tmp/evalkit-bench-mlflow-store-<runs>x<steps>`` for the next runs. Each run
has 5 params, 3 tags and one metric with ``--steps`` values. The figure is the wall time of the
import into a fresh evalkit SQLite store, and rows (params + tags + metric values) per second.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from click.testing import CliRunner

from evalkit.cli.main import cli

T0 = 1_700_000_000_000
CREATE_SCHEMA = "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()"


def build_source(folder: Path, mlflow_python: str, runs: int, steps: int) -> tuple[str, int]:
    """The MLflow store's URI and how many rows it holds."""
    database = folder / "mlflow.db"
    uri = f"sqlite:///{database}"
    subprocess.run([mlflow_python, "-c", CREATE_SCHEMA, uri], check=True, capture_output=True)
    conn = sqlite3.connect(database)
    conn.execute("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time, "
                 "workspace) VALUES ('bench', ?, 'active', ?, ?, 'default')", (str(folder / "art"), T0, T0))
    experiment_id = conn.execute("SELECT experiment_id FROM experiments WHERE name = 'bench'").fetchone()[0]
    rows = 0
    for i in range(runs):
        run_id = uuid.uuid4().hex
        conn.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
            "VALUES (?, ?, 'LOCAL', '', '', 'bench', 'FINISHED', ?, ?, '', 'active', ?, ?)",
            (run_id, f"run-{i}", T0 + i, T0 + i + 1000, str(folder / "art" / run_id / "artifacts"), experiment_id))
        conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                         [(f"p{k}", str(i % (k + 2)), run_id) for k in range(5)])
        conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                         [("mlflow.runName", f"run-{i}", run_id), ("mlflow.user", "bench", run_id),
                          ("team", "search", run_id)])
        conn.executemany(
            "INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES ('loss', ?, ?, ?, 0, ?)",
            [(1.0 / (s + 1), T0 + s, s, run_id) for s in range(steps)])
        rows += 5 + 3 + steps
    conn.commit()
    conn.close()
    return uri, rows


def cached_source(mlflow_python: str, runs: int, steps: int) -> tuple[str, int]:
    """The MLflow store of ``runs`` x ``steps``, built once and kept under /tmp (it takes minutes at 10,000 runs)."""
    folder = Path(tempfile.gettempdir()) / f"evalkit-bench-mlflow-store-{runs}x{steps}"
    ready = folder / "rows"
    if ready.is_file():
        print(f"MLflow store: reusing {folder}")
        return f"sqlite:///{folder / 'mlflow.db'}", int(ready.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    uri, rows = build_source(folder, mlflow_python, runs, steps)
    ready.write_text(str(rows))
    print(f"MLflow store built in {time.perf_counter() - start:.1f} s at {folder}")
    return uri, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlflow-python", required=True, help="the Python of a virtualenv with mlflow")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    source, rows = cached_source(args.mlflow_python, args.runs, args.steps)
    print(f"MLflow store: {args.runs:,} runs x {args.steps} steps, {rows:,} rows (params + tags + metric values)")
    with tempfile.TemporaryDirectory(prefix="bench-import-mlflow-") as tmp:
        folder = Path(tmp)
        target = f"sqlite:///{folder}/evalkit.db"
        start = time.perf_counter()
        result = CliRunner().invoke(cli, ["--tracking-uri", target, "import-mlflow", source, "-q"],
                                    catch_exceptions=False)
        seconds = time.perf_counter() - start
        assert result.exit_code == 0, result.output
        assert f"runs: {args.runs} copied" in result.output, result.output
        print(f"import: {seconds:.1f} s, {args.runs / seconds:,.0f} runs/s, {rows / seconds:,.0f} rows/s")
        start = time.perf_counter()
        again = CliRunner().invoke(cli, ["--tracking-uri", target, "import-mlflow", source, "-q"],
                                   catch_exceptions=False)
        assert f"{args.runs} already imported" in again.output, again.output
        print(f"second import (nothing to copy): {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
