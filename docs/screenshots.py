"""Pictures of the browser UI for the README, written to docs/images/ (``make screenshots``).

A real kernelpad server (in this process, on a free loopback port, with a throw-away data dir)
and Debian's Chromium, driven with the UI tests' helpers, so that the roles and labels used here
follow the tests when the UI changes. An interviewer starts an interview from the "Two sum"
question; a candidate joins, writes a solution with a bug, runs the question's tests and gets a
traceback, then starts the fix with the kernel's completions. The pad is pictured at 1280 and at
400 px wide, light and dark, then the interview's replay. Each picture is taken once what it
shows is on the screen; if a wait fails, every open page is saved under test-artifacts/ to see
why.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.async_api import (  # noqa: E402
    Browser,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.conftest import RunningServer, make_settings, running_server  # noqa: E402
from tests.web.browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, Person  # noqa: E402

IMAGES = ROOT / "docs" / "images"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 400, "height": 800}
QUESTION = "Two sum (Python 3) · with tests"
# The candidate's first try: the right idea, the indices the wrong way round.
BUGGY = """\
def two_sum(numbers: list[int], target: int) -> tuple[int, int] | None:
    seen = {}  # number -> its index
    for i, n in enumerate(numbers):
        if target - n in seen:
            return i, seen[target - n]
        seen[n] = i
    return None"""
BUG_LINE = 4  # (from 0) the line the fix changes
FIXED = BUGGY.replace("return i, seen[target - n]", "return seen[target - n], i")
RUN_OVER = re.compile(r"\[\d+\]")  # a cell's count once its run is over
COMPLETION = ".cm-tooltip-autocomplete"
# The page at its top; if that leaves the first cell's (``cell``'s) code off the screen, scrolled
# to the cell instead, just below what stays at the top (the toolbar).
TO_FIRST_CELL = """cell => {
    window.scrollTo(0, 0);
    const top = cell.getBoundingClientRect().top;
    const code = cell.querySelector(".cm-content") || cell;
    if (code.getBoundingClientRect().bottom <= innerHeight) return;
    window.scrollTo(0, top);
    const stuck = [...document.querySelectorAll("body *")].filter(element => {
        const box = element.getBoundingClientRect();
        return /sticky|fixed/.test(getComputedStyle(element).position)
            && box.top <= 1 && box.height > 0 && box.height < innerHeight / 3;
    });
    const covered = Math.max(0, ...stuck.map(element => element.getBoundingClientRect().bottom));
    window.scrollTo(0, top - covered - 8);
}"""


async def shoot(page: Page, name: str) -> None:
    path = IMAGES / f"{name}.png"
    # Transitions finished rather than caught half-way; the browser's own text caret hidden.
    await page.screenshot(path=path, animations="disabled", caret="hide")
    print(f"  {path.relative_to(ROOT)}", flush=True)


async def cell_with(person: Person, text: str) -> int:
    """The index of the first cell whose code contains ``text``, once there is one."""
    await expect(person.page.locator(".cell .cm-content", has_text=text).first).to_be_visible()
    index: int = await person.page.evaluate(
        "text => [...document.querySelectorAll('.cell')].findIndex("
        "cell => cell.querySelector('.cm-content')?.textContent.includes(text))",
        text,
    )
    return index


async def open_completion(person: Person, word: str) -> None:
    """Tab at the cursor until the kernel's completion list offers ``word`` (the first question
    may find the kernel starting: the list then says so, and a later Tab lists)."""
    page = person.page
    listing = page.locator(COMPLETION)
    deadline = time.monotonic() + 60
    while True:
        await page.keyboard.press("Tab")
        await expect(listing).to_be_visible()
        if await listing.get_by_text(word, exact=True).count():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no completion {word!r}, only: {await listing.inner_text()}")
        await page.keyboard.press("Escape")
        await page.wait_for_timeout(500)


async def start_from_question(
    browser: Browser, server: RunningServer, people: list[Person]
) -> tuple[Person, str]:
    """The interviewer fills in the start page (pictured) and opens the interview as its host;
    with the join link."""
    host = await Person.open(browser, DESKTOP["width"], DESKTOP["height"])
    people.append(host)
    page = host.page
    await page.goto(server.base_url + "/")
    await page.get_by_label("Your name").fill("Grace")
    await page.get_by_label("Title (optional)").fill("Pairing with Alan")
    await page.get_by_label("Start from").select_option(label=QUESTION)
    await expect(page.locator("#question-help")).not_to_be_empty()
    await page.evaluate("document.activeElement?.blur()")
    await shoot(page, "home")
    await page.get_by_role("button", name="Start the interview").click()
    link = await page.locator("#join-link").input_value()
    await page.get_by_role("link", name="Open the interview").click()
    await expect(page.locator("#connection-status")).to_have_text("Connected")
    return host, link


async def join_dark(browser: Browser, link: str, name: str) -> Person:
    """A candidate whose system is in dark mode joins."""
    person = await Person.open(browser, DESKTOP["width"], DESKTOP["height"], "dark")
    await person.page.goto(link)
    await person.page.get_by_label("Your name, as the others will see it").fill(name)
    await person.page.get_by_role("button", name="Join").click()
    await expect(person.page.locator("#connection-status")).to_have_text("Connected")
    theme = await person.page.evaluate("document.documentElement.dataset.theme")
    if theme != "dark":
        raise RuntimeError(f"a dark system's page is {theme!r}, not dark")
    return person


async def interview(browser: Browser, server: RunningServer, people: list[Person]) -> None:
    host, link = await start_from_question(browser, server, people)
    candidate = await join_dark(browser, link, "Alan")
    people.append(candidate)
    for person in people:
        await expect(person.page.locator(".people li")).to_have_count(2)
    solution = await cell_with(candidate, "def two_sum(")
    tests = await cell_with(candidate, "assert two_sum(")

    # The candidate's solution, then the question's tests: a traceback, for both.
    await candidate.replace_source(solution, BUGGY)
    await candidate.run(solution)
    await expect(host.cell(solution).locator(".count")).to_have_text(RUN_OVER)
    await candidate.run(tests)
    for person in people:
        error = person.cell(tests).locator(".output-error")
        await expect(error).to_contain_text("Traceback")
        await expect(error).to_contain_text("AssertionError")
    failed_at = time.time()  # the replay is pictured at this moment (the server's clock too)

    # A cell of the candidate's own, to see what the function returns.
    await candidate.page.get_by_role("button", name="Add a code cell at the end").click()
    scratch = await candidate.page.locator(".cell").count() - 1
    await candidate.page.keyboard.insert_text("two_sum([2, 7, 11, 15], 9)")
    await candidate.run(scratch)
    await expect(host.cell(scratch).locator(".outputs")).to_contain_text("(1, 0)")

    # The host points at the failing test (the candidate sees her caret); the candidate starts
    # the fix on the buggy line and asks the kernel to complete "se" (seen, set, ...).
    await host.cell(tests).locator(".cm-line").first.click()
    await expect(candidate.cell(tests).locator(".cm-ySelectionCaret")).to_be_visible()
    await candidate.cell(solution).locator(".cm-line").nth(BUG_LINE).click()
    await candidate.page.keyboard.press("End")
    await candidate.page.keyboard.press("Shift+Home")  # to the end of the indentation
    await candidate.page.keyboard.type("return se")
    await expect(host.cell(solution).locator(".cm-line").nth(BUG_LINE)).to_have_text(
        re.compile(r"^\s+return se\b")  # (then a caret, named)
    )
    await open_completion(candidate, "set")
    await candidate.page.evaluate("window.scrollTo(0, 0)")
    await expect(candidate.page.locator(COMPLETION)).to_be_in_viewport()
    await expect(candidate.cell(tests).locator(".output-error")).to_be_in_viewport()
    await shoot(candidate.page, "pad-dark")

    # The host's view, with Alan's caret and his name (shown while pointed at).
    await host.page.evaluate("window.scrollTo(0, 0)")
    await host.cell(solution).locator(".cm-ySelectionCaret").hover()
    await expect(host.cell(solution).locator(".cm-ySelectionInfo")).to_have_text("Alan")
    await expect(host.cell(tests).locator(".output-error")).to_be_in_viewport()
    await shoot(host.page, "pad-light")

    # At 400 px: the top of the pad, or at least its first cell.
    await candidate.page.keyboard.press("Escape")
    await expect(candidate.page.locator(COMPLETION)).to_be_hidden()
    for person, name in ((host, "pad-400-light"), (candidate, "pad-400-dark")):
        await person.page.set_viewport_size(NARROW)
        await person.page.mouse.move(0, 0)
        await person.page.evaluate("document.activeElement?.blur()")
        await person.cell(0).evaluate(TO_FIRST_CELL)
        code = person.cell(0).locator(".cm-content")
        box = await (code if await code.count() else person.cell(0)).bounding_box()
        if box is None or box["y"] < 0 or box["y"] + box["height"] > NARROW["height"]:
            raise RuntimeError(f"the first cell's code is not all on the screen: {box}")
        await shoot(person.page, name)
        await person.page.set_viewport_size(DESKTOP)

    # The fix; the tests pass; the host adds one: history for the replay.
    await candidate.replace_source(solution, FIXED)
    await candidate.run(solution)
    await candidate.run(tests)
    await expect(host.cell(tests).locator(".output-stream")).to_contain_text("pass")

    # The host grades: the notebook in new kernels, every test, hidden ones too; only the
    # host sees each test.
    panel = host.page.locator("#tests-section")
    await panel.get_by_role("button", name="Grade").click()
    await expect(panel.locator("#grade-score")).to_have_text("3 of 3 points", timeout=60_000)
    await host.page.evaluate("window.scrollTo(0, 0)")
    await panel.scroll_into_view_if_needed()
    await shoot(host.page, "grade")
    count = await host.cell(tests).locator(".count").inner_text()
    await host.type_in(tests, "\nassert two_sum([5, 5], 10) == (0, 1)")
    await host.run(tests)
    await expect(candidate.cell(tests).locator(".count")).not_to_have_text(count)
    await expect(candidate.cell(tests).locator(".count")).to_have_text(RUN_OVER)

    # The replay, in the host's browser (which keeps the host token).
    page = host.page
    await page.goto(page.url.split("#")[0].rstrip("/") + "/replay")
    await expect(page.locator("#replay-time")).to_contain_text("/")
    await expect(
        page.locator(".replay-source", has_text="return seen[target - n], i")
    ).to_have_count(1)
    runs = page.get_by_role("list", name="Runs")
    await expect(runs.get_by_role("button")).to_have_count(6)
    # Back to the moment the tests failed (with the replay's hook, which its tests use too).
    await page.evaluate("at => kernelpadReplay.seek(at)", failed_at)
    await expect(page.locator(".outputs", has_text="AssertionError")).to_be_visible()
    await expect(
        page.locator(".replay-source", has_text="return i, seen[target - n]")
    ).to_be_visible()
    await shoot(page, "replay")


async def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kernelpad-screenshots-") as data_dir:
        settings = make_settings(Path(data_dir), log_level="WARNING")
        async with running_server(settings) as server, async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
            )
            print(f"kernelpad at {server.base_url}; pictures:", flush=True)
            people: list[Person] = []
            try:
                await interview(browser, server, people)
            except Exception:
                failed = ARTIFACTS / "screenshots"
                failed.mkdir(parents=True, exist_ok=True)
                for number, person in enumerate(people):
                    await person.page.screenshot(path=failed / f"failed-{number}.png")
                print(f"failed: the pages as they were are in {failed}", file=sys.stderr)
                raise
            finally:
                for person in people:
                    for error in person.errors:
                        print(f"a page's error: {error}", file=sys.stderr)
                await browser.close()
    print(f"done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
