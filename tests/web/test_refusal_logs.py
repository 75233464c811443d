"""Refusals in the operator's log: whichever way a request came in (REST, the JSON socket, the
Yjs socket, or past the Host check), a refusal of permission or of a limit is a WARNING that
names the session and who asked (client_id and role, where known), as text and as JSON fields.
An operator watching warnings sees someone guessing tokens or hammering a limit; the mistakes
of an honest client stay at INFO."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pycrdt import Doc, create_sync_message
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from kernelpad.logs import JsonFormatter
from tests.conftest import Api, RunningServer, eventually, make_settings, running_server
from tests.web.clients import JsonClient, hang_up, ws_url

MAX_MESSAGE = 4096


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("data"),
        max_request_size=MAX_MESSAGE,
        ws_messages_per_second=5,
        rate_limit_executions_per_minute=1,
        kernel_pool_size={"python": 1},
    )
    async with running_server(settings) as running:
        yield running


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="kernelpad")
    return caplog


def lines(caplog: pytest.LogCaptureFixture, level: int, session_id: str) -> list[dict[str, Any]]:
    """The log records about ``session_id`` at ``level``, as the JSON log writes them."""
    return [
        json.loads(JsonFormatter().format(record))
        for record in caplog.records
        if record.levelno == level and getattr(record, "session_id", None) == session_id
    ]


async def warned(
    caplog: pytest.LogCaptureFixture,
    session_id: str,
    *words: str,
    client_id: str | None = None,
    role: str | None = None,
) -> dict[str, Any]:
    """The WARNING about ``session_id`` whose message has ``words``: it names the session (and
    the participant, where given) in its text and in its fields."""

    def found() -> list[dict[str, Any]]:
        return [
            line
            for line in lines(caplog, logging.WARNING, session_id)
            if all(word in line["message"] for word in words)
        ]

    await eventually(found, f"a warning with {words} about {session_id}", timeout=10)
    line = found()[-1]
    assert session_id in line["message"], line
    if client_id is not None:
        assert line.get("client_id") == client_id and client_id in line["message"], line
    if role is not None:
        assert line.get("role") == role and role in line["message"], line
    return line


async def new_session(api: Api) -> tuple[str, str]:
    session = await api.create_session()
    return session["session_id"], session["host_token"]


# REST


async def test_rest_refusals_are_warnings(
    server: RunningServer, logged: pytest.LogCaptureFixture
) -> None:
    api = server.api
    sid, host = await new_session(api)
    # A wrong token where the host's is needed.
    assert (await api.get(f"/api/v1/sessions/{sid}/notes", token="a-guess")).status == 403
    await warned(logged, sid, "403", "forbidden")
    # A candidate running code the host has turned off.
    await api.patch(f"/api/v1/sessions/{sid}", {"candidate_execution": False}, token=host)
    assert (await api.post(f"/api/v1/sessions/{sid}/execute", {"code": "1"})).status == 403
    await warned(logged, sid, "execution_disabled", role="candidate")
    # Too large, not JSON.
    big = json.dumps({"notes": "x" * MAX_MESSAGE})
    assert (await api.put(f"/api/v1/sessions/{sid}/notes", body=big, token=host)).status == 413
    await warned(logged, sid, "413", "payload_too_large")
    plain = {"Content-Type": "text/plain"}
    notes = json.dumps({"notes": "x"})
    put = await api.put(f"/api/v1/sessions/{sid}/notes", body=notes, token=host, headers=plain)
    assert put.status == 415
    await warned(logged, sid, "415")
    # A ticket asked for another participant.
    ticket = await api.post(f"/api/v1/sessions/{sid}/tickets", {"client_id": "c-x"}, token="no")
    assert ticket.status == 403
    await warned(logged, sid, "forbidden", client_id="c-x")


async def test_the_rate_limit_is_a_warning(
    server: RunningServer, logged: pytest.LogCaptureFixture
) -> None:
    api = server.api
    sid, host = await new_session(api)
    path = f"/api/v1/sessions/{sid}/execute"
    assert (await api.post(path, {"code": "1"}, token=host)).status == 200
    again = await api.post(path, {"code": "1"}, token=host)
    assert again.status == 429
    await warned(logged, sid, "429", "rate_limited", role="host")


async def test_an_honest_mistake_stays_at_info(
    server: RunningServer, logged: pytest.LogCaptureFixture
) -> None:
    api = server.api
    sid, host = await new_session(api)
    response = await api.patch(f"/api/v1/sessions/{sid}", {"editing_locked": "yes"}, token=host)
    assert response.status == 422
    await eventually(
        lambda: any(
            "validation_error" in line["message"] for line in lines(logged, logging.INFO, sid)
        ),
        "the validation error at INFO",
    )
    assert not lines(logged, logging.WARNING, sid)


async def test_a_host_refusal_names_the_session_of_the_path(
    server: RunningServer, logged: pytest.LogCaptureFixture
) -> None:
    sid, _ = await new_session(server.api)
    response = await server.api.get(f"/api/v1/sessions/{sid}", headers={"Host": "evil.example"})
    assert response.status == 400
    await warned(logged, sid, "evil.example")


# The JSON socket


async def test_json_socket_refusals_are_warnings(
    server: RunningServer, logged: pytest.LogCaptureFixture
) -> None:
    api = server.api
    sid, host = await new_session(api)
    grace, _ = await JsonClient.join_with(server, sid, "c-grace", "Grace", host)
    alan, state = await JsonClient.join(server, sid, "c-alan", "Alan")
    await api.patch(f"/api/v1/sessions/{sid}", {"editing_locked": True}, token=host)
    await alan.send("code_update", {"code": "x = 1", "base_version": state["version"]})
    assert (await alan.expect("error"))["code"] == "editing_locked"
    await warned(logged, sid, "editing_locked", client_id="c-alan", role="candidate")
    # The host's client_id without the host token.
    conn = await websocket_connect(ws_url(server, f"/ws/sessions/{sid}"))
    impostor = JsonClient(conn)
    await impostor.send("join_session", {"client_id": "c-grace", "display_name": "Grace"})
    assert (await impostor.expect("error"))["code"] == "forbidden"
    await warned(logged, sid, "forbidden", client_id="c-grace")
    await hang_up(impostor.conn)
    # Too fast, then too big.
    for n in range(7):
        await alan.send("input_reply", {"value": str(n)})
    await warned(logged, sid, "throttled", client_id="c-alan", role="candidate")
    await alan.conn.write_message(json.dumps({"type": "x", "data": {"pad": "x" * MAX_MESSAGE}}))
    await warned(logged, sid, "1009", client_id="c-alan", role="candidate")
    await hang_up(alan.conn)
    await hang_up(grace.conn)


# The Yjs socket


async def yjs(server: RunningServer, sid: str, **params: str) -> WebSocketClientConnection:
    query = urllib.parse.urlencode(params)
    return await websocket_connect(ws_url(server, f"/ws/yjs/{sid}?{query}"))


async def closed(conn: WebSocketClientConnection) -> int | None:
    """The code the server closed ``conn`` with."""
    while await asyncio.wait_for(conn.read_message(), 10) is not None:
        pass
    await hang_up(conn)
    return conn.close_code


async def test_yjs_refusals_are_warnings(
    server: RunningServer, logged: pytest.LogCaptureFixture
) -> None:
    api = server.api
    sid, host = await new_session(api)
    # A ticket that is no ticket.
    conn = await yjs(server, sid, client_id="c-bo", display_name="Bo", ticket="made-up")
    assert await closed(conn) == 4401
    await warned(logged, sid, "4401", client_id="c-bo")
    # Not Yjs, then too big.
    conn = await yjs(server, sid, client_id="c-alan", display_name="Alan")
    await conn.write_message(b"\x00\x02\xff\xff\xff", binary=True)
    assert await closed(conn) == 1002
    await warned(logged, sid, "1002", client_id="c-alan", role="candidate")
    conn = await yjs(server, sid, client_id="c-alan", display_name="Alan")
    await conn.write_message(create_sync_message(Doc()), binary=True)
    await conn.write_message(b"\x01" + b"x" * MAX_MESSAGE, binary=True)
    assert await closed(conn) == 1009
    await warned(logged, sid, "1009", client_id="c-alan", role="candidate")


async def test_a_full_session_is_a_warning(
    server: RunningServer, logged: pytest.LogCaptureFixture
) -> None:
    session = await server.api.create_session(max_participants=1)
    sid = session["session_id"]
    first = await yjs(server, sid, client_id="c-first", display_name="First")
    assert await asyncio.wait_for(first.read_message(), 10) is not None
    second = await yjs(server, sid, client_id="c-second", display_name="Second")
    assert await closed(second) == 4403
    await warned(logged, sid, "session_full", client_id="c-second")
    await hang_up(first)


async def test_a_rebound_socket_is_a_warning(
    server: RunningServer, logged: pytest.LogCaptureFixture
) -> None:
    sid, _ = await new_session(server.api)
    forged = "evil.example"
    url = ws_url(server, f"/ws/yjs/{sid}")
    with pytest.raises(HTTPClientError):
        await websocket_connect(
            HTTPRequest(url, headers={"Host": forged, "Origin": f"http://{forged}"})
        )
    await warned(logged, sid, forged)
