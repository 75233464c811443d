"""Headless Chromium (Debian's, through Playwright) for the UI tests, and a person at a browser
(the ``browser`` fixture is in this folder's conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Person:
    """One browser context: an interviewer's or a candidate's, with the page errors it saw
    (uncaught exceptions, and the console's errors, where CSP violations show)."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.errors: list[str] = []
        # Every URL the page asked for, sockets included: what a proxy's access log would show.
        self.urls: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("websocket", lambda socket: self.urls.append(socket.url))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # A socket that cannot connect, or a ticket that cannot be fetched, while the server
        # restarts is expected; nothing else.
        expected = ("WebSocket connection", "net::ERR_CONNECTION_REFUSED")
        if message.type == "error" and not any(text in message.text for text in expected):
            self.errors.append(message.text)

    def expected_errors(self, words: str) -> None:
        """Errors a test caused on purpose: they are not the page's."""
        self.errors = [error for error in self.errors if words not in error]

    @classmethod
    async def open(cls, browser: Browser, width: int = 1280, height: int = 800) -> Person:
        context = await browser.new_context(viewport={"width": width, "height": height})
        return cls(context, await context.new_page())

    async def close(self) -> None:
        assert not self.errors, self.errors
        await self.context.close()

    def cell(self, index: int) -> Any:
        return self.page.locator(".cell").nth(index)

    async def type_in(self, index: int, text: str) -> None:
        await self.cell(index).locator(".cm-content").click()
        await self.page.keyboard.press("Control+End")
        await self.page.keyboard.type(text)

    async def replace_source(self, index: int, text: str) -> None:
        await self.cell(index).locator(".cm-content").click()
        await self.page.keyboard.press("Control+A")
        await self.page.keyboard.press("Delete")
        await self.page.keyboard.insert_text(text)

    async def run(self, index: int) -> None:
        await self.cell(index).get_by_role("button", name="Run cell (Shift+Enter)").click()
