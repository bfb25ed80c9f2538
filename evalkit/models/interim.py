"""STAND-IN for the registry branch (issue 15): ``log_model`` and ``load_model`` for ``runs:/``
URIs, writing the bundle layout of REGISTRY_CONTRACT.md, so that the autolog branch can log and
load a transformers model on its own. The lead drops this file at merge and points
``ek.log_model`` / ``ek.load_model`` at the registry's (the autolog code calls only those two).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import InvalidArgument, NotFound
from evalkit.models.flavors.base import LoadedModel, get_flavor

MANIFEST = "evalkit-model.json"


@dataclass(frozen=True)
class ModelInfo:
    model_uri: str
    bundle_hash: str
    flavor: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_bundle(model: Any, path: Path, flavor: str, **options: Any) -> dict[str, Any]:
    """Write ``model`` with its flavor into ``path`` plus the manifest; return the manifest."""
    from evalkit import __version__

    metadata = get_flavor(flavor).save(model, path, **options)
    files = {p.relative_to(path).as_posix(): _sha256(p) for p in sorted(path.rglob("*")) if p.is_file()}
    bundle_hash = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()
    manifest = {"flavor": flavor, "metadata": metadata, "files": files, "bundle_hash": bundle_hash,
                "created": int(time.time() * 1000), "evalkit_version": __version__}
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def log_model(model: Any, artifact_path: str = "model", flavor: str = "llm", **options: Any) -> ModelInfo:
    """Save ``model`` as a bundle under ``artifact_path`` of the active run."""
    from evalkit.tracking import fluent

    run_id = fluent._current_run_id()
    with tempfile.TemporaryDirectory(prefix="evalkit-model-") as folder:
        manifest = save_bundle(model, Path(folder), flavor, **options)
        fluent._client().log_artifacts(run_id, folder, artifact_path)
    return ModelInfo(f"runs:/{run_id}/{artifact_path}", manifest["bundle_hash"], flavor)


def load_model(model_uri: str) -> LoadedModel:
    """Load a bundle logged with :func:`log_model` (``runs:/<run_id>/<path>`` only here)."""
    from evalkit.tracking.client import TrackingClient

    if not model_uri.startswith("runs:/") or model_uri.count("/") < 2:
        raise InvalidArgument(f"model URI {model_uri!r}: expected runs:/<run_id>/<path>")
    run_id, artifact_path = model_uri[len("runs:/"):].split("/", 1)
    folder = Path(TrackingClient().download_artifacts(run_id, artifact_path))
    if not (folder / MANIFEST).exists():
        raise NotFound(f"{model_uri} holds no {MANIFEST}")
    manifest = json.loads((folder / MANIFEST).read_text())
    for name, digest in manifest["files"].items():
        if _sha256(folder / name) != digest:
            raise InvalidArgument(f"{model_uri}: file {name} does not match its hash in {MANIFEST}")
    return get_flavor(manifest["flavor"]).load(folder, manifest["metadata"])
