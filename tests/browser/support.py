"""Shared pieces of the browser tests: Debian's chromium through Playwright, and a watch for
script errors and failed requests on a page."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]
TIMEOUT_MS = 20_000  # generous: a loaded CI host can be slow to start a browser

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (scripts/system-deps.sh)"
)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield browser
        finally:
            await browser.close()


class PageProblems:
    """Script errors (a CSP violation shows up as one), uncaught exceptions and responses of
    400 or more, from every page :meth:`watch` was given."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def watch(self, page: object, name: str) -> None:
        page.on("console", lambda m: self._console(name, m))  # type: ignore[attr-defined]
        page.on("response", lambda r: self._response(name, r))  # type: ignore[attr-defined]
        page.on("pageerror", lambda e: self.problems.append(f"{name}: {e}"))  # type: ignore[attr-defined]

    def _console(self, name: str, message: object) -> None:
        text = str(message.text)  # type: ignore[attr-defined]
        # A failed load is also reported by URL through _response.
        if message.type == "error" and not text.startswith("Failed to load resource"):  # type: ignore[attr-defined]
            self.problems.append(f"{name}: {text}")

    def _response(self, name: str, response: object) -> None:
        if response.status >= 400:  # type: ignore[attr-defined]
            self.problems.append(f"{name}: {response.status} {response.url}")  # type: ignore[attr-defined]
