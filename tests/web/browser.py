"""Headless Chromium (Debian's, through Playwright) for the UI tests, and a person at a browser
(the ``browser`` fixture is in this folder's conftest)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, TypedDict, Unpack

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, expect

from tests.conftest import RunningServer

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


class Viewport(TypedDict, total=False):
    """A browser window's size, in CSS pixels, where a test wants other than Person's default."""

    width: int
    height: int


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

    def _console(self, message: ConsoleMessage) -> None:
        # A socket that cannot connect, or a ticket that cannot be fetched, while the server
        # restarts is expected; nothing else.
        expected = ("WebSocket connection", "net::ERR_CONNECTION_REFUSED")
        if message.type == "error" and not any(text in message.text for text in expected):
            self.errors.append(message.text)

    def expected_errors(self, words: str) -> None:
        """Errors a test caused on purpose: they are not the page's."""
        self.errors = [error for error in self.errors if words not in error]

    @classmethod
    async def open(
        cls,
        browser: Browser,
        width: int = 1280,
        height: int = 800,
        color_scheme: Literal["light", "dark"] = "light",
    ) -> Person:
        context = await browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=color_scheme
        )
        return cls(context, await context.new_page())

    async def close(self) -> None:
        assert not self.errors, self.errors
        await self.context.close()

    def cell(self, index: int) -> Locator:
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


async def start_interview(
    browser: Browser,
    server: RunningServer,
    question: str | None = None,
    **viewport: Unpack[Viewport],
) -> tuple[Person, str]:
    """The interviewer starts an interview from "/" (from ``question``, the label of the
    start page's choice, if given) and opens it as the host."""
    host = await Person.open(browser, **viewport)
    page = host.page
    await page.goto(server.base_url + "/")
    await page.get_by_label("Your name").fill("Grace")
    if question is None:
        await page.get_by_label("Title (optional)").fill("Pairing with Alan")
    else:
        await page.get_by_label("Start from").select_option(label=question)
    await page.get_by_role("button", name="Start the interview").click()
    join_link = await page.locator("#join-link").input_value()
    assert re.fullmatch(re.escape(server.base_url) + r"/s/[\w-]+", join_link), join_link
    assert "#host=" in await page.locator("#host-link").input_value()
    await page.get_by_role("link", name="Open the interview").click()
    await expect(page.locator("#connection-status")).to_have_text("Connected")
    # The token left the address bar.
    assert "#host" not in page.url
    return host, join_link


async def join(browser: Browser, link: str, name: str, **viewport: Unpack[Viewport]) -> Person:
    """A candidate opens the join link and gives a name."""
    person = await Person.open(browser, **viewport)
    await person.page.goto(link)
    await person.page.get_by_label("Your name, as the others will see it").fill(name)
    await person.page.get_by_role("button", name="Join").click()
    await expect(person.page.locator("#connection-status")).to_have_text("Connected")
    return person
