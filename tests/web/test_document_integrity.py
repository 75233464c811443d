"""The document's integrity against a participant's own Yjs connection, and against a failing
database. A real server on loopback, real Yjs clients, a real SQLite file made to fail by a
trigger."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, create_update_message

from tests.conftest import eventually, make_settings
from tests.conftest import running_server as start_server
from tests.web.clients import JsonClient, YjsClient, first_source


def appended(doc: Doc[Any], text: str) -> bytes:
    """Append ``text`` to the first cell's source of ``doc``; the update message it makes."""
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    cell = doc.get("cells", type=Array)[0]
    assert isinstance(cell, Map)
    source = cell["source"]
    source.insert(len(source), text)
    doc.unobserve(subscription)
    return create_update_message(updates[0])


async def test_a_change_built_on_what_the_server_lacks_closes_its_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A change hung on text the host has typed but not sent is not applied (pycrdt would
    hold it and integrate it with the host's, past the lock); the connection that sent it is
    closed with 4409 and a reason a person can read, and the host's text arrives alone."""
    caplog.set_level(logging.WARNING)
    settings = make_settings(tmp_path / "data", kernel_pool_size={"python": 0})
    async with start_server(settings) as running:
        api = running.api
        created = await api.create_session()
        sid, token = created["session_id"], created["host_token"]
        host = await YjsClient.connect(running, sid, client_id="host-y", host_token=token)
        mallory = await YjsClient.connect(running, sid, client_id="mallory")
        await eventually(lambda: host.cell_count == mallory.cell_count == 1, "sync")
        response = await api.request(
            "PATCH", f"/api/v1/sessions/{sid}", {"editing_locked": True}, token=token
        )
        assert response.status == 200

        # The host's next keystrokes, made on a copy and not sent yet, seen by the attacker.
        ahead: Doc[Any] = Doc()
        ahead.apply_update(host.doc.get_update())
        appended(ahead, "x = 1\n")
        mallory.doc.apply_update(ahead.get_update())
        await mallory.conn.write_message(appended(mallory.doc, "EVIL = 1\n"), binary=True)
        await eventually(lambda: mallory.conn.close_code is not None, "the connection to close")
        assert mallory.conn.close_code == 4409
        assert "Reload the page" in (mallory.conn.close_reason or "")
        assert sid not in (mallory.conn.close_reason or "")
        assert "mallory" in caplog.text and "not applied" in caplog.text

        host.doc.apply_update(ahead.get_update())  # the host's page sends its keystrokes now

        async def code() -> str:
            return str((await api.get(f"/api/v1/sessions/{sid}")).json["code"])

        async def arrived() -> bool:
            return "x = 1" in await code()

        await eventually(arrived, "the host's text")
        stored = first_source(await running.server.store.load_updates(sid))
        assert "EVIL" not in host.source and "EVIL" not in stored
        assert await code() == host.source
        await host.close()
        await mallory.close()


async def test_changes_wait_for_a_failing_database_and_none_is_lost(tmp_path: Path) -> None:
    """While the database refuses writes, a change is shown to nobody else (and everyone's
    JSON page is told why); when it takes them again, the change is stored and delivered."""
    data = tmp_path / "data"
    settings = make_settings(data, kernel_pool_size={"python": 0})
    async with start_server(settings) as running:
        api = running.api
        sid = (await api.create_session())["session_id"]
        writer = await YjsClient.connect(running, sid, client_id="writer")
        reader = await YjsClient.connect(running, sid, client_id="reader")
        page, _ = await JsonClient.join(running, sid, "page", "Page")
        await eventually(lambda: writer.cell_count == reader.cell_count == 1, "sync")
        before = reader.source

        with sqlite3.connect(data / "kernelpad.sqlite") as db:
            db.execute(
                "CREATE TRIGGER full_disk BEFORE INSERT ON document_updates"
                " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        writer.insert(len(writer.source), "[kept]")
        error = await page.expect("error")
        assert error["code"] == "not_saved"
        assert "Keep this page open" in error["message"]
        await asyncio.sleep(1.0)
        assert reader.source == before  # not stored: shown to nobody

        with sqlite3.connect(data / "kernelpad.sqlite") as db:
            db.execute("DROP TRIGGER full_disk")
        await eventually(lambda: "[kept]" in reader.source, "the change, once stored", 15)
        assert "[kept]" in first_source(await running.server.store.load_updates(sid))
        await writer.close()
        await reader.close()
        page.close()
