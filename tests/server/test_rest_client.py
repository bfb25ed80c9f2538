"""The REST store's HTTP behaviour without a server: the token header, retries with one
idempotency key, and errors mapped back to evalkit's classes (httpx's MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from evalkit.entities import Metric
from evalkit.errors import EvalkitError, NotFound, StoreUnavailable
from evalkit.tracking.rest.store import RestStore


def store_with(handler, monkeypatch) -> RestStore:
    monkeypatch.setenv("EVALKIT_HTTP_RETRY_SECONDS", "5")
    store = RestStore(RestStore.normalize_uri("http://tracking.test:5000/"))
    store.client.http = httpx.Client(base_url=store.uri, transport=httpx.MockTransport(handler))
    return store


def test_the_token_goes_in_the_authorization_header_only(monkeypatch):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"experiment": None})

    monkeypatch.setenv("EVALKIT_TRACKING_TOKEN", "s3cret-token")
    assert store_with(handler, monkeypatch).get_experiment_by_name("x") is None
    assert seen[0].headers["authorization"] == "Bearer s3cret-token"
    assert "s3cret" not in str(seen[0].url)


def test_writes_are_retried_on_5xx_and_connection_errors_with_one_idempotency_key(monkeypatch):
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 1:
            raise httpx.ConnectError("connection refused")
        if len(keys) == 2:
            return httpx.Response(503, json={"error_code": "STORE_UNAVAILABLE", "message": "restarting"})
        return httpx.Response(200, json={})

    store_with(handler, monkeypatch).log_batch("r1", [Metric("m", 1.0, 1, 0)])
    assert len(keys) == 3 and len(set(keys)) == 1


def test_errors_come_back_as_evalkit_classes(monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/runs/missing"):
            return httpx.Response(404, json={"error_code": "NOT_FOUND", "message": "no run with id 'missing'"})
        return httpx.Response(401, json={"error_code": "UNAUTHENTICATED", "message": "no token"})

    store = store_with(handler, monkeypatch)
    with pytest.raises(NotFound, match="no run with id 'missing'"):
        store.get_run("missing")
    with pytest.raises(EvalkitError, match="EVALKIT_TRACKING_TOKEN"):
        store.get_experiment("1")


def test_an_unreachable_server_is_store_unavailable_after_the_retry_budget(monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    monkeypatch.setenv("EVALKIT_HTTP_RETRY_SECONDS", "0.3")
    store = RestStore("http://tracking.test:5000")
    store.client.http = httpx.Client(base_url=store.uri, transport=httpx.MockTransport(handler))
    with pytest.raises(StoreUnavailable, match="tracking server http://tracking.test:5000 cannot be reached"):
        store.get_run("r1")


@pytest.mark.parametrize("uri, problem", [
    ("http://ana:pw@host:5000", "must not hold a user or password"),
    ("http://host:5000/?token=x", "query string"),
    ("http://host:port", "invalid port"),
    ("http:///nohost", "must look like"),
])
def test_bad_server_uris_are_refused_before_any_request(uri, problem):
    with pytest.raises(ValueError, match=problem):
        RestStore.normalize_uri(uri)
