"""Bundle URIs: where a logged or registered model is, and which version a URI means now.

- ``runs:/<run_id>/<path>``: the bundle logged under ``<path>`` of a run's artifacts;
- ``models:/<name>/<version>``: a registered version; ``models:/<name>/<stage>`` the newest
  version in that stage (``Production``); ``models:/<name>/latest`` the newest version;
- ``models:/<name>@<alias>``: the version an alias points at.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from evalkit.entities import ModelVersion
from evalkit.errors import InvalidArgument, NotFound
from evalkit.models.bundle import MANIFEST, Manifest, read_manifest
from evalkit.tracking.artifacts import ArtifactRepository, get_artifact_repository
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.registry import parse_stage, validate_model_name

_RUNS = re.compile(r"^runs:/(?P<run_id>[^/]+)(?:/(?P<path>.*))?$")
_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<selector>[^/]+)|@(?P<alias>[^/]+))$")


def is_bundle_uri(uri: object) -> bool:
    """Whether ``uri`` names a logged or registered model (rather than a provider's model)."""
    return isinstance(uri, str) and uri.startswith(("runs:/", "models:/"))


@dataclass(frozen=True)
class BundleLocation:
    """Where a bundle is, and which registered version it is (for ``models:/`` URIs)."""

    uri: str  # as given
    repository: ArtifactRepository
    path: str  # the bundle folder in the repository
    run_id: str | None
    version: ModelVersion | None = None

    @property
    def pinned_uri(self) -> str:
        """A URI that names this same bundle tomorrow: the version number, not a stage or alias."""
        if self.version is not None:
            return f"models:/{self.version.name}/{self.version.version}"
        return self.uri

    def manifest(self) -> Manifest:
        return read_manifest(self.repository.read_bytes(_join(self.path, MANIFEST)), self.uri)

    def download(self) -> Path:
        """The bundle copied into a new local folder."""
        destination = Path(tempfile.mkdtemp(prefix="evalkit-model-"))
        return Path(self.repository.download_artifacts(self.path or None, destination))


def locate(uri: str, client: TrackingClient | None = None) -> BundleLocation:
    """The bundle ``uri`` names; ``NotFound`` for an unknown run, model, version, stage or alias,
    ``InvalidArgument`` for a malformed URI or a run path that holds no model."""
    client = client or TrackingClient()
    if not isinstance(uri, str):
        raise InvalidArgument(f"a model URI is a string such as 'models:/RAGBot@champion', got {uri!r}")
    if uri.startswith("runs:/"):
        match = _RUNS.match(uri)
        if match is None:
            raise InvalidArgument(f"malformed model URI {uri!r}: use runs:/<run_id>/<artifact path>")
        return _run_bundle(client, uri, match["run_id"], (match["path"] or "").strip("/"))
    if uri.startswith("models:/"):
        return _registered(client, uri)
    raise InvalidArgument(f"{uri!r} is not a model bundle URI: use runs:/<run_id>/<path>, models:/<name>/<version>, "
                          "models:/<name>/<stage> or models:/<name>@<alias>")


def _run_bundle(client: TrackingClient, uri: str, run_id: str, path: str, version: ModelVersion | None = None
                ) -> BundleLocation:
    repository = client.artifact_repository(run_id)  # NotFound for an unknown run
    if not repository.is_file(_join(path, MANIFEST)):
        folders = sorted(f.path for f in repository.list_artifacts(None) if f.is_dir and
                         repository.is_file(_join(f.path, MANIFEST)))
        hint = f"; its models are at: {', '.join(folders)}" if folders else "; it has no logged model"
        raise InvalidArgument(f"{uri!r}: run {run_id} has no model at {path or '(the artifact root)'!r} "
                              f"(no {MANIFEST} there){hint}")
    return BundleLocation(uri, repository, path, run_id, version)


def _registered(client: TrackingClient, uri: str) -> BundleLocation:
    match = _MODELS.match(uri)
    if match is None:
        raise InvalidArgument(f"malformed model URI {uri!r}: use models:/<name>/<version>, models:/<name>/<stage> "
                              "or models:/<name>@<alias>")
    name = validate_model_name(match["name"])
    if match["alias"]:
        version = client.get_model_version_by_alias(name, match["alias"])
    elif match["selector"].isdigit():
        version = client.get_model_version(name, match["selector"])
    elif match["selector"].lower() == "latest":
        versions = client.search_model_versions(f"name = '{_quoted(name)}'", order_by=["version DESC"], max_results=1)
        if not versions:
            raise NotFound(f"registered model {name!r} has no versions")
        version = versions[0]
    else:
        try:
            stage = parse_stage(match["selector"])
        except InvalidArgument:
            raise InvalidArgument(f"{uri!r}: {match['selector']!r} is neither a version number, 'latest' nor a "
                                  "stage (None, Staging, Production, Archived); write an alias as "
                                  f"models:/{name}@<alias>") from None
        found = client.get_latest_versions(name, [stage.value])
        if not found:
            raise NotFound(f"{uri!r}: no version of registered model {name!r} is in stage {stage.value}")
        version = found[0]
    return source_location(client, version)


def source_location(client: TrackingClient, version: ModelVersion) -> BundleLocation:
    """Where a registered version's bundle is (its ``source``)."""
    uri = f"models:/{version.name}/{version.version}"
    match = _RUNS.match(version.source)
    if match is not None:
        return _run_bundle(client, uri, match["run_id"], (match["path"] or "").strip("/"), version)
    return BundleLocation(uri, get_artifact_repository(version.source), "", version.run_id, version)


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
