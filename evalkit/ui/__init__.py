"""The web UI: server-rendered pages over a tracking store, mounted on the server's FastAPI app.

``mount_ui(app)`` adds the pages at ``/`` and the static files (the UI's own script and style, and
the vendored htmx and uPlot) at ``/static``. Pages read ``app.state.store`` and, when an auth
middleware set it, ``request.state.principal`` (absent: an anonymous admin).
"""

from evalkit.ui.mount import mount_ui

__all__ = ["mount_ui"]
