"""What ``evaluate()`` runs for a bundle URI (``models:/RAGBot@champion``, ``runs:/<id>/model``):
the bundle's model with the bundle's prompt and params, and the params that record which bundle
it was (so a promotion can later check that this run evaluated exactly that version)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evalkit.errors import InvalidArgument
from evalkit.inference.providers.callables import batch
from evalkit.models.bundle import load_bundle
from evalkit.models.flavors.llm import LLMModel, import_entrypoint
from evalkit.models.resolve import locate
from evalkit.tracking.registry import (
    BUNDLE_HASH_PARAM,
    REGISTERED_NAME_PARAM,
    REGISTERED_VERSION_PARAM,
)

MODEL_SOURCE_PARAM = "model_source"  # the bundle URI pinned to its version: models:/RAGBot/3
MODEL_FLAVOR_PARAM = "model_flavor"


@dataclass(frozen=True)
class BundleModel:
    """The model evaluate() calls (a model URI, a function, or a batch of the bundle's
    ``predict``), its prompt and params, and the run params naming the bundle."""

    model: str | Callable[..., Any] | batch
    prompt: list[dict[str, str]] | None
    inference_params: dict[str, Any]
    run_params: dict[str, str] = field(default_factory=dict)


def open_bundle(uri: str, prompt: Any = None, inference_params: dict[str, Any] | None = None) -> BundleModel:
    """The bundle ``uri`` names, ready to evaluate. A bundle carries its own prompt and params, so
    passing them too is refused: the run would not measure the bundle it records."""
    location = locate(uri)
    manifest, loaded = load_bundle(location.download())
    if prompt is not None:
        raise InvalidArgument(f"model {uri!r} is a model bundle with its own prompt: do not pass prompt= (log a new "
                              "bundle with the prompt you want to evaluate)")
    if inference_params:
        raise InvalidArgument(f"model {uri!r} is a model bundle with its own inference params: do not pass "
                              "inference_params= (log a new bundle with the params you want to evaluate)")
    recorded = {MODEL_SOURCE_PARAM: location.pinned_uri, BUNDLE_HASH_PARAM: manifest.bundle_hash,
                MODEL_FLAVOR_PARAM: manifest.flavor}
    if location.version is not None:
        recorded.update({REGISTERED_NAME_PARAM: location.version.name,
                         REGISTERED_VERSION_PARAM: str(location.version.version)})
    if isinstance(loaded, LLMModel):
        spec = loaded.spec
        model: Any = import_entrypoint(spec.entrypoint) if spec.entrypoint else spec.model_uri
        return BundleModel(model, spec.prompt, dict(spec.inference_params), recorded)
    # Another flavor (transformers...): its predict answers the inputs, a batch at a time.
    return BundleModel(batch(loaded.predict, size=32), None, {}, recorded)
