"""``run_sync``: run a coroutine (a batch of model calls) to completion from synchronous code.

``evaluate()`` and a loaded model's ``predict()`` are synchronous functions that make their
model calls concurrently on an event loop; both go through here, so both work in a script and
in a notebook, whose event loop is already running.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result (or its exception), also when called inside a running event loop
    (a notebook): then it runs on a new loop in a thread that sees the caller's context
    variables (the active run)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_in_new_loop(coroutine)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = _run_in_new_loop(coroutine)
        except BaseException as exc:  # handed back to the caller's thread below
            result["error"] = exc

    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), name="evalkit-run-sync")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _run_in_new_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    # uvloop's event loop costs far less CPU per request than asyncio's, which is what limits
    # throughput at high concurrency; a Runner with a loop factory leaves the global policy alone.
    try:
        import uvloop
    except ImportError:  # not built for this platform (Windows): asyncio's own loop works too
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
