"""What a hostile participant can put on the interviewer's page, in headless Chromium: a
presence dressed up to restyle the page (sent by a Python Yjs client into an interview a browser
has open).

Screenshots land in ``test-artifacts/ui-hostile/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_ydoc import YNotebook
from playwright.async_api import Browser, Page, expect
from pycrdt import Assoc, Awareness, create_awareness_message

from kernelpad.config import Settings
from kernelpad.sessions.room import presence
from tests.conftest import RunningServer, eventually, make_settings
from tests.web.browser import ARTIFACTS, Person
from tests.web.clients import YjsClient
from tests.web.test_ui import start_interview

OVERLAY = (
    "red; position: fixed; top: 0; left: 0; width: 100vw; height: 100vh; z-index: 99999;"
    " font-size: 5em; opacity: 1"
)
# background-color and border-color, as the browser reads them.
CARET_PROPERTIES = {"background-color"} | {
    f"border-{side}-color" for side in ("top", "right", "bottom", "left")
}


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"), kernel_pool_size={"python": 1}, code_execution_timeout=60
    )


@pytest.fixture(scope="module", autouse=True)
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS / "ui-hostile", ignore_errors=True)
    (ARTIFACTS / "ui-hostile").mkdir(parents=True)
    return ARTIFACTS / "ui-hostile"


@pytest.fixture
async def host(browser: Browser, server: RunningServer) -> AsyncIterator[Person]:
    person, _ = await start_interview(browser, server)
    yield person
    await person.close()


def session_of(page: Page) -> str:
    return page.url.rstrip("/").rsplit("/", 1)[-1]


async def forge_presence(server: RunningServer, session_id: str, user: dict[str, Any]) -> YjsClient:
    """Mallory, a candidate with a Yjs client of her own, says she is ``user`` with a selection
    at the start of the first cell's second line: the interviewer's editor draws her caret
    there (on the first line, its label would be cut off by the editor's top)."""
    mallory = await YjsClient.connect(
        server, session_id, client_id="c-mallory", display_name="Mallory"
    )
    await eventually(lambda: mallory.cell_count > 0, "Mallory's copy of the notebook")
    source = YNotebook(mallory.doc).ycells[0]["source"]

    def position(index: int) -> dict[str, Any]:
        # A Yjs relative position, as y-codemirror puts it in a presence.
        return {"type": None, "tname": None, **source.sticky_index(index, Assoc.AFTER).to_json()}

    start = str(source).index("\n") + 1
    state = {"user": user, "cursor": {"anchor": position(start), "head": position(start + 8)}}
    forged = Awareness(mallory.doc)
    forged.set_local_state(state)
    update = forged.encode_awareness_update([forged.client_id])
    await mallory.conn.write_message(create_awareness_message(update), binary=True)
    return mallory


async def overlays(page: Page) -> list[str]:
    """Elements fixed in place over most of the window: none of the pad's own is."""
    found: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll("*")].filter((element) => {
            const box = element.getBoundingClientRect();
            return getComputedStyle(element).position === "fixed"
              && box.width >= innerWidth * 0.8 && box.height >= innerHeight * 0.8;
          }).map((element) => element.outerHTML.slice(0, 200))"""
    )
    return found


async def styled(page: Page, selector: str) -> list[list[str]]:
    """The properties each matching element's style attribute sets, in the first cell."""
    found: list[list[str]] = (
        await page.locator(".cell")
        .first.locator(selector)
        .evaluate_all("(elements) => elements.map((element) => [...element.style])")
    )
    return found


async def assert_drawn_safely(page: Page) -> None:
    """Mallory's caret and selection are drawn, and their styles set colours only."""
    await expect(page.locator(".cell").first.locator(".cm-ySelectionCaret")).to_have_count(1)
    [caret] = await styled(page, ".cm-ySelectionCaret")
    assert set(caret) <= CARET_PROPERTIES, caret
    selections = await styled(page, ".cm-ySelection")
    assert selections and all(properties == ["background-color"] for properties in selections)
    assert await overlays(page) == []


async def test_a_forged_presence_draws_no_overlay(
    host: Person, server: RunningServer, artifacts: Path
) -> None:
    user = {"name": "Mallory\u202e(tsoh)", "color": OVERLAY, "colorLight": OVERLAY}
    mallory = await forge_presence(server, session_of(host.page), user)
    # The server left the colours and the name out: the caret is there, in a colour of the page.
    label = host.page.locator(".cell").first.locator(".cm-ySelectionInfo")
    await expect(label).to_have_count(1)
    await host.page.screenshot(path=artifacts / "forged-presence.png")
    assert "\u202e" not in await label.inner_text()
    await assert_drawn_safely(host.page)
    await mallory.close()


async def test_the_page_checks_a_presence_itself(
    host: Person, server: RunningServer, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that would let anything through: the page still draws only a colour, and the
    # name as text, without its invisible characters.
    monkeypatch.setattr(presence, "check_update", lambda update: presence.Checked(update))
    user = {"name": "Mallory\u202e<b>x</b>", "color": OVERLAY, "colorLight": OVERLAY}
    mallory = await forge_presence(server, session_of(host.page), user)
    label = host.page.locator(".cell").first.locator(".cm-ySelectionInfo")
    await expect(label).to_have_text("Mallory<b>x</b>")
    assert await label.locator("b").count() == 0
    await host.page.screenshot(path=artifacts / "forged-presence-unchecked.png")
    await assert_drawn_safely(host.page)
    await mallory.close()
