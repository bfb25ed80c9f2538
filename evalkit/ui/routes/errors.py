"""UI pages answer an evalkit error (unknown run, bad argument, no permission) with a page
saying so and the error's HTTP status, never a stack trace."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.responses import Response

from evalkit.errors import EvalkitError
from evalkit.ui.context import render


def page(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap a page handler (it takes ``request`` by name) so evalkit errors render as pages.
    Handlers are plain functions: FastAPI runs them in its thread pool, off the event loop,
    since every store call blocks."""
    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Response:
        try:
            return handler(*args, **kwargs)
        except EvalkitError as exc:
            request: Request = kwargs["request"]
            return render(request, "error.html", status_code=exc.http_status, error=exc)
    return wrapped
