"""``/metrics`` for Prometheus, and JSON log lines: both follow what really happens on a server
with real kernels and real clients."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.websocket import websocket_connect

from kernelpad.config import Settings
from kernelpad.logs import JsonFormatter
from tests.conftest import Api, RunningServer, ServerProcess, eventually, make_settings

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("data"),
        kernel_pool_size={"python": 1},
        code_execution_timeout=2,
    )


class Scrape:
    """One scrape of /metrics, as samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(api: Api) -> Scrape:
    response = await api.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return Scrape(response.body.decode())


async def test_metrics_move_as_sessions_run(api: Api, server: RunningServer) -> None:
    before = await scrape(api)
    await eventually(
        lambda: server.manager.pool.ready_count == 1,
        "the pool to fill",
    )
    session = (await api.create_session(host_name="Ada"))["session_id"]
    assert (await api.execute(session, "x = 1"))["status"] == "ok"
    assert (await api.execute(session, "1 / 0"))["status"] == "error"
    assert (await api.execute(session, "while True: pass", time_limit=500))["status"] == "timeout"
    socket = await websocket_connect(f"ws://{api.base_url.split('://')[1]}/ws/sessions/{session}")
    socket.write_message(
        json.dumps({"type": "join_session", "data": {"client_id": "c-1", "display_name": "Bo"}})
    )
    assert json.loads(await socket.read_message())["type"] == "session_state"  # type: ignore[arg-type]
    during = await scrape(api)

    assert (
        during.value("kernelpad_sessions_active") == before.value("kernelpad_sessions_active") + 1
    )
    assert during.value("kernelpad_participants_connected") == 1
    # The session holds one idle Python kernel; the pool has made another ready since.
    assert during.value("kernelpad_kernels", language="python", state="idle") == 1
    await eventually(
        lambda: server.manager.pool.ready_count == 1,
        "the pool to refill",
    )
    refilled = await scrape(api)
    assert refilled.value("kernelpad_pool_ready", language="python") == 1

    def moved(name: str, **labels: str) -> float:
        return during.value(name, **labels) - before.value(name, **labels)

    assert moved("kernelpad_executions_total", language="python", status="ok") == 1
    assert moved("kernelpad_executions_total", language="python", status="error") == 1
    assert moved("kernelpad_executions_total", language="python", status="timeout") == 1
    assert moved("kernelpad_execution_timeouts_total", language="python") == 1
    assert moved("kernelpad_execution_seconds_count", language="python") == 3
    # The busy loop ran for its whole limit of 0.5 s: the histogram's sum says so.
    assert moved("kernelpad_execution_seconds_sum", language="python") >= 0.5
    # The same runs by the kernel's own clock (ipykernel dates its messages): the busy loop's
    # 0.5 s and its interrupt are in it, and about what the server timed. (About: the dates
    # are the wall clock's, the server's times its monotonic clock's; under a full test run
    # the two sums were seen 10 ms apart, the kernel's the longer.)
    assert moved("kernelpad_kernel_busy_seconds_count", language="python") == 3
    kernel_own = moved("kernelpad_kernel_busy_seconds_sum", language="python")
    server_timed = moved("kernelpad_execution_seconds_sum", language="python")
    assert 0.5 <= kernel_own <= server_timed + 0.1
    assert refilled.value("kernelpad_kernel_starts_total", language="python", outcome="ok") >= 2
    assert refilled.value("kernelpad_kernel_start_seconds_count", language="python") >= 2
    assert moved("kernelpad_websocket_messages_total", protocol="json", direction="in") == 1
    assert moved("kernelpad_websocket_messages_total", protocol="json", direction="out") >= 1
    # Each run's record is a write the run waited for (the session's creation one more).
    assert moved("kernelpad_database_write_seconds_count") >= 3
    assert moved("kernelpad_database_write_seconds_sum") > 0

    restarts = (
        "kernelpad_kernel_restarts_total",
        {"language": "python", "reason": "restart_requested"},
    )
    socket.write_message(json.dumps({"type": "restart_kernel", "data": {"language": "python"}}))
    while True:  # until the kernel is back
        message = json.loads(await socket.read_message())  # type: ignore[arg-type]
        if message["type"] == "kernel_status" and message["data"]["state"] == "idle":
            break
    socket.close()
    await eventually(
        lambda: server.manager.rooms.participants_connected() == 0,
        "the participant to leave",
    )
    after = await scrape(api)
    assert after.value("kernelpad_participants_connected") == 0
    assert after.value(restarts[0], **restarts[1]) == before.value(restarts[0], **restarts[1]) + 1
    # The process's own figures come along, for the platform team's dashboards.
    assert after.value("process_resident_memory_bytes") > 0


async def test_a_metrics_token_guards_metrics(tmp_path: Path) -> None:
    from tests.conftest import running_server

    settings = make_settings(tmp_path, kernel_pool_size={}, metrics_token="scrape-me")
    async with running_server(settings) as running:
        api = running.api
        missing = await api.get("/metrics")
        assert missing.status == 401 and "METRICS_TOKEN" in missing.json["error"]["message"]
        assert (await api.get("/metrics", token="wrong")).status == 403
        assert (await api.get("/metrics", token="scrape-me")).status == 200


async def test_session_events_carry_the_session_and_language(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="kernelpad"):
        session = (await api.create_session(host_name="Ada"))["session_id"]
        await api.execute(session, "print('hi')")
    lines = [
        json.loads(JsonFormatter().format(record))
        for record in caplog.records
        if getattr(record, "session_id", None) == session
    ]
    created = next(line for line in lines if "created by Ada" in line["message"])
    assert created["language"] == "python" and created["level"] == "INFO"
    ran = next(line for line in lines if " run ok in " in line["message"])
    assert ran == {
        **ran,
        "session_id": session,
        "language": "python",
        "logger": "kernelpad.sessions.runs",
    }


def test_log_format_json_writes_one_object_per_line(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "--log-format", "json", "--kernel-pool-size", "{}")
    try:
        server.wait_listening()
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.strip()]
    assert any("listening on" in line["message"] for line in lines), lines
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)


async def test_the_event_loops_lag_is_measured(api: Api) -> None:
    """Whatever holds the event loop (here a callback that takes 400 ms) is what every
    socket waits: the probe's next look is that late, in the 0.5 s bucket, not under 0.25."""
    lag = "kernelpad_event_loop_lag_seconds"

    def slow(scrape: Scrape) -> float:
        return scrape.value(f"{lag}_bucket", le="0.5") - scrape.value(f"{lag}_bucket", le="0.25")

    before = await scrape(api)
    time.sleep(0.4)  # on the loop: the test runs in the server's process
    await asyncio.sleep(0.12)  # two looks later
    after = await scrape(api)
    assert slow(after) == slow(before) + 1
    assert after.value(f"{lag}_count") >= before.value(f"{lag}_count") + 2


async def test_garbage_collection_pauses_are_timed_and_start_up_is_set_aside(
    api: Api, server: RunningServer
) -> None:
    """The server set what start-up made aside (``gc.freeze``: full collections no longer
    walk it) and times every collection's pause, by generation, for /metrics."""
    assert gc.get_freeze_count() > 0
    before = await scrape(api)
    gc.collect()  # a full collection, in the server's process (the test's own)
    after = await scrape(api)
    count = "kernelpad_gc_pause_seconds_count"
    assert after.value(count, generation="2") >= before.value(count, generation="2") + 1
    assert after.value("kernelpad_gc_pause_seconds_sum", generation="2") > 0
    assert after.value("kernelpad_gc_pause_longest_seconds", generation="2") > 0
