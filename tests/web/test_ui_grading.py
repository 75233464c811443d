"""A graded question in two browsers: the candidate sees the tests (locked), runs them, and sees
nothing hidden; the interviewer grades and alone sees each test, and may share the score."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from kernelpad.config import Settings
from tests.conftest import RunningServer, make_settings
from tests.web.browser import ARTIFACTS, Person, join, start_interview

# What only grading may see of "Two sum": its solution and its hidden tests.
HIDDEN = ("number -> its index", "[-4, 10, 1]", "399_997", "BEGIN")
# Right on the visible tests, wrong with negative numbers (a hidden test).
WRONG = (
    "def two_sum(numbers, target):\n"
    "    seen = {}\n"
    "    for i, n in enumerate(numbers):\n"
    "        if n > target:\n"
    "            continue\n"
    "        if target - n in seen:\n"
    "            return seen[target - n], i\n"
    "        seen[n] = i\n"
    "    return None\n"
)


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"), kernel_pool_size={"python": 2}, code_execution_timeout=30
    )


@pytest.fixture(scope="module", autouse=True)
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS / "grading", ignore_errors=True)
    (ARTIFACTS / "grading").mkdir(parents=True)
    return ARTIFACTS / "grading"


async def shows_nothing_hidden(person: Person) -> None:
    page = await person.page.content()
    document = await person.page.evaluate("JSON.stringify(window.kernelpad.doc.toJSON())")
    for secret in HIDDEN:
        assert secret not in page and secret not in document, secret


async def test_the_candidate_runs_the_tests_and_the_interviewer_grades(
    browser: Browser, server: RunningServer, artifacts: Path
) -> None:
    host, link = await start_interview(browser, server, "Two sum (Python 3) · with tests")
    page = host.page
    candidate = await join(browser, link, "Alan")
    theirs = candidate.page
    # The tests are the interviewer's: tagged, locked for the candidate, not for the host.
    await expect(candidate.cell(1).locator(".cell-tag")).to_have_text("Test · 2 pts")
    await expect(candidate.cell(1).locator(".cm-content")).to_have_attribute(
        "contenteditable", "false"
    )
    await expect(host.cell(1).locator(".cm-content")).to_have_attribute("contenteditable", "true")
    await expect(candidate.cell(0).locator(".cm-content")).to_contain_text("YOUR CODE HERE")
    await shows_nothing_hidden(candidate)
    # The candidate answers and runs the visible tests: both pages see them pass.
    await candidate.replace_source(0, WRONG)
    await theirs.get_by_role("button", name="✓ Run tests").click()
    for person in (candidate, host):
        await expect(person.cell(1).locator(".test-result")).to_have_text("✓ Passed")
        await expect(person.cell(2).locator(".test-result")).to_have_text("✓ Passed")
    # The interviewer grades: the hidden test fails, for the interviewer's eyes only.
    tests = page.locator("#tests-section")
    await tests.get_by_role("button", name="Grade").click()
    await expect(tests.locator("#grade-score")).to_have_text("1 of 3 points", timeout=30_000)
    failed = tests.locator("tr.failed")
    await expect(failed.locator("th")).to_have_text("examples")
    await expect(failed).to_contain_text("AssertionError")
    await expect(tests.locator("tr.passed th")).to_have_text("fast")
    await page.screenshot(path=artifacts / "grade-host.png")
    await expect(theirs.locator("#tests-section")).to_be_visible()
    await expect(theirs.get_by_role("button", name="Grade")).to_be_hidden()
    await expect(theirs.locator("#grade-score")).to_be_hidden()
    assert await theirs.locator(".grade-results tr").count() == 0
    await shows_nothing_hidden(candidate)
    await theirs.screenshot(path=artifacts / "grade-candidate.png")
    # Shared, the next score reaches the candidate: the score, nothing more.
    await tests.get_by_label("Show candidates the score").check()
    await tests.get_by_role("button", name="Grade").click()
    await expect(theirs.locator("#grade-score")).to_have_text("1 of 3 points", timeout=30_000)
    assert await theirs.locator(".grade-results tr").count() == 0
    # The right answer: full marks.
    await candidate.replace_source(
        0,
        "def two_sum(numbers, target):\n    seen = {}\n"
        "    for i, n in enumerate(numbers):\n        if target - n in seen:\n"
        "            return seen[target - n], i\n        seen[n] = i\n    return None\n",
    )
    await expect(host.cell(0).locator(".cm-content")).to_contain_text("return None")
    await tests.get_by_role("button", name="Grade").click()
    await expect(tests.locator("#grade-score")).to_have_text("3 of 3 points", timeout=30_000)
    await expect(theirs.locator("#grade-score")).to_have_text("3 of 3 points")
    # The replay shows each grading where it happened, and the score as it stood.
    await page.goto(page.url.split("#")[0].rstrip("/") + "/replay")
    gradings = page.get_by_role("list", name="Gradings").get_by_role("button")
    await expect(gradings).to_have_count(3)
    await gradings.first.click()
    await expect(page.locator("#replay-score")).to_contain_text("Score: 1 of 3 points")
    await gradings.last.click()
    await expect(page.locator("#replay-score")).to_contain_text("Score: 3 of 3 points")
    await page.screenshot(path=artifacts / "replay-grades.png")
    await host.close()
    await candidate.close()
