"""How a model version whose source is not an evalkit bundle enters evalkit's registry.

A registered version needs a bundle hash and a flavor. A source holding an evalkit bundle
(``evalkit-model.json``) gives its own; anything else is an MLflow model (registered through
MLflow's client, or imported from an MLflow store): flavor ``mlflow``
(``evalkit.tracking.registry.MLFLOW_FLAVOR``) and, as hash, the sha256 of its ``MLmodel`` file
(which holds MLflow's unique ``model_uuid``), or of the source URI when no ``MLmodel`` can be read.
Such a version takes stages and aliases like any other but never satisfies an evidence rule.
"""

from __future__ import annotations

import hashlib
import json

from evalkit.models.bundle import MANIFEST, Manifest
from evalkit.tracking.artifacts import get_artifact_repository
from evalkit.tracking.registry import MLFLOW_FLAVOR
from evalkit.tracking.store import TrackingStore

MLMODEL = "MLmodel"


def source_identity(store: TrackingStore, source: str) -> tuple[str, str]:
    """``(bundle hash, flavor)`` of a version's source (``runs:/<id>/<path>`` is read from the run's
    artifacts; any other URI is not read)."""
    if source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        repository = get_artifact_repository(store.get_run(run_id).info.artifact_uri)
        prefix = f"{path}/" if path else ""
        if repository.is_file(prefix + MANIFEST):
            manifest = Manifest.from_dict(json.loads(repository.read_bytes(prefix + MANIFEST)))
            return manifest.bundle_hash, manifest.flavor
        if repository.is_file(prefix + MLMODEL):
            return hashlib.sha256(repository.read_bytes(prefix + MLMODEL)).hexdigest(), MLFLOW_FLAVOR
    return hashlib.sha256(source.encode()).hexdigest(), MLFLOW_FLAVOR
