"""The tracking server and the REST store through real uvicorn on 127.0.0.1 (SQLite, local artifacts).

The shared server (``tracking_server`` in conftest) serves every test here; each test uses its own
experiment names. Multi-process and restart tests are in test_server_durability.py, PostgreSQL and
S3 in test_server_team.py.
"""

from __future__ import annotations

import http.client
import json
import math
import time
import uuid

import httpx
import pytest
import test_article as article

import evalkit as ek
from evalkit.entities import Metric
from evalkit.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from evalkit.tracking.downsample import downsample_metric_history
from evalkit.tracking.rest.store import RestStore
from evalkit.tracking.sql.store import SqlStore


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def raw_request(server_uri: str, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
    """A request whose path is sent as written: httpx would resolve its ``..`` segments itself."""
    connection = http.client.HTTPConnection(*server_uri.removeprefix("http://").split(":"), timeout=10)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def api(server_uri: str) -> httpx.Client:
    return httpx.Client(base_url=f"{server_uri}/api/v1", timeout=10)


# ---- the article through http:// ---------------------------------------------------------------


def test_article_section_3_through_the_server(server_uri, tmp_path, monkeypatch):
    article.test_section_3_manual_logging(tmp_path, monkeypatch)
    run = ek.search_runs(filter_string="attributes.run_name = 'rag-pipeline-v2'", output_format="list",
                         order_by=["attributes.start_time DESC"])[0]
    assert run.info.artifact_uri.startswith(f"{server_uri}/api/v1/runs/")  # artifacts went through the server
    with api(server_uri) as http:
        served = http.get(f"/runs/{run.info.run_id}/artifacts/files/evaluation_report.html")
    assert served.status_code == 200 and served.content == b"<html></html>"


def test_article_section_5_through_the_server(server_uri):
    article.test_section_5_querying_and_comparing_runs()
    assert ek.get_tracking_uri() == server_uri


# ---- the store contract over the wire ----------------------------------------------------------


def test_the_ui_reads_answer_the_same_through_the_server(server_uri):
    """count_runs, run_stats, search_keys and get_metric_histories (what the web UI reads) give over
    REST exactly what the store behind the server gives."""
    rest = RestStore(server_uri)
    experiment_id = rest.create_experiment(unique("ui-reads"))
    runs = []
    for i in range(3):
        run = rest.create_run(experiment_id, run_name=f"r{i}")
        rest.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0 / (i + step + 1), 0, step) for step in range(4)],
                       params=[ek.Param(f"p{i}", "x"), ek.Param("lr", str(i))])
        runs.append(run.info.run_id)
    assert rest.count_runs([experiment_id]) == 3
    assert rest.count_runs([experiment_id], "params.lr = '1'") == 1
    stats = rest.run_stats([experiment_id])[experiment_id]
    assert stats.run_count == 3 and stats.last_activity is not None
    assert rest.search_keys([experiment_id], "param") == ["lr", "p0", "p1", "p2"]
    assert rest.search_keys([experiment_id], "param", contains="P", max_results=2) == ["p0", "p1"]
    histories = rest.get_metric_histories([*runs, "no-such-run"], "loss")
    assert histories["no-such-run"] == [] and [m.step for m in histories[runs[2]]] == [0, 1, 2, 3]
    assert histories[runs[0]] == rest.get_metric_history(runs[0], "loss")
    with pytest.raises(InvalidArgument, match="unknown key entity"):
        rest.search_keys([experiment_id], "artifact")
    with pytest.raises(InvalidArgument, match="at most 100 runs"):
        with api(server_uri) as http:
            answer = http.post("/metrics/histories", json={"run_ids": [str(i) for i in range(101)], "key": "loss"})
        raise InvalidArgument(answer.json()["message"])


def test_nan_and_infinities_survive_the_round_trip_and_history_pages(server_uri):
    ek.set_experiment(unique("wire"))
    with ek.start_run() as run:
        ek.log_metrics({"nan": math.nan, "pos": math.inf, "neg": -math.inf})
        for step in range(30):
            ek.log_metric("loss", 1.0 / (step + 1), step=step)
    metrics = ek.get_run(run.info.run_id).data.metrics
    assert math.isnan(metrics["nan"]) and metrics["pos"] == math.inf and metrics["neg"] == -math.inf
    store = RestStore(server_uri)
    history = store.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(30))
    first, token = store.get_metric_history_page(run.info.run_id, "loss", 20)
    rest, last = store.get_metric_history_page(run.info.run_id, "loss", 20, token)
    assert len(first) == 20 and len(rest) == 10 and last is None and first + rest == history
    points, total = store.get_downsampled_metric_history(run.info.run_id, "loss", max_points=10)
    assert total == 30 and len(points) <= 10 and points[0].value == 1.0 and points[-1].value == pytest.approx(1 / 30)


def test_store_errors_come_back_as_the_same_classes(server_uri):
    store = RestStore(server_uri)
    name = unique("errors")
    experiment_id = store.create_experiment(name)
    with pytest.raises(AlreadyExists, match=name):
        store.create_experiment(name)
    with pytest.raises(NotFound, match="no run with id 'nope'"):
        store.get_run("nope")
    run = store.create_run(experiment_id)
    store.update_run(run.info.run_id, "FINISHED")
    with pytest.raises(InvalidState, match="FINISHED"):
        store.log_batch(run.info.run_id, [Metric("m", 1.0, 1, 0)])
    with pytest.raises(InvalidArgument, match="unknown run status"):
        store.update_run(run.info.run_id, "DONE")
    with pytest.raises(InvalidArgument, match="max_results"):
        store.search_runs([experiment_id], max_results=0)


def test_runs_record_the_clients_user_and_searches_page(server_uri):
    store = RestStore(server_uri)
    experiment_id = store.create_experiment(unique("paging"))
    ids = [store.create_run(experiment_id, run_name=f"r{i}").info.run_id for i in range(7)]
    page, token = store.search_runs([experiment_id], order_by="attributes.run_name", max_results=4)
    rest, end = store.search_runs([experiment_id], order_by="attributes.run_name", max_results=4, page_token=token)
    assert [r.info.run_name for r in page + rest] == [f"r{i}" for i in range(7)] and end is None
    assert store.get_run(ids[0]).info.user_id  # the client's user name, not the server's


def test_a_retried_write_with_the_same_idempotency_key_writes_once(server_uri):
    store = RestStore(server_uri)
    experiment_id = store.create_experiment(unique("idempotent"))
    key = uuid.uuid4().hex
    with api(server_uri) as http:
        first = http.post("/runs", json={"experiment_id": experiment_id}, headers={"Idempotency-Key": key}).json()
        again = http.post("/runs", json={"experiment_id": experiment_id}, headers={"Idempotency-Key": key}).json()
        assert again["info"]["run_id"] == first["info"]["run_id"]
        run_id = first["info"]["run_id"]
        batch = {"metrics": [{"key": "m", "value": i, "timestamp": 1, "step": i} for i in range(5)]}
        for _ in range(3):
            assert http.post(f"/runs/{run_id}/log-batch", json=batch, headers={"Idempotency-Key": key + "b"}).status_code == 200
    assert len(store.get_metric_history(run_id, "m")) == 5
    assert len(store.search_runs([experiment_id])[0]) == 1


# ---- bad input over the wire -------------------------------------------------------------------


def test_bad_input_is_a_4xx_with_a_clear_message_and_the_store_is_intact(server_uri):
    store = RestStore(server_uri)
    experiment_id = store.create_experiment(unique("bad-input"))
    run_id = store.create_run(experiment_id).info.run_id
    store.log_batch(run_id, [Metric("ok", 1.0, 1, 0)])
    with api(server_uri) as http:
        def error(response: httpx.Response, status: int) -> str:
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == "application/json"
            return response.json()["error_code"] + ": " + response.json()["message"]

        malformed = http.post(f"/runs/{run_id}/log-batch", content=b'{"metrics": [', headers={"content-type": "application/json"})
        assert "INVALID_ARGUMENT: malformed JSON" in error(malformed, 400)
        huge = http.post(f"/runs/{run_id}/log-batch", content=b" " * (17 * 1024 * 1024),
                         headers={"content-type": "application/json"})
        assert "REQUEST_TOO_LARGE" in error(huge, 413)
        bad_key = http.post(f"/runs/{run_id}/log-batch", json={"metrics": [{"key": "a b?", "value": 1, "timestamp": 1}]})
        assert "'a b?'" in error(bad_key, 400)
        bad_value = http.post(f"/runs/{run_id}/log-batch", json={"metrics": [{"key": "x", "value": "high", "timestamp": 1}]})
        assert "value 'high' is not a number" in error(bad_value, 400)
        wrong_type = http.post(f"/runs/{run_id}/log-batch", json={"metrics": [{"key": "x", "value": 1, "timestamp": "soon"}]})
        assert "metrics.0.timestamp" in error(wrong_type, 400)
        unknown_field = http.post(f"/runs/{run_id}/log-batch", json={"metricz": []})
        assert "metricz" in error(unknown_field, 400)
        for path in ("../../etc/passwd", "a/%2E%2E/%2E%2E/b", "..%2F..%2Fx", "/abs"):
            status, body = raw_request(server_uri, "PUT", f"/api/v1/runs/{run_id}/artifacts/files/{path}", b"x")
            assert status == 400 and body["error_code"] == "INVALID_ARGUMENT", (path, body)
            assert "escapes the run's artifact folder" in body["message"] or "absolute" in body["message"]
        listed = http.get(f"/runs/{run_id}/artifacts/list", params={"path": "../.."})
        assert "escapes" in error(listed, 400)
        assert error(http.get("/runs/nope"), 404).startswith("NOT_FOUND")
        assert error(http.get("/no/such/route"), 404).startswith("NOT_FOUND")
    run = store.get_run(run_id)
    assert run.data.metrics == {"ok": 1.0} and run.info.status is ek.RunStatus.RUNNING
    assert [info.path for info in ek.TrackingClient(server_uri).list_artifacts(run_id)] == []


def test_the_access_log_is_json_lines_without_secrets(tracking_server, server_uri):
    secret = "tok-" + uuid.uuid4().hex
    with api(server_uri) as http:
        http.get("/experiments", params={"token": secret}, headers={"Authorization": f"Bearer {secret}"})
    deadline = time.monotonic() + 10  # the server writes the line after the answer has left
    while True:
        lines = [json.loads(line) for line in tracking_server.log().splitlines() if line.startswith("{")]
        if any(line["path"] == "/api/v1/experiments" and line["status"] == 200 for line in lines):
            break
        assert time.monotonic() < deadline, "no access log line for GET /api/v1/experiments"
        time.sleep(0.05)
    assert secret not in tracking_server.log()


def test_openapi_health_and_version(server_uri):
    with httpx.Client(base_url=server_uri) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/version").json()["evalkit"] == ek.__version__
        paths = http.get("/openapi.json").json()["paths"]
        assert "/api/v1/runs/search" in paths and "/api/v1/runs/{run_id}/metrics/history/downsampled" in paths
        assert http.get("/docs").status_code == 200


# ---- artifacts ---------------------------------------------------------------------------------


def test_artifacts_stream_both_ways_through_the_server(server_uri, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 12_000)  # 3 MB: several chunks each way
    client = ek.TrackingClient(server_uri)
    run = client.create_run(client.create_experiment(unique("artifacts")))
    client.log_artifact(run.info.run_id, big, "data")
    client.log_dict(run.info.run_id, {"a": 1}, "conf/params.json")
    assert {f.path for f in client.list_artifacts(run.info.run_id)} == {"conf", "data"}
    back = client.download_artifacts(run.info.run_id, "data/big.bin", tmp_path / "back")
    assert open(back, "rb").read() == big.read_bytes()
    folder = client.download_artifacts(run.info.run_id, "", tmp_path / "all")
    assert json.loads(open(f"{folder}/conf/params.json").read()) == {"a": 1}
    repository = client.artifact_repository(run.info.run_id)
    assert repository.is_file("conf/params.json") and not repository.is_file("conf")
    repository.delete("conf")
    assert not repository.exists("conf")
    with pytest.raises(InvalidArgument, match="escapes"):
        repository.write_bytes("../x", b"no")


# ---- downsampling (one function for the server and the UI) -------------------------------------


def test_downsampling_keeps_extremes_and_bounds_the_points(tmp_path):
    store = SqlStore.from_uri(f"sqlite:///{tmp_path / 'd.db'}")
    run_id = store.create_run(store.create_experiment("d")).info.run_id
    values = [math.sin(i / 50) for i in range(5000)]
    values[1234], values[4321] = 9.0, -9.0
    values[77] = math.nan
    store.log_batch(run_id, [Metric("m", v, i, i) for i, v in enumerate(values)])
    points, total = downsample_metric_history(store, run_id, "m", max_points=200)
    assert total == 5000 and len(points) <= 200
    assert 9.0 in [p.value for p in points] and -9.0 in [p.value for p in points]
    assert [p.step for p in points] == sorted(p.step for p in points)
    short, count = downsample_metric_history(store, run_id + "x" if False else run_id, "m", max_points=10_000)
    assert count == 5000 and len(short) == 5000  # few enough: every value, NaN included
    with pytest.raises(InvalidArgument, match="max_points"):
        downsample_metric_history(store, run_id, "m", max_points=1)
    store.close()


def test_binding_beyond_loopback_needs_auth_or_the_explicit_flag():
    from evalkit.server.auth import requires_auth

    assert requires_auth("127.0.0.1") is False and requires_auth("localhost") is False
    assert requires_auth("::1") is False
    assert requires_auth("0.0.0.0", insecure_no_auth=True) is False
    assert requires_auth("0.0.0.0") is True and requires_auth("10.1.2.3") is True


def test_the_sql_store_commits_a_request_key_with_its_write_and_replays_it(tmp_path):
    from sqlalchemy import func, select

    from evalkit.tracking.request_scope import request_scope
    from evalkit.tracking.sql import schema
    from evalkit.tracking.sql.engine import write_transaction
    from evalkit.tracking.sql.idempotency import KEEP_KEYS_MS, forget_old_keys

    store = SqlStore.from_uri(f"sqlite:///{tmp_path / 'k.db'}")
    experiment_id = store.create_experiment("k")
    with request_scope("ana", "create-1"):
        first = store.create_run(experiment_id, run_name="a")
    with request_scope("ana", "create-1"):  # the retry of a request whose answer was lost
        again = store.create_run(experiment_id, run_name="b")
    assert again.info.run_id == first.info.run_id and again.info.run_name == "a" and first.info.user_id == "ana"
    for _ in range(2):
        with request_scope(None, "batch-1"):
            store.log_batch(first.info.run_id, [Metric("m", 1.0, 1, 0)])
        with request_scope(None, "end-1"):
            info = store.log_batch_and_update_run(first.info.run_id, "FINISHED", None, [Metric("m", 2.0, 2, 1)])
        assert info.status is ek.RunStatus.FINISHED
    assert len(store.get_metric_history(first.info.run_id, "m")) == 2
    assert len(store.search_runs([experiment_id])[0]) == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.request_keys)).scalar() == 3
    deleted = write_transaction(store.engine, lambda conn: forget_old_keys(conn, now=10**13 + KEEP_KEYS_MS))
    assert deleted == 3
    store.close()


def test_the_server_command_checks_its_options_before_binding(tmp_path):
    from click.testing import CliRunner

    from evalkit.cli.main import cli

    missing = CliRunner().invoke(cli, ["server"])
    assert missing.exit_code == 2 and "--backend-store-uri" in missing.output
    remote = CliRunner().invoke(cli, ["server", "--backend-store-uri", "http://other:5000"])
    assert remote.exit_code == 2 and "not another server" in remote.output
    helped = CliRunner().invoke(cli, ["server", "--help"])
    assert all(word in helped.output for word in ("PostgreSQL", "S3", "token", "reverse proxy", "--insecure-no-auth"))


def test_streamed_bodies_over_the_limits_are_413_and_leave_nothing(tmp_path):
    from fastapi.testclient import TestClient

    from evalkit.server.app import create_app
    from evalkit.server.config import ServerConfig

    config = ServerConfig(f"sqlite:///{tmp_path / 's.db'}", str(tmp_path / "artifacts"), max_request_bytes=1000,
                          max_artifact_bytes=5000)

    def chunks():  # no Content-Length: the limit is found while the body streams in
        for _ in range(10):
            yield b"x" * 1000

    with TestClient(create_app(config)) as http:
        experiment_id = http.post("/api/v1/experiments", json={"name": "limits"}).json()["experiment_id"]
        run_id = http.post("/api/v1/runs", json={"experiment_id": experiment_id}).json()["info"]["run_id"]
        upload = http.put(f"/api/v1/runs/{run_id}/artifacts/files/a.bin", content=chunks())
        batch = http.post(f"/api/v1/runs/{run_id}/log-batch", content=chunks(), headers={"content-type": "application/json"})
        assert (upload.status_code, batch.status_code) == (413, 413)
        assert batch.json()["message"] == "request body over the server's limit of 1000 bytes"
        assert http.get(f"/api/v1/runs/{run_id}/artifacts/list").json() == {"files": []}
