"""Callbacks run just before a run ends, while it still accepts writes.

Autologging buffers what it records (rows of a calls table, aggregates) and writes it in batches;
a run-end callback lets it write the last batch into the run before the run is closed, whoever
ends it (``with ek.start_run()``, ``ek.end_run()``, ``TrackingClient.set_terminated``, exit).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

RunEndHook = Callable[[str], None]
"""Called with the id of the run about to end."""

_log = logging.getLogger(__name__)
_hooks: list[RunEndHook] = []
_lock = threading.Lock()


def add_run_end_hook(hook: RunEndHook) -> None:
    """Call ``hook(run_id)`` before every run ends; adding the same hook twice keeps one."""
    with _lock:
        if hook not in _hooks:
            _hooks.append(hook)


def remove_run_end_hook(hook: RunEndHook) -> None:
    """Stop calling ``hook``; a hook that was never added is ignored."""
    with _lock:
        if hook in _hooks:
            _hooks.remove(hook)


def run_ending(run_id: str) -> None:
    """Call every hook for ``run_id``. A failing hook is logged and never stops the run from
    ending: the user's run matters more than what a hook wanted to add to it."""
    with _lock:
        hooks = list(_hooks)
    for hook in hooks:
        try:
            hook(run_id)
        except Exception:  # noqa: BLE001 - see the docstring
            _log.warning("evalkit: a run-end hook failed for run %s", run_id, exc_info=True)
