"""What every model provider speaks: chat messages in, a ``ModelResponse`` out.

Providers turn their own failures into ``TransientModelError`` (worth retrying: rate limits,
5xx, timeouts, dropped connections) or ``PermanentModelError`` (retrying cannot help: unknown
model, bad parameters, missing key). The runner retries only the first kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@dataclass(frozen=True)
class Usage:
    """Tokens of one call. ``estimated`` is True when counted with tiktoken because the
    endpoint reported no usage."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ModelResponse:
    """One answer. ``usage`` is None when the endpoint reported none (the runner estimates it);
    ``model_snapshot`` is the exact model the API says answered, e.g. ``gpt-4o-2024-08-06``."""

    text: str
    usage: Usage | None = None
    model_snapshot: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ChatModel(Protocol):
    """A model the runner can call. ``uri`` is canonical and identifies the model in cache keys
    and params; ``base_url`` is the endpoint (None for in-process models)."""

    uri: str
    base_url: str | None

    async def generate(self, messages: list[Message], params: dict[str, Any]) -> ModelResponse: ...

    async def aclose(self) -> None: ...
