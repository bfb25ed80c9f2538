"""What an evalkit tracking server serves and how: one record, built by the CLI, read by the app."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from evalkit.tracking.artifacts import artifact_scheme

CONFIG_ENV = "EVALKIT_SERVER_CONFIG"  # how the CLI hands the config to each uvicorn worker process
MB = 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """A tracking server's settings.

    ``serve_artifacts``: artifacts go through the server (streamed both ways). Without it, an S3
    root is reached by clients through presigned URLs that the server hands out, and any other
    root is read and written by the clients themselves.
    """

    backend_store_uri: str
    default_artifact_root: str
    serve_artifacts: bool = True
    auth_enabled: bool = False
    # open on loopback without --insecure-no-auth: refuse requests a reverse proxy forwarded, so a
    # proxy in front of 127.0.0.1 cannot publish an open server (evalkit.server.auth)
    loopback_only: bool = False
    max_request_bytes: int = 16 * MB  # any JSON request body
    max_artifact_bytes: int = 5 * 1024 * MB  # one artifact upload, streamed to disk as it arrives
    access_log: bool = True

    @property
    def presigned_artifacts(self) -> bool:
        """Whether clients move artifacts straight to and from S3 with URLs the server signs."""
        return not self.serve_artifacts and artifact_scheme(self.default_artifact_root) == "s3"

    @property
    def artifacts_through_server(self) -> bool:
        """Whether clients reach artifacts through the server's API (proxied or presigned)."""
        return self.serve_artifacts or self.presigned_artifacts

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServerConfig:
        """The config the CLI put in ``$EVALKIT_SERVER_CONFIG`` (uvicorn's worker processes read it)."""
        return cls(**json.loads(os.environ[CONFIG_ENV]))

