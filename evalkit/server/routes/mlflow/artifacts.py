"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts``) over evalkit's run artifacts.

MLflow's client lists, downloads and uploads through these routes whatever ``mlflow-artifacts:/``
URI it was given (``artifact_uris.py`` says which run and path one names). A stand-in kept to what
logging and loading models need; the other branch's artifact proxy replaces it when they meet.
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from evalkit.errors import EvalkitError
from evalkit.server.context import store_of
from evalkit.server.routes.mlflow.artifact_uris import parse_proxy_path
from evalkit.server.routes.mlflow.errors import mlflow_error
from evalkit.tracking.artifacts import ArtifactRepository, get_artifact_repository

router = APIRouter(prefix="/api/2.0/mlflow-artifacts", tags=["MLflow artifacts"])


def _repository(request: Request, path: str) -> tuple[ArtifactRepository, str]:
    run_id, relative = parse_proxy_path(path)
    return get_artifact_repository(store_of(request).get_run(run_id).info.artifact_uri), relative


def _list(request: Request, path: str) -> dict:
    repository, relative = _repository(request, path)
    files = [{"path": PurePosixPath(f.path).name, "is_dir": f.is_dir,
              **({} if f.is_dir else {"file_size": f.file_size})} for f in repository.list_artifacts(relative)]
    return {"files": files} if files else {}


@router.get("/artifacts", summary="Files and folders directly under ?path=")
async def list_artifacts(request: Request, path: str = "") -> Response:
    try:
        return JSONResponse(await run_in_threadpool(_list, request, path))
    except EvalkitError as exc:
        return mlflow_error(exc)


@router.get("/artifacts/{path:path}", summary="Download a file")
async def download_artifact(request: Request, path: str) -> Response:
    handle = tempfile.NamedTemporaryFile(prefix="evalkit-mlflow-", delete=False)
    handle.close()
    try:
        repository, relative = await run_in_threadpool(_repository, request, path)
        await run_in_threadpool(repository.download_file, relative, handle.name)
    except EvalkitError as exc:
        Path(handle.name).unlink(missing_ok=True)
        return mlflow_error(exc)
    return FileResponse(handle.name, filename=PurePosixPath(path).name, content_disposition_type="attachment",
                        background=BackgroundTask(Path(handle.name).unlink, missing_ok=True))


@router.put("/artifacts/{path:path}", summary="Upload a file (streamed)")
async def upload_artifact(request: Request, path: str) -> Response:
    try:
        repository, relative = await run_in_threadpool(_repository, request, path)
        with tempfile.NamedTemporaryFile(prefix="evalkit-mlflow-") as spool:
            async for chunk in request.stream():
                spool.write(chunk)
            spool.flush()
            await run_in_threadpool(repository.upload_file, spool.name, relative)
    except EvalkitError as exc:
        return mlflow_error(exc)
    return JSONResponse({})
