"""Artifact repositories: the client's artifact API on a local folder and on S3 (moto's server)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

import evalkit as ek
from evalkit.tracking import artifacts
from evalkit.tracking.artifacts import (
    ArtifactRepository,
    LocalArtifactRepository,
    get_artifact_repository,
    join_artifact_uri,
    safe_relative_path,
)

BAD_PATHS = ["../outside.txt", "a/../../outside.txt", "/etc/passwd", "~/x.txt", "..\\x.txt", "a\\..\\..\\x.txt"]


def _bucket_keys(bucket_uri: str) -> list[str]:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket_uri[len("s3://"):])
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


# ---- the path rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    (None, ""), ("", ""), (".", ""), ("a/b.txt", "a/b.txt"), ("a//b.txt", "a/b.txt"), ("./a/./b", "a/b"),
    ("plots\\x.png", "plots/x.png"), ("a/b/", "a/b"),
])
def test_safe_relative_path_normalises(given, expected):
    assert safe_relative_path(given) == expected


@pytest.mark.parametrize("bad", BAD_PATHS + ["a\x00b", "tab\there"])
def test_safe_relative_path_refuses_escapes(bad):
    with pytest.raises(ek.InvalidArgument):
        safe_relative_path(bad)


def test_a_path_must_be_text():
    for bad in (3, b"a.txt", ["a"]):
        with pytest.raises(ek.InvalidArgument, match="must be a string"):
            safe_relative_path(bad)


@pytest.mark.parametrize("empty", ["", "   ", "folder/", None])
def test_a_file_needs_a_name(empty):
    with pytest.raises(ek.InvalidArgument, match="names no file"):
        safe_relative_path(empty, file=True)


def test_artifact_uris_are_joined_without_mangling_the_scheme():
    assert join_artifact_uri("s3://bucket/team/", "3", "abc", "artifacts") == "s3://bucket/team/3/abc/artifacts"
    assert join_artifact_uri("s3://bucket", "3") == "s3://bucket/3"
    assert join_artifact_uri("/data/artifacts/", "3") == "/data/artifacts/3"
    assert join_artifact_uri("file:///data/a", "3") == "file:///data/a/3"


# ---- the client's API on both backends -----------------------------------------------------------


def test_client_artifact_api(artifact_root, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = tmp_path / "report.html"
    report.write_text("<html>report</html>")
    folder = tmp_path / "plots"
    (folder / "inner" / "deeper").mkdir(parents=True)
    (folder / "top.txt").write_text("top")
    (folder / "inner" / "x.txt").write_text("x")
    (folder / "inner" / "deeper" / "y.txt").write_text("yy")
    table = pd.DataFrame({"question": ["q1", "q2"], "score": [0.5, 1.0]})

    client = ek.TrackingClient()
    experiment_id = client.create_experiment("artifacts")
    run_id = client.create_run(experiment_id).info.run_id
    run = client.get_run(run_id)
    assert run.info.artifact_uri == f"{artifact_root}/{experiment_id}/{run_id}/artifacts"

    client.log_artifact(run_id, report)
    client.log_artifact(run_id, report, artifact_path="reports")
    client.log_artifacts(run_id, folder, artifact_path="plots")
    client.log_text(run_id, "héllo", "notes/hello.txt")
    client.log_dict(run_id, {"a": 1}, "config.json")
    for suffix in ("json", "parquet", "csv"):
        client.log_table(run_id, table, f"tables/results.{suffix}")
    fig, ax = plt.subplots()
    ax.plot([3, 2, 1])
    client.log_figure(run_id, fig, "curve.png")
    plt.close(fig)

    top = {a.path: a for a in client.list_artifacts(run_id)}
    assert list(top) == sorted(top)
    assert set(top) == {"report.html", "reports", "plots", "notes", "config.json", "tables", "curve.png"}
    assert top["plots"].is_dir and top["plots"].file_size is None
    assert not top["report.html"].is_dir and top["report.html"].file_size == len("<html>report</html>")
    assert [(a.path, a.is_dir) for a in client.list_artifacts(run_id, "plots")] == [
        ("plots/inner", True), ("plots/top.txt", False)]
    assert [a.path for a in client.list_artifacts(run_id, "plots/inner/deeper")] == ["plots/inner/deeper/y.txt"]
    assert client.list_artifacts(run_id, "no/such/folder") == []

    assert client.load_text(run_id, "notes/hello.txt") == "héllo"
    assert json.loads(client.load_text(run_id, "config.json")) == {"a": 1}
    for suffix in ("json", "parquet", "csv"):
        pd.testing.assert_frame_equal(client.load_table(run_id, f"tables/results.{suffix}"), table)

    png = client.download_artifacts(run_id, "curve.png", tmp_path / "out")
    assert Path(png) == tmp_path / "out" / "curve.png"
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plots = Path(client.download_artifacts(run_id, "plots", tmp_path / "out"))
    assert plots == tmp_path / "out" / "plots"
    assert sorted(p.relative_to(plots).as_posix() for p in plots.rglob("*") if p.is_file()) == [
        "inner/deeper/y.txt", "inner/x.txt", "top.txt"]
    assert (plots / "inner" / "deeper" / "y.txt").read_text() == "yy"
    everything = Path(client.download_artifacts(run_id, "", tmp_path / "all"))
    assert (everything / "reports" / "report.html").read_text() == "<html>report</html>"

    repository = client.artifact_repository(run_id)
    assert repository.exists("plots") and repository.exists("config.json") and not repository.exists("nothing")
    repository.delete("plots/inner")
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/top.txt"]
    repository.delete("config.json")
    assert not repository.exists("config.json")
    with pytest.raises(ek.NotFound, match="no artifact 'config.json'"):
        client.load_text(run_id, "config.json")
    with pytest.raises(ek.NotFound):
        client.download_artifacts(run_id, "config.json", tmp_path / "out2")
    with pytest.raises(ek.NotFound):
        repository.delete("config.json")


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_paths_cannot_escape_the_run(artifact_root, tmp_path, bad):
    client = ek.TrackingClient()
    run_id = client.create_run(client.create_experiment("escape")).info.run_id
    local_file = tmp_path / "f.txt"
    local_file.write_text("x")
    attempts = [
        lambda: client.log_text(run_id, "x", bad),
        lambda: client.log_artifact(run_id, local_file, artifact_path=bad),
        lambda: client.load_text(run_id, bad),
        lambda: client.list_artifacts(run_id, bad),
        lambda: client.download_artifacts(run_id, bad, tmp_path / "dl"),
        lambda: client.artifact_repository(run_id).delete(bad),
    ]
    for attempt in attempts:
        with pytest.raises(ek.InvalidArgument, match="escapes the run's artifact folder|is absolute"):
            attempt()
    if artifact_root.startswith("s3://"):
        assert _bucket_keys(artifact_root.split("/team/")[0]) == []
    else:
        assert not (tmp_path / "outside.txt").exists()
        assert not any(Path(artifact_root).rglob("*.txt"))


def test_a_large_file_goes_up_in_parts_and_comes_back_whole(artifact_root, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:  # 21 MiB: three parts of 8 MiB
        for _ in range(21):
            handle.write(os.urandom(1024 * 1024))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    client = ek.TrackingClient()
    run_id = client.create_run(client.create_experiment("big")).info.run_id
    client.log_artifact(run_id, big, artifact_path="data")

    assert [(a.path, a.file_size) for a in client.list_artifacts(run_id, "data")] == [("data/big.bin", 21 * 2**20)]
    back = Path(client.download_artifacts(run_id, "data/big.bin", tmp_path / "back"))
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest
    if artifact_root.startswith("s3://"):
        import boto3

        repository = client.artifact_repository(run_id)
        head = boto3.client("s3").head_object(Bucket=repository.bucket, Key=repository._key("data/big.bin"))
        assert head["ETag"].strip('"').endswith("-3"), "a multipart upload's ETag ends with -<parts>"


def test_log_artifacts_checks_every_path_before_writing(artifact_root, tmp_path):
    client = ek.TrackingClient()
    run_id = client.create_run(client.create_experiment("x")).info.run_id
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    with pytest.raises(ek.InvalidArgument, match="escapes"):
        client.log_artifacts(run_id, folder, artifact_path="../../elsewhere")
    assert client.list_artifacts(run_id) == []


def test_artifacts_of_a_finished_run_are_read_only(artifact_root):
    client = ek.TrackingClient()
    run_id = client.create_run(client.create_experiment("x")).info.run_id
    client.log_text(run_id, "a", "a.txt")
    client.set_terminated(run_id)
    with pytest.raises(ek.InvalidState):
        client.log_text(run_id, "b", "b.txt")
    assert client.load_text(run_id, "a.txt") == "a"


# ---- S3 specifics ------------------------------------------------------------------------------


@pytest.mark.s3
def test_s3_listing_follows_pages(s3_bucket, monkeypatch):
    from evalkit.tracking.artifacts.s3 import S3ArtifactRepository

    monkeypatch.setattr(S3ArtifactRepository, "page_size", 2)
    repository = get_artifact_repository(f"{s3_bucket}/run/artifacts")
    names = [f"folder/f{i:02d}.txt" for i in range(7)] + [f"folder/sub{i}/x.txt" for i in range(3)]
    for name in names:
        repository.write_bytes(name, b"x")
    listed = repository.list_artifacts("folder")
    assert [a.path for a in listed] == sorted([n for n in names if "sub" not in n] + [f"folder/sub{i}" for i in range(3)])
    assert sorted(a.path for a in repository.walk_files()) == sorted(names)
    repository.delete()
    assert _bucket_keys(s3_bucket) == []


@pytest.mark.s3
def test_s3_presigned_urls_put_and_get(s3_bucket):
    repository = get_artifact_repository(f"{s3_bucket}/run/artifacts")
    put = repository.presigned_url("report.html", "PUT", expires_in=60)
    request = urllib.request.Request(put, data=b"<html>signed</html>", method="PUT",
                                     headers={"Content-Type": "text/html"})
    assert urllib.request.urlopen(request, timeout=10).status == 200
    assert repository.read_bytes("report.html") == b"<html>signed</html>"
    get = repository.presigned_url("report.html")
    assert "X-Amz-Signature=" in get and "test-secret" not in get
    assert urllib.request.urlopen(get, timeout=10).read() == b"<html>signed</html>"
    with pytest.raises(ek.InvalidArgument, match="GET or PUT"):
        repository.presigned_url("report.html", "DELETE")
    with pytest.raises(ek.InvalidArgument, match="escapes"):
        repository.presigned_url("../other-run/report.html")


def test_local_repository_has_no_presigned_urls(tmp_path):
    with pytest.raises(ek.InvalidArgument, match="cannot make presigned URLs"):
        LocalArtifactRepository(str(tmp_path)).presigned_url("a.txt")


@pytest.mark.s3
def test_fluent_run_with_artifacts_on_s3(s3_bucket, monkeypatch, tmp_path):
    """The whole fluent workflow with EVALKIT_ARTIFACT_ROOT=s3://... and the default SQLite store."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("EVALKIT_ARTIFACT_ROOT", f"{s3_bucket}/nightly/")
    table = pd.DataFrame({"question": ["q1", "q2", "q3"], "score": [0.5, float("nan"), 1.0]})
    ek.set_experiment("on-s3")
    with ek.start_run() as run:
        ek.log_param("model", "m")
        ek.log_table(table, "eval_results_table.json")
        ek.log_table(table, "eval_results_table.parquet")
        ek.log_text("hello", "notes/hello.txt")
        ek.log_dict({"a": 1}, "config.yaml")
        fig, ax = plt.subplots()
        ax.plot([1, 2])
        ek.log_figure(fig, "plots/curve.png")
        plt.close(fig)
    run_id = run.info.run_id
    uri = ek.get_run(run_id).info.artifact_uri
    assert uri.startswith(f"{s3_bucket}/nightly/") and uri.endswith(f"/{run_id}/artifacts") and "//" not in uri[5:]
    assert not (tmp_path / "evalkit-artifacts").exists()
    keys = _bucket_keys(s3_bucket)
    assert sorted(key.split("/artifacts/", 1)[1] for key in keys) == [
        "config.yaml", "eval_results_table.json", "eval_results_table.parquet", "notes/hello.txt", "plots/curve.png"]

    client = ek.TrackingClient()
    pd.testing.assert_frame_equal(client.load_table(run_id, "eval_results_table.json"), table)
    pd.testing.assert_frame_equal(client.load_table(run_id, "eval_results_table.parquet"), table)
    assert client.load_text(run_id, "notes/hello.txt") == "hello"
    assert "a: 1" in client.load_text(run_id, "config.yaml")
    assert client.artifact_repository(run_id).read_bytes("plots/curve.png")[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.s3
def test_an_experiments_artifact_location_wins(s3_bucket, tmp_path):
    client = ek.TrackingClient()
    experiment_id = client.create_experiment("team", artifact_location=f"{s3_bucket}/team-exp")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_text(run_id, "x", "x.txt")
    assert _bucket_keys(s3_bucket) == [f"team-exp/{run_id}/artifacts/x.txt"]
    local = client.create_run(client.create_experiment("local")).info
    assert local.artifact_uri.startswith(str(tmp_path / "evalkit-artifacts"))


@pytest.mark.s3
@pytest.mark.postgres
def test_postgresql_store_with_s3_artifacts(postgres, s3_bucket, monkeypatch):
    monkeypatch.setenv("EVALKIT_ARTIFACT_ROOT", f"{s3_bucket}/pg")
    ek.set_tracking_uri(postgres.create_database("t_art_s3"))
    table = pd.DataFrame({"a": [1, 2]})
    with ek.start_run() as run:
        ek.log_table(table, "t.json")
    assert run.info.artifact_uri.startswith(f"{s3_bucket}/pg/")
    pd.testing.assert_frame_equal(ek.TrackingClient().load_table(run.info.run_id, "t.json"), table)


# ---- errors never carry credentials ------------------------------------------------------------

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY"


@pytest.mark.s3
def test_no_aws_secret_in_errors_or_logs(s3_bucket, s3_server, monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET + "-token")
    caplog.set_level(logging.DEBUG)
    local_file = tmp_path / "f.txt"
    local_file.write_text("x")
    messages = []

    def failing(call, error):
        with pytest.raises(error) as info:
            call()
        messages.append(str(info.value))

    missing_bucket = get_artifact_repository("s3://no-such-bucket-here/run/artifacts")
    failing(lambda: missing_bucket.write_bytes("a.txt", b"x"), ek.NotFound)
    failing(lambda: missing_bucket.upload_file(local_file, "a.txt"), ek.NotFound)
    failing(lambda: missing_bucket.list_artifacts(), ek.NotFound)
    repository = get_artifact_repository(f"{s3_bucket}/run/artifacts")
    failing(lambda: repository.read_bytes("missing.txt"), ek.NotFound)
    failing(lambda: repository.download_file("missing.txt", tmp_path / "m.txt"), ek.NotFound)
    assert not (tmp_path / "m.txt").exists()

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    unreachable = get_artifact_repository(f"{s3_bucket}/run/artifacts")
    failing(lambda: unreachable.write_bytes("a.txt", b"x"), ek.StoreUnavailable)
    failing(lambda: unreachable.upload_file(local_file, "a.txt"), ek.StoreUnavailable)
    assert "cannot reach" in messages[-1] or "Could not connect" in messages[-1]

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    failing(lambda: get_artifact_repository(f"{s3_bucket}/run").read_bytes("a.txt"), ek.StoreUnavailable)
    assert "no AWS credentials found" in messages[-1]

    assert all("s3://" in message for message in messages)
    for text in [*messages, caplog.text]:
        assert SECRET not in text


@pytest.mark.s3
def test_a_missing_aws_profile_is_a_clear_error(s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(ek.StoreUnavailable, match="cannot set up S3 access.*no-such-profile"):
        get_artifact_repository(f"{s3_bucket}/run")


def test_s3_without_boto3_says_which_extra(monkeypatch):
    from evalkit.tracking.artifacts import s3

    monkeypatch.setattr(s3, "boto3", None)
    with pytest.raises(ek.InvalidArgument, match=r"pip install 'evalkit\[s3\]'"):
        get_artifact_repository("s3://bucket/run")


# ---- the registry ------------------------------------------------------------------------------


def test_repository_chosen_by_scheme(tmp_path):
    assert isinstance(get_artifact_repository(str(tmp_path)), LocalArtifactRepository)
    assert isinstance(get_artifact_repository(f"file://{tmp_path}"), LocalArtifactRepository)
    with pytest.raises(ek.InvalidArgument, match=r"no artifact repository for scheme 'ftp'.*file, s3"):
        get_artifact_repository("ftp://host/x")
    with pytest.raises(ek.InvalidArgument, match="names no valid bucket"):
        get_artifact_repository("s3:///prefix")


def test_a_plugin_adds_a_scheme(monkeypatch):
    class MemoryRepository(ArtifactRepository):
        files: dict[str, bytes] = {}

        def write_bytes(self, artifact_file, data):
            self.files[safe_relative_path(artifact_file, file=True)] = data

        def read_bytes(self, artifact_file):
            return self.files[safe_relative_path(artifact_file, file=True)]

        def upload_file(self, local_file, artifact_file):
            self.write_bytes(artifact_file, Path(local_file).read_bytes())

        def download_file(self, artifact_file, local_file):
            Path(local_file).write_bytes(self.read_bytes(artifact_file))

        def list_artifacts(self, path=None):
            return []

        def is_file(self, path):
            return path in self.files

        def delete(self, path=None):
            self.files.pop(path, None)

    class EntryPoint:
        value = "tests:MemoryRepository"

        def load(self):
            return MemoryRepository

    monkeypatch.setattr(artifacts, "_plugins", lambda: {"mem": EntryPoint()})
    repository = get_artifact_repository("mem://somewhere/run")
    assert isinstance(repository, MemoryRepository)
    repository.write_bytes("a.txt", b"x")
    with pytest.raises(ek.InvalidArgument, match="escapes"):
        repository.write_bytes("../a.txt", b"x")


# ---- where the artifact root comes from --------------------------------------------------------


def test_artifact_root_from_the_environment_for_every_store(monkeypatch, tmp_path):
    from evalkit.tracking.uri import parse_tracking_uri

    assert parse_tracking_uri("store.db").default_artifact_root == str(tmp_path / "evalkit-artifacts")
    monkeypatch.setenv("EVALKIT_ARTIFACT_ROOT", "s3://bucket/team/")
    assert parse_tracking_uri("store.db").default_artifact_root == "s3://bucket/team"
    assert parse_tracking_uri("sqlite:///store.db").default_artifact_root == "s3://bucket/team"
    assert parse_tracking_uri("postgresql://u@localhost/db").default_artifact_root == "s3://bucket/team"
    monkeypatch.setenv("EVALKIT_ARTIFACT_ROOT", "relative/arts/")
    assert parse_tracking_uri("store.db").default_artifact_root == str(tmp_path / "relative" / "arts")
