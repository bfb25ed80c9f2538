"""Artifacts in a local folder (a plain path or a ``file://`` URI).

Files are written to a temporary name beside their target and renamed, so a crash never leaves a
half-written artifact behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from evalkit.entities import FileInfo
from evalkit.errors import InvalidArgument, NotFound
from evalkit.tracking.artifacts.base import ArtifactRepository, safe_relative_path

TEMP_PREFIX = ".tmp-"


def local_root(artifact_uri: str) -> Path:
    """The folder named by a plain path or a ``file://`` URI."""
    if artifact_uri.startswith("file://"):
        return Path(unquote(urlparse(artifact_uri).path))
    if "://" in artifact_uri:
        raise InvalidArgument(f"{artifact_uri!r} is not a local folder")
    return Path(artifact_uri)


class LocalArtifactRepository(ArtifactRepository):
    """Reads and writes the artifacts of one run in a local folder."""

    def __init__(self, artifact_uri: str) -> None:
        super().__init__(artifact_uri)
        self.root = local_root(artifact_uri)

    def _resolve(self, artifact_path: str | None, *, file: bool = False) -> Path:
        """The absolute path for ``artifact_path``; a symlink leading out of the run folder is refused too."""
        relative = safe_relative_path(artifact_path, file=file)
        if not relative:
            return self.root
        target = (self.root / relative).resolve()
        root = self.root.resolve()
        if target != root and root not in target.parents:
            raise InvalidArgument(f"artifact path {artifact_path!r} escapes the run's artifact folder")
        return target

    def _atomic_write(self, artifact_file: str, write: Callable[[BinaryIO], None]) -> None:
        target = self._resolve(artifact_file, file=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_bytes(self, artifact_file: str, data: bytes) -> None:
        self._atomic_write(artifact_file, lambda handle: handle.write(data))

    def upload_file(self, local_file: str | os.PathLike[str], artifact_file: str) -> None:
        with open(local_file, "rb") as source:
            self._atomic_write(artifact_file, lambda handle: shutil.copyfileobj(source, handle, 1 << 20))

    def read_bytes(self, artifact_file: str) -> bytes:
        target = self._resolve(artifact_file, file=True)
        if not target.is_file():
            raise NotFound(f"no artifact {artifact_file!r} in {self.root}")
        return target.read_bytes()

    def download_file(self, artifact_file: str, local_file: str | os.PathLike[str]) -> None:
        source = self._resolve(artifact_file, file=True)
        if not source.is_file():
            raise NotFound(f"no artifact {artifact_file!r} in {self.root}")
        shutil.copy2(source, local_file)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        folder = self._resolve(path)
        if not folder.is_dir():
            return []
        root = self.root.resolve()
        infos = []
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(TEMP_PREFIX):
                continue
            relative = entry.resolve().relative_to(root).as_posix()
            infos.append(FileInfo(relative, entry.is_dir(), None if entry.is_dir() else entry.stat().st_size))
        return infos

    def is_file(self, path: str) -> bool:
        return bool(safe_relative_path(path)) and self._resolve(path).is_file()

    def delete(self, path: str | None = None) -> None:
        target = self._resolve(path)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        elif path:
            raise NotFound(f"no artifact {path!r} in {self.root}")

    def _is_existing_folder(self, path: str) -> bool:
        return self._resolve(path).is_dir()

    def download_artifacts(self, artifact_path: str | None, dst_path: str | os.PathLike[str]) -> str:
        source = self._resolve(artifact_path)
        if not source.exists():
            raise NotFound(f"no artifact {artifact_path!r} in {self.root}")
        destination = Path(dst_path) / source.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(f"{TEMP_PREFIX}*"))
        else:
            shutil.copy2(source, destination)
        return str(destination)
