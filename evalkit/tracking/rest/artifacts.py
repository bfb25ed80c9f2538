"""``HttpArtifactRepository``: a run's artifacts through an evalkit server (``http(s)://.../artifacts``).

The REST store gives runs whose artifacts the server serves an artifact URI of the form
``http(s)://host:port[/prefix]/api/v1/runs/<run_id>/artifacts``; this repository is registered
for the ``http`` and ``https`` schemes in ``evalkit.artifact_repositories``. Uploads stream from
disk in chunks (never a whole file in memory), to the server or straight to S3 through a
presigned URL when the server hands one out; downloads stream to disk, following the server's
redirect to a presigned URL when there is one. The server checks every path again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx

from evalkit.entities import FileInfo
from evalkit.errors import InvalidArgument, StoreUnavailable
from evalkit.tracking.artifacts.base import ArtifactRepository, safe_relative_path
from evalkit.tracking.rest.api import API_PREFIX
from evalkit.tracking.rest.http import TIMEOUT, RestClient

CHUNK = 1 << 20
_clients: dict[str, RestClient] = {}


def _client(base_url: str) -> RestClient:
    client = _clients.get(base_url)
    if client is None:
        client = _clients.setdefault(base_url, RestClient(base_url))
    return client


class HttpArtifactRepository(ArtifactRepository):
    """The artifacts of one run, read and written through the evalkit server that holds the run."""

    transfer_workers = 4

    def __init__(self, artifact_uri: str) -> None:
        super().__init__(artifact_uri)
        base, sep, rest = artifact_uri.rstrip("/").rpartition(f"{API_PREFIX}/runs/")
        run_id, _, tail = rest.partition("/")
        if not sep or not run_id or tail != "artifacts":
            raise InvalidArgument(f"{artifact_uri!r} is not an evalkit server's artifact URI "
                                  f"(http(s)://host:port{API_PREFIX}/runs/<run_id>/artifacts)")
        self.client = _client(base)
        self.path = f"{API_PREFIX}/runs/{run_id}/artifacts"

    def _file_url(self, artifact_file: str) -> str:
        return f"{self.path}/files/{quote(safe_relative_path(artifact_file, file=True))}"

    # ---- writing -----------------------------------------------------------------------------

    def write_bytes(self, artifact_file: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(prefix="evalkit-artifact-") as spool:
            spool.write(data)
            spool.flush()
            self.upload_file(spool.name, artifact_file)

    def upload_file(self, local_file: str | os.PathLike[str], artifact_file: str) -> None:
        relative = safe_relative_path(artifact_file, file=True)
        target = self.client.send("POST", f"{self.path}/upload-url", json={"path": relative}).json()
        size = os.path.getsize(local_file)
        if target.get("url"):  # presigned: straight to S3, with no evalkit token
            with httpx.Client(timeout=TIMEOUT) as direct:
                response = direct.put(target["url"], content=_chunks(local_file),
                                      headers={"Content-Length": str(size)})
            if response.status_code >= 300:
                raise StoreUnavailable(f"uploading {relative!r} to the presigned URL failed: HTTP {response.status_code}")
            return
        # The body is re-read from disk on each attempt, so a retried upload sends the whole file again.
        self.client.send("PUT", self._file_url(relative), content=_Reopen(local_file),
                         headers={"Content-Length": str(size)})

    # ---- reading -----------------------------------------------------------------------------

    def read_bytes(self, artifact_file: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="evalkit-artifact-") as folder:
            local = Path(folder) / "file"
            self.download_file(artifact_file, local)
            return local.read_bytes()

    def download_file(self, artifact_file: str, local_file: str | os.PathLike[str]) -> None:
        response = self.client.send("GET", self._file_url(artifact_file), stream_to=local_file)
        if response.is_redirect:  # a presigned URL: fetched without the evalkit token
            with httpx.Client(timeout=TIMEOUT) as direct, direct.stream("GET", response.headers["location"]) as got:
                if got.status_code >= 300:
                    raise StoreUnavailable(f"downloading {artifact_file!r} from its presigned URL failed: "
                                           f"HTTP {got.status_code}")
                with open(local_file, "wb") as out:
                    for chunk in got.iter_bytes(CHUNK):
                        out.write(chunk)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        answer = self.client.send("GET", f"{self.path}/list", params={"path": safe_relative_path(path)}).json()
        return [FileInfo.from_dict(f) for f in answer["files"]]

    def is_file(self, path: str) -> bool:
        relative = safe_relative_path(path)
        if not relative:
            return False
        return self.client.send("GET", f"{self.path}/info", params={"path": relative}).json()["is_file"]

    def exists(self, path: str | None = None) -> bool:
        relative = safe_relative_path(path)
        return self.client.send("GET", f"{self.path}/info", params={"path": relative}).json()["exists"]

    def delete(self, path: str | None = None) -> None:
        relative = safe_relative_path(path)
        if not relative:
            for info in self.list_artifacts():
                self.delete(info.path)
            return
        self.client.send("DELETE", f"{self.path}/files/{quote(relative)}")


class _Reopen:
    """A file body httpx can send again on a retry: each iteration reads the file from the start."""

    def __init__(self, local_file: str | os.PathLike[str]) -> None:
        self.local_file = local_file

    def __iter__(self) -> Iterator[bytes]:
        return _chunks(self.local_file)


def _chunks(local_file: str | os.PathLike[str]) -> Iterator[bytes]:
    with open(local_file, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
