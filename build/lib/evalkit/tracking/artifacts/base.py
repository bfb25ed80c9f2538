"""The artifact repository interface and the one path-safety rule every implementation uses."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from evalkit.entities import FileInfo
from evalkit.errors import InvalidArgument, NotFound

_DRIVE = re.compile(r"^[A-Za-z]:")  # a Windows drive: absolute wherever the path was written


def safe_relative_path(artifact_path: str | os.PathLike[str] | None, *, file: bool = False) -> str:
    """``artifact_path`` as a clean relative POSIX path inside a run's artifacts ("" for the root).

    Refuses anything that could leave the run's folder or prefix: absolute paths, ``..``, ``~``,
    control characters. Backslashes count as separators (a Windows path names the same artifact
    on every backend). With ``file=True`` the path must name a file: not empty, no trailing slash.
    """
    try:
        text = "" if artifact_path is None else os.fspath(artifact_path)
    except TypeError:
        text = None
    if not isinstance(text, str):
        raise InvalidArgument(f"artifact path must be a string, got {artifact_path!r}")
    text = text.replace("\\", "/")
    if file and (not text.strip() or text.endswith("/")):
        raise InvalidArgument(f"artifact file name {artifact_path!r} names no file")
    pure = PurePosixPath(text)
    if pure.is_absolute() or _DRIVE.match(text) or text.startswith("~"):
        raise InvalidArgument(
            f"artifact path {str(artifact_path)!r} is absolute: paths inside a run are relative to the run's "
            "artifact folder, e.g. 'reports/summary.html' (the local file given to log_artifact may be anywhere)"
        )
    if ".." in pure.parts:
        raise InvalidArgument(
            f"artifact path {str(artifact_path)!r} escapes the run's artifact folder: use a relative path without '..'"
        )
    if any(ord(ch) < 32 for ch in text):
        raise InvalidArgument(f"artifact path {artifact_path!r} contains a control character")
    relative = pure.as_posix()
    return "" if relative == "." else relative


def join_artifact_path(folder: str | None, name: str) -> str:
    """``folder/name`` as a safe relative path (``folder`` may be None or empty)."""
    return safe_relative_path(str(PurePosixPath(safe_relative_path(folder)) / name))


class ArtifactRepository(ABC):
    """The artifacts of one run, wherever they are stored.

    Paths are relative to the run's artifact root and go through :func:`safe_relative_path`, so no
    implementation can read or write outside it. Large files move between a local file and the
    backend without being held in memory (:meth:`upload_file`, :meth:`download_file`).
    """

    transfer_workers = 1  # files moved at once by log_artifacts and folder downloads (remote stores: more)

    def __init__(self, artifact_uri: str) -> None:
        self.artifact_uri = artifact_uri

    # ---- what a backend implements -----------------------------------------------------------

    @abstractmethod
    def write_bytes(self, artifact_file: str, data: bytes) -> None:
        """Store ``data`` as ``artifact_file``, replacing it whole (never half-written)."""

    @abstractmethod
    def read_bytes(self, artifact_file: str) -> bytes:
        """The content of ``artifact_file``; NotFound if there is none."""

    @abstractmethod
    def upload_file(self, local_file: str | os.PathLike[str], artifact_file: str) -> None:
        """Store the local file as ``artifact_file``, streaming it from disk."""

    @abstractmethod
    def download_file(self, artifact_file: str, local_file: str | os.PathLike[str]) -> None:
        """Write ``artifact_file`` to the local path, streaming it to disk."""

    @abstractmethod
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The files and folders directly under ``path`` (the run's root by default), sorted by path."""

    @abstractmethod
    def is_file(self, path: str) -> bool:
        """Whether ``path`` names a file."""

    @abstractmethod
    def delete(self, path: str | None = None) -> None:
        """Remove a file, or a folder and everything under it (the whole run's artifacts by default)."""

    def presigned_url(self, path: str, method: str = "GET", expires_in: int = 3600) -> str:
        """A URL that lets its holder GET or PUT ``path`` without credentials, for ``expires_in`` seconds."""
        raise InvalidArgument(f"{type(self).__name__} cannot make presigned URLs")

    # ---- built on the above ------------------------------------------------------------------

    def exists(self, path: str | None = None) -> bool:
        """Whether ``path`` names a file or a non-empty folder."""
        relative = safe_relative_path(path)
        if relative and self.is_file(relative):
            return True
        return bool(self.list_artifacts(relative))

    def walk_files(self, path: str | None = None) -> Iterator[FileInfo]:
        """Every file under ``path``, folders included recursively."""
        for info in self.list_artifacts(path):
            if info.is_dir:
                yield from self.walk_files(info.path)
            else:
                yield info

    def log_artifact(self, local_file: str | os.PathLike[str], artifact_path: str | None = None) -> str:
        """Upload ``local_file`` (any local path, ``~`` expanded) into the run's folder ``artifact_path``
        (relative to the run); return its path within the run."""
        source = Path(local_file).expanduser()
        if not source.is_file():
            hint = ": it is a directory, log it with log_artifacts" if source.is_dir() else ""
            raise NotFound(f"cannot log artifact: {source} is not a file{hint}")
        relative = join_artifact_path(artifact_path, source.name)
        self.upload_file(source, relative)
        return relative

    def log_artifacts(self, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> list[str]:
        """Upload every file under ``local_dir`` into the folder ``artifact_path``; return their paths.

        Every target path is checked before the first file is written."""
        source = Path(local_dir).expanduser()
        if not source.is_dir():
            raise NotFound(f"cannot log artifacts: {source} is not a directory")
        files = [p for p in sorted(source.rglob("*")) if p.is_file()]
        targets = [join_artifact_path(artifact_path, p.relative_to(source).as_posix()) for p in files]
        self._each(self.upload_file, list(zip(files, targets, strict=True)))
        return targets

    def download_artifacts(self, artifact_path: str | None, dst_path: str | os.PathLike[str]) -> str:
        """Copy a file or folder of artifacts into the local folder ``dst_path``; return the local path
        (``dst_path/<name>``, where name is the file's or folder's last component)."""
        relative = safe_relative_path(artifact_path)
        name = PurePosixPath(relative).name or self.artifact_uri.rstrip("/").rsplit("/", 1)[-1]
        destination = Path(dst_path) / name
        if relative and self.is_file(relative):
            destination.parent.mkdir(parents=True, exist_ok=True)
            self.download_file(relative, destination)
            return str(destination)
        files = list(self.walk_files(relative))
        if not files and not self._is_existing_folder(relative):
            raise NotFound(f"no artifact {relative!r} in {self.artifact_uri}")
        destination.mkdir(parents=True, exist_ok=True)
        prefix = f"{relative}/" if relative else ""
        jobs = [(info.path, destination / info.path[len(prefix):]) for info in files]
        for local in {local.parent for _, local in jobs}:
            local.mkdir(parents=True, exist_ok=True)
        self._each(self.download_file, jobs)
        return str(destination)

    def _each(self, transfer: Callable[[Any, Any], None], jobs: list[tuple[Any, Any]]) -> None:
        """Run ``transfer(a, b)`` for every job, ``transfer_workers`` at a time; the first error is raised."""
        if self.transfer_workers <= 1 or len(jobs) <= 1:
            for a, b in jobs:
                transfer(a, b)
            return
        with ThreadPoolExecutor(max_workers=min(self.transfer_workers, len(jobs))) as pool:
            for future in [pool.submit(transfer, a, b) for a, b in jobs]:
                future.result()

    def _is_existing_folder(self, path: str) -> bool:
        """Whether an empty folder exists at ``path`` (only a file system has those)."""
        return False

