"""Fixtures of the web tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import RunningServer
from tests.web.browser import CHROMIUM, LAUNCH_ARGS, Person, join, start_interview


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        yield browser
        await browser.close()


@pytest.fixture
async def pair(browser: Browser, server: RunningServer) -> AsyncIterator[tuple[Person, Person]]:
    host, link = await start_interview(browser, server)
    candidate = await join(browser, link, "Alan")
    yield host, candidate
    await host.close()
    await candidate.close()
