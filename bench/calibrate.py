"""How fast this machine is right now: the CPU time of a fixed pure-Python loop (best of 3).

Shared machines change speed from hour to hour (on the 2-core machine the figures in the README
were measured on, from 205 ms to 435 ms); run this before and after a benchmark and give its
figure with the benchmark's, so that figures measured at different times can be compared.

Run: ``python bench/calibrate.py``
"""

from __future__ import annotations

import time


def loop() -> int:
    total = 0
    for i in range(3_000_000):
        total += i * i % 7
    return total


def main() -> None:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        loop()
        best = min(best, time.process_time() - start)
    print(f"calibration loop: {best * 1000:.0f} ms of CPU (best of 3)")


if __name__ == "__main__":
    main()
