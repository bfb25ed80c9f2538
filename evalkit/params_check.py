"""Local checks on inference parameters, so an obvious mistake fails before any request."""

from __future__ import annotations

import json
import numbers
from typing import Any

from evalkit.errors import InvalidArgument

_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "seed")


def check_inference_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Return the params to send; every generation parameter is part of the cache key."""
    params = dict(params or {})
    for name, (low, high) in _RANGES.items():
        if name in params and params[name] is not None:
            value = params[name]
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
                raise InvalidArgument(f"inference param {name}={value!r} must be a number from {low:g} to {high:g}")
    for name in _POSITIVE_INTS:
        if name in params and params[name] is not None:
            value = params[name]
            if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and name != "seed"):
                raise InvalidArgument(f"inference param {name}={value!r} must be a positive integer")
    if params.get("stream"):
        raise InvalidArgument("inference param stream=True is not supported: evaluate() needs whole answers")
    if params.get("n", 1) != 1:
        raise InvalidArgument(f"inference param n={params['n']!r} is not supported: evaluate() scores one answer per row")
    for forbidden in ("model", "messages"):
        if forbidden in params:
            raise InvalidArgument(f"inference param {forbidden!r} is set by evaluate(); pass it through model= or prompt=")
    try:
        json.dumps(params)
    except TypeError as exc:
        raise InvalidArgument(f"inference params must be JSON values: {exc}") from None
    return {k: v for k, v in params.items() if v is not None}


def parse_rate_limit(rate_limit: Any) -> tuple[float | None, float | None]:
    """``600`` (requests per minute) or ``{"rpm": 600, "tpm": 90000}``."""
    if rate_limit is None:
        return None, None
    if isinstance(rate_limit, numbers.Real) and not isinstance(rate_limit, bool):
        if rate_limit <= 0:
            raise InvalidArgument(f"rate_limit must be positive (requests per minute), got {rate_limit!r}")
        return float(rate_limit), None
    if isinstance(rate_limit, dict) and set(rate_limit) <= {"rpm", "tpm"}:
        values = []
        for key in ("rpm", "tpm"):
            value = rate_limit.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0):
                raise InvalidArgument(f"rate_limit[{key!r}] must be a positive number, got {value!r}")
            values.append(float(value) if value is not None else None)
        return values[0], values[1]
    raise InvalidArgument(f"rate_limit must be requests per minute or {{'rpm': ..., 'tpm': ...}}, got {rate_limit!r}")
