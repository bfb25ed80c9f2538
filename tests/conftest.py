from __future__ import annotations

import os
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from postgres_cluster import PostgresCluster, find_pg_bin, start_cluster
from server_fixture import ServerProcess, start_server

import evalkit as ek
from evalkit.tracking import fluent
from evalkit.tracking.stores import close_stores

# CI sets this so that a missing PostgreSQL fails the run instead of skipping its tests.
REQUIRE_POSTGRES = os.environ.get("EVALKIT_REQUIRE_POSTGRES") == "1"
# CI sets this so that a missing moto (or a server that cannot start) fails the S3 tests instead of skipping them.
REQUIRE_S3 = os.environ.get("EVALKIT_REQUIRE_S3") == "1"
# CI sets this so that a missing Ray (the 'ray' extra) fails the Ray executor's tests instead of skipping them.
REQUIRE_RAY = os.environ.get("EVALKIT_REQUIRE_RAY") == "1"
# Any AWS setting of the machine running the tests: the S3 fixtures set their own, and nothing may reach AWS.
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION",
           "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    if find_pg_bin() is None:
        if REQUIRE_POSTGRES:
            pytest.fail("EVALKIT_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries were found")
        pytest.skip("PostgreSQL server binaries not installed")
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3-protocol server on 127.0.0.1, one per test session; yields its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        if REQUIRE_S3:
            pytest.fail(f"EVALKIT_REQUIRE_S3=1 but moto's server cannot be imported: {exc}")
        pytest.skip("moto[server] not installed (pip install -e '.[dev]')")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """One local Ray cluster (2 CPUs, no dashboard) for the whole session; yields its address, which
    other processes (a driver in a subprocess) join it by."""
    try:
        import ray
    except ImportError as exc:
        if REQUIRE_RAY:
            pytest.fail(f"EVALKIT_REQUIRE_RAY=1 but Ray cannot be imported: {exc}")
        pytest.skip("ray not installed (pip install -e '.[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> Iterator[str]:
    """A new, empty bucket on the moto server, with the AWS environment pointing at it; yields ``s3://name``."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key-for-moto")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    name = f"evalkit-{uuid.uuid4().hex[:16]}"
    boto3.client("s3").create_bucket(Bucket=name)
    yield f"s3://{name}"
    # moto keeps objects in memory: drop them with the test.
    urllib.request.urlopen(urllib.request.Request(f"{s3_server}/moto-api/reset", method="POST"), timeout=10)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def artifact_root(request, tmp_path, monkeypatch) -> str:
    """``$EVALKIT_ARTIFACT_ROOT`` on each artifact backend (a local folder, then a prefix in a fresh S3
    bucket); the test runs once per backend."""
    if request.param == "local":
        root = str(tmp_path / "artifacts")
    else:
        root = f"{request.getfixturevalue('s3_bucket')}/team/artifacts"
    monkeypatch.setenv("EVALKIT_ARTIFACT_ROOT", root)
    return root


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch) -> Iterator[None]:
    """Every test runs in its own folder with its own default store and no active run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVALKIT_TRACKING_URI", raising=False)
    monkeypatch.delenv("EVALKIT_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("EVALKIT_ARTIFACT_ROOT", raising=False)
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no credential lookups on the network
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


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """ONE evalkit server for the session (uvicorn in a subprocess on 127.0.0.1, SQLite, local
    artifacts, no auth): tests share it, each with its own experiment names."""
    server = start_server(tmp_path_factory.mktemp("tracking-server"))
    yield server
    server.stop()


@pytest.fixture
def server_uri(tracking_server) -> str:
    """The shared server's URL, set as this test's tracking URI."""
    ek.set_tracking_uri(tracking_server.url)
    return tracking_server.url
