"""The article's team set-up: the server on PostgreSQL with artifacts on S3 (moto), an evaluation
with its report and a suite night through it, and presigned artifact URLs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from server_fixture import ServerProcess, start_server
from suite_files import OFFLINE, write_suite

import evalkit as ek
from evalkit.cli.main import cli
from evalkit.suite import run_suite

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.s3]
RAG_QA = Path(__file__).resolve().parents[2] / "datasets" / "rag_qa.jsonl"


@pytest.fixture(scope="module")
def bucket(s3_server) -> Iterator[tuple[str, dict[str, str]]]:
    """A bucket on moto for this module, and the AWS environment that reaches it."""
    import boto3

    env = {"AWS_ACCESS_KEY_ID": "AKIATESTTESTTESTTEST", "AWS_SECRET_ACCESS_KEY": "test-secret-key-for-moto",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": s3_server, "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
    name = f"team-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    yield name, env


def s3_keys(bucket: str, env: dict[str, str], prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def team_server(postgres, bucket, tmp_path_factory) -> Iterator[ServerProcess]:
    name, env = bucket
    database = postgres.create_database(f"team_{uuid.uuid4().hex[:10]}")
    server = start_server(tmp_path_factory.mktemp("team-server"), database, f"s3://{name}/evalkit", env=env)
    yield server
    server.stop()


def test_an_evaluation_and_its_report_through_the_server_with_artifacts_on_s3(team_server, bucket, tmp_path):
    ek.set_tracking_uri(team_server.url)
    result = ek.evaluate(model="evalkit:/extractive", data=str(RAG_QA), targets="ground_truth",
                         experiment="team-eval", progress=False)
    run = ek.get_run(result.run_id)
    assert run.info.status is ek.RunStatus.FINISHED and run.data.metrics["error_count"] == 0
    stored = ek.TrackingClient().load_table(result.run_id, "eval_results_table.parquet")
    assert len(stored) == len(result.tables["eval_results_table"])
    keys = s3_keys(bucket[0], bucket[1], f"evalkit/{run.info.experiment_id}/{result.run_id}/artifacts/")
    assert any(key.endswith("eval_results_table.parquet") for key in keys)
    report = tmp_path / "report.html"
    done = CliRunner().invoke(cli, ["--tracking-uri", team_server.url, "report", result.run_id, "-o", str(report)])
    assert done.exit_code == 0, done.output
    assert result.run_id in report.read_text()


def test_a_suite_night_through_the_server(team_server, tmp_path):
    ek.set_tracking_uri(team_server.url)
    path = write_suite(tmp_path, OFFLINE)
    night = run_suite(path, tmp_path / "night")
    assert night.exit_code == 0
    history = CliRunner().invoke(cli, ["--tracking-uri", team_server.url, "history", "nightly-test",
                                       "--metric", "faithfulness/mean", "--json"])
    assert history.exit_code == 0, history.output
    assert "extractive" in history.output
    assert (tmp_path / "night" / "junit.xml").exists()


def test_presigned_urls_move_artifacts_between_the_client_and_s3(postgres, bucket, tmp_path):
    name, env = bucket
    database = postgres.create_database(f"presigned_{uuid.uuid4().hex[:10]}")
    server = start_server(tmp_path / "server", database, f"s3://{name}/signed", "--no-serve-artifacts", env=env)
    try:
        client = ek.TrackingClient(server.url)
        run = client.create_run(client.create_experiment("signed"))
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(3 * 1024 * 1024))
        client.log_artifact(run.info.run_id, big, "data")
        assert client.list_artifacts(run.info.run_id, "data")[0].file_size == big.stat().st_size
        back = client.download_artifacts(run.info.run_id, "data/big.bin", tmp_path / "back")
        assert Path(back).read_bytes() == big.read_bytes()
        assert s3_keys(name, env, "signed/") == [f"signed/{run.info.experiment_id}/{run.info.run_id}/artifacts/data/big.bin"]
        # The bytes never went through the server: it only signed URLs.
        assert '"method": "PUT"' not in server.log() and "upload-url" in server.log()
    finally:
        server.stop()
