"""Which ``TrackingStore`` serves a tracking URI: chosen by the URI's scheme.

Stores register under the entry-point group ``evalkit.tracking_stores``, the scheme as the name and
a ``TrackingStore`` subclass as the value, so a third party adds one from its own package::

    [project.entry-points."evalkit.tracking_stores"]
    mystore = "mypackage.store:MyStore"

A store's module is imported only when a URI with its scheme is first used. A URI without a
scheme is a file path, served by the ``sqlite`` store. evalkit's own stores are registered in its
``pyproject.toml`` like any other.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint

from evalkit import plugins
from evalkit.errors import InvalidArgument, StoreUnavailable
from evalkit.redaction import redact
from evalkit.tracking.store import TrackingStore

ENTRY_POINT_GROUP = plugins.TRACKING_STORES
PATH_SCHEME = "sqlite"  # a tracking URI without "scheme://" is a file path: a SQLite store

_classes: dict[str, type[TrackingStore]] = {}


def uri_scheme(uri: str) -> str:
    """The scheme that picks the store for ``uri``, lower-case (``PATH_SCHEME`` for a path)."""
    return uri.split("://", 1)[0].lower() if "://" in uri else PATH_SCHEME


def registered_schemes() -> list[str]:
    """Every scheme a store is registered for, sorted."""
    return sorted({name.lower() for name in plugins.find_plugins(ENTRY_POINT_GROUP)})


def store_class(uri: str) -> type[TrackingStore]:
    """The store class registered for ``uri``'s scheme; ``InvalidArgument`` listing the known
    schemes when none is."""
    scheme = uri_scheme(uri)
    cls = _classes.get(scheme)
    if cls is None:
        cls = _classes[scheme] = _load(_entry_point(scheme, uri))
    return cls


def normalize_tracking_uri(uri: str) -> str:
    """``uri`` checked and in canonical form by the rules of its store, without connecting."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidArgument(f"tracking URI must be a non-empty string, got {uri!r}")
    uri = uri.strip()
    return store_class(uri).normalize_uri(uri)


def open_tracking_store(uri: str, create: bool = True) -> TrackingStore:
    """Open the (unbuffered) store of a normalised tracking URI; ``create=False`` refuses to create
    one that does not exist yet (``StoreUnavailable``), for read-only use."""
    cls = store_class(uri)
    return cls.from_uri(uri) if create else cls.from_uri(uri, create=False)


def _entry_point(scheme: str, uri: str) -> EntryPoint:
    found = {name.lower(): entry for name, entry in plugins.find_plugins(ENTRY_POINT_GROUP).items()}
    if scheme in found:
        return found[scheme]
    if PATH_SCHEME not in found:
        raise StoreUnavailable(
            f"no tracking store is registered for {scheme!r}, not even evalkit's own: the "
            f"{ENTRY_POINT_GROUP!r} entry points are missing, so evalkit's install is out of date; "
            "reinstall it (pip install -e . in a checkout)"
        )
    raise InvalidArgument(
        f"unsupported tracking URI scheme {scheme!r} in {redact(uri)!r}: use a file path, "
        "sqlite:///path/to/file.db, postgresql://user@host:5432/dbname or an evalkit server's "
        "http(s)://host:5000 (registered schemes: "
        f"{', '.join(sorted(found))})"
    )


def _load(entry: EntryPoint) -> type[TrackingStore]:
    try:
        loaded = entry.load()
    except Exception as exc:  # noqa: BLE001 - a broken plugin: say which one and why
        raise StoreUnavailable(
            f"the tracking store registered for {entry.name!r} ({entry.value}) cannot be imported: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, TrackingStore)):
        raise StoreUnavailable(
            f"the tracking store registered for {entry.name!r} ({entry.value}) is not a TrackingStore subclass"
        )
    return loaded
