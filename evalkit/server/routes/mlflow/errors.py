"""evalkit errors in MLflow's wire shape: ``{"error_code": ..., "message": ...}`` with MLflow's codes.

MLflow's client raises ``MlflowException`` with the ``error_code`` it reads, and some of its
calls branch on it (``mlflow.register_model`` goes on when creating the model answers
``RESOURCE_ALREADY_EXISTS``; ``mlflow.set_experiment`` creates the experiment when getting it
answers ``RESOURCE_DOES_NOT_EXIST``). ``MLFLOW_ERRORS`` is the one table from evalkit's codes to
MLflow's code and HTTP status; the statuses are MLflow server's (it answers 400 for a taken name).
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse

from evalkit.errors import EvalkitError

log = logging.getLogger("evalkit.server")

# evalkit code -> (MLflow error_code, HTTP status)
MLFLOW_ERRORS: dict[str, tuple[str, int]] = {
    "INVALID_ARGUMENT": ("INVALID_PARAMETER_VALUE", 400),
    "NOT_FOUND": ("RESOURCE_DOES_NOT_EXIST", 404),
    "ALREADY_EXISTS": ("RESOURCE_ALREADY_EXISTS", 400),
    "INVALID_STATE": ("INVALID_STATE", 400),
    "REQUEST_TOO_LARGE": ("INVALID_PARAMETER_VALUE", 413),
    "UNAUTHENTICATED": ("UNAUTHENTICATED", 401),
    "PERMISSION_DENIED": ("PERMISSION_DENIED", 403),
    "STORE_UNAVAILABLE": ("TEMPORARILY_UNAVAILABLE", 503),
}


def mlflow_error(exc: EvalkitError) -> JSONResponse:
    """The MLflow-shaped answer to an evalkit error (``INTERNAL_ERROR`` 500 for unknown codes)."""
    code, status = MLFLOW_ERRORS.get(exc.code, ("INTERNAL_ERROR", 500))
    return JSONResponse({"error_code": code, "message": str(exc)}, status_code=status)


def mlflow_crash(path: str, exc: Exception) -> JSONResponse:
    """An unexpected failure: logged on the server (with its traceback), answered without details."""
    log.error("unexpected error serving %s", path, exc_info=exc)
    return JSONResponse({"error_code": "INTERNAL_ERROR",
                         "message": f"internal server error ({type(exc).__name__}); see the server log"},
                        status_code=500)
