"""What a hostile participant can put on the interviewer's page, in headless Chromium: a
presence dressed up to restyle the page (sent by a Python Yjs client into an interview a browser
has open), and kernel HTML that would fetch from, or go to, other addresses.

Screenshots land in ``test-artifacts/ui-hostile/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_ydoc import YNotebook
from playwright.async_api import Browser, Page, Request, expect
from pycrdt import Assoc, Awareness, Doc, create_awareness_message, create_update_message

from kernelpad.config import Settings
from kernelpad.sessions.room import presence
from tests.conftest import RunningServer, eventually, make_settings
from tests.web.browser import ARTIFACTS, Person, start_interview
from tests.web.clients import YjsClient

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


# Kernel HTML: every way it could fetch something or go somewhere, all to this server (which
# the page's CSP would allow for images), under /leak/.
VECTORS = """
<img srcset="{u}/img-srcset 1x" alt="srcset"><img src="{u}/img-src" alt="src">
<picture><source srcset="{u}/source-srcset"><img alt="picture"></picture>
<video poster="{u}/video-poster" src="{u}/video-src"><source src="{u}/video-source">
<track src="{u}/video-track"></video><audio src="{u}/audio-src"></audio>
<table background="{u}/table-background"><tr><td background="{u}/td-background">cell</td></tr>
</table>
<form action="{u}/form-action"><button formaction="{u}/button-formaction">go</button></form>
<input type="image" src="{u}/input-image">
<object data="{u}/object-data"></object><embed src="{u}/embed-src">
<iframe src="{u}/iframe-src"></iframe>
<link rel="stylesheet" href="{u}/link-stylesheet"><link rel="preload" as="image"
 href="{u}/link-preload"><link rel="prefetch" href="{u}/link-prefetch">
<meta http-equiv="refresh" content="0; url={u}/meta-refresh"><base href="{u}/base/">
<div style="background-image: url({u}/style-url)">styled</div>
<a href="{u}/a-href" ping="{u}/a-ping">a link</a>
<math href="{u}/math-href"><mi>x</mi></math>
<svg width="40" height="40" xmlns:xlink="http://www.w3.org/1999/xlink">
 <defs><pattern id="p" href="{u}/svg-pattern#q"/><filter id="f">
 <feImage href="{u}/svg-feimage"/></filter><linearGradient id="g"><stop offset="0"/>
 </linearGradient></defs>
 <image href="{u}/svg-image" width="9" height="9"/>
 <image xlink:href="{u}/svg-image-xlink" width="9" height="9"/>
 <use href="{u}/svg-use#x"/>
 <rect width="9" height="9" fill="url({u}/svg-fill#p)" filter="url({u}/svg-filter#f)"
  mask="url({u}/svg-mask#m)" clip-path="url({u}/svg-clip#c)"/>
 <rect width="9" height="9" fill="url(#g)"/>
 <a href="{u}/svg-a"><text y="30">svg link</text></a>
</svg>
<p>end of the vectors</p>
"""
# Attributes that fetch or navigate; only links (opened in a new tab) and images from data:
# URLs may keep one.
FETCHING = [
    "srcset", "src", "poster", "background", "action", "formaction", "data", "ping",
    "href", "xlink:href",
]  # fmt: skip


async def test_kernel_html_fetches_nothing(
    host: Person, server: RunningServer, artifacts: Path
) -> None:
    page = host.page
    requested: list[str] = []

    def seen(request: Request) -> None:
        if "/leak/" in request.url:
            requested.append(request.url)

    page.on("request", seen)
    html = VECTORS.format(u=server.base_url + "/leak")
    code = f"from IPython.display import HTML, display\ndisplay(HTML({html!r}))"
    await host.replace_source(0, code)
    await host.run(0)
    output = page.locator(".cell").first.locator(".output-html")
    await expect(output).to_contain_text("end of the vectors", timeout=30_000)
    # A fetch starts as soon as its element is in the page: a second is ample.
    await page.wait_for_timeout(1000)
    await page.screenshot(path=artifacts / "kernel-html.png")
    # DOMPurify's parse of the <base> (in a document of its own, before it is removed) is
    # refused by the page's policy, which says so: nothing was fetched.
    host.expected_errors('violates the following Content Security Policy directive: "base-uri')
    assert requested == [], sorted(set(requested))
    kept = await output.evaluate(
        """(root, names) => [...root.querySelectorAll("*")].flatMap((element) =>
            [...element.attributes]
              .filter((a) => names.includes(a.name) || /url\\(/i.test(a.value))
              .map((a) => `${element.nodeName.toLowerCase()} ${a.name}=${a.value}`))""",
        FETCHING,
    )
    # What stays: the two links (in a new tab), and a reference within the output.
    assert sorted(kept) == [
        f"a href={server.base_url}/leak/a-href",
        f"a href={server.base_url}/leak/svg-a",
        "rect fill=url(#g)",
    ]
    for link in await output.locator("a").all():
        assert await link.get_attribute("target") == "_blank"
    for tag in ["link", "meta", "base", "object", "embed", "iframe", "use", "form", "input"]:
        assert await output.locator(tag).count() == 0, tag


async def test_a_page_whose_change_cannot_be_merged_stops_and_says_so(
    browser: Browser, server: RunningServer, host: Person, artifacts: Path
) -> None:
    """A change built on what the server never had (sent here through the candidate's own
    socket, as a page whose copy went astray would) is not applied: the server closes that
    socket (4409), and the page stops, says why in words, and offers to reload, instead of
    showing "Connected" while nothing it types reaches anyone."""
    sid = session_of(host.page)
    sockets: list[Any] = []

    def route(socket: Any) -> None:
        sockets.append(socket.connect_to_server())  # everything else is passed through

    candidate = await Person.open(browser)
    await candidate.page.route_web_socket(re.compile(r".*/ws/yjs/.*"), route)
    await candidate.page.goto(f"{server.base_url}/s/{sid}")
    await candidate.page.get_by_label("Your name, as the others will see it").fill("Alan")
    await candidate.page.get_by_role("button", name="Join").click()
    await expect(candidate.page.locator("#connection-status")).to_have_text("Connected")

    # Text hung on a change the server never got.
    watcher = await YjsClient.connect(server, sid, client_id="watcher-m")
    await eventually(lambda: watcher.cell_count == 1, "sync")
    ahead: Doc[Any] = Doc()
    ahead.apply_update(watcher.doc.get_update())
    source = YNotebook(ahead).ycells[0]["source"]
    source.insert(len(source), "# never sent\n")
    forged: Doc[Any] = Doc()
    forged.apply_update(ahead.get_update())
    updates: list[bytes] = []
    forged.observe(lambda event: updates.append(event.update))
    text = YNotebook(forged).ycells[0]["source"]
    text.insert(len(text), "EVIL = 1\n")
    sockets[-1].send(create_update_message(updates[0]))

    banner = candidate.page.locator(".banner").filter(has_text="could not be merged")
    await expect(banner).to_be_visible()
    await expect(candidate.page.get_by_role("button", name="Reload")).to_be_visible()
    await expect(candidate.page.locator("#connection-status")).not_to_have_text("Connected")
    await candidate.page.screenshot(path=artifacts / "not-merged.png")
    assert "EVIL" not in watcher.source
    await watcher.close()
    await candidate.close()
