"""One rate limit across the cluster: a named async actor hands out request slots in small blocks.

Slots are paced evenly, as the local limiter does (a burst that fits a bucket can still overflow a
provider's 60-second window). A worker asks for a block of slots (its next few requests' times)
rather than for each request, which costs a round trip per block instead of per request. A 429
from any worker pauses everyone for its Retry-After and shrinks the request rate (to at least a
tenth of the configured one); the rate grows back while no 429 comes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

# Pace a hair under the budget so rounding never lets one request too many into a window.
_SAFETY = 1.002
_SHRINK = 0.75  # the rate after a 429, as a share of the rate before
_FLOOR = 0.1  # the rate never shrinks below this share of the configured one
_RECOVER_EVERY = 5.0  # seconds without a 429 before the rate grows back by _GROW
_GROW = 1.1
_LATE = 0.05  # a slot missed by more than this is dropped, so late slots never bunch up


@dataclass(frozen=True)
class Grant:
    """Slots of one block, as delays in seconds from when the limiter answered."""

    request_delays: list[float]
    token_delay: float
    paused_for: float


class ClusterLimiter:
    """The actor (made remote by the executor). ``rpm``/``tpm`` are the evaluation's budgets."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self._start(rpm, tpm)

    async def reset(self, rpm: float | None, tpm: float | None) -> None:
        """Start afresh for a new evaluation (its budgets, no pause, no shrunk rate): the limiter
        of kept workers is kept too, so no evaluation waits for a new actor to start."""
        self._start(rpm, tpm)

    def _start(self, rpm: float | None, tpm: float | None) -> None:
        self.configured_rpm = rpm
        self.rpm = rpm
        self.tpm = tpm
        now = time.monotonic()
        self._next_request = now
        self._next_token = now
        self._paused_until = 0.0
        self._last_429 = 0.0
        self._grown_at = now
        self.pauses = 0

    async def grant(self, requests: int, tokens: float) -> Grant:
        now = time.monotonic()
        self._recover(now)
        start = max(now, self._paused_until)
        delays = [start - now] * requests
        if self.rpm:
            interval = 60.0 / self.rpm * _SAFETY
            at = max(self._next_request, start)
            delays = [at + i * interval - now for i in range(requests)]
            self._next_request = at + requests * interval
        token_delay = 0.0
        if self.tpm and tokens:
            interval = 60.0 / self.tpm * _SAFETY
            at = max(self._next_token, start - 1.0)  # a second's worth of burst, as locally
            self._next_token = at + tokens * interval
            token_delay = max(0.0, at - now)
        return Grant(delays, token_delay, max(0.0, self._paused_until - now))

    async def pause(self, seconds: float) -> None:
        """A 429: everyone waits ``seconds``, and the request rate shrinks."""
        now = time.monotonic()
        self.pauses += 1
        self._paused_until = max(self._paused_until, now + seconds)
        self._next_request = max(self._next_request, self._paused_until)
        self._last_429 = self._grown_at = now
        if self.rpm and self.configured_rpm:
            self.rpm = max(self.configured_rpm * _FLOOR, self.rpm * _SHRINK)

    async def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def state(self) -> dict[str, Any]:
        return {"rpm": self.rpm, "configured_rpm": self.configured_rpm, "tpm": self.tpm, "pauses": self.pauses}

    def _recover(self, now: float) -> None:
        if not (self.rpm and self.configured_rpm) or self.rpm >= self.configured_rpm:
            return
        while now - self._grown_at >= _RECOVER_EVERY and self.rpm < self.configured_rpm:
            self._grown_at += _RECOVER_EVERY
            self.rpm = min(self.configured_rpm, self.rpm * _GROW)


class ClusterRateLimits:
    """What a worker's caller uses instead of its local ``RateLimits``: slots from the limiter actor,
    fetched ``block`` at a time, and the shared pause after a 429."""

    def __init__(self, limiter: Any, block: int, tokens: bool, rpm: float | None) -> None:
        self._limiter = limiter
        # A block covers at most about half a second of the budget, so one worker never holds
        # slots that others could use for long.
        self.block = max(1, min(block, int(rpm / 60 / 2) if rpm else block))
        self.tokens = tokens  # the caller counts a request's tokens only when they are limited
        self._rated = rpm is not None or tokens
        self._slots: deque[float] = deque()
        self._token_credit = 0.0
        self._tokens_at = 0.0
        self._paused_until = 0.0
        self._checked_at = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Hold this worker's requests for ``seconds`` and tell the limiter, which holds everyone's."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        self._slots.clear()
        self._limiter.pause.remote(seconds)

    async def acquire(self, tokens: int) -> None:
        while True:
            # Another worker's 429 holds this one too, slots of a block it holds included.
            await self._learn_pause()
            while (wait := self._paused_until - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            if not self._rated:
                return
            async with self._lock:  # FIFO: this worker's requests take slots in arrival order
                at = await self._slot(tokens)
            if (wait := at - time.monotonic()) > 0:
                await asyncio.sleep(wait)
                await self._learn_pause()
            if self._paused_until <= time.monotonic():
                return  # else a pause came while waiting for the slot: wait it out, take a new one

    async def _slot(self, tokens: int) -> float:
        while True:
            now = time.monotonic()
            while self._slots and self._slots[0] < now - _LATE:
                self._slots.popleft()
            need_tokens = bool(self.tokens) and self._token_credit < tokens
            if self._slots and not need_tokens:
                self._token_credit -= tokens if self.tokens else 0
                return max(self._slots.popleft(), self._tokens_at)
            grant = await self._limiter.grant.remote(0 if self._slots else self.block,
                                                     tokens * self.block if need_tokens else 0)
            now = time.monotonic()
            self._slots.extend(now + delay for delay in grant.request_delays)
            if need_tokens:
                self._token_credit += tokens * self.block
                self._tokens_at = now + grant.token_delay
            self._paused_until = max(self._paused_until, now + grant.paused_for)

    async def _learn_pause(self) -> None:
        # At most every 0.2 s, whatever the request rate: a round trip per 0.2 s, not per request.
        now = time.monotonic()
        if now - self._checked_at >= 0.2:
            self._checked_at = now
            paused_for = await self._limiter.paused_for.remote()
            if paused_for > 0:
                self._slots.clear()  # slots granted before the pause are void
                self._paused_until = max(self._paused_until, time.monotonic() + paused_for)
