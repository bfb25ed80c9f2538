"""Per-row records the runner produces and the results table is built from."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from evalkit.inference.providers.base import Message, Usage


class RowStatus(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"  # the model call failed after its retries: counted in error_count
    SKIPPED = "skipped"  # never sent: the run stopped first (max_cost_usd); resume runs it


@dataclass(frozen=True)
class RowJob:
    """One row to answer: its position, the chat messages, and what callables receive."""

    index: int
    messages: list[Message]
    input: str
    contexts: list[str] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)


@dataclass
class RowOutcome:
    """What happened to one row.

    ``latency_s`` is the successful model call alone; ``total_latency_s`` adds retries, backoff
    and queueing. A cached row keeps its original call's latency and cost and has ``cached``.
    """

    index: int
    status: RowStatus
    output: str | None = None
    error: str | None = None
    error_type: str | None = None  # "transient" (retries ran out), "permanent", "exception", "budget"
    latency_s: float | None = None
    total_latency_s: float | None = None
    attempts: int = 0
    cached: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    usage_estimated: bool = False
    cost_usd: float | None = None
    model_snapshot: str | None = None

    @property
    def usage(self) -> Usage | None:
        if self.input_tokens is None:
            return None
        return Usage(self.input_tokens, self.output_tokens or 0, self.cached_input_tokens or 0, self.usage_estimated)

    def to_json(self) -> dict[str, Any]:
        # Every field is a flat value, so a shallow copy does what asdict's deep copy would, cheaply.
        return {**vars(self), "status": self.status.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RowOutcome:
        return cls(**{**data, "status": RowStatus(data["status"])})
