"""A person's name, wherever one comes in: creating a session (host_name), joining over HTTP
(display_name), the JSON socket's join_session and the Yjs socket's query. Names that hold
characters that are not seen but change what is seen (a right-to-left override, zero-width
characters, line separators) are refused with the same message everywhere. No kernel."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from kernelpad.config import Settings
from tests.conftest import Api, RunningServer, eventually, make_settings
from tests.web.clients import JsonClient, YjsClient, ws_url


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("data"), kernel_pool_size={"python": 0})


# Each with the code point the message names.
REFUSED = {
    "Alan\u202e(tsoh)": "U+202E",  # right-to-left override: reads "Alan (host)"
    "Ada\u2066Grace": "U+2066",  # left-to-right isolate
    "Gr\u200bace": "U+200B",  # zero-width space
    "\ufeffGrace": "U+FEFF",  # byte order mark
    "Alan\u00ad": "U+00AD",  # soft hyphen
    "Alan\u2028Turing": "U+2028",  # line separator
    "Alan\u2029Turing": "U+2029",  # paragraph separator
}
ACCEPTED = [
    "Zoë Ångström",
    "李雷",
    "Ada 🚀",
    "O'Brien-Smith",
    "  Grace  ",
    "Ada \U0001f469\u200d\U0001f4bb",  # one emoji, joined by ZWJ
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with ZWNJ
]


def says_why(message: str, field: str, code: str) -> None:
    assert field in message and code in message and "invisible" in message, message


@pytest.mark.parametrize("name", REFUSED)
async def test_rest_refuses_such_a_host_name_and_display_name(api: Api, name: str) -> None:
    response = await api.post("/api/v1/sessions", {"host_name": name})
    assert response.status == 422, response.body
    assert response.json["error"]["code"] == "validation_error"
    says_why(response.json["error"]["message"], "host_name", REFUSED[name])
    session = await api.create_session()
    response = await api.post(
        f"/api/v1/sessions/{session['session_id']}/participants", {"display_name": name}
    )
    assert response.status == 422, response.body
    says_why(response.json["error"]["message"], "display_name", REFUSED[name])
    assert [p["display_name"] for p in (await session_of(api, session))["participants"]] == [
        "Grace"
    ]


@pytest.mark.parametrize("name", REFUSED)
async def test_the_json_socket_refuses_such_a_display_name(
    server: RunningServer, api: Api, name: str
) -> None:
    session = await api.create_session()
    conn = await websocket_connect(ws_url(server, f"/ws/sessions/{session['session_id']}"))
    client = JsonClient(conn)
    await client.send("join_session", {"client_id": "c-name", "display_name": name})
    message = await client.receive()
    assert message["type"] == "error", message
    assert message["data"]["code"] == "validation_error"
    says_why(message["data"]["message"], "display_name", REFUSED[name])
    client.close()
    assert len((await session_of(api, session))["participants"]) == 1


@pytest.mark.parametrize("name", REFUSED)
async def test_the_yjs_socket_refuses_such_a_display_name(
    server: RunningServer, api: Api, name: str
) -> None:
    session = await api.create_session()
    query = urllib.parse.urlencode({"client_id": "c-name", "display_name": name})
    conn = await websocket_connect(ws_url(server, f"/ws/yjs/{session['session_id']}?{query}"))
    assert await conn.read_message() is None
    assert conn.close_code == 4400
    says_why(conn.close_reason or "", "display_name", REFUSED[name])
    conn.close()
    assert len((await session_of(api, session))["participants"]) == 1


async def test_names_in_any_script_are_taken_everywhere(server: RunningServer, api: Api) -> None:
    for name in ACCEPTED:
        session = await api.create_session(host_name=name)
        assert session["host_name"] == name.strip()
        sid = session["session_id"]
        response = await api.post(f"/api/v1/sessions/{sid}/participants", {"display_name": name})
        assert response.status == 201 and response.json["display_name"] == name.strip()
        client, _ = await JsonClient.join(server, sid, "c-json", name)
        yjs = await YjsClient.connect(server, sid, client_id="c-yjs", display_name=name)
        # The server sends the document once the Yjs client has joined.
        await eventually(lambda: yjs.cell_count > 0, "the Yjs client to join")  # noqa: B023
        names = [p["display_name"] for p in (await session_of(api, session))["participants"]]
        assert names == [name.strip()] * 4
        client.close()
        await yjs.close()


async def session_of(api: Api, session: dict[str, Any]) -> dict[str, Any]:
    return (await api.get(f"/api/v1/sessions/{session['session_id']}")).json  # type: ignore[no-any-return]
