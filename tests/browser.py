"""Headless Chromium for the HTML report's tests, through Playwright's Python package.

The browser is the system's Chromium (``shutil.which("chromium")``, Debian's ``chromium``
package): Playwright's own browser download (``playwright install``) is never used. Where
Chromium is missing the browser tests are skipped, unless ``EVALKIT_REQUIRE_BROWSER=1`` (set by
CI), which turns the skip into a failure.

Use from a test module::

    pytest_plugins = ["browser"]          # registers the fixtures below
    from browser import open_report

    def test_report(chromium_page, tmp_path):
        page, errors = open_report(chromium_page, path_to_report_html)
        assert errors == []

``open_report`` records console errors, uncaught page errors, dialogs and every request that
leaves the file (anything but ``file:``, ``data:``, ``blob:`` and ``about:``) in the list it
returns; the list keeps filling while the test interacts with the page.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# CI sets this so that a missing or broken Chromium fails the run instead of skipping its tests.
REQUIRE_BROWSER = os.environ.get("EVALKIT_REQUIRE_BROWSER") == "1"

# As root, without the networking flags, Chromium contacts Google hosts (component updates,
# variations, sync) at start-up; the report's "no network requests" check must see none of that.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_TIMEOUT_MS = 10_000
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def _unavailable(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"EVALKIT_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    return shutil.which("chromium")


def launch_chromium(playwright: Any, executable: str) -> Any:
    return playwright.chromium.launch(headless=True, executable_path=executable, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium per test module.

    Not per session: while Playwright's sync API runs, its event loop counts as the thread's
    running loop, and asyncio.run() in any later test of the process would refuse to start.
    Stopping Playwright at the end of the module clears that.
    """
    executable = chromium_path()
    if executable is None:
        _unavailable("Chromium is not installed (no `chromium` on PATH; Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright's Python package is not installed (pip install -e '.[dev]')")
    manager = sync_playwright()
    playwright = manager.start()
    try:
        browser = launch_chromium(playwright, executable)
    except Exception as exc:  # noqa: BLE001 - reported as a skip or, in CI, a failure
        manager.__exit__(None, None, None)
        _unavailable(f"Chromium at {executable} could not be launched: {exc}")
    try:
        yield browser
    finally:
        browser.close()
        manager.__exit__(None, None, None)


@pytest.fixture
def browser_context(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (no shared storage, cache or state) for each test."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def chromium_page(browser_context: Any) -> Any:
    """A new page in the test's own browser context."""
    return browser_context.new_page()


def is_local(url: str, origin: str | None = None) -> bool:
    return url.startswith(LOCAL_SCHEMES) or (origin is not None and (url == origin or url.startswith(origin + "/")))


def watch(page: Any, origin: str | None = None) -> list[str]:
    """Record on ``page`` every console error, page error, dialog, crash and non-local request.
    ``origin`` (``http://127.0.0.1:<port>``, a test server's) counts as local too."""
    errors: list[str] = []

    def _is_local(url: str) -> bool:
        return is_local(url, origin)

    def on_console(message: Any) -> None:
        if message.type == "error":
            location = message.location or {}
            errors.append(f"console error: {message.text} ({location.get('url', '')}:{location.get('lineNumber', '')})")

    def on_request(request: Any) -> None:
        if not _is_local(request.url):
            errors.append(f"network request: {request.method} {request.url}")

    def on_dialog(dialog: Any) -> None:
        errors.append(f"dialog: {dialog.type} {dialog.message!r}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("request", on_request)
    page.on("websocket", lambda socket: errors.append(f"websocket: {socket.url}"))
    page.on("dialog", on_dialog)
    page.on("crash", lambda _: errors.append("page crashed"))
    # Nothing may leave the machine even if the report tried: requests are recorded above, then refused.
    page.route(lambda url: not _is_local(url), lambda route: route.abort())
    return errors


def open_report(target: Any, path: str | os.PathLike[str], timeout_ms: int = READY_TIMEOUT_MS) -> tuple[Any, list[str]]:
    """Open the report at ``path`` from file:// and wait until it sets ``window.__reportReady``.

    ``target`` is a Page (used as is), a BrowserContext (a new page in it) or a Browser (a new
    page in a new context; close it with ``page.context.close()``). Returns the page and the
    live list of errors (see ``watch``). Raises AssertionError, with the errors so far, when
    the report does not become ready within ``timeout_ms``.
    """
    if hasattr(target, "goto"):
        page = target
    elif hasattr(target, "new_context"):
        page = target.new_context().new_page()
    else:
        page = target.new_page()
    errors = watch(page)
    url = Path(path).resolve().as_uri()
    page.goto(url, wait_until="load", timeout=timeout_ms)
    try:
        page.wait_for_function("() => window.__reportReady === true", timeout=timeout_ms)
    except Exception as exc:  # noqa: BLE001 - a Playwright TimeoutError, reported with what the page said
        raise AssertionError(
            f"{url} did not set window.__reportReady = true within {timeout_ms} ms ({type(exc).__name__}); "
            f"errors: {errors}"
        ) from None
    return page, errors
