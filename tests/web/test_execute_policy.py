"""Server-wide execution policy: the per-session rate limit and ENABLE_SERVER_EXECUTION."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_settings, running_server
from tests.web.test_sessions_api import assert_error


async def test_rate_limit_per_session_answers_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", rate_limit_executions_per_minute=3)
    async with running_server(settings) as running:
        api = running.api
        created = await api.create_session()
        sid = created["session_id"]
        for i in range(3):
            assert (await api.execute(sid, f"{i}"))["status"] == "ok"
        limited = await api.post(f"/api/v1/sessions/{sid}/execute", {"code": "4"})
        # Said to a person: no session id, no setting's name (the operator's log has them).
        assert_error(limited, 429, "rate_limited", "You may run code 3 times a minute")
        assert sid not in limited.json["error"]["message"]
        assert "RATE_LIMIT" not in limited.json["error"]["message"]
        retry_after = int(limited.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        # Limits are per session: another interview is not held back.
        other = (await api.create_session())["session_id"]
        assert (await api.execute(other, "1"))["status"] == "ok"
        # The refused run is not in the history.
        history = await api.get(f"/api/v1/sessions/{sid}/executions", token=created["host_token"])
        assert history.json["total"] == 3


async def test_execution_can_be_turned_off(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", enable_server_execution=False, kernel_pool_size={"python": 0}
    )
    async with running_server(settings) as running:
        api = running.api
        sid = (await api.create_session())["session_id"]
        response = await api.post(f"/api/v1/sessions/{sid}/execute", {"code": "1"})
        assert_error(response, 403, "execution_disabled", "turned off on this server")
        assert "ENABLE_SERVER_EXECUTION" not in response.json["error"]["message"]
        assert (await api.get("/api/v1/health")).json["kernels_running"] == 0


async def test_a_language_whose_program_is_missing_is_listed_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "jupyter" / "kernels" / "java"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["/opt/no-jdk/bin/java", "-jar", "{connection_file}"],
                "display_name": "Java",
                "language": "java",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    settings = make_settings(tmp_path / "data", kernel_pool_size={"python": 0, "java": 1})
    async with running_server(settings) as running:
        api = running.api
        listed = {i["id"]: i for i in (await api.get("/api/v1/languages")).json["languages"]}
        assert listed["java"]["available"] is False
        assert "/opt/no-jdk/bin/java" in listed["java"]["unavailable_reason"]
        refused = await api.post(
            "/api/v1/sessions", {"host_name": "Ada", "initial_language": "java"}
        )
        assert_error(refused, 422, "language_unavailable", "Java is not available")
        assert (await api.get("/api/v1/languages/java/template")).status == 200
        sid = (await api.create_session())["session_id"]
        assert_error(
            await api.post(f"/api/v1/sessions/{sid}/execute", {"code": "1", "language": "java"}),
            422,
            "language_unavailable",
            "/opt/no-jdk/bin/java",
        )
        assert (await api.execute(sid, "1"))["status"] == "ok"


async def test_the_host_sets_the_interviews_limits_within_the_servers(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", rate_limit_executions_per_minute=5, code_execution_timeout=10
    )
    async with running_server(settings) as running:
        api = running.api
        created = await api.create_session()
        sid, token = created["session_id"], created["host_token"]
        path = f"/api/v1/sessions/{sid}"
        # Not past the server's limits, and only the host.
        too_long = await api.patch(path, {"time_limit": 30}, token=token)
        assert_error(too_long, 422, "invalid_value", "at most 10 s")
        too_many = await api.patch(path, {"runs_per_minute": 50}, token=token)
        assert_error(too_many, 422, "invalid_value", "at most 5 runs a minute")
        assert (await api.patch(path, {"time_limit": 1})).status == 401
        changed = await api.patch(path, {"time_limit": 1, "runs_per_minute": 2}, token=token)
        assert changed.status == 200, changed.body
        assert (changed.json["time_limit"], changed.json["runs_per_minute"]) == (1, 2)
        slow = await api.execute(sid, "import time\ntime.sleep(3)")
        assert slow["status"] == "timeout" and slow["time_limit"] == 1000
        assert (await api.execute(sid, "1"))["status"] == "ok"
        limited = await api.post(f"{path}/execute", {"code": "2"})
        assert_error(limited, 429, "rate_limited", "You may run code 2 times a minute")
        # 0: back to the server's; kept across a restart (stored).
        reset = await api.patch(path, {"time_limit": 0}, token=token)
        assert reset.json["time_limit"] is None and reset.json["runs_per_minute"] == 2
    async with running_server(settings) as again:
        session = (await again.api.get(f"/api/v1/sessions/{sid}")).json
        assert (session["time_limit"], session["runs_per_minute"]) == (None, 2)
