"""Test doubles for evalkit's tests and benchmarks, such as a fake OpenAI-compatible server,
and ``assert_eval`` for checking an evaluation's metrics in a pytest test."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalkit.testing.assertions import assert_eval

__all__ = ["assert_eval"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the fake servers start as `python -m evalkit.testing.fake_openai`
    # and the pytest plugin lives here too; neither needs the suite and gates modules.
    if name == "assert_eval":
        from evalkit.testing.assertions import assert_eval

        return assert_eval
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
