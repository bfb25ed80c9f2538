"""Model bundles and the model registry's client side: ``log_model``, ``load_model``,
``register_model`` (also ``ek.log_model``...), flavors (``evalkit.models.flavors``) and bundle
URIs (``runs:/``, ``models:/``)."""

from evalkit.models.api import ModelInfo, load_model, log_model, register_model

__all__ = ["ModelInfo", "load_model", "log_model", "register_model"]
