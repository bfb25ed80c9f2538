"""The current tracking URI and the open store for each URI.

The tracking URI is one of the two pieces of process-wide state evalkit keeps (the other is the
active run, in ``fluent.py``). Stores are opened once per URI and reused.
"""

from __future__ import annotations

import threading

from evalkit.tracking.sql.store import SqlStore
from evalkit.tracking.uri import default_tracking_uri, parse_tracking_uri

_tracking_uri: str | None = None
_stores: dict[str, SqlStore] = {}
_stores_lock = threading.Lock()


def set_tracking_uri(uri: str | None) -> None:
    """Send everything logged from now on to ``uri`` (a file path, ``sqlite:///...`` or
    ``postgresql://...``). ``None`` goes back to ``$EVALKIT_TRACKING_URI`` or ``./evalkit.db``."""
    global _tracking_uri
    _tracking_uri = None if uri is None else parse_tracking_uri(uri).uri


def get_tracking_uri() -> str:
    """The tracking URI in use, normalised (a SQLite path is made absolute)."""
    return _tracking_uri or parse_tracking_uri(default_tracking_uri()).uri


def get_store(uri: str | None = None, create: bool = True) -> SqlStore:
    """The open store for ``uri`` (the current tracking URI by default), opening it if needed.

    A store that does not exist yet is created, unless ``create=False``: then opening it raises
    :class:`~evalkit.errors.StoreUnavailable` naming the path, and no file is created.
    """
    uri = uri or get_tracking_uri()
    store = _stores.get(uri)  # the hot path: every fluent call comes through here
    if store is not None:
        return store
    location = parse_tracking_uri(uri)
    with _stores_lock:
        store = _stores.get(location.uri)
        if store is None:
            store = SqlStore(location, create=create)
        _stores[location.uri] = _stores[uri] = store
        return store


def close_stores() -> None:
    """Flush and close every open store (tests use this to start from a clean slate)."""
    with _stores_lock:
        stores = list({id(s): s for s in _stores.values()}.values())
        _stores.clear()
    for store in stores:
        store.close()


def close_store(uri: str) -> None:
    """Flush and close the store of ``uri`` only, leaving the others open for their clients."""
    uri = parse_tracking_uri(uri).uri
    with _stores_lock:
        store = _stores.get(uri)
        for key in [key for key, value in _stores.items() if value is store]:
            del _stores[key]
    if store is not None:
        store.close()
