"""Local checks on inference parameters, so an obvious mistake fails before any request."""

from __future__ import annotations

import difflib
import functools
import json
import numbers
from typing import Any

from evalkit.errors import InvalidArgument
from evalkit.redaction import MASK

_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "seed")


# Options of the official client rather than fields of the request: ``extra_body`` carries a
# server's own parameters (vLLM's ``top_k``, say), ``extra_headers`` a gateway's headers.
CLIENT_OPTIONS = ("extra_body", "extra_headers")


@functools.cache
def chat_api_params() -> frozenset[str]:
    """The request fields the OpenAI chat completions API accepts, read from the official client
    installed here, so the list follows the API as the SDK does."""
    from openai.types.chat.completion_create_params import CompletionCreateParamsBase

    fields = CompletionCreateParamsBase.__required_keys__ | CompletionCreateParamsBase.__optional_keys__
    return frozenset(fields | {"stream"})


def check_inference_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Return the params to send; every generation parameter is part of the cache key.

    Names are checked against the chat API's own (a typo is refused with a suggestion); a
    server's own parameters go in ``extra_body={...}``, extra request headers in
    ``extra_headers={...}`` (their values are treated as secrets: never logged, never cached on).
    """
    if params is not None and not isinstance(params, dict):
        raise InvalidArgument(f"inference params must be a dict of name: value, got {type(params).__name__}")
    params = dict(params or {})
    known = chat_api_params() | set(CLIENT_OPTIONS)
    for name in params:
        if name not in known:
            close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.75)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InvalidArgument(
                f"unknown inference param {name!r}: {hint}the OpenAI chat API does not take it. "
                "Put a server's own parameters in extra_body={...}"
            )
    for option in CLIENT_OPTIONS:
        value = params.get(option)
        if value is not None and (not isinstance(value, dict) or not all(isinstance(k, str) for k in value)):
            raise InvalidArgument(f"inference param {option} must be a dict with string keys, got {value!r}")
    headers = params.get("extra_headers") or {}
    if not all(isinstance(v, str) for v in headers.values()):
        raise InvalidArgument("inference param extra_headers must map header names to strings")
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


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as they may be logged, compared on resume and used in cache keys: the values of
    extra headers (credentials, often) are masked."""
    headers = params.get("extra_headers")
    if not headers:
        return params
    return {**params, "extra_headers": {name: MASK for name in sorted(headers)}}


def header_secrets(params: dict[str, Any]) -> list[str]:
    """The values of the extra headers, to be redacted from any text."""
    return [v for v in (params.get("extra_headers") or {}).values() if isinstance(v, str)]


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
