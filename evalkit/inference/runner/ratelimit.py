"""Request and token budgets per minute, enforced by pacing.

Requests are spaced evenly rather than let through in bursts: a burst that fits a token
bucket can still overflow a provider's strict 60-second window and earn a 429. A small burst
allowance (``burst_seconds``) lets idle time be caught up a little. A server's Retry-After
pauses every request, not only the one that was refused.
"""

from __future__ import annotations

import asyncio
import time

# Pace a hair under the budget so rounding never lets one request too many into a window.
_SAFETY = 1.002


class PacingLimiter:
    """Lets ``rate_per_minute`` units through per minute (requests, or tokens with ``amount``)."""

    def __init__(self, rate_per_minute: float, burst_seconds: float = 0.0) -> None:
        if rate_per_minute <= 0:
            raise ValueError(f"rate must be positive, got {rate_per_minute}")
        self.interval = 60.0 / rate_per_minute * _SAFETY
        self.burst = burst_seconds
        self._next = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        async with self._lock:  # FIFO: waiters are served in arrival order
            now = time.monotonic()
            start = max(self._next, now - self.burst)
            self._next = start + amount * self.interval
            wait = start - now
        if wait > 0:
            await asyncio.sleep(wait)


class RateLimits:
    """The run's request and token budgets plus a shared cool-down after a 429."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.requests = PacingLimiter(rpm) if rpm else None
        # Token budgets allow a second's worth of burst: token counts are estimates anyway.
        self.tokens = PacingLimiter(tpm, burst_seconds=1.0) if tpm else None
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` (the server's Retry-After)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self, tokens: int) -> None:
        while (wait := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        if self.requests is not None:
            await self.requests.acquire()
        if self.tokens is not None:
            await self.tokens.acquire(tokens)
