"""The current tracking URI and the open store for each URI.

The tracking URI is one of the two pieces of process-wide state evalkit keeps (the other is the
active run, in ``fluent.py``). Stores are opened once per URI, chosen by its scheme
(``schemes.py``), wrapped in a ``BufferedStore``, and reused.
"""

from __future__ import annotations

import threading

from evalkit.tracking.buffered import BufferedStore
from evalkit.tracking.schemes import normalize_tracking_uri, open_tracking_store
from evalkit.tracking.uri import default_tracking_uri

_tracking_uri: str | None = None
# Keyed by the URI as given and by its normalised form: (normalised URI, store).
_stores: dict[str, tuple[str, BufferedStore]] = {}
_stores_lock = threading.Lock()


def set_tracking_uri(uri: str | None) -> None:
    """Send everything logged from now on to ``uri`` (a file path, ``sqlite:///...``,
    ``postgresql://...``, or a scheme a plugin registered). ``None`` goes back to
    ``$EVALKIT_TRACKING_URI`` or ``./evalkit.db``."""
    global _tracking_uri
    _tracking_uri = None if uri is None else normalize_tracking_uri(uri)


def get_tracking_uri() -> str:
    """The tracking URI in use, normalised (a SQLite path is made absolute)."""
    return _tracking_uri or normalize_tracking_uri(default_tracking_uri())


def open_store(uri: str | None = None, create: bool = True) -> tuple[str, BufferedStore]:
    """The normalised ``uri`` (the current tracking URI by default) and its open store, opening
    it if needed. A store that does not exist yet is created, unless ``create=False``: then
    opening it raises :class:`~evalkit.errors.StoreUnavailable` naming it, and nothing is created."""
    uri = uri or get_tracking_uri()
    entry = _stores.get(uri)  # the hot path: every fluent call comes through here
    if entry is not None:
        return entry
    normalized = normalize_tracking_uri(uri)
    with _stores_lock:
        entry = _stores.get(normalized)
        if entry is None:
            entry = (normalized, BufferedStore(open_tracking_store(normalized, create=create)))
        _stores[normalized] = _stores[uri] = entry
        return entry


def get_store(uri: str | None = None, create: bool = True) -> BufferedStore:
    """The open store for ``uri`` (the current tracking URI by default), opening it if needed."""
    return open_store(uri, create)[1]


def close_stores() -> None:
    """Flush and close every open store (tests use this to start from a clean slate)."""
    with _stores_lock:
        stores = list({id(store): store for _, store in _stores.values()}.values())
        _stores.clear()
    for store in stores:
        store.close()


def close_store(uri: str) -> None:
    """Flush and close the store of ``uri`` only, leaving the others open for their clients."""
    uri = normalize_tracking_uri(uri)
    with _stores_lock:
        entry = _stores.get(uri)
        for key in [key for key, value in _stores.items() if value is entry]:
            del _stores[key]
    if entry is not None:
        entry[1].close()
