"""Model bundles: a folder holding a flavor's files and ``evalkit-model.json``, its manifest.

The manifest names the flavor, keeps the flavor's metadata, and lists every file with its
sha256; the bundle hash is the sha256 of the sorted (path, file hash) pairs, so two bundles with
the same files have the same hash wherever and whenever they were saved, and a changed file
changes it. A bundle is immutable: loading checks every file against the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import InvalidArgument, InvalidState
from evalkit.models.flavors.base import LoadedModel, get_flavor
from evalkit.tracking.clock import now_ms

MANIFEST = "evalkit-model.json"


@dataclass(frozen=True)
class Manifest:
    """What ``evalkit-model.json`` holds."""

    flavor: str
    metadata: dict[str, Any]
    files: dict[str, str]  # path in the bundle (POSIX) -> sha256
    bundle_hash: str
    created: int  # ms since the epoch
    evalkit_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "metadata": self.metadata, "files": self.files, "bundle_hash": self.bundle_hash,
                "created": self.created, "evalkit_version": self.evalkit_version}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(data["flavor"], dict(data.get("metadata") or {}), dict(data["files"]), data["bundle_hash"],
                   int(data["created"]), data.get("evalkit_version", ""))


def bundle_hash(files: dict[str, str]) -> str:
    """sha256 over the sorted (path, file hash) pairs."""
    return hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()


def _file_hashes(path: Path) -> dict[str, str]:
    return {f.relative_to(path).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file() and f.relative_to(path).as_posix() != MANIFEST}


def save_bundle(model: Any, path: Path, flavor: str, **options: Any) -> Manifest:
    """Save ``model`` with ``flavor`` into the new folder ``path`` and write its manifest."""
    from evalkit import __version__

    implementation = get_flavor(flavor)
    if path.exists() and any(path.iterdir()):
        raise InvalidArgument(f"cannot save a model bundle into {path}: the folder is not empty")
    path.mkdir(parents=True, exist_ok=True)
    metadata = implementation.save(model, path, **options)
    json.dumps(metadata)  # the flavor's metadata must be JSON, like the rest of the manifest
    files = _file_hashes(path)
    manifest = Manifest(flavor, metadata, files, bundle_hash(files), now_ms(), __version__)
    (path / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
    return manifest


def read_manifest(text: str | bytes, where: str) -> Manifest:
    """The manifest in ``text``; ``InvalidState`` if it is not one, or if its bundle hash is not the
    hash of the files it lists (the hash a registry records is then always the files' own)."""
    try:
        manifest = Manifest.from_dict(json.loads(text))
        listed = bundle_hash(manifest.files)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidState(f"{where} holds a damaged {MANIFEST}: {exc}") from None
    if listed != manifest.bundle_hash:
        raise InvalidState(f"{where} holds a damaged {MANIFEST}: its bundle_hash is not the hash of the files it "
                           "lists")
    return manifest


def load_bundle(path: Path) -> tuple[Manifest, LoadedModel]:
    """The manifest and the loaded model of the bundle folder ``path``, after checking that its
    files are exactly the ones the manifest lists (``InvalidState`` names any that changed)."""
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise InvalidArgument(f"{path} is not a model bundle: it has no {MANIFEST}")
    manifest = read_manifest(manifest_file.read_bytes(), str(path))
    files = _file_hashes(path)
    if files != manifest.files or bundle_hash(files) != manifest.bundle_hash:
        changed = sorted(set(files.items()) ^ set(manifest.files.items()))
        raise InvalidState(f"the model bundle at {path} does not match its manifest (changed, added or missing: "
                           f"{', '.join(sorted({p for p, _ in changed})) or 'the bundle hash'})")
    return manifest, get_flavor(manifest.flavor).load(path, manifest.metadata)
