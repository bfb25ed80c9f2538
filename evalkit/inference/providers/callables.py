"""Python functions as models: sync or async, called per row or (with ``batch``) per batch."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evalkit.errors import InvalidArgument, PermanentModelError
from evalkit.inference.providers.base import ModelResponse, Usage


@dataclass(frozen=True)
class RowCall:
    """What a callable model receives for one row."""

    input: str
    contexts: list[str]
    row: dict[str, Any]
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class batch:  # noqa: N801 - used like a decorator: model=ek.batch(fn, size=32)
    """Mark ``fn`` as a batch model: it takes a list of inputs and returns a list of outputs.

    >>> evaluate(model=batch(my_pipeline, size=32), data=df)
    """

    fn: Callable[..., Any]
    size: int = 32

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise InvalidArgument(f"batch() takes a callable, got {type(self.fn).__name__}")
        if not isinstance(self.size, int) or self.size < 1:
            raise InvalidArgument(f"batch size must be a positive integer, got {self.size!r}")


def callable_uri(fn: Callable[..., Any]) -> str:
    """A stable name for a function: ``python:/module.qualname``."""
    target = fn.fn if isinstance(fn, batch) else fn
    module = getattr(target, "__module__", None) or "unknown"
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"python:/{module}.{name}"


def _accepted(fn: Callable[..., Any]) -> set[str]:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return set()
    return {name for name, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def to_response(value: Any, where: str) -> ModelResponse:
    """A function may return a string, a ModelResponse, or a dict with "text" (and "usage")."""
    if isinstance(value, ModelResponse):
        return value
    if isinstance(value, str):
        return ModelResponse(text=value)
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        usage = value.get("usage")
        if isinstance(usage, dict):
            usage = Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)),
                          int(usage.get("cached_input_tokens", 0)))
        return ModelResponse(text=value["text"], usage=usage if isinstance(usage, Usage) else None)
    raise PermanentModelError(f"{where} returned {type(value).__name__}; return a str, a dict with 'text', or a ModelResponse")


class CallableModel:
    """Calls a user function once per row: ``fn(input)``, and also ``contexts=``, ``row=`` or
    ``messages=`` when its signature asks for them. Sync functions run in a worker thread."""

    base_url = None

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.uri = callable_uri(fn)
        self._kwargs = _accepted(fn) & {"contexts", "row", "messages"}
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))

    async def call(self, request: RowCall) -> ModelResponse:
        kwargs = {name: getattr(request, name) for name in self._kwargs}
        if self._is_async:
            value = await self.fn(request.input, **kwargs)
        else:
            value = await asyncio.to_thread(self.fn, request.input, **kwargs)
        return to_response(value, self.uri)

    async def aclose(self) -> None:
        return None


class BatchCallableModel:
    """Calls a user function with a list of inputs and expects a list of the same length back."""

    base_url = None

    def __init__(self, spec: batch) -> None:
        self.fn = spec.fn
        self.size = spec.size
        self.uri = callable_uri(spec)
        self._is_async = inspect.iscoroutinefunction(spec.fn)

    async def call_batch(self, inputs: list[str]) -> list[ModelResponse]:
        if self._is_async:
            values = await self.fn(inputs)
        else:
            values = await asyncio.to_thread(self.fn, inputs)
        values = list(values)
        if len(values) != len(inputs):
            raise PermanentModelError(f"{self.uri} returned {len(values)} outputs for a batch of {len(inputs)} inputs")
        return [to_response(v, self.uri) for v in values]

    async def aclose(self) -> None:
        return None
