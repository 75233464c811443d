"""The interview record: every change of the notebook (with its time and author) and every run
are kept, so that the notebook as it was at any time can be rebuilt exactly, after the session
ended and after a restart, on the server and in the browser's replay."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pycrdt
import pytest
from jupyter_ydoc import YNotebook
from playwright.async_api import Browser, expect

from tests.conftest import RunningServer, eventually, make_settings, running_server
from tests.web.browser import ARTIFACTS, Person
from tests.web.clients import JsonClient, YjsClient

pytestmark = pytest.mark.timeout(180)


def cells(notebook: dict[str, Any]) -> list[tuple[str, str, list[Any]]]:
    """What is compared: each cell's kind, source and outputs."""
    return [
        (cell["cell_type"], cell["source"], cell.get("outputs", [])) for cell in notebook["cells"]
    ]


async def moment() -> float:
    """A time strictly between what was stored before and what is stored after."""
    await asyncio.sleep(0.05)
    at = time.time()
    await asyncio.sleep(0.05)
    return at


async def record_an_interview(
    running: RunningServer, pause: float = 0
) -> tuple[dict[str, Any], list[Any]]:
    """Edits by the host (Yjs) and the candidate (JSON protocol), a run, the end; with the
    notebook as the host's client saw it at several moments, and ``pause`` seconds of nothing
    between the two edits."""
    api = running.api
    session = await api.create_session(host_name="Grace")
    sid = session["session_id"]
    host = await YjsClient.connect(
        running, sid, client_id="grace", display_name="Grace", host_token=session["host_token"]
    )
    await eventually(lambda: host.cell_count == 1, "the host's sync")
    alan, _ = await JsonClient.join(running, sid, "alan", "Alan")
    snapshots = [(await moment(), YNotebook(host.doc).get())]

    host.insert(0, "# Grace was here\n")
    await eventually(lambda: "Grace was here" in host.source, "the host's edit")
    await alan.expect("code_update")
    snapshots.append((await moment(), YNotebook(host.doc).get()))
    await asyncio.sleep(pause)

    await alan.send("code_update", {"code": host.source + "print(6 * 7)\n"})
    await eventually(lambda: "print(6 * 7)" in host.source, "the candidate's edit")
    snapshots.append((await moment(), YNotebook(host.doc).get()))

    cell_id = YNotebook(host.doc).get()["cells"][0]["id"]
    await alan.send("execute", {"cell_id": cell_id})
    assert (await alan.expect("execution_finished"))["status"] == "ok"
    await eventually(
        lambda: YNotebook(host.doc).get()["cells"][0]["execution_count"] is not None,
        "the run's end in the host's document",
    )
    snapshots.append((await moment(), YNotebook(host.doc).get()))
    alan.close()
    await host.close()
    await api.delete(f"/api/v1/sessions/{sid}", token=session["host_token"])
    return session, snapshots


async def test_the_notebook_at_any_time_after_the_end_and_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, kernel_pool_size={"python": 1})
    async with running_server(settings) as running:
        session, snapshots = await record_an_interview(running)
    async with running_server(settings) as running:
        api = running.api
        sid, token = session["session_id"], session["host_token"]
        for at, live in snapshots:
            response = await api.get(
                f"/api/v1/sessions/{sid}/notebook.ipynb?at={at!r}", token=token
            )
            assert response.status == 200, response.body
            assert cells(response.json) == cells(live), at
        # Before the session existed, there was nothing.
        before = await api.get(
            f"/api/v1/sessions/{sid}/notebook.ipynb?at={session_created(session) - 60}",
            token=token,
        )
        assert before.json["cells"] == []

        timeline = (await api.get(f"/api/v1/sessions/{sid}/timeline", token=token)).json
        events = timeline["events"]
        edits = [e for e in events if e["kind"] == "edit"]
        # In the order they were stored: the order that rebuilds the notebook.
        assert [e["seq"] for e in edits] == sorted(e["seq"] for e in edits)
        authors = {e["author"] for e in edits}
        assert {"grace", "alan", None} <= authors
        # Applying the updates in order gives the notebook as it ended.
        doc: pycrdt.Doc[Any] = pycrdt.Doc()
        for edit in edits:
            doc.apply_update(base64.b64decode(edit["update"]))
        assert cells(YNotebook(doc).get()) == cells(snapshots[-1][1])
        (run,) = [e for e in events if e["kind"] == "run"]
        assert run["author"] == "alan" and run["status"] == "ok"
        assert run["cell_id"] == snapshots[-1][1]["cells"][0]["id"]
        assert run["outputs"][0]["text"].endswith("42\n")
        # The candidate's edit is attributed to the candidate, though the server applied it.
        alan_edit = next(e for e in edits if e["author"] == "alan")
        assert snapshots[1][0] < alan_edit["at"] < snapshots[2][0]
        assert {p["client_id"] for p in timeline["participants"]} >= {"grace", "alan"}
        assert timeline["ended_at"] is not None


def session_created(session: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(session["created_at"]).timestamp()


async def test_before_anyone_opens_it_the_notebook_is_the_template(api: Any) -> None:
    session = await api.create_session(host_name="Grace")
    sid, token = session["session_id"], session["host_token"]
    at = time.time()
    response = await api.get(f"/api/v1/sessions/{sid}/notebook.ipynb?at={at!r}", token=token)
    assert [c["source"] for c in response.json["cells"]] == [session["code"]]


async def test_only_the_host_sees_the_timeline(api: Any) -> None:
    session = await api.create_session(host_name="Grace")
    path = f"/api/v1/sessions/{session['session_id']}/timeline"
    assert (await api.get(path)).status == 401
    assert (await api.get(path, token="nope")).status == 403
    bad = await api.get(
        f"/api/v1/sessions/{session['session_id']}/notebook.ipynb?at=yesterday",
        token=session["host_token"],
    )
    assert bad.status == 422 and "at" in bad.json["error"]["message"]


async def test_the_replay_in_the_browser(browser: Browser, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, kernel_pool_size={"python": 1})
    async with running_server(settings) as running:
        # A pause longer than the replay's idle gap (3 s), to skip.
        session, snapshots = await record_an_interview(running, pause=3.5)
        sid = session["session_id"]
        host = await Person.open(browser)
        page = host.page
        # The host link's token opens the replay of the ended interview.
        await page.goto(f"{running.base_url}/s/{sid}#host={session['host_token']}")
        await page.get_by_role("link", name="Replay the interview").click()
        await expect(page.locator("#replay-time")).to_contain_text("/")
        # At the end: the notebook as it ended, each author's text in their colour.
        source = page.locator(".replay-source").first
        await expect(source).to_contain_text("print(6 * 7)")
        await expect(page.locator(".outputs").first).to_contain_text("42")
        await expect(source.locator("[title=Grace]")).to_contain_text("Grace was here")
        await expect(source.locator("[title=Alan]")).to_contain_text("print(6 * 7)")
        # Each moment rebuilt in the browser is what the host's client saw then.
        for at, live in snapshots:
            shown = await page.evaluate(
                "at => { kernelpadReplay.seek(at); return [...document"
                ".querySelectorAll('.replay-source')].map(e => e.textContent) }",
                at,
            )
            assert shown == [cell["source"] for cell in live["cells"]], at
        # Watching on from just after the host's edit: the pause is skipped, unless asked not to.
        after_host, before_alan = snapshots[1][0], snapshots[2][0]
        advance = "seconds => { kernelpadReplay.advance(seconds); return kernelpadReplay.position }"
        await page.evaluate("at => kernelpadReplay.seek(at)", after_host)
        assert await page.evaluate(advance, 0.01) > before_alan - 1.5
        await page.get_by_label("Skip idle gaps").uncheck()
        await page.evaluate("at => kernelpadReplay.seek(at)", after_host)
        assert await page.evaluate(advance, 0.01) == pytest.approx(after_host + 0.01)
        await page.get_by_label("Skip idle gaps").check()
        # Playing from the start, fast, runs to the end.
        await page.locator("#scrubber").fill("0")
        await expect(page.locator(".replay-source", has_text="Grace was here")).to_have_count(0)
        await page.get_by_label("Speed").select_option("32")
        await page.get_by_role("button", name="Play").click()
        await expect(source).to_contain_text("print(6 * 7)", timeout=20_000)
        await expect(page.get_by_role("button", name="Play")).to_be_visible(timeout=20_000)
        await expect(page.get_by_role("list", name="Runs").locator("button")).to_have_count(1)
        # A run's mark goes to the moment the run was over: its output shown, not "running…".
        await page.locator("#scrubber").fill("0")
        await page.get_by_role("list", name="Runs").locator("button").click()
        await expect(page.locator(".outputs").first).to_contain_text("42")
        await expect(page.locator(".replay-cell").first).not_to_contain_text("running…")
        (ARTIFACTS / "replay").mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "replay" / "replay.png")
        await host.close()
