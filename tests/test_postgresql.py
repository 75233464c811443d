"""kernelpad on PostgreSQL, end to end: server processes configured with a DATABASE_URL store
sessions, history and the shared notebook in a real PostgreSQL server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import (
    Api,
    ServerProcess,
    eventually,
    free_port,
    make_settings,
    running_server,
)
from tests.postgresql import postgresql_server
from tests.web.clients import YjsClient, first_source

# The test server trusts every local connection, whatever the password: this one must never
# appear in a log.
PASSWORD = "s3cret-pw-6021"


async def test_a_restarted_server_finds_everything_in_postgresql(
    server_process: Any, tmp_path: Path, postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgresql_url.replace("kernelpad@", f"kernelpad:{PASSWORD}@")
    monkeypatch.setenv("DATABASE_URL", url)  # its usual name, in the environment
    first = server_process(tmp_path / "first")
    api = Api(first.base_url)
    try:
        created = await api.create_session(session_name="On PostgreSQL")
        sid, token = created["session_id"], created["host_token"]
        await api.execute(sid, "x = 6 * 7")
        assert (await api.execute(sid, "x"))["outputs"][0]["data"]["text/plain"] == "42"
        yjs = await YjsClient.connect_url(first.base_url, sid)
        await eventually(lambda: yjs.cell_count == 1, "sync")
        yjs.insert(0, "# typed on the first server\n")
        expected = "# typed on the first server\n" + created["code"]
        await eventually(lambda: _stored_code(url, sid) == expected, "the edit to be stored")
        await yjs.close()
    finally:
        api.close()
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait() == 0
    log = first.log.read_text()
    assert "database: PostgreSQL postgresql://kernelpad:***@127.0.0.1:" in log, log
    assert PASSWORD not in log

    # Another data dir: what the second server finds can only come from PostgreSQL. Its kernels
    # run unsandboxed, where the server's environment reaches them: all but its secrets.
    monkeypatch.setenv("JUPYTER_GATEWAY_AUTH_TOKEN", "not-for-kernels")  # set, though unused
    second = server_process(tmp_path / "second", "--sandbox", "false")
    api = Api(second.base_url)
    try:
        details = (await api.get(f"/api/v1/sessions/{sid}")).json
        assert details["session_name"] == "On PostgreSQL"
        history = (await api.get(f"/api/v1/sessions/{sid}/executions", token=token)).json
        assert [run["code"] for run in history["executions"]] == ["x = 6 * 7", "x"]
        assert history["executions"][1]["outputs"][0]["data"]["text/plain"] == "42"
        again = await YjsClient.connect_url(second.base_url, sid)
        await eventually(lambda: again.source == expected, "the stored edit after the restart")
        await again.close()
        secrets = "{'DATABASE_URL', 'JUPYTER_GATEWAY_AUTH_TOKEN'}"
        code = f"import os\nprint(sorted({secrets} & {{*os.environ}}))"
        body = await api.execute(sid, code)
        assert body["new_kernel"] is True and body["stdout"] == "[]\n", body
        assert (await api.delete(f"/api/v1/sessions/{sid}", token=token)).status == 200
    finally:
        api.close()
        second.stop()
    assert PASSWORD not in second.log.read_text()
    assert not list(tmp_path.glob("*/kernelpad.sqlite"))


def test_an_unreachable_postgresql_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://kernelpad:{PASSWORD}@127.0.0.1:{free_port()}/kernelpad"
    result = subprocess.run(
        [sys.executable, "-m", "kernelpad", "--port", "0", "--data-dir", str(tmp_path)]
        + ["--database-url", url, "--startup-wait", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "kernelpad: cannot connect to PostgreSQL postgresql://kernelpad:***@" in result.stderr
    assert "Connection refused" in result.stderr
    # It tried for a while first: the database may be starting along with kernelpad.
    assert result.stderr.count("trying again in") == 2  # after 0.5 s and 1 s: 1.5 s in all
    assert PASSWORD not in result.stderr and "Traceback" not in result.stderr


def test_a_database_that_starts_later_is_waited_for(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql://kernelpad:{PASSWORD}@127.0.0.1:{port}/postgres"
    server = ServerProcess(tmp_path, "--database-url", url, "--kernel-pool-size", "{}")
    try:
        deadline = time.monotonic() + 30
        while "trying again in" not in server.log.read_text():  # it waits for its database
            assert time.monotonic() < deadline and server.proc.poll() is None, server.log
            time.sleep(0.1)
        with postgresql_server(port):
            server.wait_listening()
    finally:
        server.stop()


async def test_a_lost_connection_is_a_503_then_comes_back(
    postgresql_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, kernel_pool_size={}, database_url=postgresql_url)
    async with running_server(settings) as running:
        api = running.api
        sid = (await api.create_session(host_name="Ada"))["session_id"]
        with psycopg.connect(postgresql_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        lost = await api.get(f"/api/v1/sessions/{sid}")
        assert lost.status == 503, lost.body
        assert lost.json["error"]["code"] == "database_unavailable"
        assert "postgresql" not in lost.body.decode()  # where the database is, is the log's
        assert (await api.get(f"/api/v1/sessions/{sid}")).status == 200  # connected again


def _stored_code(url: str, session_id: str) -> str:
    """The first cell's source as PostgreSQL has it (read beside the running server)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT data FROM document_updates WHERE session_id = %s ORDER BY seq", (session_id,)
        ).fetchall()
    return first_source(row[0] for row in rows)
