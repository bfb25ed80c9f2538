from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap

import pytest
from tiktoken_ext import openai_public

from evalkit.errors import EvalkitError
from evalkit.inference import tokens
from evalkit.inference.providers.base import Usage
from evalkit.inference.tokens import (
    count_message_tokens,
    count_tokens,
    encoding_for,
    estimate_usage,
)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o1-preview", "o200k_base"),
        ("o3", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("openai:/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("openai/gpt-3.5-turbo", "cl100k_base"),
        ("llama-3.1-8b-instruct", "o200k_base"),
    ],
)
def test_encoding_for(model, encoding):
    assert encoding_for(model).name == encoding


def test_encodings_are_cached():
    assert encoding_for("gpt-4o") is encoding_for("gpt-5")


@pytest.mark.parametrize(
    ("model", "hello_world_ids"),
    [("gpt-4", [15339, 1917]), ("gpt-4o", [24912, 2375])],
)
def test_known_token_counts(model, hello_world_ids):
    assert encoding_for(model).encode("hello world") == hello_world_ids
    assert count_tokens("hello world", model) == 2
    # cl100k: t|ik|token| is| great|!   o200k: t|ikt|oken| is| great|!
    assert count_tokens("tiktoken is great!", model) == 6
    assert count_tokens("", model) == 0


def test_special_token_text_is_counted_as_text():
    # tiktoken's encode() raises on special tokens; user content must be counted, not rejected.
    assert count_tokens("<|endoftext|>", "gpt-4o") > 1


def test_message_overhead():
    hello = [{"role": "user", "content": "hello world"}]
    # 3 per message + "user" (1) + "hello world" (2) + 3 for the reply priming
    assert count_message_tokens(hello, "gpt-4o") == 9
    assert count_message_tokens([], "gpt-4o") == 3
    two = [{"role": "system", "content": "hello world"}, {"role": "user", "content": "hello world"}]
    assert count_message_tokens(two, "gpt-4") == 3 + 2 * (3 + 1 + 2)
    named = [{"role": "user", "name": "bob", "content": "hello world"}]
    assert count_message_tokens(named, "gpt-4o") == 9 + count_tokens("bob", "gpt-4o") + 1


def test_estimate_usage():
    usage = estimate_usage([{"role": "user", "content": "hello world"}], "tiktoken is great!", "gpt-4o")
    assert usage == Usage(input_tokens=9, output_tokens=6, cached_input_tokens=0, estimated=True)


def test_many_messages_are_counted():
    # Speed sanity without a timing assertion: this many short messages must stay a cheap call.
    messages = [{"role": "user", "content": "hello world"}] * 1000
    assert count_message_tokens(messages, "gpt-4o") == 1000 * 6 + 3


def test_shipped_hashes_match_tiktoken():
    for name, (constructor, _, sha256) in tokens._ENCODINGS.items():
        assert constructor is getattr(openai_public, name)
        assert sha256 in inspect.getsource(constructor)


@pytest.mark.parametrize("previous", [None, "/somewhere/else"])
def test_loading_restores_tiktoken_cache_dir(monkeypatch, previous):
    if previous is None:
        monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    else:
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", previous)
    encoding = tokens._load.__wrapped__("cl100k_base")  # bypass the cache: really load
    assert encoding.name == "cl100k_base"
    assert os.environ.get("TIKTOKEN_CACHE_DIR") == previous


def test_damaged_file_fails_without_touching_it(tmp_path, monkeypatch):
    damaged = tmp_path / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
    damaged.write_bytes(b"not a bpe file\n")
    monkeypatch.setattr(tokens, "_TOKENIZER_DIR", tmp_path)
    with pytest.raises(EvalkitError, match="damaged"):
        tokens._load.__wrapped__("cl100k_base")
    assert damaged.read_bytes() == b"not a bpe file\n"
    (tmp_path / "fb374d419588a4632f3f557e76b4b70aebbca790").unlink(missing_ok=True)
    with pytest.raises(EvalkitError, match="missing"):
        tokens._load.__wrapped__("o200k_base")


def test_encodings_load_offline_in_a_fresh_process(tmp_path, monkeypatch):
    empty_cache = tmp_path / "tiktoken-cache"
    empty_cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty_cache))
    script = textwrap.dedent(
        """
        import os, socket, sys

        def no_network(*args, **kwargs):
            raise AssertionError("network access attempted")

        socket.socket.connect = no_network
        socket.create_connection = no_network
        socket.getaddrinfo = no_network

        before = os.environ["TIKTOKEN_CACHE_DIR"]
        from evalkit.inference.tokens import count_tokens
        print(count_tokens("hello world", "gpt-4"), count_tokens("hello world", "gpt-4o"))
        assert os.environ["TIKTOKEN_CACHE_DIR"] == before, os.environ["TIKTOKEN_CACHE_DIR"]
        assert os.listdir(before) == [], os.listdir(before)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2"]
    assert os.listdir(empty_cache) == []
