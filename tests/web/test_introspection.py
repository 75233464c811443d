"""Completions and documentation from the session's real kernels, over the JSON socket (to the
asker only) and REST: in Python, JavaScript, Java and C++; "busy" at once while a run holds the
kernel; the runs' rules apply."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kernelpad.config import Settings
from tests.conftest import Api, RunningServer, make_settings
from tests.web.clients import JsonClient


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("data"), code_execution_timeout=30)


async def ask(
    api: Api, sid: str, what: str, code: str, cursor: int | None = None, **fields: Any
) -> dict[str, Any]:
    """Ask until the kernel answers: the first question starts the kernel ("starting"), and
    the next may wait for the kernel's warm-up past the answer's time ("timeout")."""
    body = {"code": code, "cursor_pos": len(code) if cursor is None else cursor, **fields}
    deadline = time.monotonic() + 90
    while True:
        response = await api.post(f"/api/v1/sessions/{sid}/{what}", body)
        assert response.status == 200, response.body
        if response.json["status"] not in ("starting", "timeout") or time.monotonic() > deadline:
            return response.json  # type: ignore[no-any-return]
        await asyncio.sleep(0.5)


@pytest.mark.parametrize(
    ("language", "code", "expected"),
    [
        ("python", "import os\nos.pa", "path"),
        ("javascript", "Math.ma", "max"),
        ("java", 'String s = "x";\ns.len', "length"),
        ("cpp", "#include <vector>\nstd::vec", "vector"),
    ],
)
async def test_each_language_completes(api: Api, language: str, code: str, expected: str) -> None:
    sid = (await api.create_session(initial_language=language))["session_id"]
    answer = await ask(api, sid, "complete", code)
    assert answer["status"] == "ok", answer
    assert any(expected in match for match in answer["matches"]), answer
    # The match replaces the word being typed: the code before it, plus the match, is the
    # completed code.
    start = answer["cursor_start"]
    assert 0 <= start <= answer["cursor_end"] == len(code)
    assert code[start:] and any(m.startswith(code[start:]) for m in answer["matches"]), answer


async def test_python_documentation_at_the_cursor(api: Api) -> None:
    sid = (await api.create_session())["session_id"]
    answer = await ask(api, sid, "inspect", "len(", 3)
    assert answer["status"] == "ok" and answer["found"], answer
    assert "Return the number of items" in answer["data"]["text/plain"]
    missing = await ask(api, sid, "inspect", "no_such_name_here", 5)
    assert missing["status"] == "ok" and not missing["found"]


async def test_a_busy_kernel_answers_busy_at_once_and_only_the_asker_hears(
    server: RunningServer, api: Api
) -> None:
    created = await api.create_session()
    sid, token = created["session_id"], created["host_token"]
    await ask(api, sid, "complete", "pri")  # the kernel is up
    asker, _ = await JsonClient.join_with(server, sid, "host-ask", "Grace", token)
    other, _ = await JsonClient.join(server, sid, "cand-other", "Alan")
    await asker.send("execute", {"code": "import time\ntime.sleep(3)"})
    await asker.expect("execution_started")
    began = time.monotonic()
    await asker.send("complete", {"request_id": "r1", "code": "import os\nos.pa", "cursor_pos": 15})
    reply = await asker.expect("complete_reply")
    assert reply["request_id"] == "r1" and reply["status"] == "busy"
    assert time.monotonic() - began < 1.0  # not after the run
    await asker.expect("execution_finished")
    await asker.send("complete", {"request_id": "r2", "code": "import os\nos.pa", "cursor_pos": 15})
    reply = await asker.expect("complete_reply")
    assert reply["request_id"] == "r2" and reply["status"] == "ok" and reply["matches"]
    # The other participant saw the run, never the answers.
    seen = []
    while True:
        try:
            seen.append((await asyncio.wait_for(other.receive(), 1.0))["type"])
        except TimeoutError:
            break
    assert "complete_reply" not in seen and "execution_finished" in seen
    asker.close()
    other.close()


async def test_the_runs_rules_apply_and_bad_input_is_refused(api: Api) -> None:
    created = await api.create_session()
    sid, token = created["session_id"], created["host_token"]
    await api.patch(f"/api/v1/sessions/{sid}", {"candidate_execution": False}, token=token)
    body = {"code": "pri", "cursor_pos": 3}
    refused = await api.post(f"/api/v1/sessions/{sid}/complete", body)
    assert refused.status == 403 and refused.json["error"]["code"] == "execution_disabled"
    assert sid not in refused.json["error"]["message"]
    hosts = await api.post(f"/api/v1/sessions/{sid}/complete", body, token=token)
    assert hosts.status == 200
    outside = await api.post(
        f"/api/v1/sessions/{sid}/complete", {"code": "x", "cursor_pos": 5}, token=token
    )
    assert outside.status == 422
