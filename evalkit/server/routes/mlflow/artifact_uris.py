"""The one rule between evalkit's artifact locations and the ``mlflow-artifacts:/`` URIs MLflow's client gets.

When the server proxies artifacts (``--serve-artifacts``, the default), a location under the
server's default artifact root is shown to MLflow clients as ``mlflow-artifacts:/<path under the
root>``; MLflow's client sends those to the artifact proxy routes (``artifacts.py``), which map the
path back under the root. Anything else (a location outside the root, or a server that does not
proxy) is shown as it is, and MLflow's client reaches it directly, as with MLflow's own server::

    root s3://bucket/evalkit:  s3://bucket/evalkit/3/<run>/artifacts  <->  mlflow-artifacts:/3/<run>/artifacts

Paths coming back are checked with ``safe_relative_path``: none leaves the root.
"""

from __future__ import annotations

from urllib.parse import urlparse

from fastapi import Request

from evalkit.server.context import config_of
from evalkit.tracking.artifacts import join_artifact_uri, safe_relative_path

SCHEME = "mlflow-artifacts"


def artifact_root(request: Request) -> str:
    """The server's default artifact root: what ``mlflow-artifacts:/`` paths are relative to."""
    return request.app.state.default_artifact_root


def to_mlflow_uri(request: Request, location: str) -> str:
    """The URI MLflow clients are given for an evalkit artifact ``location``."""
    if not config_of(request).serve_artifacts:
        return location
    root = artifact_root(request).rstrip("/")
    if location == root:
        return f"{SCHEME}:/"
    if location.startswith(root + "/"):
        return f"{SCHEME}:/{location[len(root) + 1:]}"
    return location


def from_mlflow_uri(request: Request, uri: str) -> str:
    """The evalkit location an MLflow client means by ``uri`` (``mlflow-artifacts:/<path>``, with or
    without a host; any other URI is taken as it is)."""
    parsed = urlparse(uri)
    if parsed.scheme != SCHEME:
        return uri
    return location_of(request, parsed.path)


def location_of(request: Request, path: str) -> str:
    """The location of ``path`` (relative to the root, as in the proxy routes); ``InvalidArgument``
    if it would leave the root."""
    return join_artifact_uri(artifact_root(request), safe_relative_path(path.lstrip("/")))
