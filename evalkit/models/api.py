"""The fluent model functions: ``ek.log_model``, ``ek.load_model``, ``ek.register_model``."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.entities import ModelVersion
from evalkit.errors import AlreadyExists
from evalkit.models.bundle import load_bundle, save_bundle
from evalkit.models.flavors.base import LoadedModel
from evalkit.models.resolve import locate
from evalkit.tracking import fluent
from evalkit.tracking.artifacts import safe_relative_path
from evalkit.tracking.client import TrackingClient


@dataclass(frozen=True)
class ModelInfo:
    """What ``log_model`` logged: ``model_uri`` (``runs:/<run_id>/<path>``) loads or registers it."""

    model_uri: str
    run_id: str
    artifact_path: str
    flavor: str
    bundle_hash: str
    metadata: dict[str, Any]
    registered_model_version: ModelVersion | None = None


def log_model(model: Any, artifact_path: str = "model", flavor: str = "llm", registered_model_name: str | None = None,
              **options: Any) -> ModelInfo:
    """Save ``model`` as an immutable bundle of ``flavor`` under ``artifact_path`` of the active run
    (started if none is). For ``flavor="llm"``, ``model`` is a model URI and the options are
    ``prompt``, ``inference_params``, ``retrieval`` and ``entrypoint`` (``evalkit.models.flavors.llm``).
    With ``registered_model_name`` the bundle is also registered as that model's next version.
    Everything is checked before anything is logged."""
    path = safe_relative_path(artifact_path)
    client = TrackingClient()
    run_id = fluent._current_run_id()
    with tempfile.TemporaryDirectory(prefix="evalkit-bundle-") as folder:
        manifest = save_bundle(model, Path(folder) / "bundle", flavor, **options)
        client.log_artifacts(run_id, Path(folder) / "bundle", path)
    uri = f"runs:/{run_id}/{path}"
    version = register_model(uri, registered_model_name) if registered_model_name else None
    return ModelInfo(uri, run_id, path, manifest.flavor, manifest.bundle_hash, manifest.metadata, version)


def load_model(model_uri: str) -> LoadedModel:
    """The model at ``runs:/<run_id>/<path>``, ``models:/<name>/<version>``,
    ``models:/<name>/<stage>`` or ``models:/<name>@<alias>``, with ``predict(inputs)``."""
    return load_bundle(locate(model_uri).download())[1]


def register_model(model_uri: str, name: str, tags: dict[str, Any] | None = None) -> ModelVersion:
    """Register the bundle at ``model_uri`` (``runs:/<run_id>/<path>``) as the next version of the
    model ``name``, creating the model if needed; ``tags`` go on the version."""
    client = TrackingClient()
    location = locate(model_uri, client)  # a URI without a model fails before the model is created
    location.manifest()
    try:
        client.create_registered_model(name)
    except AlreadyExists:
        pass
    return client.create_model_version(name, model_uri, run_id=location.run_id, tags=tags)
