"""The pad around the notebook, in headless Chromium with two people: the side panel (the
question for everyone; the clock and notes for the host), a removed candidate let back in,
the final notebook after the end, the Run menu, the code's size, and carets' names on the
first line. Screenshots land in ``test-artifacts/panel/``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from kernelpad.config import Settings
from tests.conftest import RunningServer, make_settings
from tests.web.browser import ARTIFACTS, Person, join, start_interview


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"), kernel_pool_size={"python": 1}, code_execution_timeout=60
    )


@pytest.fixture(scope="module", autouse=True)
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS / "panel", ignore_errors=True)
    (ARTIFACTS / "panel").mkdir(parents=True)
    return ARTIFACTS / "panel"


async def test_the_question_beside_the_notebook_and_the_hosts_clock_and_notes(
    pair: tuple[Person, Person], artifacts: Path
) -> None:
    host, candidate = pair
    panel, theirs = host.page.locator("#side-panel"), candidate.page.locator("#side-panel")
    # Open beside the notebook on a wide screen, for both.
    await expect(panel).to_be_visible()
    await expect(theirs).to_be_visible()
    notebook = await host.page.locator(".notebook").bounding_box()
    beside = await panel.bounding_box()
    assert notebook and beside and beside["x"] >= notebook["x"] + notebook["width"]
    await expect(theirs).to_contain_text("The question is in the notebook.")
    # The host writes the question; the candidate reads it at once, rendered.
    await panel.get_by_role("button", name="Edit").click()
    await host.page.get_by_label("The question, in Markdown").fill(
        "Return the **sum** of a list.\n\n<img src=x onerror=alert(1)>"
    )
    await host.page.get_by_label("Suggested minutes").fill("1")
    await panel.get_by_role("button", name="Save").click()
    await expect(theirs.locator("#statement strong")).to_have_text("sum")
    await expect(theirs.locator("#suggested-minutes")).to_have_text("Suggested time: 1 min")
    assert await theirs.locator("[onerror]").count() == 0  # sanitised, as every Markdown
    # Only the host edits it, and only the host has the clock and the notes.
    await expect(theirs.get_by_role("button", name="Edit")).to_be_hidden()
    await expect(theirs.get_by_role("timer")).to_be_hidden()
    await expect(theirs.get_by_label("Only you (the host) ever see these.")).to_be_hidden()
    clock = panel.get_by_role("timer")
    await expect(clock).to_have_text(re.compile(r"^0:\d\d$"))
    await expect(panel.locator("#clock-help")).to_have_text(
        "Of the 1 min suggested for the question"
    )
    # Notes no longer push the notebook down.
    first_cell = await host.cell(0).bounding_box()
    await panel.get_by_label("Only you (the host) ever see these.").fill("Asks good questions.")
    await expect(panel.locator("#notes [role=status]")).to_have_text("Saved")
    assert await host.cell(0).bounding_box() == first_cell
    await host.page.screenshot(path=artifacts / "pad-panel-host.png")
    await candidate.page.screenshot(path=artifacts / "pad-panel-candidate.png")
    # Folded away, and it stays so in this browser.
    await host.page.get_by_role("button", name="Question & notes").click()
    await expect(panel).to_be_hidden()
    await host.page.reload()
    await expect(host.page.locator("#connection-status")).to_have_text("Connected")
    await expect(host.page.locator("#side-panel")).to_be_hidden()
    await host.page.get_by_role("button", name="Question & notes").click()
    await expect(host.page.locator("#side-panel #statement strong")).to_have_text("sum")
    # After the reload the notes are read back from the server.
    await expect(host.page.get_by_label("Only you (the host) ever see these.")).to_have_value(
        "Asks good questions."
    )
    for person in (host, candidate):
        # DOMPurify's parse tried the handler each time: the page's policy refused it.
        person.expected_errors("Executing inline event handler violates")


async def test_the_clock_waits_for_the_candidate_and_the_panel_folds_on_a_phone(
    browser: Browser, server: RunningServer, artifacts: Path
) -> None:
    host, link = await start_interview(browser, server)
    clock = host.page.get_by_role("timer")
    await expect(clock).to_have_text("–:––")
    await expect(host.page.locator("#clock-help")).to_have_text(
        "It starts when the candidate joins."
    )
    candidate = await join(browser, link, "Alan", width=400, height=800)
    await expect(clock).to_have_text(re.compile(r"^0:0\d$"))
    await expect(host.page.locator("#clock-help")).to_have_text("Since the candidate joined")
    # At 400 px the panel starts folded: the first cell is in view without scrolling.
    await expect(candidate.page.locator("#side-panel")).to_be_hidden()
    await expect(candidate.cell(0)).to_be_in_viewport()
    await candidate.page.get_by_role("button", name="Question", exact=True).click()
    await expect(candidate.page.locator("#side-panel")).to_be_visible()
    width = await candidate.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, width
    await candidate.page.screenshot(path=artifacts / "pad-400-panel.png")
    await host.close()
    await candidate.close()


async def test_a_removed_candidate_is_let_back_in(
    pair: tuple[Person, Person], artifacts: Path
) -> None:
    host, candidate = pair
    await host.page.get_by_role("button", name="Remove Alan from the interview").click()
    await (
        host.page.get_by_role("dialog", name="Remove Alan?")
        .get_by_role("button", name="Remove")
        .click()
    )
    await expect(candidate.page.locator(".banner")).to_contain_text(
        "If they let you back in, reload the page"
    )
    people = host.page.get_by_label("Participants")
    await expect(people.locator(".removed")).to_contain_text("Alan (removed)")
    await host.page.screenshot(path=artifacts / "pad-removed.png")
    await people.get_by_role("button", name="Let Alan back in").click()
    await expect(people.locator(".removed")).to_have_count(0)
    await candidate.page.locator(".banner").get_by_role("button", name="Reload").click()
    await expect(candidate.page.locator("#connection-status")).to_have_text("Connected")
    await expect(people).to_contain_text("Alan")
    # Back as themselves: their colour, and editing works.
    await candidate.type_in(0, "\n# back again")
    await expect(host.cell(0).locator(".cm-content")).to_contain_text("# back again")


@pytest.mark.parametrize("review", [True, False])
async def test_after_the_end_the_candidate_reads_the_final_notebook_if_allowed(
    pair: tuple[Person, Person], artifacts: Path, review: bool
) -> None:
    host, candidate = pair
    await candidate.replace_source(0, "print('final ' + 'answer')")
    await candidate.run(0)
    await expect(host.cell(0).locator(".output-stream")).to_have_text("final answer")
    box = host.page.get_by_label("Candidates see the final notebook")
    await expect(box).to_be_checked()  # the default
    if not review:
        await box.uncheck()
        await expect(box).not_to_be_checked()
    await host.page.get_by_role("button", name="End interview").click()
    await (
        host.page.get_by_role("dialog", name="End the interview?")
        .get_by_role("button", name="End interview")
        .click()
    )
    page = candidate.page
    if review:
        # The page stays, read-only; opened again, it shows the final notebook.
        await expect(page.locator(".banner")).to_contain_text("The host ended this interview.")
        await page.reload()
        await expect(page.locator(".banner")).to_have_text(
            "This interview has ended: here is its final notebook, read-only."
        )
        await expect(page.locator(".final-cell .replay-source")).to_have_text(
            "print('final ' + 'answer')"
        )
        await expect(page.locator(".final-cell .output-stream")).to_have_text("final answer")
        assert await page.locator(".cm-content").count() == 0  # nothing to type into
        await page.screenshot(path=artifacts / "final-notebook.png")
    else:
        await expect(page.get_by_role("heading", name="This interview has ended")).to_be_visible()
        await expect(page.locator("main")).to_contain_text("Thank you for taking part.")
        await expect(page.locator(".cell")).to_have_count(0)
        await page.reload()
        await expect(page.locator("main")).to_contain_text("Thank you for taking part.")
        await expect(page.locator(".cell")).to_have_count(0)


async def test_run_above_and_below_the_selected_cell_and_the_code_size(
    pair: tuple[Person, Person],
) -> None:
    host, candidate = pair
    page = candidate.page
    await candidate.replace_source(0, "print('one')")
    for text in ("print('two')", "print('three')"):
        await page.get_by_role("button", name="Add a code cell at the end").click()
        await candidate.replace_source(await page.locator(".cell").count() - 1, text)
    await expect(host.page.locator(".cell")).to_have_count(3)
    outputs = [candidate.cell(i).locator(".output-stream") for i in range(3)]
    # Cell 2 selected: run what is above it.
    await candidate.cell(1).locator(".cm-content").click()
    await page.get_by_role("button", name="Run ▾").click()
    await page.get_by_role("menuitem", name="Run all cells above the selected one").click()
    await expect(outputs[0]).to_have_text("one")
    await expect(candidate.cell(0).locator(".count")).to_have_text(re.compile(r"\[\d+\]"))
    await expect(outputs[1]).to_have_count(0)
    await expect(outputs[2]).to_have_count(0)
    # Then it and everything below; the menu works from the keyboard too.
    await candidate.cell(1).locator(".cm-content").click()
    await page.get_by_role("button", name="Run ▾").focus()
    await page.keyboard.press("Enter")
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Enter")
    await expect(outputs[1]).to_have_text("two")
    await expect(outputs[2]).to_have_text("three")
    await expect(page.get_by_role("menu")).to_be_hidden()
    # The code's size, for this reader, kept in this browser.
    editor = candidate.cell(0).locator(".cm-editor")
    size = "getComputedStyle(document.querySelector('.cm-editor')).fontSize"
    assert await page.evaluate(size) == "14px"
    await page.get_by_role("button", name="Larger code").click()
    await page.get_by_role("button", name="Larger code").click()
    await expect(editor).to_have_css("font-size", "18px")
    assert await host.page.evaluate(size) == "14px"
    await page.reload()
    await expect(page.locator("#connection-status")).to_have_text("Connected")
    await expect(candidate.cell(0).locator(".cm-editor")).to_have_css("font-size", "18px")
    await page.get_by_role("button", name="Smaller code").click()
    await expect(candidate.cell(0).locator(".cm-editor")).to_have_css("font-size", "16px")


async def test_a_caret_name_on_the_first_line_is_not_clipped(
    pair: tuple[Person, Person], artifacts: Path
) -> None:
    host, candidate = pair
    await host.cell(0).locator(".cm-content").click()
    await host.page.keyboard.press("Control+Home")
    await host.page.keyboard.type("x = 1  # first line")
    label = candidate.cell(0).locator(".cm-ySelectionInfo")
    await expect(label).to_have_text("Grace")
    await candidate.cell(0).locator(".cm-ySelectionCaret").hover()
    await expect(label).to_have_css("opacity", "1")
    shown = await label.bounding_box()
    editor = await candidate.cell(0).locator(".editor").bounding_box()
    assert shown and editor
    # Wholly inside the cell's editor (whose box clips what overflows it).
    assert (
        shown["y"] >= editor["y"] and shown["y"] + shown["height"] <= editor["y"] + editor["height"]
    ), (shown, editor)
    await candidate.page.screenshot(path=artifacts / "caret-first-line.png")
