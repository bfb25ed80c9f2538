"""The one rule between evalkit's artifact locations and MLflow's ``mlflow-artifacts:/`` URIs.

A run's artifacts are given to MLflow clients as ``mlflow-artifacts:/runs/<run_id>/artifacts``;
MLflow's client then reaches a file at ``<that>/<path>`` through the artifact proxy
(``/api/2.0/mlflow-artifacts/artifacts/runs/<run_id>/artifacts/<path>``), and the server opens the
run's own repository (local folder or S3), wherever its experiment keeps artifacts. The same form
as evalkit's own served URIs (``evalkit-artifacts:/runs/<id>/artifacts``), so one run has one
address whichever client asks.
"""

from __future__ import annotations

from evalkit.errors import InvalidArgument
from evalkit.tracking.artifacts import safe_relative_path

SCHEME = "mlflow-artifacts"


def run_artifact_uri(run_id: str, path: str = "") -> str:
    """The ``mlflow-artifacts:/`` URI of ``path`` in a run's artifacts (the root for "")."""
    relative = safe_relative_path(path)
    return f"{SCHEME}:/runs/{run_id}/artifacts" + (f"/{relative}" if relative else "")


def parse_proxy_path(path: str) -> tuple[str, str]:
    """``(run_id, relative path)`` of what follows ``mlflow-artifacts:/`` (or the proxy's route);
    ``InvalidArgument`` for anything but ``runs/<run_id>/artifacts[/<path>]``."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[0] != "runs" or parts[2] != "artifacts" or not parts[1]:
        raise InvalidArgument(
            f"artifact path {path!r} is not in a run: evalkit serves runs/<run_id>/artifacts/<path>")
    return parts[1], safe_relative_path(parts[3] if len(parts) == 4 else "")


def parse_artifact_uri(uri: str) -> tuple[str, str] | None:
    """``(run_id, relative path)`` of an ``mlflow-artifacts:/runs/...`` URI (the form with a host,
    ``mlflow-artifacts://host:port/runs/...``, too), or None for a URI of another scheme."""
    if not uri.startswith(SCHEME + ":"):
        return None
    rest = uri[len(SCHEME) + 1:]
    if rest.startswith("//"):
        rest = "/" + rest[2:].partition("/")[2]
    return parse_proxy_path(rest)
