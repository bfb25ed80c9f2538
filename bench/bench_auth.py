"""What authentication costs a request: a tiny GET and POST route on uvicorn with auth off, with
a bearer token and with a signed-in UI session (cookie and CSRF token).

Run: ``.venv/bin/python bench/bench_auth.py [--requests 2000]``. The server runs in its own
process (one uvicorn worker) on 127.0.0.1 and a SQLite store; one client sends requests one after
the other over a kept-alive connection, so the figure is the server's latency per request.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import FastAPI, Request


def serve(port: int, store: str, enabled: bool) -> None:
    import uvicorn

    from evalkit.server.auth import install_auth

    app = FastAPI()
    install_auth(app, engine_or_store_uri=store, enabled=enabled)

    @app.get("/api/v1/x")
    def read(request: Request) -> dict:
        return {"name": request.state.principal.name, "csrf_token": request.state.csrf_token}

    @app.post("/api/v1/x")
    def write(request: Request) -> dict:
        return {"name": request.state.principal.name}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start(store: str, enabled: bool) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port), store, "1" if enabled else "0"])
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url + "/health", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def measure(client: httpx.Client, method: str, url: str, headers: dict[str, str], count: int) -> float:
    """The median of 5 rounds of the mean ms per request."""
    client.request(method, url, headers=headers).raise_for_status()
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count // 5):
            client.request(method, url, headers=headers)
        rounds.append((time.perf_counter() - started) / (count // 5) * 1000)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "STORE", "ENABLED"))
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.serve[2] == "1")
        return

    from evalkit.server.auth import TokenStore

    store = str(Path(tempfile.mkdtemp()) / "bench.db")
    tokens = TokenStore.open(store)
    token = tokens.create("bench", "editor")[1]
    started = time.perf_counter()
    for _ in range(args.requests):
        tokens.authenticate(token)
    print(f"TokenStore.authenticate, in process: {(time.perf_counter() - started) / args.requests * 1000:.3f} ms")

    for enabled in (False, True):
        process, url = start(store, enabled)
        try:
            with httpx.Client(timeout=10) as client:
                if not enabled:
                    get = measure(client, "GET", url + "/api/v1/x", {}, args.requests)
                    post = measure(client, "POST", url + "/api/v1/x", {}, args.requests)
                    print(f"auth off:        GET {get:.3f} ms  POST {post:.3f} ms per request")
                    continue
                bearer = {"Authorization": f"Bearer {token}"}
                get = measure(client, "GET", url + "/api/v1/x", bearer, args.requests)
                post = measure(client, "POST", url + "/api/v1/x", bearer, args.requests)
                print(f"bearer token:    GET {get:.3f} ms  POST {post:.3f} ms per request")
                client.post(url + "/login", data={"token": token})
                csrf = client.get(url + "/api/v1/x").json()["csrf_token"]
                get = measure(client, "GET", url + "/api/v1/x", {}, args.requests)
                post = measure(client, "POST", url + "/api/v1/x", {"X-CSRF-Token": csrf}, args.requests)
                print(f"UI session:      GET {get:.3f} ms  POST {post:.3f} ms per request")
        finally:
            process.terminate()
            process.wait(10)
    tokens.engine.dispose()


if __name__ == "__main__":
    main()
