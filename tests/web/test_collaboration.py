"""The shared notebook over WebSocket: the original JSON protocol and Yjs (pycrdt clients), on
a real server, with the document stored in SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import (
    Array,
    Awareness,
    create_awareness_message,
    create_sync_message,
)
from tornado.websocket import websocket_connect

from kernelpad.config import Settings
from kernelpad.sessions.storage.database import Rows
from tests.conftest import Api, RunningServer, eventually, make_settings, running_server
from tests.web.clients import JsonClient, YjsClient, first_cell, ws_url


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"python": 1},
        max_request_size=65536,
        code_execution_timeout=30,
    )


@pytest.fixture
async def session(api: Api) -> dict[str, Any]:
    return await api.create_session(max_participants=3)


async def test_json_clients_join_and_see_each_others_edits(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, state = await JsonClient.join(server, sid, "ada-1", "Ada")
    assert state["code"] == session["code"] and state["language"] == "python"
    assert state["participant_count"] == 1
    alan, state = await JsonClient.join(server, sid, "alan-1", "Alan")
    assert state["participant_count"] == 2
    joined = await ada.expect("participant_joined")
    assert (joined["client_id"], joined["display_name"]) == ("alan-1", "Alan")

    await ada.send("code_update", {"code": "print('from Ada')\n", "language": "python"})
    update = await alan.expect("code_update")
    assert update == {
        "client_id": "ada-1",
        "display_name": "Ada",
        "code": "print('from Ada')\n",
        "language": "python",
        "version": state["version"] + 1,
    }
    # The session's code in the original REST API is the shared text.
    await eventually(lambda: _code(api, sid, "print('from Ada')\n"), "the code to be stored")
    details = (await api.get(f"/api/v1/sessions/{sid}")).json
    assert {p["client_id"] for p in details["participants"]} >= {"ada-1", "alan-1"}

    alan.close()
    left = await ada.expect("participant_left")
    assert left["client_id"] == "alan-1" and left["participant_count"] == 1
    ada.close()


async def _code(api: Api, session_id: str, code: str) -> bool:
    current: str = (await api.get(f"/api/v1/sessions/{session_id}")).json["code"]
    return current == code


async def test_yjs_and_json_clients_share_one_document(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    yjs = await YjsClient.connect(server, sid)
    await eventually(lambda: yjs.source == session["code"], "the Yjs client to sync")
    json_client, _ = await JsonClient.join(server, sid, "grace-1", "Grace")

    # A Yjs edit reaches the JSON client as a whole-text code_update.
    yjs.insert(0, "# typed in Yjs\n")
    update = await json_client.expect("code_update")
    assert update["code"] == "# typed in Yjs\n" + session["code"]

    # A JSON whole-text update is applied as a minimal diff: an edit the Yjs client makes at
    # the same time, elsewhere in the text, survives.
    yjs.insert(len(yjs.source), "# also typed in Yjs\n")
    await json_client.send("code_update", {"code": update["code"].replace("answer", "ANSWER")})
    expected = update["code"].replace("answer", "ANSWER") + "# also typed in Yjs\n"
    await eventually(lambda: yjs.source == expected, "both edits in the Yjs copy")
    assert (await json_client.expect("code_update"))["code"].endswith("# also typed in Yjs\n")
    json_client.close()
    await yjs.close()


async def test_a_client_following_the_code_over_yjs_is_sent_no_code_update(
    server: RunningServer, api: Api
) -> None:
    """The pad joins its JSON socket with ``code_updates: false``: the code reaches it over
    Yjs, so the whole text is not sent to it at every keystroke; every other event still is,
    and a whole text it does send is still applied as the change from the text it has."""
    created = await api.create_session(max_participants=4)
    sid = created["session_id"]
    yjs = await YjsClient.connect(server, sid, client_id="pad-1", display_name="Pad")
    await eventually(lambda: yjs.source == created["code"], "the Yjs client to sync")
    pad, _ = await JsonClient.join(server, sid, "pad-1", "Pad")  # joins again, below
    await pad.send(
        "join_session", {"client_id": "pad-1", "display_name": "Pad", "code_updates": False}
    )
    assert (await pad.expect("session_state"))["code"] == created["code"]
    plain, _ = await JsonClient.join(server, sid, "plain-1", "Plain")
    await pad.expect("participant_joined")

    yjs.insert(0, "# typed in Yjs\n")
    edited = "# typed in Yjs\n" + created["code"]
    assert (await plain.expect("code_update"))["code"] == edited
    # Events reach a socket in order: had the edit been sent to the pad, it would come first.
    late, _ = await JsonClient.join(server, sid, "late-1", "Late")
    assert (await pad.receive())["type"] == "participant_joined"

    # Its own whole text (written on what Yjs showed it) is a minimal change: an edit made
    # meanwhile elsewhere survives.
    yjs.insert(len(yjs.source), "# also typed\n")
    await pad.send("code_update", {"code": edited.replace("answer", "ANSWER")})
    expected = edited.replace("answer", "ANSWER") + "# also typed\n"
    await eventually(lambda: yjs.source == expected, "both edits in the Yjs copy")

    # A second join may ask for the text again.
    await pad.send("join_session", {"client_id": "pad-1", "display_name": "Pad"})
    assert (await pad.expect("session_state"))["code"] == expected
    yjs.insert(0, "#")
    assert (await pad.expect("code_update"))["code"] == "#" + expected
    for client in (pad, plain, late):
        await client.aclose()
    await yjs.close()


async def test_three_clients_typing_at_once_converge(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    clients = [await YjsClient.connect(server, sid) for _ in range(3)]
    code: str = session["code"]
    for client in clients:

        def synced(c: YjsClient = client) -> bool:
            return c.source == code

        await eventually(synced, "sync")
    for round_ in range(20):
        for number, client in enumerate(clients):
            client.insert(0 if number % 2 else len(client.source), f"<{number}:{round_}>")
        await asyncio.sleep(0)
    await eventually(
        lambda: len({c.source for c in clients}) == 1 and clients[0].source.count("<") == 60,
        "all copies to hold all 60 edits",
    )
    for client in clients:
        await client.close()


async def test_the_document_survives_a_restart_without_duplication(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data", kernel_pool_size={"python": 0})
    async with running_server(settings) as first:
        created = await first.api.create_session()
        sid = created["session_id"]
        yjs = await YjsClient.connect(first, sid)
        await eventually(lambda: yjs.source == created["code"], "sync")
        yjs.insert(0, "# kept\n")
        await eventually(lambda: _code(first.api, sid, "# kept\n" + created["code"]), "stored")
        await yjs.close()
    async with running_server(settings) as second:
        again = await YjsClient.connect(second, sid)
        await eventually(lambda: again.source == "# kept\n" + created["code"], "resync")
        assert again.cell_count == 1
        json_client, state = await JsonClient.join(second, sid, "ada-2", "Ada")
        assert state["code"] == "# kept\n" + created["code"]
        json_client.close()
        await again.close()


async def test_a_client_that_kept_its_copy_reconnects_without_duplication(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    client = await YjsClient.connect(server, sid)
    await eventually(lambda: client.source == session["code"], "sync")
    client.insert(0, "# once\n")
    await asyncio.sleep(0.2)
    client.conn.close()
    # Reconnect with the same document, as a browser tab does after a network drop.
    conn = await websocket_connect(ws_url(server, f"/ws/yjs/{sid}"))
    client.conn = conn
    client._reader = asyncio.ensure_future(client._read())
    await conn.write_message(create_sync_message(client.doc), binary=True)
    fresh = await YjsClient.connect(server, sid)
    await eventually(lambda: fresh.source == "# once\n" + session["code"], "fresh sync")
    assert client.source.count("# once") == 1 and fresh.cell_count == 1
    await client.close()
    await fresh.close()


# Bad input


async def test_bad_json_messages_get_errors_and_the_connection_stays(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    conn = await websocket_connect(ws_url(server, f"/ws/sessions/{sid}"))
    client = JsonClient(conn)
    cases: list[tuple[str | bytes, str, str]] = [
        ("{not json", "invalid_json", "not valid JSON"),
        (json.dumps({"data": {}}), "validation_error", "type"),
        (json.dumps({"type": "dance", "data": {}}), "unknown_type", "'dance'"),
        (json.dumps({"type": "join_session", "data": {"client_id": "x"}}), "validation_error",
         "display_name"),
        (json.dumps({"type": "code_update", "data": {"code": "x"}}), "invalid_value",
         "join_session before code_update"),
        (b"\x00\x01", "binary_frame", "binary"),
    ]  # fmt: skip
    for raw, code, words in cases:
        await conn.write_message(raw, binary=isinstance(raw, bytes))
        error = await client.expect("error")
        assert error["code"] == code and words in error["message"], (raw, error)
    # Still open and working.
    await client.send("join_session", {"client_id": "ok-1", "display_name": "Ok"})
    assert (await client.expect("session_state"))["participant_count"] == 1
    await client.send("code_update", {"code": 5})
    assert (await client.expect("error"))["code"] == "validation_error"
    client.close()


async def test_oversized_messages_close_with_1009(
    server: RunningServer, session: dict[str, Any]
) -> None:
    conn = await websocket_connect(ws_url(server, f"/ws/sessions/{session['session_id']}"))
    await conn.write_message("x" * 100_000)
    assert await conn.read_message() is None
    assert conn.close_code == 1009
    conn.close()


async def test_invalid_yjs_frames_close_the_yjs_connection(
    server: RunningServer, session: dict[str, Any]
) -> None:
    conn = await websocket_connect(ws_url(server, f"/ws/yjs/{session['session_id']}"))
    await conn.read_message()  # the server's sync step 1
    await conn.write_message(b"\x00\x02\xff\xff\xff", binary=True)
    while (await conn.read_message()) is not None:
        pass
    assert conn.close_code == 1002
    conn.close()
    # The server goes on.
    again = await YjsClient.connect(server, session["session_id"])
    await eventually(lambda: again.source == session["code"], "a new client to sync")
    await again.close()


async def test_unknown_session_and_full_session(
    server: RunningServer, session: dict[str, Any]
) -> None:
    conn = await websocket_connect(ws_url(server, "/ws/sessions/nope"))
    assert await conn.read_message() is None
    assert conn.close_code == 4404
    conn.close()
    sid = session["session_id"]
    clients = [(await JsonClient.join(server, sid, f"p-{i}", f"P{i}"))[0] for i in range(3)]
    # The same person reconnecting is the same participant, not a fourth.
    same, state = await JsonClient.join(server, sid, "p-0", "P0")
    assert state["participant_count"] == 3
    fourth = JsonClient(await websocket_connect(ws_url(server, f"/ws/sessions/{sid}")))
    await fourth.send("join_session", {"client_id": "p-3", "display_name": "P3"})
    error = await fourth.expect("error")
    assert error["code"] == "session_full" and "3 people at a time" in error["message"]
    assert await fourth.conn.read_message() is None
    assert fourth.conn.close_code == 4403
    for client in [*clients, same, fourth]:
        client.close()


# Runs, watched by everyone


async def first_cell_id(yjs: YjsClient) -> str:
    return str(YNotebook(yjs.doc).get()["cells"][0]["id"])


async def until_finished(client: JsonClient) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Messages of a run up to its execution_finished: (the others, the finish)."""
    seen: list[dict[str, Any]] = []
    while True:
        message = await client.receive()
        if message["type"] == "execution_finished":
            return seen, message["data"]
        seen.append(message)


async def test_a_cells_run_is_recorded_with_its_end_in_one_commit_before_anyone_is_told(
    server: RunningServer, session: dict[str, Any]
) -> None:
    """The run's record and the cell's end (its outputs and count) are written in one
    transaction, and the participants are told the run finished once it is committed."""
    sid = session["session_id"]
    store = server.server.store
    conn = store.conn
    transactions: list[list[str]] = []  # what each one wrote (the database thread's alone)
    inside = False
    transaction, execute = conn.transaction, conn.execute

    @contextlib.contextmanager
    def noted() -> Iterator[None]:
        nonlocal inside
        transactions.append([])
        inside = True
        try:
            with transaction():
                yield
        finally:
            inside = False

    def noting(sql: str, args: Sequence[Any] = ()) -> Rows:
        if inside and sql.startswith("INSERT INTO"):
            transactions[-1].append(sql.split()[2])
        return execute(sql, args)

    conn.transaction, conn.execute = noted, noting  # type: ignore[method-assign]
    try:
        yjs = await YjsClient.connect(server, sid)
        await eventually(lambda: yjs.cell_count == 1, "sync")
        ada, _ = await JsonClient.join(server, sid, "ada-c", "Ada")
        await ada.send("execute", {"cell_id": await first_cell_id(yjs), "code": "6 * 7"})
        _, finished = await until_finished(ada)
        runs, _ = await store.list_executions(sid, 10, 0)
        assert [run.id for run in runs] == [finished["execution_id"]]  # stored when told
    finally:
        conn.transaction, conn.execute = transaction, execute  # type: ignore[method-assign]
    recorded = [written for written in transactions if "executions" in written]
    assert len(recorded) == 1 and "document_updates" in recorded[0], transactions
    ada.close()
    await yjs.close()


@pytest.mark.parametrize("error", [sqlite3.IntegrityError, RuntimeError])
async def test_a_run_whose_record_cannot_be_stored_is_told_as_failed(
    server: RunningServer,
    session: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    error: type[Exception],
) -> None:
    """The run's record cannot be stored: refused by the database (the cell's end, in the
    same batch, is written alone) or failing its whole transaction (the cell's end is written
    again by the document's log). Either way the cell's end is stored, and nobody is told
    the run went well."""
    sid = session["session_id"]
    store = server.server.store
    add_execution = store._add_execution
    refused: list[str] = []

    def refuse_the_first(execution: Any) -> None:
        if not refused:
            refused.append(execution.id)
        if execution.id == refused[0]:
            raise error("the database refused the record")
        add_execution(execution)

    monkeypatch.setattr(store, "_add_execution", refuse_the_first)
    yjs = await YjsClient.connect(server, sid)
    await eventually(lambda: yjs.cell_count == 1, "sync")
    ada, _ = await JsonClient.join(server, sid, "ada-r", "Ada")
    cell = await first_cell_id(yjs)
    await ada.send("execute", {"cell_id": cell, "code": "6 * 7"})
    _, finished = await until_finished(ada)
    assert finished["execution_id"] == refused[0]
    assert finished["status"] == "internal_error", finished
    assert any("could not save this run" in notice for notice in finished["notices"])
    assert (await store.list_executions(sid, 10, 0))[0] == []
    # What the next server would load: the cell's end is there.
    cell_stored = first_cell(await store.load_updates(sid))
    assert cell_stored["execution_count"] == finished["execution_count"] is not None
    assert "42" in json.dumps(cell_stored["outputs"])
    # The next run is recorded and told as it went.
    await ada.send("execute", {"cell_id": cell, "code": "6 * 7"})
    _, finished = await until_finished(ada)
    assert finished["status"] == "ok"
    runs, _ = await store.list_executions(sid, 10, 0)
    assert [run.id for run in runs] == [finished["execution_id"]]
    ada.close()
    await yjs.close()


async def test_a_run_streams_to_everyone_and_lands_in_its_cell(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    yjs = await YjsClient.connect(server, sid)
    await eventually(lambda: yjs.cell_count == 1, "sync")
    cell_id = await first_cell_id(yjs)
    ada, _ = await JsonClient.join(server, sid, "ada-r", "Ada")
    alan, _ = await JsonClient.join(server, sid, "alan-r", "Alan")
    await ada.expect("participant_joined")
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)\n'done'"
    await ada.send("code_update", {"code": code})
    await alan.expect("code_update")
    await ada.send("execute", {"cell_id": cell_id})

    before, finished = await until_finished(alan)
    kinds = [m["type"] for m in before]
    states = [m["data"]["state"] for m in before if m["type"] == "kernel_status"]
    assert kinds[0] == "kernel_status" and states[:2] == ["starting", "busy"]
    started = next(m["data"] for m in before if m["type"] == "execution_started")
    assert started["cell_id"] == cell_id and started["code"] == code
    printed = "".join(
        m["data"]["output"]["text"]
        for m in before
        if m["type"] == "output" and m["data"]["output"]["output_type"] == "stream"
    )
    assert printed == "0\n1\n2\n"
    # Streamed as printed: several output messages, not one at the end.
    assert kinds.count("output") >= 3
    assert finished["status"] == "ok" and finished["execution_id"] == started["execution_id"]
    assert (await alan.expect("kernel_status"))["state"] == "idle"

    def cell_outputs() -> list[dict[str, Any]]:
        return list(YNotebook(yjs.doc).get()["cells"][0]["outputs"])

    await eventually(lambda: len(cell_outputs()) == 2, "the outputs in the Yjs document")
    outputs = cell_outputs()
    assert outputs[0]["text"] == "0\n1\n2\n"
    assert outputs[1]["data"]["text/plain"] == "'done'"
    assert YNotebook(yjs.doc).get()["cells"][0]["execution_count"] == finished["execution_count"]
    ada.close()
    alan.close()
    await yjs.close()


async def test_a_yjs_only_client_sees_outputs_while_the_cell_runs(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    yjs = await YjsClient.connect(server, sid, client_id="yjs-watch", display_name="Watcher")
    await eventually(lambda: yjs.cell_count == 1, "sync")
    cell_id = await first_cell_id(yjs)
    ada, _ = await JsonClient.join(server, sid, "ada-y", "Ada")
    await ada.send("code_update", {"code": "print('old')"})
    await ada.send("execute", {"cell_id": cell_id})
    await until_finished(ada)

    def cell() -> dict[str, Any]:
        # As stored, execution_state included (YNotebook.get() leaves it out).
        return dict(YNotebook(yjs.doc).ycells[0].to_py() or {})

    await eventually(lambda: cell()["outputs"] and cell()["execution_count"], "the first run")
    # The run waits for input after its first line: it is still running while we look.
    code = "print('first', flush=True)\ninput()\nprint('second')"
    await ada.send("code_update", {"code": code})
    await ada.send("execute", {"cell_id": cell_id})
    request = await ada.expect("input_request")
    # While the cell runs, its old outputs are gone and the new ones arrive as printed.
    await eventually(
        lambda: [o.get("text") for o in cell()["outputs"]] == ["first\n"],
        "the first line in the document during the run",
    )
    assert cell()["execution_state"] == "running" and cell()["execution_count"] is None
    await ada.send("input_reply", {"value": "", "execution_id": request["execution_id"]})
    _, finished = await until_finished(ada)
    await eventually(lambda: cell()["execution_state"] == "idle", "the end of the run")
    # The empty answer is echoed, as a terminal would.
    assert [o.get("text") for o in cell()["outputs"]] == ["first\n\nsecond\n"]
    assert cell()["execution_count"] == finished["execution_count"]
    ada.close()
    await yjs.close()


async def test_a_run_keeps_writing_into_the_live_document_after_its_starter_left(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, _ = await JsonClient.join(server, sid, "ada-h", "Ada")
    yjs = await YjsClient.connect(server, sid, client_id="yjs-h")
    await eventually(lambda: yjs.cell_count == 1, "sync")
    cell_id = await first_cell_id(yjs)
    await yjs.close()
    code = "import time\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b')"
    await ada.send("execute", {"cell_id": cell_id, "code": code})
    await ada.expect("execution_started")
    ada.close()  # nobody is connected now; the run goes on
    late = await YjsClient.connect(server, sid, client_id="yjs-late")

    def cell() -> dict[str, Any]:
        return dict(YNotebook(late.doc).ycells[0].to_py() or {}) if late.cell_count else {}

    await eventually(lambda: cell().get("execution_state") == "idle", "the end of the run")
    assert [o.get("text") for o in cell()["outputs"]] == ["a\nb\n"]
    await late.close()


async def test_runs_over_http_are_broadcast(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    watcher, _ = await JsonClient.join(server, sid, "w-1", "Watcher")
    body = await api.execute(sid, "print('over http')")
    before, finished = await until_finished(watcher)
    assert finished["execution_id"] == body["execution_id"] and finished["cell_id"] is None
    assert any(
        m["type"] == "output" and m["data"]["output"].get("text") == "over http\n" for m in before
    )
    watcher.close()


async def test_interrupt_and_input_from_another_participant(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, _ = await JsonClient.join(server, sid, "ada-i", "Ada")
    alan, _ = await JsonClient.join(server, sid, "alan-i", "Alan")
    await ada.send("execute", {"code": "x = 41", "language": "python"})
    await until_finished(alan)

    await ada.send("execute", {"code": "while True:\n    pass", "language": "python"})
    started = await alan.expect("execution_started")
    # An interrupt names the run it means: another run is not stopped by it.
    await alan.send("interrupt", {"execution_id": "f" * 32})
    error = await alan.expect("error")
    assert error["code"] == "not_running" and "f" * 32 in error["message"]
    await alan.send("interrupt", {"execution_id": started["execution_id"]})
    _, finished = await until_finished(alan)
    assert finished["status"] == "error" and finished["state_kept"] is True
    assert finished["execution_id"] == started["execution_id"]
    await alan.send("interrupt", {"language": "python"})
    assert (await alan.expect("error"))["code"] == "not_running"

    await ada.send("execute", {"code": "name = input('Name? ')\nprint('hi', name, x + 1)"})
    request = await alan.expect("input_request")
    assert request["prompt"] == "Name? "
    # Who joins while the run waits sees the request too.
    late, state = await JsonClient.join(server, sid, "late-i", "Late")
    assert [r["execution_id"] for r in state["inputs"]] == [request["execution_id"]]
    assert state["inputs"][0]["prompt"] == "Name? "
    late.close()
    await alan.send("input_reply", {"value": "Grace"})
    before, finished = await until_finished(alan)
    assert finished["status"] == "ok"
    assert "hi Grace 42\n" in "".join(
        m["data"]["output"].get("text", "") for m in before if m["type"] == "output"
    )
    ada.close()
    alan.close()


async def test_restart_kernel_from_a_participant(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, _ = await JsonClient.join(server, sid, "ada-k", "Ada")
    await ada.send("execute", {"code": "y = 1", "language": "python"})
    await until_finished(ada)
    assert (await ada.expect("kernel_status"))["state"] == "idle"  # after the run
    await ada.send("restart_kernel", {"language": "python"})
    assert (await ada.expect("kernel_status"))["state"] == "restarting"
    assert (await ada.expect("kernel_status"))["state"] == "idle"
    await ada.send("execute", {"code": "y", "language": "python"})
    before, finished = await until_finished(ada)
    assert finished["status"] == "error"
    ada.close()


async def test_run_messages_with_bad_input(server: RunningServer, session: dict[str, Any]) -> None:
    sid = session["session_id"]
    conn = await websocket_connect(ws_url(server, f"/ws/sessions/{sid}"))
    client = JsonClient(conn)
    await client.send("execute", {"code": "1"})
    assert "join_session before execute" in (await client.expect("error"))["message"]
    await client.send("join_session", {"client_id": "bad-1", "display_name": "Bad"})
    await client.expect("session_state")
    await client.send("execute", {"cell_id": "nope"})
    assert "no cell 'nope'" in (await client.expect("error"))["message"]
    await client.send("execute", {})
    assert "needs a cell_id, or code" in (await client.expect("error"))["message"]
    await client.send("interrupt", {})
    assert (await client.expect("error"))["code"] == "not_running"
    await client.send("input_reply", {"value": "x"})
    assert (await client.expect("error"))["code"] == "no_input_request"
    await client.send("execute", {"code": "1", "language": "cobol"})
    assert (await client.expect("error"))["code"] == "unknown_language"
    client.close()


FRONTEND = Path(__file__).parents[2] / "kernelpad" / "web" / "frontend"


async def test_a_node_y_websocket_client_and_python_clients_converge(
    server: RunningServer, api: Api
) -> None:
    """An unmodified y-websocket WebsocketProvider (Node.js) joins the session's room, as the
    participant its params name, and types while two pycrdt clients type too: every copy ends
    with the same text, all edits in it."""
    sid = (await api.create_session(max_participants=4))["session_id"]
    watcher, _ = await JsonClient.join(server, sid, "watch-n", "Watcher")
    python_clients = [await YjsClient.connect(server, sid) for _ in range(2)]
    for client in python_clients:

        def synced(c: YjsClient = client) -> bool:
            return c.cell_count == 1

        await eventually(synced, "sync")
    script = (Path(__file__).parent / "yjs_client.mjs").read_text()
    node = await asyncio.create_subprocess_exec(
        "node",
        "--input-type=module",
        cwd=FRONTEND,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "KP_URL": ws_url(server, "/ws/yjs"),
            "KP_ROOM": sid,
            "KP_TAG": "n",
            "KP_EDITS": "30",
            "KP_PARAMS": json.dumps({"client_id": "node-1", "display_name": "Node"}),
        },
    )
    writer = asyncio.ensure_future(node.communicate(script.encode()))
    for round_ in range(30):
        for number, client in enumerate(python_clients):
            client.insert(0 if number else len(client.source), f"<p{number}:{round_}>")
        await asyncio.sleep(0.002)
    out, err = await asyncio.wait_for(writer, 60)
    assert node.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["cells"] == 1
    await eventually(
        lambda: all(c.source == result["source"] for c in python_clients), "convergence"
    )
    for tag in ("n", "p0", "p1"):
        assert sum(result["source"].count(f"<{tag}:{i}>") for i in range(30)) == 30, tag
    names = set()
    while "Node" not in names:
        names.add((await watcher.expect("participant_joined"))["display_name"])
    watcher.close()
    for client in python_clients:
        await client.close()


async def test_participants_show_their_connection_and_ending_closes_sockets(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, _ = await JsonClient.join(server, sid, "ada-e", "Ada")
    yjs = await YjsClient.connect(server, sid)
    details = (await api.get(f"/api/v1/sessions/{sid}")).json
    states = {p["client_id"]: p["connected"] for p in details["participants"]}
    assert states["ada-e"] is True
    assert [v for k, v in states.items() if k.startswith("host-")] == [False]
    await api.delete(f"/api/v1/sessions/{sid}", token=session["host_token"])
    ended = await ada.expect("session_ended")
    assert ended["reason"] == "ended by host"
    assert await ada.conn.read_message() is None and ada.conn.close_code == 4410
    await eventually(lambda: yjs._reader.done(), "the Yjs connection to close")
    assert yjs.conn.close_code == 4410
    refused = await websocket_connect(ws_url(server, f"/ws/sessions/{sid}"))
    assert await refused.read_message() is None and refused.close_code == 4410
    refused.close()
    ada.close()
    await yjs.close()


async def test_awareness_shows_who_is_here_and_who_left(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, alan = await YjsClient.connect(server, sid), await YjsClient.connect(server, sid)
    mine = Awareness(ada.doc)
    mine.set_local_state({"user": {"name": "Ada", "color": "#e91e63"}, "cursor": {"index": 3}})
    await ada.conn.write_message(
        create_awareness_message(mine.encode_awareness_update([mine.client_id])), binary=True
    )

    def names(client: YjsClient) -> set[str]:
        return {s["user"]["name"] for s in client.others.states.values() if s and "user" in s}

    await eventually(lambda: names(alan) == {"Ada"}, "Ada's presence at Alan's")
    state = alan.others.states[mine.client_id]
    assert state["user"]["color"] == "#e91e63" and state["cursor"] == {"index": 3}
    late = await YjsClient.connect(server, sid)
    await eventually(lambda: names(late) == {"Ada"}, "Ada's presence for who joins later")
    await ada.close()
    await eventually(lambda: names(alan) == set(), "Ada to be gone at Alan's")
    await alan.close()
    await late.close()


async def test_typing_a_character_and_deleting_it_again(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, state = await JsonClient.join(server, sid, "ada-u", "Ada")
    bob, _ = await JsonClient.join(server, sid, "bob-u", "Bob")
    base = state["code"]
    await ada.send("code_update", {"code": base + "x"})
    assert (await bob.expect("code_update"))["code"] == base + "x"
    await ada.send("code_update", {"code": base})
    assert (await bob.expect("code_update"))["code"] == base
    ada.close()
    bob.close()


async def test_typing_during_a_run_survives_its_outputs(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    yjs = await YjsClient.connect(server, sid)
    await eventually(lambda: yjs.cell_count == 1, "sync")
    ada, _ = await JsonClient.join(server, sid, "ada-t", "Ada")
    await ada.send("code_update", {"code": "import time\ntime.sleep(0.5)\nprint('ran')\n"})
    await eventually(lambda: yjs.source.startswith("import time"), "the code at the Yjs client")
    await ada.send("execute", {"cell_id": await first_cell_id(yjs)})
    await ada.expect("execution_started")
    yjs.insert(len(yjs.source), "# typed while it ran\n")
    await until_finished(ada)
    await eventually(lambda: YNotebook(yjs.doc).get()["cells"][0]["outputs"], "outputs")
    assert yjs.source.endswith("# typed while it ran\n")
    ada.close()
    await yjs.close()


async def test_a_large_rewrite_is_applied(server: RunningServer, session: dict[str, Any]) -> None:
    sid = session["session_id"]
    ada, _ = await JsonClient.join(server, sid, "ada-l", "Ada")
    bob, _ = await JsonClient.join(server, sid, "bob-l", "Bob")
    big = "".join(f"line_{i} = {i * 7919 % 10007}\n" for i in range(2500))  # about 40 KB
    await ada.send("code_update", {"code": big})
    assert (await bob.expect("code_update"))["code"] == big
    other = big.replace("line_", "row_")
    await ada.send("code_update", {"code": other})
    assert (await bob.expect("code_update"))["code"] == other
    ada.close()
    bob.close()


async def test_nobody_joins_as_the_host_without_the_token(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    host_id = session["participants"][0]["client_id"]
    mallory = JsonClient(await websocket_connect(ws_url(server, f"/ws/sessions/{sid}")))
    await mallory.send("join_session", {"client_id": host_id, "display_name": "Mallory"})
    error = await mallory.expect("error")
    assert error["code"] == "forbidden" and "host token" in error["message"]
    host, state = await JsonClient.join_with(server, sid, host_id, "Grace", session["host_token"])
    assert [p["role"] for p in state["participants"]] == ["host"]
    details = (await api.get(f"/api/v1/sessions/{sid}")).json["participants"]
    assert [(p["display_name"], p["role"]) for p in details if p["client_id"] == host_id] == [
        ("Grace", "host")
    ]
    mallory.close()
    host.close()


async def test_password_input_is_not_shown(server: RunningServer, session: dict[str, Any]) -> None:
    sid = session["session_id"]
    ada, _ = await JsonClient.join(server, sid, "ada-p", "Ada")
    bob, _ = await JsonClient.join(server, sid, "bob-p", "Bob")
    await ada.send("execute", {"code": "import getpass\nsecret = getpass.getpass('Password: ')"})
    request = await bob.expect("input_request")
    assert request["password"] is True
    await bob.send("input_reply", {"value": "hunter2"})
    before, finished = await until_finished(bob)
    assert finished["status"] == "ok"
    assert "hunter2" not in json.dumps(before)
    ada.close()
    bob.close()


async def test_junk_in_the_cells_list_does_not_break_the_session(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    yjs = await YjsClient.connect(server, sid)
    await eventually(lambda: yjs.cell_count == 1, "sync")
    yjs.doc.get("cells", type=Array).insert(0, "junk")
    await asyncio.sleep(0.2)
    ada, state = await JsonClient.join(server, sid, "ada-j", "Ada")
    assert state["code"] == session["code"]
    await ada.send("code_update", {"code": "still works\n"})
    await eventually(
        lambda: "still works\n" in yjs.doc.get("cells", type=Array).to_py()[1]["source"], "the edit"
    )
    ada.close()
    await yjs.close()


async def test_kernel_status_starting_and_dead_and_input_for_a_given_run(
    server: RunningServer, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    ada, _ = await JsonClient.join(server, sid, "ada-s", "Ada")
    await ada.send("execute", {"code": "1", "language": "python"})
    before, _ = await until_finished(ada)
    states = [m["data"]["state"] for m in before if m["type"] == "kernel_status"]
    assert states[:2] == ["starting", "busy"]
    await ada.send("execute", {"code": "import os\nos._exit(1)", "language": "python"})
    _, finished = await until_finished(ada)
    assert finished["status"] == "kernel_died"
    after = [(await ada.expect("kernel_status"))["state"] for _ in range(3)]
    assert after == ["dead", "restarting", "idle"]
    await ada.send("execute", {"code": "print(input('Who? '))", "language": "python"})
    request = await ada.expect("input_request")
    await ada.send("input_reply", {"value": "Ada", "execution_id": "not-this-run"})
    assert (await ada.expect("error"))["code"] == "no_input_request"
    await ada.send("input_reply", {"value": "Ada", "execution_id": request["execution_id"]})
    before, finished = await until_finished(ada)
    assert finished["status"] == "ok"
    ada.close()
