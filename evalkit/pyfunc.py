"""``ek.pyfunc.load_model``: the name MLflow users know, for ``evalkit.load_model``."""

from evalkit.models.api import load_model

__all__ = ["load_model"]
