"""Errors on MLflow's paths (``/api/2.0/...``) in MLflow's shape: ``{"error_code", "message"}`` with
MLflow's code names and the HTTP statuses MLflow's server answers with.

Routes raise evalkit's errors as everywhere else (``evalkit.errors``); the server's error handlers
answer on MLflow's paths through :func:`mlflow_error_response`, so one handler serves both APIs.
``ERROR_CODES`` is the whole mapping. Two choices in it:

- ``INVALID_STATE`` (a write to a deleted or ended run, a promotion without evidence) answers
  ``INVALID_PARAMETER_VALUE`` 400, as MLflow's own server does for a write to a deleted run: MLflow's
  ``INVALID_STATE`` is a 500, which MLflow's client would retry for minutes.
- ``ALREADY_EXISTS`` answers ``RESOURCE_ALREADY_EXISTS`` with MLflow's 400, not evalkit's 409.

Authentication errors (401, 403) come from the auth middleware with ``UNAUTHENTICATED`` and
``PERMISSION_DENIED``: MLflow's names and statuses already.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

MLFLOW_PATH_PREFIX = "/api/2.0/"

# evalkit's code (or a bare HTTP status, for answers that are not evalkit errors) -> MLflow's code and status
ERROR_CODES: dict[str | int, tuple[str, int]] = {
    "INVALID_ARGUMENT": ("INVALID_PARAMETER_VALUE", 400),
    "NOT_FOUND": ("RESOURCE_DOES_NOT_EXIST", 404),
    "ALREADY_EXISTS": ("RESOURCE_ALREADY_EXISTS", 400),
    "INVALID_STATE": ("INVALID_PARAMETER_VALUE", 400),
    "STORE_UNAVAILABLE": ("TEMPORARILY_UNAVAILABLE", 503),
    "UNAUTHENTICATED": ("UNAUTHENTICATED", 401),
    "PERMISSION_DENIED": ("PERMISSION_DENIED", 403),
    "REQUEST_TOO_LARGE": ("INVALID_PARAMETER_VALUE", 413),
    "INTERNAL_ERROR": ("INTERNAL_ERROR", 500),
    404: ("ENDPOINT_NOT_FOUND", 404),  # no such route: MLflow's client falls back on older routes on this code
    405: ("ENDPOINT_NOT_FOUND", 405),
}


def is_mlflow_path(path: str) -> bool:
    """Whether ``path`` (without a proxy's root path) is one of MLflow's routes."""
    return path.startswith(MLFLOW_PATH_PREFIX)


def mlflow_error_response(status: int, code: str, message: str, *, no_route: bool = False) -> JSONResponse:
    """The answer MLflow's client expects for an evalkit error ``code`` (HTTP ``status``);
    ``no_route`` for a path or method the server does not serve."""
    mlflow_code, mlflow_status = ERROR_CODES.get(status if no_route else code, ("INTERNAL_ERROR", status))
    return JSONResponse({"error_code": mlflow_code, "message": message}, status_code=mlflow_status)
