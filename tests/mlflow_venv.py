"""The MLflow virtualenv the tests drive MLflow's own client from (mlflow is no evalkit dependency).

``mlflow_python()`` returns the Python of ``.mlflow-venv`` at the repository's root, creating it
when missing (``python -m venv`` + ``pip install`` of ``PACKAGES``; about a minute with a
warm pip cache). ``$EVALKIT_MLFLOW_PYTHON`` names another interpreter that has mlflow instead.
CI can create it ahead of the tests with ``python tests/mlflow_venv.py``, which prints its path.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

MLFLOW_VERSION = "3.17.2"
# psycopg lets MLflow's client build a store on the tests' PostgreSQL (postgresql+psycopg://)
PACKAGES = [f"mlflow=={MLFLOW_VERSION}", "psycopg[binary]==3.3.9"]
ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".mlflow-venv"


def mlflow_python() -> Path:
    """The Python of a virtualenv with mlflow installed, created on first use (safe when several
    test processes ask at once). Raises ``RuntimeError`` saying why when it cannot be created."""
    override = os.environ.get("EVALKIT_MLFLOW_PYTHON")
    if override:
        return Path(override)
    python = VENV / "bin" / "python"
    ready = VENV / f".installed-{hashlib.sha256(' '.join(PACKAGES).encode()).hexdigest()[:12]}"
    with open(ROOT / ".mlflow-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            _run([sys.executable, "-m", "venv", "--clear", str(VENV)])
            _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  *PACKAGES])
            ready.touch()
    return python


def mlflow_python_for_tests() -> Path:
    """``mlflow_python()`` for a test: skips it when the virtualenv cannot be made, except with
    ``EVALKIT_REQUIRE_MLFLOW=1`` (CI), where the test fails instead."""
    import pytest

    try:
        python = mlflow_python()
        if not python.exists():
            raise RuntimeError(f"{python} does not exist")
        return python
    except (RuntimeError, OSError) as exc:
        if os.environ.get("EVALKIT_REQUIRE_MLFLOW") == "1":
            pytest.fail(f"EVALKIT_REQUIRE_MLFLOW=1 but the MLflow virtualenv cannot be created: {exc}")
        pytest.skip(f"no MLflow virtualenv (python tests/mlflow_venv.py creates it): {exc}")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


if __name__ == "__main__":
    print(mlflow_python())
