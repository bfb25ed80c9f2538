"""Artifact storage: files under each run's artifact folder.

Every path a caller gives is checked to stay inside the run's folder, and files are written to a
temporary name first and renamed, so a crash never leaves a half-written artifact behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from evalkit.entities import FileInfo
from evalkit.errors import InvalidArgument, NotFound

_DRIVE = re.compile(r"^[A-Za-z]:")  # a Windows drive, absolute wherever the path was written


def _local_root(artifact_uri: str) -> Path:
    if artifact_uri.startswith("file://"):
        return Path(unquote(urlparse(artifact_uri).path))
    if "://" in artifact_uri:
        raise InvalidArgument(f"unsupported artifact location {artifact_uri!r}: only local folders are supported")
    return Path(artifact_uri)


def _within_run(artifact_path: str | os.PathLike[str]) -> PurePosixPath:
    """``artifact_path`` as a path inside a run's folder. Absolute paths (``/x``, ``C:/x``, ``~``)
    and ``..`` are refused: a path inside the run is where a file goes in the run, never a place on
    this machine (the local file being logged may be anywhere)."""
    text = str(artifact_path).replace("\\", "/")
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
    return pure


class LocalArtifactRepository:
    """Reads and writes the artifacts of one run in a local folder."""

    def __init__(self, artifact_uri: str) -> None:
        self.root = _local_root(artifact_uri)

    def _resolve(self, artifact_path: str | None) -> Path:
        """The absolute path for ``artifact_path``, refusing anything that leaves the run folder."""
        if not artifact_path:
            return self.root
        target = (self.root / _within_run(artifact_path)).resolve()
        root = self.root.resolve()
        if target != root and root not in target.parents:
            raise InvalidArgument(f"artifact path {artifact_path!r} escapes the run's artifact folder")
        return target

    def log_artifact(self, local_file: str | os.PathLike[str], artifact_path: str | None = None) -> str:
        """Copy ``local_file`` (any local path, absolute or relative, ``~`` expanded) into the
        run's folder ``artifact_path`` (relative to the run); return its path within the run."""
        folder = _within_run(artifact_path) if artifact_path else PurePosixPath()
        source = Path(local_file).expanduser()
        if not source.is_file():
            hint = ": it is a directory, log it with log_artifacts" if source.is_dir() else ""
            raise NotFound(f"cannot log artifact: {source} is not a file{hint}")
        relative = str(folder / source.name)
        self.write_bytes(relative, source.read_bytes())
        return relative

    def log_artifacts(self, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy every file under ``local_dir`` (any local path) into the run's folder ``artifact_path``."""
        folder = _within_run(artifact_path) if artifact_path else PurePosixPath()
        source = Path(local_dir).expanduser()
        if not source.is_dir():
            raise NotFound(f"cannot log artifacts: {source} is not a directory")
        files = [p for p in sorted(source.rglob("*")) if p.is_file()]
        targets = [str(folder / p.relative_to(source).as_posix()) for p in files]
        for target in targets:  # check every path before writing any
            self._resolve(target)
        for path, target in zip(files, targets, strict=True):
            self.write_bytes(target, path.read_bytes())

    def write_bytes(self, artifact_file: str, data: bytes) -> Path:
        """Write ``data`` to ``artifact_file`` atomically."""
        if not artifact_file or str(artifact_file).endswith("/"):
            raise InvalidArgument(f"artifact file name {artifact_file!r} names no file")
        target = self._resolve(artifact_file)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def read_bytes(self, artifact_file: str) -> bytes:
        target = self._resolve(artifact_file)
        if not target.is_file():
            raise NotFound(f"no artifact {artifact_file!r} in {self.root}")
        return target.read_bytes()

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The files and folders directly under ``path`` (the run's root by default)."""
        folder = self._resolve(path)
        if not folder.is_dir():
            return []
        root = self.root.resolve()
        infos = []
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".tmp-"):
                continue
            relative = entry.resolve().relative_to(root).as_posix()
            infos.append(FileInfo(relative, entry.is_dir(), None if entry.is_dir() else entry.stat().st_size))
        return infos

    def download_artifacts(self, artifact_path: str, dst_path: str | os.PathLike[str]) -> str:
        """Copy a file or folder of artifacts to ``dst_path``; return the local path."""
        source = self._resolve(artifact_path)
        if not source.exists():
            raise NotFound(f"no artifact {artifact_path!r} in {self.root}")
        destination = Path(dst_path) / source.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, dirs_exist_ok=True)
        else:
            shutil.copy2(source, destination)
        return str(destination)
