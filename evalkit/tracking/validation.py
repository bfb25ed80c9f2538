"""Checks on keys and values, done before anything is written so no store is left half-written."""

from __future__ import annotations

import math
import numbers
import re
import unicodedata

from evalkit.entities import Metric, Param, RunTag
from evalkit.errors import InvalidArgument

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
# ASCII only: keys are written unquoted in search filters and suite gate expressions, and one
# spelling per key (no é that is e + combining accent in one run and a single character in another).
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-./ ]+$")


def validate_key(kind: str, key: object) -> str:
    """Return ``key`` if it is a usable metric/param/tag key, else raise naming the problem."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"{kind} key must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument(f"{kind} key {key[:40]!r}... is {len(key)} characters; the limit is {MAX_KEY_LENGTH}")
    if not _KEY_PATTERN.match(key):
        bad = sorted({c for c in key if not _KEY_PATTERN.match(c)})
        ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
        ascii_key = "".join(c if _KEY_PATTERN.match(c) else "_" for c in ascii_key)
        suggestion = f"; e.g. {ascii_key!r}" if any(c.isalnum() for c in ascii_key) else ""
        raise InvalidArgument(
            f"{kind} key {key!r} contains {''.join(bad)!r}: keys may hold only the ASCII letters A-Z and a-z, "
            f"the digits 0-9, '_', '-', '.', '/' and space{suggestion}"
        )
    return key


def validate_metric_value(key: str, value: object) -> float:
    """Return ``value`` as a float.

    NaN and +/-infinity are accepted and stored as they are: a diverging loss is a fact worth
    keeping, and refusing it would kill the user's job mid-run. NaN never matches a search
    comparison and sorts last. Anything that is not a real number is refused.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(
            f"metric {key!r} must be a real number, got {type(value).__name__} {value!r}"
        )
    return float(value)


def is_nan(value: float) -> bool:
    return math.isnan(value)


def validate_step(key: str, step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidArgument(f"step of metric {key!r} must be an integer, got {step!r}")
    return int(step)


def validate_timestamp(key: str, timestamp: object) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Integral) or timestamp < 0:
        raise InvalidArgument(
            f"timestamp of metric {key!r} must be a non-negative integer (milliseconds since the epoch), "
            f"got {timestamp!r}"
        )
    return int(timestamp)


def stringify(kind: str, key: str, value: object, limit: int) -> str:
    """Params and tags are stored as text; refuse values too long to store whole."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise InvalidArgument(f"{kind} {key!r} value is {len(text)} characters; the limit is {limit}")
    return text


def validate_experiment_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"experiment name must be a non-empty string, got {name!r}")
    return name


def checked_metric(metric: Metric) -> Metric:
    """``metric`` with its value a float and its step and timestamp ints, or InvalidArgument."""
    key = validate_key("metric", metric.key)
    value, step, timestamp = metric.value, metric.step, metric.timestamp
    if type(value) is float and type(step) is int and type(timestamp) is int and timestamp >= 0:
        return metric  # already in stored form: the common case, and the hot path of a logging loop
    value = validate_metric_value(key, value)
    step = validate_step(key, step)
    return Metric(key, value, validate_timestamp(key, timestamp), step)


def checked_param(param: Param) -> Param:
    """``param`` with its value as the text that is stored, or InvalidArgument."""
    key = validate_key("param", param.key)
    return Param(key, stringify("param", key, param.value, MAX_PARAM_VALUE_LENGTH))


def checked_tag(tag: RunTag) -> RunTag:
    """``tag`` with its value as the text that is stored, or InvalidArgument."""
    key = validate_key("tag", tag.key)
    return RunTag(key, stringify("tag", key, tag.value, MAX_TAG_VALUE_LENGTH))


def param_change_error(run_id: str, key: str, previous: str, value: str) -> InvalidArgument:
    """The error for logging a param again with another value: params are immutable."""
    return InvalidArgument(
        f"param {key!r} of run {run_id} is already {previous!r}; params cannot change "
        f"(tried {value!r}). Log it under another key, or start a new run"
    )
