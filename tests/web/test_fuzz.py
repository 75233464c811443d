"""Bad input from anyone, at scale: every operation of /openapi.json driven by schemathesis, and
random and malformed frames on both WebSocket endpoints. The server must answer every request
below 500, keep sockets to a proper close or an error message, and log no exception."""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from tornado.websocket import websocket_connect

from kernelpad import __version__
from kernelpad.web.app import API_ROUTES
from kernelpad.web.openapi import build_openapi
from tests.conftest import ServerProcess

# A bounded run for CI: examples per operation.
EXAMPLES = 15
FRAMES = 150


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server in its own process: schemathesis calls it synchronously."""
    server = ServerProcess(tmp_path_factory.mktemp("fuzz"), "--kernel-pool-size", '{"python": 1}')
    server.wait_listening()
    yield server
    server.stop()


# The same document the server serves at /openapi.json, built from the same route table.
schema = schemathesis.openapi.from_dict(build_openapi(API_ROUTES, "kernelpad", __version__))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_5xx(case: Any, live: ServerProcess) -> None:
    response = case.call(base_url=live.base_url, timeout=60)
    assert response.status_code < 500, (case.method, case.path, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert body["error"]["code"] and body["error"]["message"], body


def _json_values(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False, 0, -1, 2**70, 1e308, float("-0")])
    if kind == 2:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(40)))
    if kind == 3:
        return rng.choice(["", "python", "../../etc/passwd", "\x00", "a" * 5000, "f" * 32])
    if kind == 4:
        return rng.uniform(-1e9, 1e9)
    if kind == 5:
        return [_json_values(rng, depth + 1) for _ in range(rng.randrange(5))]
    keys = ["type", "data", "code", "cell_id", "client_id", "display_name", "value",
            "execution_id", "language", "base_version", "host_token", "time_limit"]  # fmt: skip
    return {rng.choice(keys): _json_values(rng, depth + 1) for _ in range(rng.randrange(6))}


def _json_frames(rng: random.Random) -> Iterator[str | bytes]:
    types = ["join_session", "code_update", "execute", "interrupt", "restart_kernel",
             "input_reply", "nonsense", ""]  # fmt: skip
    for number in range(FRAMES):
        choice = number % 5
        if choice == 0:
            yield json.dumps({"type": rng.choice(types), "data": _json_values(rng)})
        elif choice == 1:
            yield json.dumps(_json_values(rng))
        elif choice == 2:
            text = json.dumps({"type": rng.choice(types), "data": _json_values(rng)})
            yield text[: rng.randrange(len(text) + 1)]  # cut short
        elif choice == 3:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        else:
            yield "[" * 500 + "]" * 500  # deep nesting


def _yjs_frames(rng: random.Random) -> Iterator[bytes]:
    for _ in range(FRAMES):
        head = bytes([rng.choice([0, 1, 2, 3, 255]), rng.choice([0, 1, 2, 255])])
        yield head + bytes(rng.randrange(256) for _ in range(rng.randrange(48)))


async def test_random_frames_on_the_json_socket(live: ServerProcess) -> None:
    session = _create_session(live)
    rng = random.Random(7)
    url = live.base_url.replace("http", "ws") + f"/ws/sessions/{session}"
    conn = await websocket_connect(url)
    replies = 0
    for frame in _json_frames(rng):
        await conn.write_message(frame, binary=isinstance(frame, bytes))
        message = await conn.read_message()
        if message is None:  # a close is allowed (a join that was refused, say) ...
            assert conn.close_code in (1008, 1009, 4403, 4410), conn.close_code
            conn = await websocket_connect(url)
            continue
        replies += 1
        assert json.loads(message)["type"] in ("error", "session_state"), message
    assert replies > FRAMES // 2
    conn.close()
    _assert_healthy(live)


async def test_random_frames_on_the_yjs_socket(live: ServerProcess) -> None:
    session = _create_session(live)
    rng = random.Random(11)
    url = live.base_url.replace("http", "ws") + f"/ws/yjs/{session}?client_id=fuzz-1"
    closes = set()
    for frame in _yjs_frames(rng):
        conn = await websocket_connect(url)
        await conn.read_message()  # the server's sync step 1
        await conn.write_message(frame, binary=True)
        await conn.write_message(b"\x00\x00\x00", binary=True)  # then a valid step 1
        while (message := await conn.read_message()) is not None and message[:2] != b"\x00\x01":
            pass
        if message is None:
            closes.add(conn.close_code)
        conn.close()
    # Invalid Yjs closes with 1002 (protocol error), nothing else.
    assert closes <= {1002}, closes
    _assert_healthy(live)


def test_the_server_logged_no_exception(live: ServerProcess) -> None:
    log = live.log.read_text(errors="replace")
    assert "Traceback" not in log and "Uncaught exception" not in log, log[-3000:]


def _create_session(live: ServerProcess) -> str:
    request = urllib.request.Request(
        f"{live.base_url}/api/v1/sessions",
        data=json.dumps({"host_name": "Fuzz"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["session_id"])


def _assert_healthy(live: ServerProcess) -> None:
    with urllib.request.urlopen(f"{live.base_url}/api/v1/health", timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"
