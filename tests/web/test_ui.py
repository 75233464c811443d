"""The browser UI, driven in headless Chromium (Debian's, through Playwright): an interviewer
and a candidate, each in a browser context of their own, on one real server with real kernels.

Screenshots of both views land in ``test-artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from playwright.async_api import Browser, Locator, Request, expect

from kernelpad.config import Settings
from kernelpad.server import KernelpadServer
from kernelpad.web.pages import Bundle
from tests import nbformat_typed
from tests.conftest import Api, RunningServer, free_port, make_settings
from tests.web.browser import ARTIFACTS, Person, join, start_interview


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # A fixed port: the reconnect test restarts the server on it.
    return make_settings(
        tmp_path_factory.mktemp("data"),
        port=free_port(),
        kernel_pool_size={"python": 1},
        code_execution_timeout=60,
    )


@pytest.fixture(scope="module", autouse=True)
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS / "ui", ignore_errors=True)
    (ARTIFACTS / "ui").mkdir(parents=True)
    return ARTIFACTS / "ui"


async def test_typing_shows_at_the_other_side_with_the_cursor(
    pair: tuple[Person, Person], artifacts: Path
) -> None:
    host, candidate = pair
    # Each sees the other in the participant list.
    await expect(host.page.get_by_label("Participants")).to_contain_text("Alan")
    await expect(candidate.page.get_by_label("Participants")).to_contain_text("Grace (host)")
    await candidate.type_in(0, "\nanswer = 42  # typed by Alan")
    await expect(host.cell(0).locator(".cm-content")).to_contain_text(
        "answer = 42  # typed by Alan"
    )
    # Alan's cursor, with his name, in the interviewer's editor.
    await expect(host.cell(0).locator(".cm-ySelectionInfo")).to_have_text("Alan")
    await host.type_in(0, "\nprint(answer)")
    await expect(candidate.cell(0).locator(".cm-content")).to_contain_text("print(answer)")
    await expect(candidate.cell(0).locator(".cm-ySelectionInfo")).to_have_text("Grace")
    # A name does not stay over the code: it fades once its person stops, and shows again
    # when their caret is pointed at.
    label = candidate.cell(0).locator(".cm-ySelectionInfo")
    opacity = "element => getComputedStyle(element).opacity"
    await candidate.page.wait_for_timeout(2500)
    assert await label.evaluate(opacity) == "0"
    await candidate.cell(0).locator(".cm-ySelectionCaret").hover()
    for _ in range(20):  # it fades in
        if await label.evaluate(opacity) == "1":
            break
        await candidate.page.wait_for_timeout(100)
    assert await label.evaluate(opacity) == "1"
    font = await label.evaluate("element => getComputedStyle(element).fontFamily")
    assert "serif" not in font.replace("sans-serif", ""), font
    await host.page.screenshot(path=artifacts / "pad-interviewer.png")
    await candidate.page.screenshot(path=artifacts / "pad-candidate.png")


async def test_a_run_shows_its_output_in_both_views(pair: tuple[Person, Person]) -> None:
    host, candidate = pair
    code = (
        "print('\\x1b[31mred\\x1b[0m text')\n"
        "print('\\x1b[32mgreen, never reset')\n"
        "from IPython.display import HTML, display\n"
        'display(HTML(\'<b class="banner">bold</b><img src=x onerror="window.hacked=1">\''
        "'<script>window.hacked=2</script>'))\n"
        "6 * 7"
    )
    await candidate.replace_source(0, code)
    await candidate.run(0)
    for person in (host, candidate):
        outputs = person.cell(0).locator(".outputs")
        await expect(outputs.locator(".ansi-red-fg")).to_have_text("red")
        await expect(outputs.locator(".output-html b")).to_have_text("bold")
        await expect(outputs).to_contain_text("42")
        await expect(person.cell(0).locator(".count")).to_have_text(re.compile(r"\[\d+\]"))
        # Kernel HTML was sanitised: no script, no handler, no class of the pad's own.
        assert await outputs.locator("script").count() == 0
        assert await outputs.locator("[onerror]").count() == 0
        assert await outputs.locator(".output-html [class]").count() == 0
        # The browser's parse of the hostile HTML, inside DOMPurify, tried its handler: the
        # page's policy (no inline scripts) refused it, and says so.
        person.expected_errors("Executing inline event handler violates")
    # Colours do not leak from one output into the next (the green was never reset).
    await host.page.get_by_role("button", name="Add a code cell at the end").click()
    await host.page.keyboard.insert_text("print('next')")
    await host.page.keyboard.press("Control+Enter")
    await expect(candidate.cell(1).locator(".output-stream")).to_have_text("next")
    assert await candidate.cell(1).locator(".ansi-green-fg").count() == 0


async def test_an_endless_loop_is_interrupted_from_the_other_side(
    pair: tuple[Person, Person],
) -> None:
    host, candidate = pair
    await candidate.replace_source(0, "n = 0\nwhile True:\n    n += 1")
    await candidate.run(0)
    await expect(host.cell(0).locator(".count")).to_have_text("[*]")
    await expect(host.page.locator(".kernels [data-language=python]")).to_have_attribute(
        "data-state", "busy"
    )
    await host.page.get_by_role("button", name="Interrupt the Python 3 kernel").click()
    for person in (host, candidate):
        await expect(person.cell(0).locator(".output-error")).to_contain_text("KeyboardInterrupt")
        await expect(person.cell(0).locator(".count")).to_have_text(re.compile(r"\[\d+\]"))
    # State kept: the loop's variable is still there.
    await host.replace_source(0, "print(n > 0)")
    await host.run(0)
    await expect(candidate.cell(0).locator(".output-stream")).to_have_text("True")
    # A cell's own Stop button stops its own run.
    await host.replace_source(0, "while True:\n    n += 1")
    await host.run(0)
    stop = candidate.cell(0).get_by_role("button", name="Stop this cell's run")
    await stop.click()
    await expect(host.cell(0).locator(".output-error")).to_contain_text("KeyboardInterrupt")
    await expect(stop).to_be_hidden()


async def test_restarting_the_kernel_forgets_variables(pair: tuple[Person, Person]) -> None:
    host, candidate = pair
    await host.replace_source(0, "kept = 1\nprint('set')")
    await host.run(0)
    await expect(candidate.cell(0).locator(".output-stream")).to_have_text("set")
    await candidate.page.get_by_role("button", name="Restart the Python 3 kernel").click()
    await host.replace_source(0, "print(kept)")
    await host.run(0)
    # The run waits for the new kernel: allow for a busy machine.
    await expect(candidate.cell(0).locator(".output-error")).to_contain_text(
        "NameError", timeout=30_000
    )
    # The traceback is shown once, for both, and once in the export.
    for person in (host, candidate):
        await expect(person.cell(0).locator(".outputs")).to_contain_text("NameError")
        await expect(person.cell(0).locator(".outputs > *")).to_have_count(1)


async def test_only_the_host_sees_host_controls_and_can_end_the_interview(
    pair: tuple[Person, Person], api: Api, artifacts: Path
) -> None:
    host, candidate = pair
    await expect(host.page.get_by_role("button", name="End interview")).to_be_visible()
    await expect(candidate.page.get_by_role("button", name="End interview")).to_be_hidden()
    # The host is listed once (its page joins as the host the session was made with), and
    # each person has a colour of their own, the same on every page.
    dots = "[...document.querySelectorAll('.people li')].map(li => [li.dataset.clientId,"
    dots += " li.querySelector('.dot').style.backgroundColor])"
    for person in (host, candidate):
        await expect(person.page.locator(".people li")).to_have_count(2)
        await expect(person.page.locator(".people li", has_text="(host)")).to_have_count(1)
    seen = [dict(await person.page.evaluate(dots)) for person in (host, candidate)]
    assert seen[0] == seen[1] and len(set(seen[0].values())) == 2
    sid = host.page.url.rstrip("/").rsplit("/", 1)[-1]
    session = (await api.get(f"/api/v1/sessions/{sid}")).json
    assert sorted(p["role"] for p in session["participants"]) == ["candidate", "host"]
    assert session["participant_count"] == 2
    # Asked first: cancelling changes nothing.
    await host.page.get_by_role("button", name="End interview").click()
    dialog = host.page.get_by_role("dialog", name="End the interview?")
    await expect(dialog).to_contain_text("read-only")
    await host.page.screenshot(path=artifacts / "pad-end-confirm.png")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(host.page.locator("#connection-status")).to_have_text("Connected")
    await host.page.get_by_role("button", name="End interview").click()
    await dialog.get_by_role("button", name="End interview").click()
    await expect(host.page.locator(".banner")).to_contain_text("You ended this interview.")
    ended = re.compile(r"(The host ended this interview|This interview has ended)\. The notebook")
    await expect(candidate.page.locator(".banner")).to_contain_text(ended)
    for person in (host, candidate):
        await expect(person.page.locator("#connection-status")).to_have_text("Interview ended")
        await expect(
            person.page.get_by_role("button", name="Run all cells", exact=True)
        ).to_be_disabled()
        content = person.cell(0).locator(".cm-content")
        await expect(content).to_have_attribute("contenteditable", "false")


async def test_cells_markdown_input_and_the_keyboard(
    pair: tuple[Person, Person], artifacts: Path
) -> None:
    host, candidate = pair
    page = candidate.page
    # Add a Markdown cell; it renders when left, for both.
    await page.get_by_role("button", name="Add a Markdown cell at the end").click()
    await page.keyboard.type("# Notes\n\nSome *emphasis*")
    await page.keyboard.press("Shift+Enter")
    await expect(host.cell(1).locator(".markdown-preview h1")).to_have_text("Notes")
    await expect(candidate.cell(1).locator(".markdown-preview em")).to_have_text("emphasis")
    # Move it above the code cell, from the keyboard.
    await candidate.cell(1).get_by_role("button", name="Move cell up").focus()
    await page.keyboard.press("Enter")
    await expect(host.cell(0).locator(".markdown-preview h1")).to_have_text("Notes")
    # Input requests: the other side answers. The request does not take the keyboard from
    # someone typing elsewhere.
    await host.cell(0).locator(".markdown-preview").dblclick()
    await candidate.replace_source(1, "name = input('Name? ')\nprint('hello', name)")
    await page.keyboard.press("Shift+Enter")
    box = host.cell(1).get_by_label("Name? ")
    await expect(box).to_be_visible()
    assert await host.page.evaluate(
        "document.activeElement.closest('.cell') === document.querySelector('.cell')"
    )
    await box.fill("Ada")
    await box.press("Enter")
    await expect(candidate.cell(1).locator(".output-stream")).to_contain_text("hello Ada")
    await expect(candidate.cell(1).locator(".input-request form")).to_have_count(0)
    # A cell moves with its outputs (the server moves it: only runs write outputs), and the
    # focus follows it to its new place.
    await candidate.cell(1).get_by_role("button", name="Move cell up").focus()
    await page.keyboard.press("Enter")
    for person in (host, candidate):
        await expect(person.cell(0).locator(".output-stream")).to_contain_text("hello Ada")
        await expect(person.cell(1).locator(".markdown-preview h1")).to_have_text("Notes")
    await expect(candidate.cell(0).get_by_role("button", name="Move cell up")).to_be_focused()
    # Delete a cell, and bring it back with Ctrl+Z (outside an editor), outputs and all.
    await candidate.cell(0).get_by_role("button", name="Delete cell").click()
    await expect(host.page.locator(".cell")).to_have_count(2)
    await expect(page.locator(".messages")).to_contain_text("Cell deleted.")
    await page.locator("body").click(position={"x": 5, "y": 300})
    await page.keyboard.press("Control+z")
    await expect(host.page.locator(".cell")).to_have_count(3)
    for person in (host, candidate):
        await expect(person.cell(0).locator(".output-stream")).to_contain_text("hello Ada")
    # Delete the Markdown cell again; its Undo button would bring it back.
    await candidate.cell(1).get_by_role("button", name="Delete cell").click()
    await expect(host.page.locator(".cell")).to_have_count(2)
    # Every control has a name a screen reader can say: a label, or words (not "✕" or "↑").
    unnamed = await page.evaluate(
        """() => [...document.querySelectorAll('button, select, input, [role=button]')]
            .filter(e => !e.getAttribute('aria-label') && !/[A-Za-z]{2}/.test(e.textContent))
            .filter(e => !e.labels?.length)
            .map(e => e.outerHTML)"""
    )
    assert unnamed == []
    await host.page.screenshot(path=artifacts / "pad-interviewer-cells.png", full_page=True)


PNG = (  # one pixel
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


async def test_images_other_languages_and_the_template(pair: tuple[Person, Person]) -> None:
    host, candidate = pair
    code = (
        "import base64\nfrom IPython.display import SVG, Image, display\n"
        f"display(Image(data=base64.b64decode('{PNG}')))\n"
        'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
        '<rect width="8" height="8"/></svg>\'))'
    )
    await host.replace_source(0, code)
    await host.run(0)
    images = candidate.cell(0).locator(".outputs img")
    await expect(images).to_have_count(2)
    assert (await images.nth(0).get_attribute("src") or "").startswith("data:image/png;base64,")
    assert (await images.nth(1).get_attribute("src") or "").startswith("data:image/svg+xml")
    # A JavaScript cell next to the Python one: one notebook, two kernels.
    await candidate.page.get_by_role("button", name="Add a code cell at the end").click()
    await candidate.cell(1).get_by_label("Cell language").select_option("javascript")
    await expect(host.cell(1).get_by_label("Cell language")).to_have_value("javascript")
    await candidate.cell(1).locator(".cm-content").click()
    await candidate.page.keyboard.insert_text("console.log(6 * 7)")
    await candidate.page.keyboard.press("Shift+Enter")
    await expect(host.cell(1).locator(".output-stream")).to_have_text("42", timeout=30_000)
    await expect(host.page.locator(".kernels [data-language=javascript]")).to_have_attribute(
        "data-state", "idle"
    )
    # An empty notebook offers the session's template.
    for _ in range(3):
        await host.cell(0).get_by_role("button", name="Delete cell").click()
        if await host.page.locator(".cell").count() == 0:
            break
    await expect(candidate.page.locator(".cell")).to_have_count(0)
    await candidate.page.get_by_role("button", name="Insert the Python 3 template").click()
    await expect(host.cell(0).locator(".cm-content")).to_contain_text("def solve")


async def test_a_narrow_screen(browser: Browser, server: RunningServer, artifacts: Path) -> None:
    host, link = await start_interview(browser, server)
    # A long name without spaces, and a long line in Markdown: still no wider than the screen.
    phone = await join(browser, link, "alan.turing.of.bletchley@example.org", width=320, height=700)
    await phone.run(0)
    await expect(phone.cell(0).locator(".output-stream")).to_have_text("6")
    await phone.page.get_by_role("button", name="Add a Markdown cell at the end").click()
    await phone.page.keyboard.insert_text("`" + "x" * 300 + "`\n\n" + "y" * 300)
    await phone.page.keyboard.press("Shift+Enter")
    await expect(host.cell(1).locator(".markdown-preview code")).to_be_visible()
    for person in (phone, host):
        width = await person.page.evaluate("document.documentElement.scrollWidth")
        viewport = await person.page.evaluate("window.innerWidth")
        assert width <= viewport, (width, viewport)
    await phone.page.screenshot(path=artifacts / "pad-narrow.png", full_page=True)
    await phone.close()
    await host.close()


async def test_both_reconnect_after_the_server_restarts(
    browser: Browser, server: RunningServer, server_settings: Settings
) -> None:
    host, link = await start_interview(browser, server)
    candidate = await join(browser, link, "Alan")
    await candidate.type_in(0, "\n# before the restart")
    await expect(host.cell(0).locator(".cm-content")).to_contain_text("# before the restart")
    await candidate.run(0)
    await expect(host.cell(0).locator(".output-stream")).to_have_text("6")
    kernel = ".kernels [data-language=python]"
    await expect(host.page.locator(kernel)).to_have_attribute("data-state", "idle")
    await server.server.stop()
    for person in (host, candidate):
        await expect(person.page.locator("#connection-status")).to_have_text("Reconnecting…")
        # Nobody can tell what the kernel does now: not a green "idle".
        await expect(person.page.locator(kernel)).to_have_attribute("data-state", "disconnected")
    restarted = KernelpadServer(server_settings)
    await restarted.start()
    server.server = restarted  # the module fixture stops this one
    for person in (host, candidate):
        await expect(person.page.locator("#connection-status")).to_have_text(
            "Connected", timeout=30_000
        )
        # The kernel went with the server: said at once, not at the next run.
        await expect(
            person.page.get_by_text("kernel was lost while you were disconnected")
        ).to_be_visible()
    await host.type_in(0, "\n# after the restart")
    await expect(candidate.cell(0).locator(".cm-content")).to_contain_text("# after the restart")
    # Nothing doubled by the resync.
    text = await candidate.cell(0).locator(".cm-content").inner_text()
    assert text.count("# before the restart") == 1
    await expect(host.page.locator(".cell")).to_have_count(1)
    await candidate.run(0)
    await expect(host.cell(0).locator(".output-stream")).to_have_text("6")
    await host.close()
    await candidate.close()


async def test_no_token_goes_in_a_url(browser: Browser, server: RunningServer) -> None:
    """Tokens travel in headers and in the JSON socket's first message, never in a URL (which
    the browser's console and proxies' access logs show): the Yjs socket carries a single-use
    ticket instead. Only the host link has the host token, in its #fragment, which no server
    is sent."""
    host, link = await start_interview(browser, server)
    candidate = await join(browser, link, "Alan")
    sid = link.rsplit("/", 1)[1]
    tokens = {
        "host": await host.page.evaluate(f"localStorage.getItem('kernelpad:host:{sid}')"),
        "participant": await candidate.page.evaluate(
            f"JSON.parse(localStorage.getItem('kernelpad:participant:{sid}')).participant_token"
        ),
    }
    assert all(tokens.values()), tokens
    for person in (host, candidate):
        sockets = [url for url in person.urls if url.startswith("ws")]
        assert any("/ws/yjs/" in url and "ticket=" in url for url in sockets), sockets
        for url in person.urls:
            sent = url.split("#", 1)[0]
            assert "token" not in sent, url
            assert not any(token in sent for token in tokens.values()), url
    await host.close()
    await candidate.close()


async def test_pages_name_hashed_bundles_that_are_cached_for_good(api: Api) -> None:
    page = await api.request("GET", "/")
    assert page.status == 200 and page.headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = re.search(rb'src="(/assets/home-\w+\.js)"', page.body)
    assert script is not None
    bundle = await api.request("GET", script.group(1).decode())
    assert bundle.status == 200
    assert bundle.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    missing = await api.request("GET", "/s/no-such-session")
    assert missing.status == 404


def test_an_unbuilt_ui_says_how_to_build_it(tmp_path: Path) -> None:
    assert Bundle(tmp_path).files() is None
    (tmp_path / "manifest.json").write_text('{"pad.js": "pad-ABC.js"}')
    assert Bundle(tmp_path).files() == {"pad.js": "pad-ABC.js"}


async def test_the_hosts_rules_notes_and_removal(
    pair: tuple[Person, Person], api: Api, artifacts: Path
) -> None:
    host, candidate = pair
    controls = host.page.get_by_role("group", name="Host controls")
    await expect(candidate.page.get_by_role("group", name="Host controls")).to_be_hidden()
    # Locked editing: the candidate's editor is read-only, the host's is not.
    await controls.get_by_label("Lock editing").check()
    await expect(candidate.page.locator(".banner")).to_contain_text("locked editing")
    await expect(candidate.cell(0).locator(".cm-content")).to_have_attribute(
        "contenteditable", "false"
    )
    await expect(host.cell(0).locator(".cm-content")).to_have_attribute("contenteditable", "true")
    await host.type_in(0, "\n# the host may")
    await expect(candidate.cell(0).locator(".cm-content")).to_contain_text("# the host may")
    # Running off for candidates.
    await controls.get_by_label("Candidates may run code").uncheck()
    await expect(
        candidate.cell(0).get_by_role("button", name="Run cell (Shift+Enter)")
    ).to_be_disabled()
    await expect(host.cell(0).get_by_role("button", name="Run cell (Shift+Enter)")).to_be_enabled()
    await controls.get_by_label("Lock editing").uncheck()
    await controls.get_by_label("Candidates may run code").check()
    await expect(candidate.page.locator(".banner")).to_be_hidden()
    await expect(candidate.cell(0).locator(".cm-content")).to_have_attribute(
        "contenteditable", "true"
    )
    # Private notes, in the side panel, saved as typed.
    await host.page.get_by_label("Only you (the host) ever see these.").fill("Good questions.")
    await expect(host.page.locator("#notes [role=status]")).to_have_text("Saved")
    await host.page.screenshot(path=artifacts / "pad-host-controls.png")
    # Removal: the candidate is out, and told.
    await host.page.get_by_role("button", name="Remove Alan from the interview").click()
    await (
        host.page.get_by_role("dialog", name="Remove Alan?")
        .get_by_role("button", name="Remove")
        .click()
    )
    await expect(candidate.page.locator(".banner")).to_contain_text("removed you")
    # Their page turns read-only at once.
    await expect(candidate.cell(0).locator(".cm-content")).to_have_attribute(
        "contenteditable", "false"
    )
    await expect(
        candidate.page.get_by_role("button", name="Run all cells", exact=True)
    ).to_be_disabled()
    await expect(candidate.page.locator("#connection-status")).to_have_text("Disconnected")
    # The host sees them as removed (tests/web/test_ui_panel.py lets them back in).
    present = host.page.get_by_label("Participants").locator(".present")
    await expect(present).to_have_count(1)
    await expect(present).not_to_contain_text("Alan")
    await expect(host.page.get_by_label("Participants").locator(".removed")).to_have_text(
        re.compile("Alan \\(removed\\)")
    )


async def test_start_from_a_question_and_download_the_notebook(
    browser: Browser, server: RunningServer, tmp_path: Path
) -> None:
    host = await Person.open(browser)
    page = host.page
    await page.goto(server.base_url + "/")
    await page.get_by_label("Your name").fill("Grace")
    await page.get_by_label("Start from").select_option(label="Two sum (Python 3) · with tests")
    await expect(page.locator("#question-help")).to_contain_text("Find two numbers")
    await expect(page.locator("#question-help")).to_contain_text("2 tests, 3 points")
    await page.get_by_role("button", name="Start the interview").click()
    await page.get_by_role("link", name="Open the interview").click()
    await expect(page.locator("#connection-status")).to_have_text("Connected")
    # The question's statement beside the notebook, its cells: the stub and its two tests.
    await expect(page.locator("#statement")).to_contain_text("Given a list of integers")
    await expect(page.locator("#suggested-minutes")).to_have_text("Suggested time: 20 min")
    await expect(page.locator(".cell")).to_have_count(3)
    await expect(host.cell(0).locator(".cm-content")).to_contain_text("def two_sum(")
    await host.run(0)
    await expect(host.cell(0).locator(".count")).to_have_text(re.compile(r"\[\d+\]"))
    # The host downloads the interview as a notebook.
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download .ipynb").click()
    download = await download_info.value
    assert download.suggested_filename.startswith("Two-sum-")
    path = tmp_path / download.suggested_filename
    await download.save_as(path)
    notebook = nbformat_typed.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].source.startswith("def two_sum(")
    assert isinstance(notebook.cells[0].execution_count, int)
    assert notebook.metadata.kernelpad.statement.startswith("Given a list of integers")
    await host.close()


async def list_os_pa(person: Person) -> Locator:
    """The kernel's completions of ``os.pa`` in the first cell, listed by Tab: the list, open
    and seen. The first question may find the kernel starting: it says so, and a later Tab
    lists."""
    page = person.page
    await person.replace_source(0, "import os\nos.pa")
    listing = page.locator(".cm-tooltip-autocomplete")
    for _ in range(60):
        await page.keyboard.press("Tab")
        await expect(listing).to_be_visible()
        if await listing.get_by_text("path", exact=True).count():
            break
        assert "kernel" in (await listing.inner_text()).lower()
        await page.keyboard.press("Escape")
        await page.wait_for_timeout(1000)
    await expect(listing.get_by_text("path", exact=True)).to_be_visible()
    # A person reads the list before choosing: CodeMirror gives a list none of the keys
    # pressed in its first 75 ms (they were pressed before it could be seen), and an arrow
    # pressed there moves the cursor instead, which closes the list.
    await page.wait_for_timeout(100)
    return listing


async def test_completion_and_documentation_from_the_kernel(
    pair: tuple[Person, Person], artifacts: Path
) -> None:
    """Tab after a word lists the kernel's completions, Tab picks one; Tab with only
    whitespace before the cursor indents; Shift+Tab shows the kernel's documentation."""
    host, candidate = pair
    page = candidate.page
    listing = await list_os_pa(candidate)
    await page.screenshot(path=artifacts / "completion.png")
    # The kernel's indicator knows the kernel the question started.
    await expect(page.locator(".kernels [data-language=python]")).to_have_attribute(
        "data-state", "idle"
    )
    await page.keyboard.press("ArrowDown")  # pardir, path
    await expect(listing.locator("[aria-selected=true]")).to_have_text("path")
    await page.keyboard.press("Tab")
    await expect(listing).to_be_hidden()
    source = candidate.cell(0).locator(".cm-content")
    await expect(source).to_contain_text("os.path")
    await expect(host.cell(0).locator(".cm-content")).to_contain_text("os.path")
    # Tab at the start of a line indents, as it always has.
    await page.keyboard.press("End")
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await page.keyboard.type("x = 1")
    await expect(source).to_contain_text("os.path    x = 1")  # lines join in innerText
    # Shift+Tab: the documentation of what is at the cursor.
    await candidate.replace_source(0, "len(")
    await page.keyboard.press("Shift+Tab")
    help_box = page.locator(".kernel-help")
    await expect(help_box).to_contain_text("Return the number of items")
    await page.screenshot(path=artifacts / "documentation.png")
    await page.keyboard.press("Escape")
    await expect(help_box).to_be_hidden()


# Set up in the page before the Tab that asks for completions: the moment the list appears,
# a second Tab, in the same task (well inside CodeMirror's 75 ms in which a list takes no
# pick); whether the completions' Tab kept it.
TAB_AS_THE_LIST_OPENS = """() => {
  const content = document.querySelector(".cell .cm-content");
  const observer = new MutationObserver(() => {
    if (!document.querySelector(".cm-tooltip-autocomplete")) return;
    observer.disconnect();
    const tab = new KeyboardEvent(
      "keydown", { key: "Tab", code: "Tab", keyCode: 9, bubbles: true, cancelable: true });
    content.dispatchEvent(tab);
    window.secondTabKept = tab.defaultPrevented;
  });
  observer.observe(document.body, { childList: true, subtree: true });
}"""


async def test_a_tab_as_the_completion_list_opens_stays_in_the_editor(
    pair: tuple[Person, Person],
) -> None:
    _, candidate = pair
    page = candidate.page
    listing = await list_os_pa(candidate)
    await page.keyboard.press("Escape")
    await expect(listing).to_be_hidden()
    await page.evaluate(TAB_AS_THE_LIST_OPENS)
    await page.keyboard.press("Tab")
    kept = None
    for _ in range(100):  # the page's policy allows no wait_for_function (it evaluates text)
        kept = await page.evaluate("() => window.secondTabKept")
        if kept is not None:
            break
        await page.wait_for_timeout(100)
    assert kept is True
    # Kept, and nothing else done: before, it fell through to the editor's own Tab, which
    # indented after "os.pa" and closed the list.
    await expect(listing).to_be_visible()
    text = await page.evaluate("() => document.querySelector('.cell .cm-content').innerText")
    assert text.rstrip("\n") == "import os\nos.pa"
    assert await page.evaluate("() => document.activeElement.classList.contains('cm-content')")


async def test_a_double_click_on_start_starts_one_interview(
    browser: Browser, server: RunningServer
) -> None:
    host = await Person.open(browser)
    page = host.page
    posted: list[str] = []

    def note_session_post(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/sessions"):
            posted.append(request.url)

    page.on("request", note_session_post)
    await page.goto(server.base_url + "/")
    await page.get_by_label("Your name").fill("Grace")
    start = page.locator("form button[type=submit]")
    await expect(start).to_have_text("Start the interview")
    await start.dblclick()
    await expect(page.get_by_role("link", name="Open the interview")).to_be_visible()
    await page.wait_for_timeout(500)
    await start.click(force=True)  # once started, it stays off until the form changes
    await page.wait_for_timeout(500)
    assert len(posted) == 1, posted
    await expect(page.get_by_role("button", name="Interview started")).to_be_disabled()
    # Changing the form is asking for another.
    await page.get_by_label("Title (optional)").fill("Second round")
    await expect(page.get_by_role("button", name="Start the interview")).to_be_enabled()
    await host.close()


async def test_typing_in_a_locked_editor_does_not_scroll_the_page(
    pair: tuple[Person, Person],
) -> None:
    host, candidate = pair
    await host.replace_source(0, "\n".join(f"x{n} = {n}" for n in range(60)))
    await expect(candidate.cell(0).locator(".cm-content")).to_contain_text("x59 = 59")
    controls = host.page.get_by_role("group", name="Host controls")
    await controls.get_by_label("Lock editing").check()
    content = candidate.cell(0).locator(".cm-content")
    await expect(content).to_have_attribute("contenteditable", "false")
    await expect(candidate.page.locator(".banner")).to_contain_text("locked editing")
    await content.click(position={"x": 40, "y": 10})
    # Where the code is on the screen: it must not move under the candidate's keys.
    before = await content.bounding_box()
    await candidate.page.keyboard.type("a b c d e f g h", delay=20)
    after = await content.bounding_box()
    assert before is not None and after is not None and after["y"] == before["y"]


async def test_the_dark_theme_follows_the_system_or_the_reader(
    browser: Browser, server: RunningServer, pair: tuple[Person, Person], artifacts: Path
) -> None:
    host, candidate = pair
    background = "getComputedStyle(document.documentElement).backgroundColor"
    editor = "getComputedStyle(document.querySelector('.cm-editor')).backgroundColor"
    light = await host.page.evaluate(background)
    await candidate.replace_source(
        0, "import os\n\ndef solve(items):\n    return sum(items)  # ok\n"
    )
    await candidate.run(0)
    await host.page.get_by_role("button", name="Use the dark theme").click()
    assert await host.page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert await host.page.evaluate(background) != light
    assert await host.page.evaluate(editor) == "rgb(40, 44, 52)"  # the editor follows
    await host.page.screenshot(path=artifacts / "pad-dark.png")
    # The reader's choice stays in this browser, and is no one else's.
    await host.page.reload()
    await expect(host.page.locator("#connection-status")).to_have_text("Connected")
    assert await host.page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert await candidate.page.evaluate(background) == light
    await candidate.page.screenshot(path=artifacts / "pad-light.png")
    # A system in dark mode starts dark, at 400 px too.
    link = candidate.page.url
    dark = await Person.open(browser, width=400, height=800, color_scheme="dark")
    await dark.page.goto(link)
    assert await dark.page.evaluate("document.documentElement.dataset.theme") == "dark"
    await dark.page.screenshot(path=artifacts / "pad-dark-narrow.png")
    await dark.close()


async def test_at_400_px_the_first_cell_is_in_view(
    browser: Browser, server: RunningServer, artifacts: Path
) -> None:
    """On a phone-sized screen, the host's header and the toolbar leave room for code: the
    first cell's first lines are on the screen without scrolling, for the host too."""
    narrow_host, link = await start_interview(browser, server, width=400, height=800)
    candidate = await join(browser, link, "Alan", width=400, height=800)
    for person, name in ((narrow_host, "host"), (candidate, "candidate")):
        await expect(person.page.locator("#connection-status")).to_have_text("Connected")
        await person.page.screenshot(path=artifacts / f"pad-400-{name}.png")
        box = await person.cell(0).locator(".cm-content").bounding_box()
        bar = await person.cell(0).locator(".cell-toolbar").bounding_box()
        assert box is not None and bar is not None
        # Its code starts in the top third of the screen, under a one-line cell toolbar.
        assert box["y"] <= 280, f"the {name}'s first cell's code starts at {box['y']:.0f} px"
        assert bar["height"] <= 40, f"the {name}'s cell toolbar is {bar['height']:.0f} px high"
    # The host's controls are one tap away.
    toggle = narrow_host.page.get_by_role("button", name="Host controls")
    await toggle.click()
    await expect(narrow_host.page.get_by_label("Lock editing")).to_be_visible()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await narrow_host.page.screenshot(path=artifacts / "pad-400-host-controls.png")
    await narrow_host.close()
    await candidate.close()


async def test_notebook_commands_clear_restart_and_run_all_and_shortcuts(
    pair: tuple[Person, Person], artifacts: Path
) -> None:
    host, candidate = pair
    page = candidate.page
    await candidate.replace_source(
        0, "import os\ncount = globals().get('count', 0) + 1\nprint(count)"
    )
    await candidate.run(0)
    await expect(host.cell(0).locator(".output-stream")).to_have_text("1")
    await candidate.run(0)
    await expect(host.cell(0).locator(".output-stream")).to_have_text("2")
    # Clear outputs: for everyone (a participant may clear them, never write them).
    await page.get_by_role("button", name="Clear all outputs").click()
    for person in (host, candidate):
        await expect(person.cell(0).locator(".outputs > *")).to_have_count(0)
        await expect(person.cell(0).locator(".count")).to_have_text("[ ]")
    # Restart and run all: a new kernel, so the count starts again.
    await page.get_by_role("button", name="Run ▾").click()
    await page.get_by_role("menuitem", name="Restart the kernel and run all cells").click()
    for person in (host, candidate):
        await expect(person.cell(0).locator(".output-stream")).to_have_text("1", timeout=30_000)
    # A long output folds away, for this reader only.
    await candidate.cell(0).get_by_role("button", name="Hide output").click()
    await expect(candidate.cell(0).locator(".output-stream")).to_be_hidden()
    await expect(host.cell(0).locator(".output-stream")).to_be_visible()
    await candidate.cell(0).get_by_role("button", name="Show output").click()
    await expect(candidate.cell(0).locator(".output-stream")).to_be_visible()
    # "?" outside a cell: the keyboard shortcuts.
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("?")
    sheet = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(sheet).to_contain_text("Shift+Enter")
    await expect(sheet).to_contain_text("bring back the cell you deleted or moved")
    await page.screenshot(path=artifacts / "pad-shortcuts.png")
    await sheet.get_by_role("button", name="Close").click()
    await expect(sheet).to_be_hidden()
