"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts``): list, download, upload, delete.

MLflow's client sends a run's ``mlflow-artifacts:/<path>`` (``artifact_uris``) here; ``<path>`` is
relative to the server's default artifact root and reaches evalkit's artifact repository of that
root (local folder, S3, a plugin). Files stream through a temporary file both ways, as on evalkit's
own artifact routes, and every path goes through ``safe_relative_path``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from evalkit.errors import InvalidArgument, NotFound
from evalkit.server.context import config_of
from evalkit.server.routes.artifacts import file_response, store_request_body
from evalkit.server.routes.mlflow.artifact_uris import artifact_root
from evalkit.tracking.artifacts import (
    ArtifactRepository,
    get_artifact_repository,
    safe_relative_path,
)

router = APIRouter(prefix="/api/2.0/mlflow-artifacts", tags=["MLflow artifacts"])


def _root_repository(request: Request) -> ArtifactRepository:
    if not config_of(request).serve_artifacts:
        raise InvalidArgument("this server does not proxy artifacts (--no-serve-artifacts): "
                              "MLflow clients reach the run's artifact location directly")
    return get_artifact_repository(artifact_root(request))


@router.get("/artifacts", summary="Files and folders directly under a path (names relative to it)")
def list_artifacts(request: Request, path: str = "") -> Response:
    relative = safe_relative_path(path)
    repository = _root_repository(request)
    if relative and repository.is_file(relative):
        return JSONResponse({"files": []})
    files = []
    for info in repository.list_artifacts(relative):
        entry = {"path": info.path.rsplit("/", 1)[-1], "is_dir": info.is_dir}
        if not info.is_dir and info.file_size is not None:
            entry["file_size"] = info.file_size
        files.append(entry)
    return JSONResponse({"files": files})


@router.get("/artifacts/{path:path}", summary="Download a file (streamed)")
async def download_artifact(request: Request, path: str) -> Response:
    relative = safe_relative_path(path, file=True)
    repository = _root_repository(request)
    return await file_response(repository, relative)


@router.put("/artifacts/{path:path}", summary="Upload a file, streamed (replaces any file at that path)")
async def upload_artifact(request: Request, path: str) -> Response:
    relative = safe_relative_path(path, file=True)
    await store_request_body(request, _root_repository(request), relative)
    return JSONResponse({})


@router.delete("/artifacts/{path:path}", summary="Delete a file or folder")
def delete_artifact(request: Request, path: str) -> Response:
    relative = safe_relative_path(path, file=True)
    repository = _root_repository(request)
    if not repository.exists(relative):
        raise NotFound(f"no artifact {relative!r}")
    repository.delete(relative)
    return JSONResponse({})


