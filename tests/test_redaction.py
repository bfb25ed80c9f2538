"""The redaction rules one by one (tests/test_secrets.py plants secrets end to end)."""

from __future__ import annotations

import logging

import pytest

from evalkit.redaction import (
    MASK,
    RedactingFilter,
    is_secret_name,
    looks_like_key,
    redact,
    redact_url,
    url_secrets,
)


def test_known_secrets_are_masked_longest_first_and_short_ones_left():
    # "abcd-efgh" contains "abcd": masking the shorter first would leave "***-efgh" behind.
    assert redact("token abcd-efgh here", secrets=["abcd", "abcd-efgh"]) == f"token {MASK} here"
    assert redact("x=abc", secrets=["abc"]) == "x=abc"  # under MIN_SECRET_LENGTH: would mask ordinary words
    assert redact("key wxyz!", secrets=["wxyz", None, ""]) == f"key {MASK}!"  # exactly the minimum length
    # by length, not by alphabet: "zzzz" sorts after "aa-zzzz" but must be masked after it
    assert redact("id aa-zzzz", secrets=["zzzz", "aa-zzzz"]) == f"id {MASK}"
    assert redact("") == "" and redact("nothing to hide") == "nothing to hide"


def test_bearer_and_basic_credentials_keep_their_scheme_name():
    assert redact("Authorization: Bearer abcdefgh12345") == f"Authorization: Bearer {MASK}"
    assert redact("basic dXNlcjpwYXNzd29yZA==") == f"basic {MASK}"


@pytest.mark.parametrize("key, shown", [("sk-proj-abcdefghij", f"sk-{MASK}"), ("sk-live-S*****7890", f"sk-{MASK}"),
                                        ("ghp_" + "a" * 24, MASK), ("AKIA" + "B" * 16, MASK),
                                        ("ek_" + "Zz-_9" * 8 + "abc", f"ek_{MASK}")])
def test_key_shaped_values_are_masked_and_say_what_they_were(key, shown):
    assert redact(f"used {key} today") == f"used {shown} today"
    assert looks_like_key(key) and looks_like_key("Bearer abcdefgh12345")
    assert not looks_like_key("sk-learn") and not looks_like_key("a plain sentence")
    assert not looks_like_key("ek_short_identifier")


def test_secret_names():
    for name in ("api_key", "API-KEY", "x-api-key", "token", "access_token", "client_secret", "password", "sig",
                 "Authorization", "session_id", "credentials"):
        assert is_secret_name(name), name
    for name in ("monkey", "tokens", "max_tokens", "keyword", "model", "base_url"):
        assert not is_secret_name(name), name


def test_urls():
    assert redact_url("http://bob:pw@host:8000/v1?api_key=k1&x=1") == f"http://bob:{MASK}@host:8000/v1?api_key={MASK}&x=1"
    assert redact_url("http://tok@host/v1") == f"http://{MASK}@host/v1"
    assert redact_url("http://host/v1") == "http://host/v1"
    # a password holding ':' or a raw '@' is masked whole
    assert redact_url("http://bob:p:w@host/v1") == f"http://bob:{MASK}@host/v1"
    assert redact_url("http://bob:p@ss@host/v1") == f"http://bob:{MASK}@host/v1"
    assert redact_url("http://host/v1?a=&x=1") == "http://host/v1?a=&x=1"  # blank values are kept
    assert redact_url("http://[::1") == "http://[::1"  # not a URL urlsplit accepts: redacted as text
    assert url_secrets("http://bob:pw-123@host/v1?token=t-456&x=1&key=") == ["pw-123", "t-456"]
    assert url_secrets("http://host/v1") == [] and url_secrets(None) == [] and url_secrets("http://[::1") == []


def test_the_log_filter_rewrites_messages_and_tracebacks_and_can_be_removed(caplog):
    logger = logging.getLogger("httpx")
    caplog.set_level(logging.INFO, logger="httpx")
    log_filter = RedactingFilter(["s3cr3t-value", None]).install()
    try:
        logger.info("POST %s", "http://u:pw@host/v1 with s3cr3t-value")
        try:
            raise RuntimeError("failed for http://u:pw@host/v1 with s3cr3t-value")
        except RuntimeError:
            logger.exception("request failed")
        logger.info("plain %s", "message")
    finally:
        log_filter.remove()
    logger.info("after removal s3cr3t-value")
    records = caplog.records
    assert records[0].getMessage() == f"POST http://u:{MASK}@host/v1 with {MASK}"
    assert records[0].args is None
    assert "pw@" not in caplog.text.split("after removal")[0]
    assert f"u:{MASK}@host" in records[1].exc_text and "s3cr3t-value" not in records[1].exc_text
    assert records[2].getMessage() == "plain message" and records[2].args == ("message",)  # untouched
    assert records[3].getMessage() == "after removal s3cr3t-value"  # the filter is gone
    assert log_filter.secrets == ("s3cr3t-value",)
