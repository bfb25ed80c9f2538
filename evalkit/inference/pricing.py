"""What a model call cost, in USD, from a price table shipped with evalkit.

The shipped table (``evalkit/inference/prices.json``) holds OpenAI list prices per 1M input, output and
cached-input tokens. Each entry carries the date its price was last verified (``checked``);
``PriceTable.version`` is the date of the table. Prices change: when a provider changes a
price after that date, or you pay a negotiated or batch price, override it::

    table = PriceTable.load({"gpt-4o": {"input": 2.0, "output": 8.0, "cached_input": 1.0}})
    table = PriceTable.load("my-prices.json")   # same shape as evalkit/inference/prices.json

Models the table does not know cost ``None``, never a guess.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from evalkit.errors import InvalidArgument
from evalkit.inference.providers.base import Usage

_FIELDS = ("input", "output", "cached_input")
_TEXT_FIELDS = ("checked", "source")
# "openai:/gpt-4o", "openai://gpt-4o"; a bare "ft:gpt-4o:org::id" is a fine-tuned model, not a
# provider prefix, and must stay unknown rather than be billed at the base model's price.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/+")


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens for one model; ``checked`` is the date this price was verified."""

    model: str
    input: float
    output: float
    cached_input: float
    checked: str
    source: str = ""


def bare_model_name(model: str) -> str:
    """The model name without a provider prefix: ``"openai:/gpt-4o"`` and
    ``"openai/gpt-4o"`` both give ``"gpt-4o"``."""
    return _SCHEME.sub("", model).rsplit("/", 1)[-1]


class PriceTable:
    """Prices by model name. Build it with :meth:`load`."""

    def __init__(self, prices: dict[str, Price], version: str) -> None:
        self.version = version
        self._prices = dict(prices)
        # Longest first, so "gpt-4o-mini-2024-07-18" matches gpt-4o-mini before gpt-4o.
        self._by_length = sorted(self._prices, key=len, reverse=True)
        # lookup's answers by model string: autologging prices every API call the same few names
        self._looked_up: dict[str, Price | None] = {}

    @classmethod
    def load(
        cls, overrides: dict[str, dict[str, float] | Price] | str | os.PathLike | None = None
    ) -> PriceTable:
        """The shipped table, with ``overrides`` replacing whole entries of the same name.

        ``overrides`` is a dict ``{model: {"input": .., "output": .., "cached_input": ..}}``
        (or ``{model: Price}``), or the path of a JSON file shaped like ``evalkit/inference/prices.json``.
        ``input`` and ``output`` are required; ``cached_input`` defaults to ``input`` (no
        discount assumed); ``checked`` defaults to ``"override"``. When overrides are given the
        table's version is ``"<shipped version>+overrides"``.

        Raises InvalidArgument, naming the model and field, for a negative or non-numeric
        price, a missing or unknown field, or an unreadable file.
        """
        shipped = json.loads(resources.files("evalkit.inference").joinpath("prices.json").read_text("utf-8"))
        prices = _parse_table(shipped, origin="evalkit/inference/prices.json")
        version = shipped["version"]
        if overrides is None:
            return cls(prices, version)
        if isinstance(overrides, (str, os.PathLike)):
            prices.update(_parse_table(_read_json(overrides), origin=os.fspath(overrides)))
        elif isinstance(overrides, dict):
            for model, entry in overrides.items():
                _check_model_name(model, "price overrides")
                if isinstance(entry, Price):
                    entry = {k: v for k, v in asdict(entry).items() if k != "model"}
                prices[model] = _parse_price(model, entry, origin="price overrides")
        else:
            raise InvalidArgument(
                f"price overrides must be a dict or the path of a JSON file, not {type(overrides).__name__}"
            )
        return cls(prices, f"{version}+overrides")

    def lookup(self, model: str) -> Price | None:
        """The price of ``model``, or None when unknown.

        A provider prefix (``openai:/``, ``openai/``) is ignored. An exact name wins; otherwise
        the longest known name followed by ``-`` that starts the model string, so a snapshot
        such as ``gpt-4o-2024-08-06`` is priced as ``gpt-4o``. That rule also prices variants
        the table lacks at their base model (``o3-mini`` as ``o3``): override those if you
        use them.
        """
        if model in self._looked_up:
            return self._looked_up[model]
        name = bare_model_name(model)
        price = self._prices.get(name)
        if price is None:
            price = next((self._prices[known] for known in self._by_length if name.startswith(known + "-")), None)
        if len(self._looked_up) < 10_000:  # bounded: model strings come from API responses
            self._looked_up[model] = price
        return price

    def cost(self, usage: Usage, model: str) -> float | None:
        """USD for one call, or None when the model is unknown.

        Cached input tokens are billed at ``cached_input``, the rest of the input at
        ``input``, output at ``output``. Cached tokens above the input count are capped at it.
        """
        price = self.lookup(model)
        if price is None:
            return None
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        return (
            (usage.input_tokens - cached) * price.input
            + cached * price.cached_input
            + usage.output_tokens * price.output
        ) / 1e6

    def __repr__(self) -> str:
        return f"PriceTable(version={self.version!r}, models={len(self._prices)})"


def _read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise InvalidArgument(f"cannot read price file {os.fspath(path)!r}: {e}") from e
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"price file {os.fspath(path)!r} is not valid JSON: {e}") from e


def _parse_table(doc: Any, origin: str) -> dict[str, Price]:
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise InvalidArgument(f"{origin}: expected a JSON object with a 'models' object")
    for key, expected in (("currency", "USD"), ("unit", "per 1M tokens")):
        if key in doc and doc[key] != expected:
            raise InvalidArgument(f"{origin}: {key} must be {expected!r}, got {doc[key]!r}")
    prices = {}
    for model, entry in doc["models"].items():
        _check_model_name(model, origin)
        prices[model] = _parse_price(model, entry, origin)
    return prices


def _check_model_name(model: Any, origin: str) -> None:
    if not isinstance(model, str) or not model:
        raise InvalidArgument(f"{origin}: model names must be non-empty strings, got {model!r}")


def _parse_price(model: str, entry: Any, origin: str) -> Price:
    if not isinstance(entry, dict):
        raise InvalidArgument(f"{origin}: price for {model!r} must be an object, got {entry!r}")
    unknown = sorted(set(entry) - set(_FIELDS) - set(_TEXT_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"{origin}: price for {model!r} has unknown field {unknown[0]!r} "
            f"(valid: {', '.join(_FIELDS + _TEXT_FIELDS)})"
        )
    for field in ("input", "output"):
        if field not in entry:
            raise InvalidArgument(f"{origin}: price for {model!r} is missing field {field!r}")
    values = {field: entry[field] for field in _FIELDS if field in entry}
    for field, value in values.items():
        # bool is an int subclass, and True is not a price.
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or not math.isfinite(value) or value < 0:
            raise InvalidArgument(
                f"{origin}: price for {model!r} field {field!r} must be a non-negative number "
                f"(USD per 1M tokens), got {value!r}"
            )
    for field in _TEXT_FIELDS:
        if field in entry and not isinstance(entry[field], str):
            raise InvalidArgument(f"{origin}: price for {model!r} field {field!r} must be a string")
    return Price(
        model=model,
        input=float(values["input"]),
        output=float(values["output"]),
        cached_input=float(values.get("cached_input", values["input"])),
        checked=entry.get("checked", "override"),
        source=entry.get("source", ""),
    )
