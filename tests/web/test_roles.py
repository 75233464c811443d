"""Interviewer and candidate: what only the host may do, over HTTP and both sockets, and the
participant tokens that keep one participant from being taken for another."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from pycrdt import Awareness, create_awareness_message
from tornado.websocket import websocket_connect

from kernelpad.config import Settings
from tests.conftest import Api, RunningServer, eventually, make_settings
from tests.web.clients import JsonClient, YjsClient, ws_url


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("data"), kernel_pool_size={"python": 1})


@pytest.fixture
async def session(api: Api) -> dict[str, Any]:
    return await api.create_session()


async def register(api: Api, session_id: str, name: str, **fields: Any) -> dict[str, Any]:
    response = await api.post(
        f"/api/v1/sessions/{session_id}/participants", {"display_name": name, **fields}
    )
    assert response.status == 201, response.body
    return response.json  # type: ignore[no-any-return]


async def join_json(
    server: RunningServer, session_id: str, client_id: str, **tokens: str
) -> JsonClient:
    conn = await websocket_connect(ws_url(server, f"/ws/sessions/{session_id}"))
    client = JsonClient(conn)
    await client.send("join_session", {"client_id": client_id, "display_name": "Someone", **tokens})
    return client


async def test_a_registered_participant_needs_its_token(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid = session["session_id"]
    alan = await register(api, sid, "Alan")
    assert alan["role"] == "candidate" and alan["participant_token"]
    # Without the token (or with another's) nobody joins as Alan.
    thief = await join_json(server, sid, alan["client_id"])
    error = await thief.expect("error")
    assert error["code"] == "forbidden" and "join link" in error["message"]
    other = await api.create_session()
    stranger = await register(api, other["session_id"], "Stranger")
    forged = await join_json(
        server, sid, alan["client_id"], participant_token=stranger["participant_token"]
    )
    assert (await forged.expect("error"))["code"] == "forbidden"
    # With it, on both sockets.
    real = await join_json(
        server, sid, alan["client_id"], participant_token=alan["participant_token"]
    )
    state = await real.expect("session_state")
    assert state["role"] == "candidate"
    yjs = await YjsClient.connect(
        server, sid, client_id=alan["client_id"], participant_token=alan["participant_token"]
    )
    await eventually(lambda: yjs.cell_count == 1, "sync")
    refused = await websocket_connect(
        ws_url(server, f"/ws/yjs/{sid}?client_id={alan['client_id']}")
    )
    assert await refused.read_message() is None and refused.close_code == 4403
    refused.close()
    # Coming back over HTTP also needs the token.
    again = await api.post(
        f"/api/v1/sessions/{sid}/participants",
        {"display_name": "Alan", "client_id": alan["client_id"]},
    )
    assert again.status == 403
    for client in (thief, forged, real):
        client.close()
    await yjs.close()


async def test_the_host_removes_a_participant_for_good(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid, host_token = session["session_id"], session["host_token"]
    alan = await register(api, sid, "Alan")
    token = alan["participant_token"]
    client = await join_json(server, sid, alan["client_id"], participant_token=token)
    await client.expect("session_state")
    yjs = await YjsClient.connect(server, sid, client_id=alan["client_id"], participant_token=token)
    await eventually(lambda: yjs.cell_count == 1, "sync")
    path = f"/api/v1/sessions/{sid}/participants/{alan['client_id']}"
    # Not for candidates.
    assert (await api.delete(path)).status == 401
    assert (await api.delete(path, token=token)).status == 403
    removed = await api.delete(path, token=host_token)
    assert removed.status == 200 and removed.json["removed"] is True
    error = await client.expect("error")
    assert error["code"] == "removed"
    assert await client.conn.read_message() is None and client.conn.close_code == 4403
    await eventually(lambda: yjs._reader.done(), "the Yjs connection to close")
    assert yjs.conn.close_code == 4403
    # The old token is worth nothing now.
    back = await join_json(server, sid, alan["client_id"], participant_token=token)
    assert "removed" in (await back.expect("error"))["message"]
    listed = (await api.get(f"/api/v1/sessions/{sid}")).json["participants"]
    assert {p["client_id"]: p["removed"] for p in listed}[alan["client_id"]] is True
    host_id = next(p["client_id"] for p in listed if p["role"] == "host")
    not_host = await api.delete(f"/api/v1/sessions/{sid}/participants/{host_id}", token=host_token)
    assert not_host.status == 422
    back.close()
    client.close()
    await yjs.close()


async def test_locked_editing_leaves_only_the_host_editing(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid, host_token = session["session_id"], session["host_token"]
    host, _ = await JsonClient.join_with(server, sid, "host-l", "Grace", host_token)
    alan, _ = await JsonClient.join(server, sid, "alan-l", "Alan")
    candidate_yjs = await YjsClient.connect(server, sid, client_id="alan-y")
    await eventually(lambda: candidate_yjs.cell_count == 1, "sync")
    path = f"/api/v1/sessions/{sid}"
    assert (await api.patch(path, {"editing_locked": True})).status == 401
    locked = await api.patch(path, {"editing_locked": True}, token=host_token)
    assert locked.status == 200 and locked.json["editing_locked"] is True
    assert (await alan.expect("session_settings"))["editing_locked"] is True
    before = (await api.get(path)).json["code"]
    await alan.send("code_update", {"code": "changed by Alan"})
    assert (await alan.expect("error"))["code"] == "editing_locked"
    candidate_yjs.insert(0, "# Alan via Yjs\n")
    # A barrier: an awareness message the candidate sends after its edit, seen by another Yjs
    # client, means the server has handled the edit (one socket is read in order).
    watcher = await YjsClient.connect(server, sid, client_id="watch-l")
    presence = Awareness(candidate_yjs.doc)
    presence.set_local_state({"user": {"name": "Alan"}})
    await candidate_yjs.conn.write_message(
        create_awareness_message(presence.encode_awareness_update([presence.client_id])),
        binary=True,
    )
    await eventually(lambda: presence.client_id in watcher.others.states, "the barrier")
    await watcher.close()
    await host.send("code_update", {"code": "# by the host\n" + before})
    assert (await alan.expect("code_update"))["code"] == "# by the host\n" + before
    # The candidate's Yjs change never reached the shared document.
    assert (await api.get(path)).json["code"] == "# by the host\n" + before
    await api.patch(path, {"editing_locked": False}, token=host_token)
    await alan.expect("session_settings")
    await alan.send("code_update", {"code": "x = 1\n"})
    await eventually(lambda: _code_is(api, sid, "x = 1\n"), "Alan's edit once unlocked")
    for client in (host, alan):
        client.close()
    await candidate_yjs.close()


async def _code_is(api: Api, session_id: str, code: str) -> bool:
    return bool((await api.get(f"/api/v1/sessions/{session_id}")).json["code"] == code)


async def test_the_host_can_turn_running_code_off_for_candidates(
    server: RunningServer, api: Api, session: dict[str, Any]
) -> None:
    sid, host_token = session["session_id"], session["host_token"]
    alan, _ = await JsonClient.join(server, sid, "alan-x", "Alan")
    host, _ = await JsonClient.join_with(server, sid, "host-x", "Grace", host_token)
    await api.patch(f"/api/v1/sessions/{sid}", {"candidate_execution": False}, token=host_token)
    await alan.expect("session_settings")
    for kind, data in [
        ("execute", {"code": "1", "language": "python"}),
        ("interrupt", {}),
        ("restart_kernel", {}),
    ]:
        await alan.send(kind, data)
        assert (await alan.expect("error"))["code"] == "execution_disabled", kind
    refused = await api.post(f"/api/v1/sessions/{sid}/execute", {"code": "1"})
    assert refused.status == 403 and refused.json["error"]["code"] == "execution_disabled"
    allowed = await api.post(f"/api/v1/sessions/{sid}/execute", {"code": "1"}, token=host_token)
    assert allowed.status == 200
    await host.send("execute", {"code": "print('host runs')", "language": "python"})
    finished = await alan.expect("execution_finished")
    assert finished["status"] == "ok"
    host.close()
    alan.close()


async def test_private_notes_are_the_hosts_alone(
    server: RunningServer, api: Api, session: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sid, host_token = session["session_id"], session["host_token"]
    alan = await register(api, sid, "Alan")
    notes = "Strong on recursion; ask about complexity. SECRET-NOTE-7731"
    path = f"/api/v1/sessions/{sid}/notes"
    assert (await api.put(path, {"notes": notes})).status == 401
    assert (await api.put(path, {"notes": notes}, token=alan["participant_token"])).status == 403
    assert (await api.put(path, {"notes": notes}, token=host_token)).json == {"notes": notes}
    assert (await api.get(path, token=host_token)).json == {"notes": notes}
    assert (await api.get(path, token=alan["participant_token"])).status == 403
    # Nowhere else: not in the session's details, listings or what a socket sends.
    assert "SECRET-NOTE" not in (await api.get(f"/api/v1/sessions/{sid}")).body.decode()
    client = await join_json(
        server, sid, alan["client_id"], participant_token=alan["participant_token"]
    )
    state = await client.expect("session_state")
    assert "SECRET-NOTE" not in json.dumps(state)
    client.close()
    # Tokens in a Yjs URL (as the pad sends them) are masked in the access log too.
    yjs = await YjsClient.connect(
        server, sid, client_id=alan["client_id"], participant_token=alan["participant_token"]
    )
    await eventually(lambda: yjs.cell_count == 1, "sync")
    await yjs.close()
    assert any("participant_token=***" in r.getMessage() for r in caplog.records)
    # Tokens never reach the log.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert host_token not in logged and alan["participant_token"] not in logged


async def test_two_rule_changes_at_once_both_stay(api: Api, server: RunningServer) -> None:
    """The host locks editing while (another tab) turning running code off: both changes
    stay, in what the server enforces as in what it stores."""
    access = server.manager.access
    for _ in range(10):
        created = await api.create_session()
        sid, token = created["session_id"], created["host_token"]
        path = f"/api/v1/sessions/{sid}"
        await asyncio.gather(
            api.request("PATCH", path, {"editing_locked": True}, token=token),
            api.request("PATCH", path, {"candidate_execution": False}, token=token),
        )
        rules = access.rules(sid)
        assert (rules.editing_locked, rules.candidate_execution) == (True, False)
        stored = (await api.get(path)).json
        assert (stored["editing_locked"], stored["candidate_execution"]) == (True, False)
