"""A real evalkit server (uvicorn, ``evalkit server``) on 127.0.0.1 in a subprocess, for tests.

``tests/conftest.py`` keeps ONE session-wide server on SQLite with local artifacts
(``tracking_server``); server, auth and UI tests share it and tell their data apart by unique
experiment names. Tests that need their own server (PostgreSQL, S3, a restart) start one with
:func:`start_server`. The server's stderr (its JSON access log) is kept in ``log_path``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

STARTUP_SECONDS = 120  # generous: a loaded CI machine takes tens of seconds to import the server


@contextmanager
def serve_in_thread(app: Any, **options: Any) -> Iterator[str]:
    """``app`` on a real uvicorn in a thread of this process, on a free port of 127.0.0.1; yields its
    URL. For what the shared server cannot give (tokens, a reader's view, an in-process store).
    ``options`` go to ``uvicorn.Config``; never ``access_log=False``: uvicorn would switch its access
    logger off for the whole process, and other tests read it."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """One ``evalkit server`` subprocess; ``url`` is what clients give ``set_tracking_uri``."""

    backend_store_uri: str
    artifact_root: str
    folder: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def start(self) -> ServerProcess:
        command = [sys.executable, "-m", "evalkit.cli", "server", "--backend-store-uri", self.backend_store_uri,
                   "--default-artifact-root", self.artifact_root, "--host", "127.0.0.1", "--port", str(self.port),
                   *self.args]
        env = {**os.environ, **self.env}
        env.pop("EVALKIT_TRACKING_TOKEN", None)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=self.folder)
        log.close()
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"evalkit server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"evalkit server did not answer within {STARTUP_SECONDS}s:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the server (SIGTERM: graceful; SIGKILL: a crash) and return its exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(folder: Path, backend_store_uri: str | None = None, artifact_root: str | None = None,
                 *args: str, env: dict[str, str] | None = None) -> ServerProcess:
    """A running server on ``backend_store_uri`` (a new SQLite file in ``folder`` by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(backend_store_uri or f"sqlite:///{folder / 'server.db'}",
                           artifact_root or str(folder / "artifacts"), folder, list(args), env or {})
    return server.start()
