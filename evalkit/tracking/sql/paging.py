"""Opaque page tokens of the SQL store's searches: the offset of the next page."""

from __future__ import annotations

import base64
import json

from evalkit.errors import InvalidArgument


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    """The offset a token holds (0 for no token); ``InvalidArgument`` for a token not made here."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise InvalidArgument(f"invalid page token {token!r}")
