"""Mutants per module and outcome after ``make mutate`` (read from mutmut's ``mutants/**.meta``).

Only mutants that were run count (``make mutate`` runs the store's write path, not the whole
file); every survivor and every mutant no test reached is listed by name, to look at with
``.venv/bin/mutmut show NAME``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

# mutmut's exit codes (mutmut/stats.py), grouped.
_STATUS = {1: "killed", 3: "killed", 0: "survived", 33: "no tests", 5: "no tests", 34: "skipped", 36: "timeout",
           -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", 37: "type check"}


def main(root: Path = Path("mutants")) -> int:
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print(f"no mutmut results under {root}/: run `make mutate` first", file=sys.stderr)
        return 2
    survivors: list[str] = []
    print(f"{'module':38} {'run':>5} {'killed':>7} {'survived':>9} {'no tests':>9} {'timeout':>8} {'other':>6}")
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        ran = {name: code for name, code in codes.items() if code is not None}
        if not ran:
            continue
        counts = Counter(_STATUS.get(code, "other") for code in ran.values())
        module = str(meta.relative_to(root)).removesuffix(".py.meta").replace("/", ".")
        print(f"{module:38} {len(ran):5} {counts['killed']:7} {counts['survived']:9} {counts['no tests']:9} "
              f"{counts['timeout']:8} {len(ran) - sum(counts[k] for k in ('killed', 'survived', 'no tests', 'timeout')):6}")
        survivors += [f"{_STATUS.get(code, 'other'):9} {name}" for name, code in sorted(ran.items())
                      if _STATUS.get(code) in ("survived", "no tests")]
    if survivors:
        print("\nnot killed:")
        print("\n".join(survivors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
