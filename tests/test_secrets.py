"""No secret is ever stored or printed: one distinctive secret is planted through every way one
can enter evalkit, then the store file, every artifact, the output folder and everything printed
are scanned for it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest
import respx

import evalkit as ek
from evalkit.errors import EvaluationFailed
from evalkit.redaction import MASK, redact, redact_url
from evalkit.testing.fake_openai import FakeConfig, FakeOpenAIServer
from evalkit.tracking.stores import close_stores

# Distinctive, and none of them shaped like an sk- key: found only because evalkit knows where
# secrets live, not because of their look.
USERINFO = "pw-Userinfo-7c1e94"
API_KEY = "apikey-Env-52d0aa"
HEADER = "hdr-Token-9b33f1"
SUITE_PASSWORD = "pw-Suite-18ee07"
SECRETS = (USERINFO, API_KEY, HEADER, SUITE_PASSWORD)


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({
        "inputs": [f"What colour is lamp {i}?" for i in range(rows)],
        "contexts": [[f"Lamp {i} is painted blue."] for i in range(rows)],
        "ground_truth": [f"Lamp {i} is painted blue." for i in range(rows)],
    })


def scan(*roots: Path, texts: tuple[str, ...] = ()) -> list[str]:
    """Where any planted secret appears: files under ``roots`` (the store, its WAL, artifacts) and texts."""
    found = []
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            data = path.read_bytes()
            found += [f"{secret} in {path}" for secret in SECRETS if secret.encode() in data]
    for i, text in enumerate(texts):
        found += [f"{secret} in printed text #{i}" for secret in SECRETS if secret in text]
    return found


def test_redact_knows_every_form_a_secret_takes():
    assert redact_url(f"http://bob:{USERINFO}@host:8000/v1?api_key={API_KEY}&x=1") == \
        "http://bob:***@host:8000/v1?api_key=***&x=1"
    text = (f"failed: POST http://bob:{USERINFO}@h/v1 token={HEADER} Authorization: Bearer {API_KEY} "
            "key sk-proj-abcdefghijkl and monkey=banana")
    cleaned = redact(text)
    assert not any(secret in cleaned for secret in SECRETS) and "sk-proj" not in cleaned
    assert "monkey=banana" in cleaned and f"bob:{MASK}@h" in cleaned
    assert redact(f"the key {API_KEY} was refused", secrets=[API_KEY]) == f"the key {MASK} was refused"


def test_a_secret_planted_everywhere_is_found_nowhere(tmp_path, monkeypatch, capfd, caplog):
    with respx.mock(assert_all_mocked=True) as mock:
        _plant_and_scan(mock, tmp_path, monkeypatch, capfd, caplog)


def _plant_and_scan(mock: respx.MockRouter, tmp_path: Path, monkeypatch, capfd, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    monkeypatch.setenv("EVALKIT_HTTP_TRANSPORT", "httpx")  # respx intercepts httpx only
    monkeypatch.setenv("MY_GATEWAY_KEY", API_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    base = f"http://bob:{USERINFO}@gateway.test/v1"
    seen_headers = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen_headers.append(dict(request.headers))
        body = json.loads(request.content)
        question = body["messages"][-1]["content"]
        if "lamp 1?" in question:  # the endpoint quotes the credentials back in its error
            message = f"upstream refused key {API_KEY} with header {HEADER} for {base}"
            return httpx.Response(500, json={"error": {"message": message, "type": "server_error"}})
        return httpx.Response(200, json={"model": "gpt-4o-2024-08-06", "choices": [
            {"message": {"role": "assistant", "content": "Lamp is painted blue."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}})

    route = mock.post(host="gateway.test", path="/v1/chat/completions").mock(side_effect=reply)
    model = f"openai:/gpt-4o?base_url={base}&api_key_env=MY_GATEWAY_KEY"
    params = {"temperature": 0, "extra_headers": {"X-Gateway-Token": HEADER}}

    # 1. an evaluation with a failing row, its report, its warning
    result = ek.evaluate(model=model, data=frame(4), targets="ground_truth", inference_params=params,
                         max_attempts=1, progress=False)
    assert result.metrics["error_count"] == 1
    assert seen_headers[0]["x-gateway-token"] == HEADER
    assert seen_headers[0]["authorization"].startswith("Basic ")  # httpx sends URL userinfo as basic auth
    # 2. an evaluation where every row fails: EvaluationFailed, its message and the run's reason
    route.mock(side_effect=None, return_value=httpx.Response(503, json={"error": {"message": f"down; key {API_KEY}", "type": "server_error"}}))
    with pytest.raises(EvaluationFailed) as info:
        ek.evaluate(model=model, data=frame(3).assign(inputs=lambda f: "Again: " + f.inputs),
                    inference_params=params, max_attempts=1, progress=False)
    printed = [str(info.value), repr(info.value.counts), info.value.endpoint or ""]
    # 3. the CLI reading it all back
    for args in (["runs", "search"], ["runs", "show", result.run_id], ["runs", "show", info.value.run_id, "--json"]):
        process = subprocess.run([sys.executable, "-c", "from evalkit.cli.main import main; main()", *args],
                                 capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert process.returncode == 0, process.stderr
        printed += [process.stdout, process.stderr]
    # 4. a suite file with a password in a URL: refused, and the refusal does not quote it
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"suite: leaky\ndatasets:\n  - name: d\n    path: d.jsonl\nmodels:\n  - name: m\n"
                     f"    uri: openai:/gpt-4o?base_url=http://ci:{SUITE_PASSWORD}@gateway.test/v1\n")
    frame(2).to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    process = subprocess.run([sys.executable, "-c", "from evalkit.cli.main import main; main()", "run", str(suite),
                              "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert process.returncode == 2 and "secrets do not belong in a suite file" in process.stderr + process.stdout
    printed += [process.stdout, process.stderr]

    close_stores()  # checkpoint and close, so the scan sees the database file whole
    out, err = capfd.readouterr()
    store_files = [p for p in tmp_path.glob("evalkit.db*")]
    assert store_files
    leaks = scan(*store_files, tmp_path / "evalkit-artifacts", *[p for p in [tmp_path / "out"] if p.exists()],
                 texts=(*printed, out, err, caplog.text))
    assert leaks == []
    # the evidence is still there, masked: a reader can tell what went wrong
    run = ek.get_run(info.value.run_id)
    assert "key ***" in run.data.tags["evalkit.failure_reason"]
    assert json.loads(ek.get_run(result.run_id).data.params["inference_params"])["extra_headers"] == {
        "X-Gateway-Token": MASK}
    assert ek.get_run(result.run_id).data.params["model_uri"] == \
        "openai:/gpt-4o?base_url=http://bob:***@gateway.test/v1"


def test_the_cache_is_shared_across_credentials(tmp_path, monkeypatch):
    """The cache knows the endpoint, not its credentials: rotating a key keeps the cached answers."""
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-anything-000000")
    with FakeOpenAIServer(FakeConfig()) as server:
        host = server.base_url.removeprefix("http://")
        for password in ("first-password", "second-password"):
            ek.evaluate(model=f"openai:/gpt-4o?base_url=http://u:{password}@{host}", data=frame(3), progress=False)
        assert server.stats.requests == 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(timeout=0), "timeout must be a positive number"),
    (dict(timeout=-1.5), "timeout must be a positive number"),
    (dict(max_attempts=0), "max_attempts must be an integer of at least 1"),
    (dict(max_attempts=2.5), "max_attempts must be an integer of at least 1"),
    (dict(inference_params={"temprature": 0}), "unknown inference param 'temprature': did you mean 'temperature'"),
    (dict(inference_params={"max_token": 5}), "did you mean 'max_tokens'"),
    (dict(inference_params={"top_k": 5}), r"extra_body=\{\.\.\.\}"),
    (dict(inference_params={"extra_body": "top_k=5"}), "extra_body must be a dict"),
    (dict(judge_params={"temprature": 0}, judge="openai:/gpt-4o-mini"), "did you mean 'temperature'"),
])
def test_run_time_options_are_checked_before_any_call(monkeypatch, kwargs, message):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-anything-000000")
    with FakeOpenAIServer(FakeConfig()) as server:
        with pytest.raises(ek.InvalidArgument, match=message):
            ek.evaluate(**({"model": f"openai:/gpt-4o?base_url={server.base_url}", "data": frame(2),
                            "progress": False} | kwargs))
        assert server.stats.requests == 0
    assert ek.search_runs().empty  # nothing was logged either


@pytest.mark.parametrize("base_url", ["ftp://host/v1", "localhost:8000/v1", "http:///v1", f"http://u:{USERINFO}@:80"])
def test_a_base_url_must_be_http_with_a_host_and_the_error_hides_its_password(monkeypatch, base_url):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-anything-000000")
    with pytest.raises(ek.InvalidArgument, match="must be an http:// or https:// URL with a host") as info:
        ek.evaluate(model=f"openai:/gpt-4o?base_url={base_url}", data=frame(2), progress=False)
    assert USERINFO not in str(info.value)


def test_extra_body_reaches_the_server_and_is_part_of_the_cache_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-anything-000000")
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "cache.db"))
    bodies = []

    def responder(body: dict) -> str:
        bodies.append(body)
        return "blue"

    with FakeOpenAIServer(FakeConfig(), responder=responder) as server:
        for top_k in (5, 5, 7):
            ek.evaluate(model=f"openai:/gpt-4o?base_url={server.base_url}", data=frame(1), progress=False,
                        inference_params={"extra_body": {"top_k": top_k}})
    assert [b["top_k"] for b in bodies] == [5, 7]  # the second run of top_k=5 came from the cache
    assert all("extra_body" not in b for b in bodies)
