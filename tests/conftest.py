from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from postgres_cluster import PostgresCluster, find_pg_bin, start_cluster

import evalkit as ek
from evalkit.tracking import fluent
from evalkit.tracking.stores import close_stores

# CI sets this so that a missing PostgreSQL fails the run instead of skipping its tests.
REQUIRE_POSTGRES = os.environ.get("EVALKIT_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    if find_pg_bin() is None:
        if REQUIRE_POSTGRES:
            pytest.fail("EVALKIT_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries were found")
        pytest.skip("PostgreSQL server binaries not installed")
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch) -> Iterator[None]:
    """Every test runs in its own folder with its own default store and no active run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVALKIT_TRACKING_URI", raising=False)
    monkeypatch.delenv("EVALKIT_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("EVALKIT_ARTIFACT_ROOT", raising=False)
    fluent._active_experiment.set(None)
    fluent._active_runs.set(())
    ek.set_tracking_uri(None)
    yield
    fluent._active_runs.set(())
    fluent._active_experiment.set(None)
    ek.set_tracking_uri(None)
    close_stores()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def tracking_uri(request, tmp_path) -> str:
    """A fresh, empty store on each backend; the test runs once per backend."""
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        uri = cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")
    os.environ["EVALKIT_ARTIFACT_ROOT"] = str(tmp_path / "artifacts")
    ek.set_tracking_uri(uri)
    return uri
