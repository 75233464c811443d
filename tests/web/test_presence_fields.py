"""A presence that would restyle the other participants' pages, sent over a real Yjs socket:
the server keeps and relays it without what does not fit, so the others never receive it, and
logs what it left out. No kernel."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pycrdt import Awareness, create_awareness_message

from kernelpad.config import Settings
from tests.conftest import Api, RunningServer, eventually, make_settings
from tests.web.clients import YjsClient

OVERLAY = (
    "red; position: fixed; top: 0; left: 0; width: 100vw; height: 100vh; z-index: 99999;"
    " font-size: 4em"
)


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("data"), kernel_pool_size={"python": 0})


def watch(client: YjsClient) -> list[str]:
    """Every awareness state ``client`` is given, as JSON text, from now on."""
    seen: list[str] = []
    client.others.observe(lambda topic, change: seen.append(json.dumps(client.others.states)))
    return seen


async def say(client: YjsClient, presence: Awareness, state: dict[str, Any]) -> None:
    presence.set_local_state(state)
    update = presence.encode_awareness_update([presence.client_id])
    await client.conn.write_message(create_awareness_message(update), binary=True)


async def test_an_overlay_colour_never_reaches_the_other_client(
    server: RunningServer, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    session = await api.create_session()
    sid = session["session_id"]
    grace = await YjsClient.connect(
        server, sid, client_id="host-g", display_name="Grace", host_token=session["host_token"]
    )
    seen = watch(grace)
    # The server sends the document once a Yjs client has joined: Grace is here before
    # anything is relayed.
    await eventually(lambda: grace.cell_count > 0, "Grace to join")
    mallory = await YjsClient.connect(server, sid, client_id="c-mallory", display_name="Mallory")
    forged = Awareness(mallory.doc)
    user = {"name": "Mallory", "color": "#1976d2", "colorLight": "#1976d233"}
    with caplog.at_level(logging.WARNING, "kernelpad.sessions.room.yjs"):
        await say(mallory, forged, {"user": {**user, "color": OVERLAY}})
        await say(mallory, forged, {"user": {**user, "colorLight": OVERLAY}})
        await say(mallory, forged, {"user": {**user, "name": "Grace\u202e(tsoh)"}})
        await say(mallory, forged, {"user": user, "padding": "x" * 9000})
        await say(mallory, forged, {"user": {**user, "name": "Mallory, done"}})
        await eventually(
            lambda: "Mallory, done" in json.dumps(grace.others.states), "the last presence"
        )
    assert seen, "no presence was relayed"
    assert not [state for state in seen if "fixed" in state or "\\u202e" in state], seen
    assert not [state for state in seen if "xxxx" in state]
    # What was left out, the rest stayed: Mallory's other fields, as she sent them.
    shown = [json.loads(state)[str(forged.client_id)]["user"] for state in seen]
    assert {"name": "Mallory", "colorLight": "#1976d233"} in shown
    assert {"name": "Mallory", "color": "#1976d2"} in shown
    assert {"color": "#1976d2", "colorLight": "#1976d233"} in shown
    # One who joins later gets the presence as the server keeps it.
    late = await YjsClient.connect(server, sid, client_id="c-late", display_name="Late")
    await eventually(lambda: forged.client_id in late.others.states, "the presence, for Late")
    assert late.others.states[forged.client_id]["user"]["name"] == "Mallory, done"
    # Each refusal logged, with the session and who sent it.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    for record in warnings:
        assert record.__dict__["session_id"] == sid and "c-mallory" in record.getMessage()
    for client in (grace, mallory, late):
        await client.close()
