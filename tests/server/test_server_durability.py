"""Concurrent clients and a server crash: nothing lost, nothing written twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest
from server_fixture import start_server

import evalkit as ek
from evalkit.tracking.rest.store import RestStore

pytestmark = pytest.mark.slow

CLIENT = """
import sys
import evalkit as ek
client = ek.TrackingClient(sys.argv[1])
for i in range(1000):
    client.log_metric(sys.argv[2], "shared", float(i), step=int(sys.argv[3]) * 1000 + i)
"""  # the buffer is flushed when the process exits


def test_eight_client_processes_logging_1000_values_each_end_with_exactly_8000(tracking_server):
    store = RestStore(tracking_server.url)
    run_id = store.create_run(store.create_experiment("eight-clients")).info.run_id
    clients = [subprocess.Popen([sys.executable, "-c", CLIENT, tracking_server.url, run_id, str(n)])
               for n in range(8)]
    assert [client.wait(timeout=120) for client in clients] == [0] * 8
    history = store.get_metric_history(run_id, "shared")
    assert len(history) == 8000 and sorted(m.step for m in history) == list(range(8000))


def test_server_killed_and_restarted_while_a_client_logs_loses_and_doubles_nothing(tmp_path):
    server = start_server(tmp_path / "server")
    client = ek.TrackingClient(server.url)
    run_id = client.create_run(client.create_experiment("crash")).info.run_id
    logged = 3000
    failure: list[BaseException] = []

    def log() -> None:
        try:
            for step in range(logged):
                client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
                if step % 100 == 0:
                    client.store.flush()  # many small requests, so the crash lands between some of them
                    time.sleep(0.01)
            client.set_terminated(run_id)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failure.append(exc)

    logger = threading.Thread(target=log)
    logger.start()
    time.sleep(0.3)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL  # a crash: no graceful shutdown
    time.sleep(0.5)
    server.start()  # same database, same port: the client's retries get through
    logger.join(timeout=120)
    assert not logger.is_alive() and not failure, failure
    history = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == list(range(logged))  # every value once
    assert client.get_run(run_id).info.status is ek.RunStatus.FINISHED
    server.stop()  # SIGTERM: uvicorn lets requests in flight finish, then the store is closed
    assert server.log().count("Application shutdown complete") == 1  # the killed one never got there
