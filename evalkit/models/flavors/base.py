"""The flavor interface (REGISTRY_CONTRACT.md). Minimal copy written on the autolog branch; the
registry branch owns this file and keeps its own at merge."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any


class LoadedModel(ABC):
    """A model loaded from a bundle."""

    @abstractmethod
    def predict(self, inputs: Any) -> list[Any]:
        """Answers for ``inputs`` (a list of strings, or a DataFrame), one per input."""


class Flavor(ABC):
    """Saves one kind of model into a bundle folder and loads it back."""

    name: str

    @abstractmethod
    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        """Write the flavor's files into ``path``; return the flavor metadata for the manifest."""

    @abstractmethod
    def load(self, path: Path, metadata: dict[str, Any]) -> LoadedModel:
        """The model saved in ``path`` with ``metadata``."""
