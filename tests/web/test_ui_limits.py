"""Limits as people meet them in the pad, in headless Chromium: waiting for someone to answer
``input()`` does not count toward the run's (short, here) time limit, a question nobody
answers ends the run with a notice on its cell, and a run the rate limit refuses says so on
the cell that was run, in words (no session id, no setting's name), while the others, whose
allowance is their own, run on."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from kernelpad.config import Settings
from tests.conftest import make_settings
from tests.web.browser import Person


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"python": 1},
        code_execution_timeout=2,
        input_timeout=5,
        rate_limit_executions_per_minute=3,
    )


async def test_a_question_answered_after_the_time_limit_still_runs_on(
    pair: tuple[Person, Person],
) -> None:
    host, candidate = pair
    await candidate.replace_source(0, "name = input('Name? ')\nprint('hello', name)")
    await candidate.run(0)
    box = host.cell(0).get_by_label("Name? ")
    await expect(box).to_be_visible()
    await host.page.wait_for_timeout(3000)  # longer than the 2 s the code may run
    await box.fill("Ada")
    await box.press("Enter")
    for person in (host, candidate):
        await expect(person.cell(0).locator(".output-stream")).to_contain_text("hello Ada")
        await expect(person.cell(0).locator(".output-error")).to_have_count(0)


async def test_a_question_nobody_answers_ends_the_run_with_a_notice(
    pair: tuple[Person, Person],
) -> None:
    host, candidate = pair
    await candidate.replace_source(0, "input('Anyone? ')")
    await candidate.run(0)
    await expect(host.cell(0).get_by_label("Anyone? ")).to_be_visible()
    for person in (host, candidate):
        notices = person.cell(0).locator(".notices")
        await expect(notices).to_contain_text(
            "Nobody answered the input request within 5 s", timeout=15_000
        )
        await expect(person.cell(0).get_by_label("Anyone? ")).to_be_hidden()


async def test_a_refused_run_says_so_on_its_cell(pair: tuple[Person, Person]) -> None:
    host, candidate = pair
    await candidate.replace_source(0, "print('run')")
    for _ in range(3):
        await candidate.run(0)
        await expect(candidate.cell(0).locator(".count")).not_to_have_text("[*]")
    await candidate.run(0)  # the fourth in a minute
    notice = candidate.cell(0).locator(".notices")
    await expect(notice).to_contain_text("You may run code 3 times a minute")
    text = await notice.inner_text()
    session_id = candidate.page.url.rstrip("/").rsplit("/", 1)[-1]
    assert session_id not in text and "RATE_LIMIT" not in text
    # The allowance is each person's: the host still runs.
    await host.run(0)
    await expect(host.cell(0).locator(".notices")).not_to_contain_text("You may run code")
    await expect(host.cell(0).locator(".output-stream")).to_have_text("run")


async def test_the_host_sets_this_interviews_time_limit(pair: tuple[Person, Person]) -> None:
    host, candidate = pair
    controls = host.page.get_by_role("group", name="Host controls")
    box = controls.get_by_label("Time limit (s)")
    await box.fill("1")
    await box.press("Enter")
    await box.blur()
    await candidate.replace_source(0, "import time\ntime.sleep(1.5)\nprint('done')")
    await candidate.run(0)
    await expect(candidate.cell(0).locator(".notices")).to_contain_text(
        "time limit of 1 s", timeout=15_000
    )
    # Past the server's (2 s here): refused, in words, and the box shows the limit in force.
    await box.fill("30")
    await box.blur()
    await expect(host.page.locator(".messages")).to_contain_text("at most 2 s")
    await expect(box).to_have_attribute("placeholder", "2")
    await expect(box).to_have_value("1")
