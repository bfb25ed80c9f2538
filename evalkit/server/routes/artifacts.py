"""``/api/v1/runs/{run_id}/artifacts``: a run's artifacts through the server.

Proxied (``--serve-artifacts``, the default): uploads stream from the request into a temporary
file on the server's disk and from there to the repository (S3 in multipart above 8 MB);
downloads stream from a temporary copy. No artifact is ever held in memory whole. Presigned
(``--no-serve-artifacts`` with an ``s3://`` root): downloads answer a redirect to a presigned GET
URL and ``upload-url`` hands out a presigned PUT URL, so the bytes go straight between the client
and S3. Every path goes through ``safe_relative_path`` here, whatever the client checked.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from evalkit.entities import Run
from evalkit.errors import InvalidArgument, NotFound
from evalkit.server import models as m
from evalkit.server.context import config_of, store_of
from evalkit.tracking.artifacts import (
    ArtifactRepository,
    get_artifact_repository,
    safe_relative_path,
)

router = APIRouter(prefix="/api/v1/runs/{run_id}/artifacts", tags=["artifacts"])
PRESIGNED_SECONDS = 3600
UPLOAD_CHUNK = 1 << 20


def artifact_repository_for(run: Run) -> ArtifactRepository:
    """The repository holding ``run``'s artifacts, as the server reaches it (``app.state``'s helper)."""
    return get_artifact_repository(run.info.artifact_uri)


def _repository(request: Request, run_id: str) -> ArtifactRepository:
    # Whether the run accepts writes is the client's check (TrackingClient), as with a local store:
    # a run's journal and report are written by evalkit around its end.
    return artifact_repository_for(store_of(request).get_run(run_id))


@router.get("/list", summary="Files and folders directly under a path")
def list_artifacts(request: Request, run_id: str, path: str = "") -> Response:
    relative = safe_relative_path(path)
    files = _repository(request, run_id).list_artifacts(relative)
    return JSONResponse({"files": [info.to_dict() for info in files]})


@router.get("/info", summary="Whether a path names a file, and whether anything exists there")
def artifact_info(request: Request, run_id: str, path: str = "") -> Response:
    relative = safe_relative_path(path)
    repository = _repository(request, run_id)
    is_file = bool(relative) and repository.is_file(relative)
    return JSONResponse({"path": relative, "is_file": is_file,
                         "exists": is_file or repository.exists(relative)})


@router.get("/files/{path:path}", summary="Download a file (streamed, or a redirect to a presigned URL)")
async def download_artifact(request: Request, run_id: str, path: str) -> Response:
    relative = safe_relative_path(path, file=True)
    repository = await run_in_threadpool(_repository, request, run_id)
    if config_of(request).presigned_artifacts:
        url = await run_in_threadpool(repository.presigned_url, relative, "GET", PRESIGNED_SECONDS)
        return RedirectResponse(url, status_code=307)
    return await file_response(repository, relative)


async def file_response(repository: ArtifactRepository, relative: str) -> Response:
    """The file ``relative`` of ``repository``, streamed from a temporary copy deleted once sent."""
    fd, temp = tempfile.mkstemp(prefix="evalkit-download-")
    os.close(fd)
    try:
        await run_in_threadpool(repository.download_file, relative, temp)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return FileResponse(temp, filename=PurePosixPath(relative).name, content_disposition_type="attachment",
                        background=BackgroundTask(Path(temp).unlink, missing_ok=True))


@router.post("/upload-url", summary="Where to PUT a file: a presigned S3 URL, or null to PUT it to the server")
def upload_url(request: Request, run_id: str, body: m.UploadRequest) -> Response:
    relative = safe_relative_path(body.path, file=True)
    repository = _repository(request, run_id)
    if not config_of(request).presigned_artifacts:
        return JSONResponse({"path": relative, "url": None})
    return JSONResponse({"path": relative, "url": repository.presigned_url(relative, "PUT", PRESIGNED_SECONDS)})


@router.put("/files/{path:path}", summary="Upload a file, streamed (replaces any file at that path)")
async def upload_artifact(request: Request, run_id: str, path: str) -> Response:
    relative = safe_relative_path(path, file=True)
    if config_of(request).presigned_artifacts:
        raise InvalidArgument("this server does not proxy artifacts: ask upload-url for a presigned URL")
    repository = await run_in_threadpool(_repository, request, run_id)
    await store_request_body(request, repository, relative)
    return JSONResponse({"path": relative}, status_code=201)


async def store_request_body(request: Request, repository: ArtifactRepository, relative: str) -> None:
    """Stream the request's body into ``repository`` as ``relative``, through a temporary file."""
    with tempfile.NamedTemporaryFile(prefix="evalkit-upload-") as spool:
        async for chunk in request.stream():
            spool.write(chunk)  # a local disk write: quick enough not to matter to the event loop
        spool.flush()
        await run_in_threadpool(repository.upload_file, spool.name, relative)


@router.delete("/files/{path:path}", summary="Delete a file or folder")
def delete_artifact(request: Request, run_id: str, path: str) -> Response:
    relative = safe_relative_path(path)
    if not relative:
        raise InvalidArgument("name the file or folder to delete; the run's whole artifacts are not deleted this way")
    repository = _repository(request, run_id)
    if not repository.exists(relative):
        raise NotFound(f"no artifact {relative!r} in run {run_id}")
    repository.delete(relative)
    return JSONResponse({})
