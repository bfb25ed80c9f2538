"""Tracking URIs: the accepted forms, and clear errors for the rest."""

from __future__ import annotations

import pytest

import evalkit as ek
from evalkit.tracking.uri import parse_tracking_uri, redact


def test_accepted_forms(tmp_path):
    assert parse_tracking_uri("store.db").uri == f"sqlite:///{tmp_path / 'store.db'}"
    assert parse_tracking_uri("sqlite:///rel/store.db").uri == f"sqlite:///{tmp_path / 'rel' / 'store.db'}"
    assert parse_tracking_uri(f"sqlite:///{tmp_path}/abs.db").uri == f"sqlite:///{tmp_path}/abs.db"
    location = parse_tracking_uri("sqlite:///x.db")
    assert location.default_artifact_root == str(tmp_path / "evalkit-artifacts")
    for uri in ("postgresql://u:pw@db:5432/evalkit", "postgres://u:pw@db/evalkit", "postgresql+psycopg://u@db/evalkit"):
        parsed = parse_tracking_uri(uri)
        assert parsed.dialect == "postgresql" and parsed.sqlalchemy_url.startswith("postgresql+psycopg://")


@pytest.mark.parametrize(
    "uri, message",
    [
        ("mysql://u@h/db", "unsupported tracking URI scheme 'mysql'"),
        ("http//nope:5000", None),
        ("sqlite://relative.db", "malformed SQLite tracking URI"),
        ("sqlite:///:memory:", "names no file"),
        ("postgresql://u:secret@host:5432", "names no database"),
        ("", "non-empty string"),
    ],
)
def test_malformed_uris_are_refused_before_connecting(uri, message):
    if message is None:  # a bare string is a file path; this one is fine
        parse_tracking_uri(uri)
        return
    with pytest.raises(ek.InvalidArgument, match=message) as info:
        ek.set_tracking_uri(uri)
    assert "secret" not in str(info.value)


def test_a_directory_is_not_a_store(tmp_path):
    with pytest.raises(ek.InvalidArgument, match="names a directory"):
        ek.set_tracking_uri(str(tmp_path))


def test_unreachable_postgres_names_the_store_but_not_the_password():
    with pytest.raises(ek.StoreUnavailable) as info:
        ek.TrackingClient("postgresql://ana:hunter2@127.0.0.1:1/evalkit")
    message = str(info.value)
    assert "cannot open tracking store postgresql://ana:***@127.0.0.1:1/evalkit: connection failed" in message
    assert "hunter2" not in message


def test_redact_hides_passwords_only():
    assert redact("postgresql://ana:pw@h/db") == "postgresql://ana:***@h/db"
    assert redact("sqlite:///x.db") == "sqlite:///x.db"
