from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from evalkit.errors import InvalidArgument, InvalidState, StoreUnavailable
from evalkit.inference import cache as cache_module
from evalkit.inference.cache import (
    CachedResponse,
    CacheMode,
    ResponseCache,
    cache_key,
    default_cache_path,
)
from evalkit.inference.providers.base import Usage

MESSAGES = [{"role": "user", "content": "What is 2+2?"}]


def answer(text: str = "4", usage: Usage | None = Usage(12, 1, 4, False)) -> CachedResponse:
    return CachedResponse(text, usage, "gpt-4o-2024-08-06", latency_s=0.42, cost_usd=0.0001, created_at=1.7e9)


def stored_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM responses").fetchone()[0]


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def slow_batches(monkeypatch):
    """Writes stay queued until 200 are waiting or someone flushes."""
    monkeypatch.setattr(cache_module, "_BATCH_DELAY_S", 3600)


# -- keys ---------------------------------------------------------------------------------------


def test_key_covers_model_endpoint_params_and_messages():
    base = cache_key("openai:/gpt-4o", "https://api.openai.com/v1", {"temperature": 0}, MESSAGES)
    assert len(base) == 64
    assert base == cache_key("openai:/gpt-4o", "https://api.openai.com/v1", {"temperature": 0}, MESSAGES)
    variants = [
        cache_key("openai:/gpt-4o-mini", "https://api.openai.com/v1", {"temperature": 0}, MESSAGES),
        cache_key("openai:/gpt-4o", "http://localhost:8000/v1", {"temperature": 0}, MESSAGES),
        cache_key("openai:/gpt-4o", None, {"temperature": 0}, MESSAGES),
        cache_key("openai:/gpt-4o", "https://api.openai.com/v1", {"temperature": 0.7}, MESSAGES),
        cache_key("openai:/gpt-4o", "https://api.openai.com/v1", {"temperature": 0, "seed": 1}, MESSAGES),
        cache_key("openai:/gpt-4o", "https://api.openai.com/v1", {"temperature": 0}, [{"role": "user", "content": "What is 3+3?"}]),
        cache_key("openai:/gpt-4o", "https://api.openai.com/v1", {"temperature": 0}, [{"role": "system", "content": "What is 2+2?"}]),
        cache_key("openai:/gpt-4o", "https://api.openai.com/v1", {"temperature": 0}, MESSAGES * 2),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_key_ignores_none_params_and_key_order():
    assert cache_key("m", None, {"temperature": None}, MESSAGES) == cache_key("m", None, {}, MESSAGES)
    assert cache_key("m", None, {"a": 1, "b": 2}, MESSAGES) == cache_key("m", None, {"b": 2, "a": 1}, MESSAGES)
    assert cache_key("m", None, {}, [{"role": "user", "content": "é"}]) != cache_key("m", None, {}, MESSAGES)


def test_key_rejects_unserializable_params():
    with pytest.raises(InvalidArgument, match="JSON"):
        cache_key("m", None, {"stop": object()}, MESSAGES)


def test_default_cache_path(monkeypatch, tmp_path):
    monkeypatch.delenv("EVALKIT_CACHE_PATH", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home" / ".cache" / "evalkit" / "responses.db"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "evalkit" / "responses.db"
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "explicit.db"))
    assert default_cache_path() == tmp_path / "explicit.db"


def test_cache_uses_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_CACHE_PATH", str(tmp_path / "sub" / "responses.db"))
    with ResponseCache() as cache:
        assert cache.path == tmp_path / "sub" / "responses.db"
        cache.put("k", answer())
    assert stored_rows(tmp_path / "sub" / "responses.db") == 1


# -- modes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (True, CacheMode.ON),
        (False, CacheMode.OFF),
        (None, CacheMode.OFF),
        ("ON", CacheMode.ON),
        ("off", CacheMode.OFF),
        ("Read-Only", CacheMode.READ_ONLY),
        ("read_only", CacheMode.READ_ONLY),
        ("refresh", CacheMode.REFRESH),
        (CacheMode.REFRESH, CacheMode.REFRESH),
    ],
)
def test_mode_parse(value, mode):
    assert CacheMode.parse(value) is mode


@pytest.mark.parametrize("value", ["yes", "", 1])
def test_mode_parse_lists_valid_values(value):
    with pytest.raises(InvalidArgument) as info:
        CacheMode.parse(value)
    for valid in ("'on'", "'off'", "'read-only'", "'refresh'"):
        assert valid in str(info.value)


def test_on_reads_and_writes(tmp_path):
    with ResponseCache(tmp_path / "c.db") as cache:
        assert cache.get("k") is None
        cache.put("k", answer())
        assert cache.get("k") == answer()
        assert (cache.hits, cache.misses, cache.writes) == (1, 1, 1)


def test_off_does_nothing(tmp_path):
    with ResponseCache(tmp_path / "c.db", mode="off") as cache:
        cache.put("k", answer())
        assert cache.get("k") is None
        assert (cache.hits, cache.misses, cache.writes) == (0, 0, 0)
    assert not (tmp_path / "c.db").exists()


def test_read_only_reads_but_never_writes(tmp_path):
    path = tmp_path / "c.db"
    with ResponseCache(path) as cache:
        cache.put("k", answer("stored"))
    with ResponseCache(path, mode=CacheMode.READ_ONLY) as cache:
        assert cache.get("k") == answer("stored")
        cache.put("k", answer("new"))
        cache.put("other", answer("new"))
        assert cache.get("k") == answer("stored")
        assert cache.get("other") is None
        assert (cache.hits, cache.misses, cache.writes) == (2, 1, 0)
    with ResponseCache(path) as cache:
        assert cache.get("k").text == "stored"
    assert stored_rows(path) == 1


def test_read_only_missing_file_is_not_created(tmp_path):
    path = tmp_path / "missing" / "c.db"
    with ResponseCache(path, mode="read-only") as cache:
        assert cache.get("k") is None
        cache.put("k", answer())
        assert cache.get("k") is None
        assert cache.misses == 2
    assert not path.parent.exists()


def test_refresh_never_reads_and_overwrites(tmp_path):
    path = tmp_path / "c.db"
    with ResponseCache(path) as cache:
        cache.put("k", answer("old"))
    with ResponseCache(path, mode="refresh") as cache:
        assert cache.get("k") is None
        cache.put("k", answer("new"))
        assert cache.get("k") is None
        assert (cache.hits, cache.misses, cache.writes) == (0, 2, 1)
    with ResponseCache(path) as cache:
        assert cache.get("k").text == "new"


# -- storage ------------------------------------------------------------------------------------


def test_persists_across_instances(tmp_path):
    path = tmp_path / "c.db"
    with ResponseCache(path) as cache:
        cache.put("with-usage", answer())
        cache.put("without-usage", answer(usage=None))
        cache.put("estimated", answer(usage=Usage(5, 6, 0, True)))
    with ResponseCache(path) as cache:
        assert cache.get("with-usage") == answer()
        assert cache.get("without-usage") == answer(usage=None)
        assert cache.get("estimated").usage == Usage(5, 6, 0, True)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == cache_module.SCHEMA_VERSION


def test_pending_writes_are_visible_before_commit(tmp_path, slow_batches):
    path = tmp_path / "c.db"
    with ResponseCache(path) as cache:
        cache.put("k", answer())
        assert stored_rows(path) == 0
        assert cache.get("k") == answer()
        with ResponseCache(path) as other:
            assert other.get("k") is None
        cache.flush()
        assert stored_rows(path) == 1
        assert cache.get("k") == answer()


def test_commits_in_the_background_after_a_delay(tmp_path):
    path = tmp_path / "c.db"
    with ResponseCache(path) as cache:
        cache.put("k", answer())
        assert wait_for(lambda: stored_rows(path) == 1)


def test_commits_a_full_batch_without_waiting(tmp_path, slow_batches):
    path = tmp_path / "c.db"
    with ResponseCache(path) as cache:
        for i in range(cache_module._BATCH_SIZE):
            cache.put(f"k{i}", answer())
        assert wait_for(lambda: stored_rows(path) == cache_module._BATCH_SIZE)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "c.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {cache_module.SCHEMA_VERSION + 1}")
    for mode in ("on", "read-only", "refresh"):
        with pytest.raises(StoreUnavailable, match="newer"):
            ResponseCache(path, mode=mode)


def test_not_a_database(tmp_path):
    path = tmp_path / "c.db"
    path.write_text("this is not sqlite " * 100)
    with pytest.raises(StoreUnavailable, match="cannot open"):
        ResponseCache(path)


def test_closed_cache(tmp_path):
    cache = ResponseCache(tmp_path / "c.db")
    cache.close()
    cache.close()
    with pytest.raises(InvalidState):
        cache.get("k")
    with pytest.raises(InvalidState):
        cache.put("k", answer())


def test_concurrent_threads(tmp_path):
    path = tmp_path / "c.db"
    with ResponseCache(path) as cache:

        def work(n: int) -> None:
            for i in range(300):
                cache.put(f"{n}-{i}", answer(f"{n}-{i}"))
                assert cache.get(f"{n}-{i}").text == f"{n}-{i}"

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cache.flush()
        assert stored_rows(path) == 1200
        assert (cache.hits, cache.writes) == (1200, 1200)


@pytest.mark.slow
def test_two_processes_share_one_file(tmp_path):
    path = tmp_path / "shared.db"
    script = textwrap.dedent(
        """
        import sys
        from evalkit.inference.cache import CachedResponse, ResponseCache

        path, name = sys.argv[1], sys.argv[2]
        with ResponseCache(path) as cache:
            for i in range(500):
                cache.put(f"{name}-{i}", CachedResponse(f"{name}-{i}", None, None, 0.1, None, 0.0))
                cache.put("shared", CachedResponse(name, None, None, 0.1, None, 0.0))
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), name]) for name in ("a", "b")]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    assert stored_rows(path) == 1001
    with ResponseCache(path, mode="read-only") as cache:
        assert cache.get("a-499").text == "a-499"
        assert cache.get("b-0").text == "b-0"
        assert cache.get("shared").text in ("a", "b")
