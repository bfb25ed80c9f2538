"""The clock every tracking store and the fluent API share: milliseconds since the epoch."""

from __future__ import annotations

import time


def now_ms() -> int:
    """The current time in milliseconds since the epoch (the unit of every stored timestamp)."""
    return time.time_ns() // 1_000_000
