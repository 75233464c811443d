"""Tickets instead of tokens in the Yjs socket's URL: ``POST /api/v1/sessions/{id}/tickets``
(the token in the Authorization header) gives a ticket that lets one connection in as that
participant, once, at that session, within 30 seconds. A URL is shown in the browser's console
and written to proxies' access logs; a used or stale ticket there is worth nothing."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from tests.conftest import Api, RunningServer
from tests.web.clients import hang_up, ws_url


async def register(api: Api, sid: str, name: str = "Alan") -> dict[str, Any]:
    response = await api.post(f"/api/v1/sessions/{sid}/participants", {"display_name": name})
    assert response.status == 201, response.body
    return response.json  # type: ignore[no-any-return]


async def ticket_for(api: Api, sid: str, client_id: str, token: str | None) -> Any:
    return await api.post(f"/api/v1/sessions/{sid}/tickets", {"client_id": client_id}, token=token)


async def yjs_answer(server: RunningServer, sid: str, **params: str) -> int | None:
    """Connect to the Yjs socket named by ``params``: None if let in (the server greets it),
    else the close code it was refused with."""
    query = urllib.parse.urlencode(params)
    conn = await websocket_connect(ws_url(server, f"/ws/yjs/{sid}?{query}"))
    try:
        if await asyncio.wait_for(conn.read_message(), 10) is None:
            return conn.close_code
        return None
    finally:
        await hang_up(conn)


async def roles_connected(api: Api, sid: str) -> dict[str, str]:
    participants = (await api.get(f"/api/v1/sessions/{sid}")).json["participants"]
    return {p["client_id"]: p["role"] for p in participants if p["connected"]}


async def test_a_ticket_lets_its_participant_in_once(server: RunningServer) -> None:
    api = server.api
    sid = (await api.create_session())["session_id"]
    alan = await register(api, sid)
    response = await ticket_for(api, sid, alan["client_id"], alan["participant_token"])
    assert response.status == 201, response.body
    assert response.json["expires_in"] == 30
    ticket = response.json["ticket"]
    assert alan["participant_token"] not in ticket
    named = {"client_id": alan["client_id"], "display_name": "Alan", "ticket": ticket}
    assert await yjs_answer(server, sid, **named) is None
    assert await yjs_answer(server, sid, **named) == 4401


async def test_a_host_ticket_makes_its_connection_the_host(server: RunningServer) -> None:
    api = server.api
    session = await api.create_session()
    sid = session["session_id"]
    ticket = (await ticket_for(api, sid, "c-grace", session["host_token"])).json["ticket"]
    query = urllib.parse.urlencode({"client_id": "c-grace", "display_name": "G", "ticket": ticket})
    conn = await websocket_connect(ws_url(server, f"/ws/yjs/{sid}?{query}"))
    try:
        assert await asyncio.wait_for(conn.read_message(), 10) is not None
        assert await roles_connected(api, sid) == {"c-grace": "host"}
    finally:
        await hang_up(conn)


async def test_a_ticket_expires(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    api = server.api
    sid = (await api.create_session())["session_id"]
    alan = await register(api, sid)
    ticket = (await ticket_for(api, sid, alan["client_id"], alan["participant_token"])).json
    store = server.server.app.settings["tickets"]  # type: ignore[union-attr]
    later = store.clock() + ticket["expires_in"] + 1
    monkeypatch.setattr(store, "clock", lambda: later)
    answer = await yjs_answer(server, sid, client_id=alan["client_id"], ticket=ticket["ticket"])
    assert answer == 4401


async def test_a_ticket_is_bound_to_its_session_and_participant(server: RunningServer) -> None:
    api = server.api
    sid = (await api.create_session())["session_id"]
    other = (await api.create_session())["session_id"]
    alan = await register(api, sid)

    async def fresh() -> str:
        response = await ticket_for(api, sid, alan["client_id"], alan["participant_token"])
        return str(response.json["ticket"])

    ticket = await fresh()
    assert await yjs_answer(server, other, client_id=alan["client_id"], ticket=ticket) == 4401
    # Spent by the wrong try: an attacker who sees it cannot use it either.
    assert await yjs_answer(server, sid, client_id=alan["client_id"], ticket=ticket) == 4401
    assert await yjs_answer(server, sid, client_id="c-someone-else", ticket=await fresh()) == 4401
    # Without a client_id, it is the ticket's participant.
    assert await yjs_answer(server, sid, display_name="Alan", ticket=await fresh()) is None


async def test_only_the_participant_or_the_host_gets_a_ticket(server: RunningServer) -> None:
    api = server.api
    session = await api.create_session()
    sid, host_token = session["session_id"], session["host_token"]
    alan, bo = await register(api, sid, "Alan"), await register(api, sid, "Bo")

    async def status(client_id: str, token: str | None, at: str = sid) -> tuple[int, str]:
        response = await ticket_for(api, at, client_id, token)
        return response.status, response.json.get("error", {}).get("code", "")

    assert await status(alan["client_id"], None) == (401, "not_authenticated")
    assert await status(alan["client_id"], "a-guess") == (403, "forbidden")
    assert await status(alan["client_id"], bo["participant_token"]) == (403, "forbidden")
    assert await status(alan["client_id"], host_token) == (201, "")
    assert await status(alan["client_id"], alan["participant_token"], "nosuch") == (
        404,
        "session_not_found",
    )
    bo_path = f"/api/v1/sessions/{sid}/participants/{bo['client_id']}"
    assert (await api.delete(bo_path, token=host_token)).status == 200
    assert await status(bo["client_id"], bo["participant_token"]) == (403, "participant_removed")
    assert (await api.delete(f"/api/v1/sessions/{sid}", token=host_token)).status == 200
    assert await status(alan["client_id"], alan["participant_token"]) == (409, "session_ended")


async def test_tokens_in_the_query_still_work_for_older_clients(server: RunningServer) -> None:
    """The original protocol named the host by ``host_token`` in the query: still taken."""
    api = server.api
    session = await api.create_session()
    sid = session["session_id"]
    query = {"client_id": "c-old", "display_name": "Old", "host_token": session["host_token"]}
    conn = await websocket_connect(ws_url(server, f"/ws/yjs/{sid}?{urllib.parse.urlencode(query)}"))
    try:
        assert await asyncio.wait_for(conn.read_message(), 10) is not None
        assert await roles_connected(api, sid) == {"c-old": "host"}
    finally:
        await hang_up(conn)
