"""Who is in a session, over both sockets: participants, the limit, presence on reconnect;
and how the server holds up against clients that send too fast or stop reading, and keeps
the document's storage small. No kernel is needed here."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Awareness, Doc, create_awareness_message
from tornado.websocket import websocket_connect

from kernelpad import errors
from kernelpad.config import Settings
from kernelpad.sessions.room import persistence
from tests.conftest import Api, RunningServer, eventually, make_settings, running_server
from tests.web.clients import JsonClient, YjsClient, ws_url


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("data"), kernel_pool_size={"python": 0})


@pytest.fixture
async def session(api: Api) -> dict[str, Any]:
    return await api.create_session(max_participants=3)


async def connected(api: Api, session_id: str) -> dict[str, tuple[str, str, bool]]:
    details = (await api.get(f"/api/v1/sessions/{session_id}")).json
    return {
        p["client_id"]: (p["display_name"], p["role"], p["connected"])
        for p in details["participants"]
    }


async def test_yjs_clients_are_participants(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, _ = await JsonClient.join(server, sid, "ada-p", "Ada")
    yjs = await YjsClient.connect(server, sid, client_id="alan-p", display_name="Alan")
    joined = await ada.expect("participant_joined")
    colour = joined.pop("colour")
    assert joined == {
        "client_id": "alan-p",
        "display_name": "Alan",
        "role": "candidate",
        "participant_count": 2,
    }
    assert colour.startswith("#") and len(colour) == 7
    assert (await connected(api, sid))["alan-p"] == ("Alan", "candidate", True)
    # The host, over Yjs, with the host token.
    host = await YjsClient.connect(
        server, sid, client_id="grace-p", display_name="Grace", host_token=session["host_token"]
    )
    assert (await ada.expect("participant_joined"))["role"] == "host"
    await host.close()
    assert (await ada.expect("participant_left"))["client_id"] == "grace-p"
    await yjs.close()
    left = await ada.expect("participant_left")
    assert left["client_id"] == "alan-p" and left["participant_count"] == 1
    await eventually(
        lambda: _is(connected(api, sid), "alan-p", ("Alan", "candidate", False)),
        "Alan to be listed as gone",
    )
    # An unmodified y-websocket client names nobody: it joins as a guest.
    guest = await YjsClient.connect(server, sid)
    joined = await ada.expect("participant_joined")
    assert joined["display_name"] == "Guest" and joined["client_id"].startswith("yjs-")
    tab, state = await JsonClient.join(server, sid, "ada-p", "Ada")
    assert {p["client_id"] for p in state["participants"]} == {"ada-p", joined["client_id"]}
    await guest.close()
    tab.close()
    ada.close()


async def _is(listing: Any, client_id: str, expected: tuple[str, str, bool]) -> bool:
    return bool((await listing).get(client_id) == expected)


async def test_the_limit_holds_for_both_sockets_and_simultaneous_joins(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    conns = await asyncio.gather(
        *(websocket_connect(ws_url(server, f"/ws/sessions/{sid}")) for _ in range(8))
    )
    clients = [JsonClient(conn) for conn in conns]
    # All at once: no await between the sends, the server sees them together.
    await asyncio.gather(
        *(
            client.send("join_session", {"client_id": f"c-{i}", "display_name": f"C{i}"})
            for i, client in enumerate(clients)
        )
    )

    async def outcome(client: JsonClient) -> str:
        while True:
            message = await client.receive()
            if message["type"] in ("session_state", "error"):
                data = message["data"]
                return "in" if message["type"] == "session_state" else str(data["code"])

    outcomes = await asyncio.gather(*(outcome(client) for client in clients))
    assert sorted(outcomes) == ["in"] * 3 + ["session_full"] * 5
    inside = [c for c, o in zip(clients, outcomes, strict=True) if o == "in"]
    # Full for Yjs too: the close says why.
    refused = await websocket_connect(ws_url(server, f"/ws/yjs/{sid}?client_id=late"))
    assert await refused.read_message() is None
    assert refused.close_code == 4403 and "full" in (refused.close_reason or "")
    refused.close()
    # One who is in may open another connection, of either kind.
    first_id = next(f"c-{i}" for i, o in enumerate(outcomes) if o == "in")
    again = await YjsClient.connect(server, sid, client_id=first_id, display_name="Again")
    await eventually(lambda: again.cell_count == 1, "the second connection to sync")
    await again.close()
    for client in clients:
        client.close()
    del inside


async def test_a_yjs_client_with_a_bad_name_is_refused(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    conn = await websocket_connect(ws_url(server, f"/ws/yjs/{sid}?client_id=no%20spaces"))
    assert await conn.read_message() is None
    assert conn.close_code == 4400 and "client_id" in (conn.close_reason or "")
    conn.close()
    # The host's own client id, without the host token.
    host_id = next(p["client_id"] for p in session["participants"] if p["role"] == "host")
    conn = await websocket_connect(
        ws_url(server, f"/ws/yjs/{sid}?client_id={host_id}&host_token=wrong")
    )
    assert await conn.read_message() is None
    assert conn.close_code == 4403 and "host token" in (conn.close_reason or "")
    conn.close()


async def test_a_tab_that_reconnects_with_its_client_id_stays_visible(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    watcher = await YjsClient.connect(server, sid, client_id="w-a", display_name="Watcher")
    old = await YjsClient.connect(server, sid, client_id="tab-a", display_name="Tab")
    presence = Awareness(old.doc)
    presence.set_local_state({"user": {"name": "Tab"}})
    message = create_awareness_message(presence.encode_awareness_update([presence.client_id]))
    await old.conn.write_message(message, binary=True)
    await eventually(
        lambda: presence.client_id in watcher.others.states, "the tab's presence at the watcher"
    )
    # The tab reconnects with the same Yjs client id before its old socket is closed.
    new = await YjsClient.connect(server, sid, client_id="tab-a", display_name="Tab")
    presence.set_local_state({"user": {"name": "Tab", "reconnected": True}})
    message = create_awareness_message(presence.encode_awareness_update([presence.client_id]))
    await new.conn.write_message(message, binary=True)
    await eventually(
        lambda: (
            watcher.others.states.get(presence.client_id, {}).get("user", {}).get("reconnected")
        ),
        "the new state at the watcher",
    )
    await old.close()
    room = server.manager.rooms.loaded(sid)
    assert room is not None
    await eventually(lambda: len(room.yjs.peers) == 2, "the server to see the old socket go")
    # One more round trip through the server: anything it sent the watcher about the old
    # socket's going has arrived before this.
    presence.set_local_state({"user": {"name": "Tab", "round": "trip"}})
    message = create_awareness_message(presence.encode_awareness_update([presence.client_id]))
    await new.conn.write_message(message, binary=True)
    await eventually(
        lambda: watcher.others.states.get(presence.client_id, {}).get("user", {}).get("round"),
        "the round trip",
    )
    assert presence.client_id in watcher.others.states
    await new.close()
    await eventually(lambda: presence.client_id not in watcher.others.states, "the tab to be gone")
    await watcher.close()


async def test_code_updates_name_the_version_they_were_written_on(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, state = await JsonClient.join(server, sid, "ada-v", "Ada")
    await ada.send("code_update", {"code": "aaaa", "base_version": state["version"]})
    ack = await ada.expect("code_update")
    assert ack["code"] == "aaaa" and ack["client_id"] == "ada-v"
    base = ack["version"]
    assert base == state["version"] + 1
    # Someone adds an "a" at the end; Ada, who has not read it yet, adds a "b" there.
    yjs = await YjsClient.connect(server, sid, client_id="yjs-v", display_name="Y")
    await eventually(lambda: yjs.source == "aaaa", "sync")
    yjs.insert(4, "a")
    assert (await ada.expect("code_update"))["version"] == base + 1
    await ada.send("code_update", {"code": "aaaab", "base_version": base})
    merged = await ada.expect("code_update")
    # Both edits are kept: from the text it names, Ada's change is an insertion.
    assert sorted(merged["code"]) == sorted("aaaaab") and merged["version"] == base + 2
    await eventually(lambda: yjs.source == merged["code"], "the Yjs client to agree")
    # A version the server no longer has falls back to the closest text.
    await ada.send("code_update", {"code": merged["code"] + "c", "base_version": 10**6})
    assert (await ada.expect("code_update"))["code"] == merged["code"] + "c"
    await ada.send("code_update", {"code": "x", "base_version": -1})
    assert (await ada.expect("error"))["code"] == "validation_error"
    ada.close()
    await yjs.close()


async def test_clients_sending_too_fast_are_slowed_and_lose_nothing(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", kernel_pool_size={"python": 0}, ws_messages_per_second=5
    )
    async with running_server(settings) as running:
        created = await running.api.create_session()
        sid = created["session_id"]
        client, _ = await JsonClient.join(running, sid, "fast-1", "Fast")
        watcher, _ = await JsonClient.join(running, sid, "watch-1", "Watcher")
        for i in range(12):
            await client.send("code_update", {"code": f"x = {i}\n"})
        error = await client.expect("error")
        assert error["code"] == "throttled" and "5 messages a second" in error["message"]
        texts: list[str] = []
        while not texts or texts[-1] != "x = 11\n":
            texts.append((await watcher.expect("code_update"))["code"])
        # In order (changes committed together reach the watcher as one version)...
        sent = [f"x = {i}\n" for i in range(12)]
        assert texts == sorted(texts, key=sent.index)
        # ... and every one was applied: slowed, not dropped.
        timeline = await running.api.get(
            f"/api/v1/sessions/{sid}/timeline", token=created["host_token"]
        )
        authors = [e["author"] for e in timeline.json["events"] if e["kind"] == "edit"]
        assert authors.count("fast-1") == 12
        client.close()
        watcher.close()
        yjs = await YjsClient.connect(running, sid)
        await eventually(lambda: yjs.cell_count == 1, "sync")
        for i in range(20):
            yjs.insert(0, chr(ord("a") + i))
            await asyncio.sleep(0)
        check = await YjsClient.connect(running, sid)
        expected = "".join(chr(ord("a") + i) for i in reversed(range(20))) + "x = 11\n"
        await eventually(lambda: check.source == expected, "every edit to reach the server")
        assert not yjs._reader.done()
        await yjs.close()
        await check.close()


async def test_a_client_that_stops_reading_is_cut_off(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        kernel_pool_size={"python": 0},
        ws_messages_per_second=10_000,
        ws_max_buffered_bytes=65536,
    )
    async with running_server(settings) as running:
        api = running.api
        sid = (await api.create_session())["session_id"]
        stalled, _ = await JsonClient.join(running, sid, "stalled-1", "Stalled")
        writer, _ = await JsonClient.join(running, sid, "writer-1", "Writer")
        # Tornado's client stops reading its socket while a message waits to be read: from
        # here on the stalled client reads nothing, and the network's buffers fill up.
        for i in range(400):
            await writer.send("code_update", {"code": f"{i % 10}" * 100_000})
            if i % 50 == 49 and not (await connected(api, sid))["stalled-1"][2]:
                break
        await eventually(
            lambda: _is(connected(api, sid), "stalled-1", ("Stalled", "candidate", False)),
            "the stalled client to be cut off",
        )
        assert (await connected(api, sid))["writer-1"][2] is True
        while (message := await stalled.conn.read_message()) is not None:
            json.loads(message)
        # The close frame waits behind all that was unread; the server may give up on it.
        if stalled.conn.close_code is not None:
            assert stalled.conn.close_code == 1008
            assert stalled.conn.close_reason == "too many unread messages"
        stalled.close()
        writer.close()


async def test_stored_updates_are_compacted_and_the_code_column_follows(
    server: RunningServer, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persistence, "COMPACT_AFTER", 10)
    created = await api.create_session()
    sid = created["session_id"]
    store = server.server.store
    yjs = await YjsClient.connect(server, sid)
    await eventually(lambda: yjs.source == created["code"], "sync")
    for i in range(35):
        yjs.insert(0, f"{i % 10}")
        await asyncio.sleep(0.01)
    expected = "".join(f"{i % 10}" for i in reversed(range(35))) + created["code"]
    # The API sees the live document at once; the stored column follows within a second.
    await eventually(lambda: _code(api, sid, expected), "the API to show the edits")
    await eventually(
        lambda: _stored_code(server, sid, expected), "the code column to catch up", timeout=10
    )
    # Compacted while open: well under one row per edit.
    assert await store.count_updates(sid) < 15
    await yjs.close()
    await eventually(lambda: _rows(server, sid, 1), "one stored update once nobody is here")
    again = await YjsClient.connect(server, sid)
    await eventually(lambda: again.source == expected, "the compacted document to load")
    assert again.cell_count == 1
    await again.close()


async def _code(api: Api, session_id: str, code: str) -> bool:
    return bool((await api.get(f"/api/v1/sessions/{session_id}")).json["code"] == code)


async def _stored_code(server: RunningServer, session_id: str, code: str) -> bool:
    session = await server.server.store.get_session(session_id)
    return session is not None and session.code == code


async def _rows(server: RunningServer, session_id: str, count: int) -> bool:
    return await server.server.store.count_updates(session_id) == count


async def test_the_host_token_in_a_yjs_query_stays_out_of_the_log(
    server: RunningServer, session: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kernelpad.access")
    token = session["host_token"]
    host = await YjsClient.connect(
        server, session["session_id"], client_id="grace-l", host_token=token
    )
    await eventually(lambda: host.cell_count == 1, "sync")
    await host.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "kernelpad.access"]
    assert any("/ws/yjs/" in line and "host_token=***" in line for line in lines), lines
    assert not any(token in line for line in lines)


async def test_a_connection_that_has_not_joined_keeps_the_room(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, _ = await JsonClient.join(server, sid, "ada-k", "Ada")
    # Bob's socket is open, but he has not joined yet when Ada leaves.
    bob = JsonClient(await websocket_connect(ws_url(server, f"/ws/sessions/{sid}")))
    await eventually(
        lambda: (room := server.manager.rooms.loaded(sid)) is not None and room.holds == 2,
        "Bob's socket to hold the room",
    )
    ada.close()
    await eventually(
        lambda: server.server.manager.rooms.loaded(sid).holds == 1,  # type: ignore[union-attr]
        "Ada's socket to let go",
    )
    await bob.send("join_session", {"client_id": "bob-k", "display_name": "Bob"})
    await bob.expect("session_state")
    # Bob is in the same live document as whoever comes next.
    yjs = await YjsClient.connect(server, sid, client_id="yjs-k")
    await eventually(lambda: yjs.cell_count == 1, "sync")
    yjs.insert(0, "# seen by Bob\n")
    assert (await bob.expect("code_update"))["code"].startswith("# seen by Bob\n")
    bob.close()
    await yjs.close()


async def test_nobody_joins_a_room_whose_session_has_ended(server: RunningServer, api: Api) -> None:
    created = await api.create_session()
    sid = created["session_id"]
    manager = server.manager
    room = await manager.room(sid)
    await manager.end(sid, created["host_token"])
    # A join that was on its way when the session ended finds the room closed.
    with pytest.raises(errors.SessionEnded):
        await manager.participants.join(room, "late-1", "Late", None)
    manager.rooms.release(room)
    with pytest.raises(errors.SessionEnded):
        await manager.room(sid)


async def test_a_cell_left_running_by_a_stopped_server_is_idle_and_says_why_after_a_restart(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data", kernel_pool_size={"python": 0})
    async with running_server(settings) as first:
        sid = (await first.api.create_session())["session_id"]
        yjs = await YjsClient.connect(first, sid)
        await eventually(lambda: yjs.cell_count == 1, "sync")
        # As the server leaves a cell when it stops in the middle of its run.
        room = first.manager.rooms.loaded(sid)
        assert room is not None
        room.document.begin_run(room.document.cells()[0]["id"])
        await eventually(
            lambda: YNotebook(yjs.doc).ycells[0].get("execution_state") == "running",
            "the state to be stored and sent",
        )
        await yjs.close()
    async with running_server(settings) as second:
        again = await YjsClient.connect(second, sid)
        await eventually(lambda: again.cell_count == 1, "sync")
        await eventually(
            lambda: YNotebook(again.doc).ycells[0].get("execution_state") == "idle",
            "the cell to be idle",
        )
        # It says why its run stopped there.
        (said,) = YNotebook(again.doc).get()["cells"][0]["outputs"]
        assert said["name"] == "stderr" and "the server restarted while it ran" in said["text"]
        await again.close()
    # Said once: a third start finds nothing running.
    async with running_server(settings) as third:
        once = await YjsClient.connect(third, sid)
        await eventually(lambda: once.cell_count == 1, "sync")
        assert len(YNotebook(once.doc).get()["cells"][0]["outputs"]) == 1
        await once.close()


async def test_nobody_changes_another_participants_presence(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    watcher = await YjsClient.connect(server, sid, client_id="w-f")
    ada = await YjsClient.connect(server, sid, client_id="ada-f")
    mallory = await YjsClient.connect(server, sid, client_id="mallory-f")
    real = Awareness(ada.doc)
    real.set_local_state({"user": {"name": "Ada"}})
    await ada.conn.write_message(
        create_awareness_message(real.encode_awareness_update([real.client_id])), binary=True
    )
    await eventually(lambda: real.client_id in watcher.others.states, "Ada's presence")
    # Mallory speaks for Ada's awareness id, with a newer clock.
    forged = Awareness(Doc(client_id=real.client_id))
    for _ in range(3):
        forged.set_local_state({"user": {"name": "Grace (host)"}})
    await mallory.conn.write_message(
        create_awareness_message(forged.encode_awareness_update([real.client_id])), binary=True
    )
    # A barrier: Mallory's own presence, sent after, has arrived.
    own = Awareness(mallory.doc)
    own.set_local_state({"user": {"name": "Mallory"}})
    await mallory.conn.write_message(
        create_awareness_message(own.encode_awareness_update([own.client_id])), binary=True
    )
    await eventually(lambda: own.client_id in watcher.others.states, "Mallory's own presence")
    assert watcher.others.states[real.client_id]["user"]["name"] == "Ada"
    for client in (watcher, ada, mallory):
        await client.close()
