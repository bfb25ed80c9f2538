"""Start-up cost: ``python -c "import evalkit"`` and ``evalkit --help``, each a fresh process
(the median of ``--repeat``). Goal: under 0.3 s each, so that scripts, notebooks and shell
completion do not wait for the data and SQL stacks they may not use.

Run: ``.venv/bin/python bench/bench_import.py [--repeat 7]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_SECONDS = 0.3


def timed(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    evalkit_cli = str(Path(sys.executable).with_name("evalkit"))
    for label, command in (("python -c 'import evalkit'", [sys.executable, "-c", "import evalkit"]),
                           ("evalkit --help", [evalkit_cli, "--help"]),
                           ("python -c 'pass' (the interpreter alone)", [sys.executable, "-c", "pass"])):
        seconds = timed(command, args.repeat)
        verdict = "" if "alone" in label else f"   goal < {GOAL_SECONDS} s: {'met' if seconds < GOAL_SECONDS else 'NOT met'}"
        print(f"{label:45s} {seconds:.3f} s{verdict}")


if __name__ == "__main__":
    main()
