"""Where a run's code came from, for params and tags that let a run be traced to a commit."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit(where: str | Path | None = None) -> str | None:
    """The commit checked out at ``where`` (default: the current folder), None outside a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=2,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
