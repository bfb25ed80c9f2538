"""The interface of a model flavor: how one kind of model is saved into a bundle and loaded back.

Flavors are found by name through the ``evalkit.model_flavors`` entry-point group. A flavor
writes data files only (no pickles): a bundle is data plus, at most, an import path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit import plugins
from evalkit.errors import InvalidArgument

if TYPE_CHECKING:
    import pandas as pd


class LoadedModel(ABC):
    """A model loaded from a bundle."""

    @abstractmethod
    def predict(self, inputs: list[str] | pd.DataFrame) -> list[Any]:
        """One answer per input: ``inputs`` is a list of strings, or a DataFrame whose ``inputs``
        (or ``question``) column holds them."""


class Flavor(ABC):
    """Saves one kind of model into a bundle folder and loads it back."""

    name: str

    @abstractmethod
    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        """Write the flavor's files into the folder ``path`` (which exists and is empty) and return
        the flavor metadata kept in the bundle's manifest (JSON-able). Refuse a model or option
        that could not be loaded back with ``InvalidArgument``, before writing anything."""

    @abstractmethod
    def load(self, path: Path, metadata: dict[str, Any]) -> LoadedModel:
        """The model the bundle folder ``path`` holds; ``metadata`` is what ``save`` returned."""


def get_flavor(name: str) -> Flavor:
    """The flavor installed under ``name``; ``InvalidArgument`` lists the installed ones."""
    found = plugins.find_plugins(plugins.MODEL_FLAVORS)
    if name not in found:
        raise InvalidArgument(f"unknown model flavor {name!r}: installed flavors are {', '.join(sorted(found)) or 'none'}")
    flavor = found[name].load()()
    if not isinstance(flavor, Flavor):
        raise InvalidArgument(f"the {name!r} flavor plugin is {type(flavor).__name__}, not a Flavor")
    return flavor


def input_texts(inputs: Any) -> list[str]:
    """The input strings of ``predict``'s argument: a list of strings, or a DataFrame's ``inputs``
    (or ``question``) column."""
    import pandas as pd

    if isinstance(inputs, pd.DataFrame):
        for column in ("inputs", "question"):
            if column in inputs.columns:
                return [str(value) for value in inputs[column]]
        raise InvalidArgument(f"predict needs an 'inputs' or 'question' column; the DataFrame has {list(inputs.columns)}")
    if isinstance(inputs, str) or not isinstance(inputs, (list, tuple)):
        raise InvalidArgument(f"predict takes a list of strings or a DataFrame, got {type(inputs).__name__}")
    return [str(value) for value in inputs]
