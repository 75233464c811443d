"""The server as a process: signals shut every kernel down, a restart keeps sessions and history,
the culler ends old sessions and idle kernels."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest

from kernelpad.kernels.cgroups import Cgroups
from kernelpad.kernels.runtime import remove_tree
from tests.conftest import Api, ServerProcess, eventually, gone, make_settings, running_server
from tests.web.clients import YjsClient, first_source


def kernel_processes(server: ServerProcess) -> list[psutil.Process]:
    """The kernels a server process started: its descendants running ipykernel (not the
    keepers and sandboxes around them, whose command lines name it too)."""
    return [
        child
        for child in psutil.Process(server.proc.pid).children(recursive=True)
        if "ipykernel_launcher" in child.cmdline()
        and Path(child.cmdline()[0]).name.startswith("python")
        and "kernelpad.kernels.keeper" not in child.cmdline()
    ]


async def kernel_of_session(api: Api, server: ServerProcess, session_id: str) -> int:
    """The pid, as this machine sees it, of the session's Python kernel (in its sandbox's pid
    namespace it has another): the kernel process whose command names its connection file."""
    code = "from ipykernel.kernelapp import IPKernelApp\nIPKernelApp.instance().connection_file"
    body = await api.execute(session_id, code)
    connection_file = body["outputs"][0]["data"]["text/plain"].strip("'")
    (kernel,) = [p for p in kernel_processes(server) if connection_file in " ".join(p.cmdline())]
    pid: int = kernel.pid
    return pid


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_no_kernel_outlives_the_server(
    server_process: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    server = server_process(tmp_path / "data", "--kernel-pool-size", '{"python": 2}')
    api = Api(server.base_url)
    try:
        pids = []
        for _ in range(2):
            sid = (await api.create_session())["session_id"]
            pids.append(await kernel_of_session(api, server, sid))
        # Two session kernels, and the pool refilling behind them.
        for _ in range(200):
            if len(kernel_processes(server)) >= 3:
                break
            await asyncio.sleep(0.1)
        all_kernels = [p.pid for p in kernel_processes(server)]
        assert set(pids) <= set(all_kernels)
        assert len(all_kernels) >= 3
    finally:
        api.close()
    server.proc.send_signal(sig)
    assert server.wait(timeout=30) == 0, server.log.read_text()
    assert [pid for pid in all_kernels if not gone(pid)] == []
    # Also kernels started after the snapshot (the pool refilling as the signal came).
    runtime = re.search(r"kernel runtime files in (\S+)", server.log.read_text())
    assert runtime is not None
    assert kernels_of_runtime(runtime.group(1)) == []
    assert "all kernels shut down" in server.log.read_text()


async def test_restart_keeps_sessions_and_history(server_process: Any, tmp_path: Path) -> None:
    """Also serves on both event loops: Python's own first, then the default (uvloop)."""
    data = tmp_path / "data"
    first = server_process(data, "--event-loop", "asyncio")
    api = Api(first.base_url)
    try:
        created = await api.create_session(session_name="Survives restarts")
        sid, token = created["session_id"], created["host_token"]
        await api.execute(sid, "x = 42")
        assert (await api.execute(sid, "x"))["outputs"][0]["data"]["text/plain"] == "42"
    finally:
        api.close()
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait() == 0

    second = server_process(data)
    api = Api(second.base_url)
    try:
        details = (await api.get(f"/api/v1/sessions/{sid}")).json
        assert details["session_name"] == "Survives restarts"
        assert details["status"] == "active"
        history = (await api.get(f"/api/v1/sessions/{sid}/executions", token=token)).json
        assert [run["code"] for run in history["executions"]] == ["x = 42", "x"]
        assert history["executions"][1]["outputs"][0]["data"]["text/plain"] == "42"
        # The kernel did not survive, and the response says so.
        body = await api.execute(sid, "x")
        assert body["new_kernel"] is True
        assert body["error"]["ename"] == "NameError"
        assert any("variables from earlier runs are gone" in n for n in body["notices"])
        # The host token still works after the restart.
        assert (await api.delete(f"/api/v1/sessions/{sid}", token=token)).status == 200
    finally:
        api.close()
    second.proc.send_signal(signal.SIGTERM)
    assert second.wait() == 0
    assert "(event loop: asyncio)" in first.log.read_text()
    assert "(event loop: uvloop)" in second.log.read_text()


async def test_invalid_settings_stop_the_server_with_a_message(
    server_process: Any, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match="code_execution_timeout"):
        server_process(tmp_path / "data", "--code-execution-timeout", "-1")


async def test_culler_ends_old_sessions_and_idle_kernels(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        max_session_age_hours=6 / 3600,  # six seconds
        kernel_idle_timeout=0.5,
        cull_interval=0.2,
        kernel_pool_size={"python": 0},
    )
    async with running_server(settings) as running:
        api = running.api
        manager = running.server.manager
        assert manager is not None
        idle = (await api.create_session())["session_id"]
        await api.execute(idle, "x = 1")
        assert manager.runs.kernels_running == 1
        # Idle past the timeout: the kernel goes, the session stays.
        await eventually(
            lambda: manager.runs.kernels_running == 0, "the idle kernel to be shut down"
        )
        assert (await api.get(f"/api/v1/sessions/{idle}")).json["status"] == "active"
        body = await api.execute(idle, "x")
        assert body["new_kernel"] is True and body["error"]["ename"] == "NameError"
        # Past the maximum age: the session ends.
        await eventually(lambda: _status(api, idle, "ended"), "the expired session to be ended")
        details = (await api.get(f"/api/v1/sessions/{idle}")).json
        assert details["end_reason"].startswith("expired")
        assert manager.runs.kernels_running == 0


async def _status(api: Api, session_id: str, status: str) -> bool:
    current: str = (await api.get(f"/api/v1/sessions/{session_id}")).json["status"]
    return current == status


def kernels_of_this_process() -> list[int]:
    return [
        child.pid
        for child in psutil.Process().children(recursive=True)
        if "ipykernel_launcher" in " ".join(child.cmdline()) and not gone(child.pid)
    ]


async def test_ending_a_session_while_its_kernel_starts_leaves_no_kernel(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", kernel_pool_size={"python": 0})
    async with running_server(settings) as running:
        api = running.api
        created = await api.create_session()
        sid = created["session_id"]
        run = asyncio.create_task(api.post(f"/api/v1/sessions/{sid}/execute", {"code": "1"}))
        # The run holds the session's kernel slot while a cold kernel boots.
        await eventually(
            lambda: running.server.manager is not None and running.server.manager.runs.running == 1,
            "the run to start",
        )
        ended = await api.delete(f"/api/v1/sessions/{sid}", token=created["host_token"])
        assert ended.status == 200
        response = await run
        assert response.status == 409
        assert response.json["error"]["code"] == "session_ended"
        await eventually(lambda: not kernels_of_this_process(), "no kernel to be left")


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "kernelpad", "--port", str(port), "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_database_of_a_newer_kernelpad_is_a_clear_error(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "kernelpad.sqlite")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    result = subprocess.run(
        [sys.executable, "-m", "kernelpad", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "schema version 99" in result.stderr
    assert "Traceback" not in result.stderr


def kernels_of_runtime(runtime_dir: str) -> list[int]:
    """Every process on the machine that is a kernel of the given server runtime folder."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if runtime_dir in cmdline and not gone(proc.info["pid"]):
            found.append(proc.info["pid"])
    return found


async def test_sigterm_answers_a_run_in_flight_and_leaves_no_kernel(
    server_process: Any, tmp_path: Path
) -> None:
    server = server_process(
        tmp_path / "data", "--code-execution-timeout", "60", "--kernel-pool-size", '{"python": 2}'
    )
    runtime = re.search(r"kernel runtime files in (\S+)", server.log.read_text())
    assert runtime is not None
    api = Api(server.base_url)
    try:
        created = await api.create_session()
        sid = created["session_id"]
        await api.execute(sid, "import time")
        run = asyncio.create_task(
            api.post(f"/api/v1/sessions/{sid}/execute", {"code": "time.sleep(60)"})
        )
        await eventually(lambda: _running(api), "the run to start")
        server.proc.send_signal(signal.SIGTERM)
        response = await run
    finally:
        api.close()
    assert server.wait(timeout=30) == 0, server.log.read_text()
    assert response.status == 200, response.body
    body = response.json
    assert body["state_kept"] is False
    assert any("shutting down" in notice for notice in body["notices"])
    assert kernels_of_runtime(runtime.group(1)) == []

    # The stopped run is in the history.
    again = server_process(tmp_path / "data")
    api = Api(again.base_url)
    try:
        history = await api.get(f"/api/v1/sessions/{sid}/executions", token=created["host_token"])
        assert [r["code"] for r in history.json["executions"]] == ["import time", "time.sleep(60)"]
    finally:
        api.close()
        again.stop()


async def _running(api: Api) -> bool:
    running: int = (await api.get("/api/v1/health")).json["executions_running"]
    return running == 1


async def test_kernels_of_a_killed_server_are_stopped(server_process: Any, tmp_path: Path) -> None:
    """SIGKILL gives the server no chance to clean up: the keepers of its pooled kernels, which
    hold nobody's variables, stop them at once, with what they started themselves (JJava's
    second JVM), their folders and their cgroups, and no server needs to come back for it."""
    runtime = Path(tempfile.mkdtemp(prefix="kp-"))  # the test's own: short, for Unix sockets
    try:
        killed = server_process(
            tmp_path / "one",
            "--kernel-pool-size",
            '{"python": 0, "javascript": 1, "java": 1}',
            "--kernel-runtime-dir",
            str(runtime),
        )
        api = Api(killed.base_url)
        try:
            await eventually(lambda: _pooled(api, 2), "a Deno and a Java kernel to start", 120)
        finally:
            api.close()
        kernels = kernels_of_runtime(str(runtime))
        assert len(kernels) >= 5  # two keepers, bubblewrap's processes, deno, the JVM
        folders = [f for f in runtime.glob("*/*") if f.is_dir()]
        assert len(folders) == 2
        killed.proc.kill()
        killed.wait()
        await eventually(lambda: kernels_of_runtime(str(runtime)) == [], "the kernels to stop")
        assert not any(folder.exists() for folder in folders)
        assert list(runtime.glob("*/*")) == []
        cgroups = Cgroups.find()
        if cgroups is not None:
            assert not any((cgroups.memory / folder.name).exists() for folder in folders)
    finally:
        remove_tree(runtime)


async def _pooled(api: Api, count: int) -> bool:
    pooled: int = (await api.get("/api/v1/health")).json["kernels_pooled"]
    return pooled == count


async def test_a_server_killed_mid_session_loses_nothing_it_stored(
    server_process: Any, tmp_path: Path
) -> None:
    """kill -9 in the middle of an interview: after a restart, every run that was answered is
    in the history, and every edit the server had stored is in the notebook, once."""
    data = tmp_path / "data"
    first = server_process(data)
    api = Api(first.base_url)
    try:
        created = await api.create_session()
        sid, token = created["session_id"], created["host_token"]
        answered = [(await api.execute(sid, f"x{i} = {i}"))["execution_id"] for i in range(3)]
        yjs = await YjsClient.connect_url(first.base_url, sid)
        await eventually(lambda: yjs.cell_count == 1, "sync")
        yjs.insert(0, "# typed before the crash\n")
        expected = "# typed before the crash\n" + created["code"]
        database = data / "kernelpad.sqlite"
        await eventually(lambda: _stored_code(database, sid) == expected, "the edit to be stored")
        first.proc.kill()
        first.wait()
        await yjs.close()
    finally:
        api.close()
    second = server_process(data)
    api = Api(second.base_url)
    try:
        history = (await api.get(f"/api/v1/sessions/{sid}/executions", token=token)).json
        assert [e["execution_id"] for e in history["executions"]] == answered
        again = await YjsClient.connect_url(second.base_url, sid)
        await eventually(lambda: again.source == expected, "the stored edit after the restart")
        assert again.cell_count == 1
        await again.close()
        # And the session goes on: the next run says its kernel is new.
        after = await api.execute(sid, "print('still here')")
        assert after["stdout"] == "still here\n"
    finally:
        api.close()
        second.stop()


def _stored_code(database: Path, session_id: str) -> str:
    """The first cell's source as the database has it (read beside the running server)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT data FROM document_updates WHERE session_id = ? ORDER BY seq", (session_id,)
        ).fetchall()
    return first_source(row[0] for row in rows)
