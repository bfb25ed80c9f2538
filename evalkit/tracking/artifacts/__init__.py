"""Where a run's artifacts live: the repository interface and the registry that picks one by scheme.

``get_artifact_repository(uri)`` returns the repository for a run's ``artifact_uri``: a plain path
or ``file://`` → :class:`LocalArtifactRepository`, ``s3://bucket/prefix`` →
:class:`~evalkit.tracking.artifacts.s3.S3ArtifactRepository` (needs ``pip install 'evalkit[s3]'``).
Other schemes come from plugins: a package declares an entry point in the group
``evalkit.artifact_repositories`` named after its scheme, pointing at an ``ArtifactRepository``
subclass whose constructor takes the artifact URI. Implementations are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from evalkit import plugins
from evalkit.errors import InvalidArgument
from evalkit.tracking.artifacts.base import (
    ArtifactRepository,
    join_artifact_path,
    safe_relative_path,
)
from evalkit.tracking.artifacts.local import LocalArtifactRepository

ENTRY_POINT_GROUP = plugins.ARTIFACT_REPOSITORIES
_BUILTIN = {  # in code rather than in entry points, so a stale install still finds them
    "file": "evalkit.tracking.artifacts.local:LocalArtifactRepository",
    "s3": "evalkit.tracking.artifacts.s3:S3ArtifactRepository",
}

__all__ = [
    "ArtifactRepository",
    "LocalArtifactRepository",
    "artifact_scheme",
    "get_artifact_repository",
    "join_artifact_path",
    "join_artifact_uri",
    "safe_relative_path",
]


def artifact_scheme(uri: str) -> str:
    """The scheme of an artifact location: ``file`` for a plain path."""
    scheme, sep, _ = uri.partition("://")
    # One-letter "schemes" are Windows drive letters (C://...), not URIs.
    return scheme.lower() if sep and len(scheme) > 1 else "file"


def join_artifact_uri(root: str, *parts: str) -> str:
    """``root/part/...`` for any scheme, without doubling slashes (no ``Path()``: it would mangle ``s3://``)."""
    base = root.rstrip("/") or "/"
    tail = "/".join(part.strip("/") for part in parts if part.strip("/"))
    if not tail:
        return base
    return f"{base}{tail}" if base.endswith("/") else f"{base}/{tail}"


def _plugins() -> dict[str, Any]:
    return plugins.find_plugins(ENTRY_POINT_GROUP)


def repository_class(scheme: str) -> type[ArtifactRepository]:
    """The repository class registered for ``scheme``, imported now."""
    target = _BUILTIN.get(scheme)
    if target is not None:
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)
    plugin = _plugins().get(scheme)
    if plugin is None:
        known = sorted(set(_BUILTIN) | set(_plugins()))
        raise InvalidArgument(
            f"no artifact repository for scheme {scheme!r}: known schemes are {', '.join(known)} "
            f"(a plugin adds one with an entry point in the group {ENTRY_POINT_GROUP!r})"
        )
    cls = plugin.load()
    if not (isinstance(cls, type) and issubclass(cls, ArtifactRepository)):
        raise InvalidArgument(f"entry point {plugin.value!r} for scheme {scheme!r} is not an ArtifactRepository")
    return cls


def get_artifact_repository(artifact_uri: str) -> ArtifactRepository:
    """The repository holding the artifacts at ``artifact_uri``, chosen by its scheme."""
    if not isinstance(artifact_uri, str) or not artifact_uri.strip():
        raise InvalidArgument(f"artifact location must be a non-empty string, got {artifact_uri!r}")
    return repository_class(artifact_scheme(artifact_uri))(artifact_uri)
