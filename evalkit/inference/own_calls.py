"""Marks the model calls evalkit makes itself (the evaluated model, judges, embeddings), so that
autologging, which patches the same openai client, does not count them a second time: evaluate()
already records their tokens, latency and cost in its own run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_own_call: ContextVar[bool] = ContextVar("evalkit_own_call", default=False)


@contextmanager
def own_call() -> Iterator[None]:
    """Inside this block (and in tasks started from it), calls are evalkit's own."""
    token = _own_call.set(True)
    try:
        yield
    finally:
        _own_call.reset(token)


def is_own_call() -> bool:
    """True while evalkit itself is calling a model."""
    return _own_call.get()
