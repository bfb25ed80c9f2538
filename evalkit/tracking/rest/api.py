"""The wire contract shared by the tracking server and the REST store: paths, headers and caps.

It imports nothing of the server, so the REST store works in a core install (no FastAPI).
"""

from __future__ import annotations

API_PREFIX = "/api/v1"
API_VERSION = 1
IDEMPOTENCY_HEADER = "Idempotency-Key"  # a client's key for one write, the same on every retry
USER_HEADER = "X-Evalkit-User"  # the client's user name, recorded when the server runs without auth
SERVED_ARTIFACTS_SCHEME = "evalkit-artifacts"  # run artifact URIs that the server serves
SEARCH_PAGE_MAX = 5_000  # runs or experiments per response
MAX_BATCH_ITEMS = 10_000  # metrics + params + tags per log-batch request
TOKEN_ENV = "EVALKIT_TRACKING_TOKEN"


def served_artifact_uri(run_id: str) -> str:
    """The artifact URI the server gives a run whose artifacts it serves (or signs URLs for)."""
    return f"{SERVED_ARTIFACTS_SCHEME}:/runs/{run_id}/artifacts"
