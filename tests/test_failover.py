"""Several kernelpad processes on one PostgreSQL database behind a real nginx (the configuration
of examples/nginx/kernelpad.conf, its ports changed), and clients that talk only to nginx.

Sessions spread over the processes; one process is killed (``kill -9``) mid-interview; its
participants reconnect through nginx to another process, which takes the sessions over (their
leases, their kernels on this machine) so that the interviews go on with their variables, and
nothing acknowledged is lost. Two processes never drive one session: one asked for a session
another drives answers "moving", and the other lets go of it once nobody is there."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from kernelpad.kernels.runtime import remove_tree
from tests import processes
from tests.conftest import Api, ServerProcess, free_port
from tests.web.clients import JsonClient

ROOT = Path(__file__).resolve().parent.parent
NGINX_SITE = ROOT / "examples" / "nginx" / "kernelpad.conf"
PROCESSES = 3
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # not on every user's PATH


class Nginx:
    """nginx in the foreground, with the example's site, in a folder of its own."""

    def __init__(self, folder: Path, backends: list[int]) -> None:
        self.port = free_port()
        self.folder = folder
        site = NGINX_SITE.read_text()
        servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+.*$", site, re.M)
        assert len(servers) == len(backends), "the example names one server a process"
        for line, port in zip(servers, backends, strict=True):
            site = site.replace(line, re.sub(r":\d+", f":{port}", line, count=1), 1)
        site = site.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
        (folder / "logs").mkdir(parents=True)
        (folder / "kernelpad.conf").write_text(site)
        (folder / "nginx.conf").write_text(
            "daemon off;\nmaster_process off;\nerror_log logs/error.log info;\n"
            f"pid {folder}/nginx.pid;\nevents {{ worker_connections 1024; }}\n"
            "http {\n  access_log logs/access.log;\n"
            f"  client_body_temp_path {folder}/body;\n  proxy_temp_path {folder}/proxy;\n"
            "  include kernelpad.conf;\n}\n"
        )
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(folder), "-c", "nginx.conf"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.base_url = f"http://127.0.0.1:{self.port}"

    def wait_listening(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.folder / "logs" / "error.log").read_text()
            try:
                with socket_to(self.port):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not listen")

    def stop(self) -> None:
        processes.stop(self.proc)


def socket_to(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=1)


@pytest.fixture
def cluster(
    postgresql_url: str, tmp_path: Path, server_process: Any
) -> Iterator[tuple[Nginx, list[ServerProcess]]]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: `make system-deps` installs Debian's nginx")
    runtime = Path(tempfile.mkdtemp(prefix="kp-"))  # shared by the processes: one machine
    servers = [
        server_process(
            tmp_path / f"process-{n}",
            "--database-url",
            postgresql_url,
            "--kernel-runtime-dir",
            str(runtime),
            "--kernel-pool-size",
            '{"python": 1}',
            "--kernels-on-exit",
            "keep",
            "--session-lease-seconds",
            "3",
        )
        for n in range(PROCESSES)
    ]
    nginx = Nginx(tmp_path / "nginx", [server.port for server in servers])
    try:
        nginx.wait_listening()
        yield nginx, servers
    finally:
        nginx.stop()
        for server in servers:
            server.stop()
        remove_tree(runtime)


def driver(servers: list[ServerProcess], session_id: str) -> ServerProcess | None:
    """The process whose log says it drives the session (the last to say so)."""
    found = None
    latest = 0.0
    for server in servers:
        for line in server.log.read_text().splitlines():
            if f"session {session_id}: driven by this process" in line:
                at = (
                    time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
                    + int(line[20:23]) / 1000
                )
                if at >= latest:
                    found, latest = server, at
    return found


async def join(nginx: Nginx, session_id: str, token: str) -> tuple[JsonClient, dict[str, Any]]:
    """Join through nginx, trying again while the session is moving (as the pad does)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return await JsonClient.join_with(nginx, session_id, "host-1", "Grace", token)
        except (AssertionError, OSError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not join {session_id}: {exc}") from exc
            await asyncio.sleep(0.1)


async def run(api: Api, session_id: str, code: str, token: str | None = None) -> dict[str, Any]:
    """A run (by the host, with ``token``) through nginx, tried again while the session is
    moving (503)."""
    deadline = time.monotonic() + 60
    while True:
        path = f"/api/v1/sessions/{session_id}/execute"
        response = await api.post(path, {"code": code}, token=token)
        if response.status == 200:
            result: dict[str, Any] = response.json
            return result
        assert response.status in (502, 503), response.body
        if response.status == 503:
            assert response.json["error"]["code"] == "session_moving", response.body
        assert time.monotonic() < deadline, f"{session_id} did not come back: {response.body!r}"
        await asyncio.sleep(0.05)


async def test_a_killed_process_s_interviews_go_on_elsewhere(
    cluster: tuple[Nginx, list[ServerProcess]],
) -> None:
    nginx, servers = cluster
    api = Api(nginx.base_url)
    interviews: dict[str, dict[str, Any]] = {}
    clients: dict[str, JsonClient] = {}
    try:
        # Sessions until they spread over at least two processes (hashing decides).
        while len({driver(servers, sid) for sid in interviews}) < 2 or len(interviews) < 4:
            assert len(interviews) < 24, "the sessions did not spread over the processes"
            created = await api.create_session(session_name=f"Interview {len(interviews)}")
            sid, token = created["session_id"], created["host_token"]
            n = len(interviews)
            # A run, an edit, a note and a rule, each acknowledged.
            assert (await run(api, sid, f"x = {n}"))["status"] == "ok"
            client, state = await join(nginx, sid, token)
            clients[sid] = client
            code = f"def answer():\n    return {n}  # typed before the failover\n"
            await client.send("code_update", {"code": code, "base_version": state["version"]})
            assert (await client.expect("code_update"))["code"] == code
            note = f"Candidate {n}: strong on recursion."
            assert (
                await api.put(f"/api/v1/sessions/{sid}/notes", {"notes": note}, token=token)
            ).status == 200
            rules = {"time_limit": 4, "candidate_execution": False}
            assert (await api.patch(f"/api/v1/sessions/{sid}", rules, token=token)).status == 200
            details = (await api.get(f"/api/v1/sessions/{sid}", token=token)).json
            assert details["time_limit"] == 4, details
            interviews[sid] = {"n": n, "token": token, "code": code, "note": note}
        drivers = {sid: driver(servers, sid) for sid in interviews}
        assert None not in drivers.values()
        counts = {server: list(drivers.values()).count(server) for server in servers}
        victim = max(counts, key=lambda server: counts[server])
        moved = [sid for sid, server in drivers.items() if server is victim]
        stayed = [sid for sid in interviews if sid not in moved]
        assert moved and stayed

        killed_at = time.monotonic()
        victim.proc.kill()
        victim.wait()
        # The first run after the kill, through nginx: another process takes the session
        # over, its kernel too: the variable is there.
        first = moved[0]
        body = await run(api, first, "x", interviews[first]["token"])
        recovered = time.monotonic() - killed_at
        assert body["outputs"][0].get("data", {}).get("text/plain") == str(
            interviews[first]["n"]
        ), (body["outputs"], body["notices"], body["error"])
        assert body["new_kernel"] is False, body["notices"]
        print(f"\nfrom the kill to the first run after failover: {recovered * 1000:.0f} ms")
        (Path(__file__).parent.parent / "test-artifacts").mkdir(exist_ok=True)
        (Path(__file__).parent.parent / "test-artifacts" / "failover.txt").write_text(
            f"kill -9 to the first successful run through nginx: {recovered * 1000:.0f} ms\n"
        )

        for sid in moved:
            facts = interviews[sid]
            token = facts["token"]
            # The participant reconnects (the first thing the new process hears of the
            # session, but for the first one): the edit they saw acknowledged is there, and
            # the rules as the host left them.
            clients[sid].close()
            clients[sid], state = await join(nginx, sid, token)
            assert state["code"] == facts["code"]
            assert state["time_limit"] == 4 and state["candidate_execution"] is False
            body = await run(api, sid, "x", token)
            assert body["outputs"][0]["data"]["text/plain"] == str(facts["n"])
            assert body["new_kernel"] is False
            refused = await api.post(f"/api/v1/sessions/{sid}/execute", {"code": "x"})
            assert refused.status == 403  # a candidate may not run code: the rule holds
            notes = await api.get(f"/api/v1/sessions/{sid}/notes", token=token)
            assert notes.json["notes"] == facts["note"]
            history = await api.get(f"/api/v1/sessions/{sid}/executions", token=token)
            codes = [each["code"] for each in history.json["executions"]]
            runs_of_x = 2 if sid == first else 1
            assert codes == [f"x = {facts['n']}"] + ["x"] * runs_of_x, codes
            new = driver(servers, sid)
            assert new is not None and new is not victim
        # The others' interviews did not move, and their sockets stayed open.
        for sid in stayed:
            assert driver(servers, sid) is drivers[sid]
            body = await run(api, sid, "x", interviews[sid]["token"])
            assert body["outputs"][0]["data"]["text/plain"] == str(interviews[sid]["n"])
            await clients[sid].send("execute", {"code": "x + 100"})
            finished = await clients[sid].expect("execution_finished")
            assert finished["status"] == "ok"
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        api.close()


async def test_two_processes_never_drive_one_session(
    cluster: tuple[Nginx, list[ServerProcess]],
) -> None:
    """Asked directly (not through nginx) for a session another process drives, a process
    answers "moving"; the driver lets go of it once nobody is connected there, and the asker
    takes it over, kernel and all."""
    nginx, servers = cluster
    api = Api(nginx.base_url)
    created = await api.create_session()
    sid, token = created["session_id"], created["host_token"]
    await run(api, sid, "x = 'kept'")
    holder = driver(servers, sid)
    assert holder is not None
    other = next(server for server in servers if server is not holder)
    client, _ = await join(nginx, sid, token)
    direct = Api(other.base_url)
    try:
        refused = await direct.post(f"/api/v1/sessions/{sid}/execute", {"code": "x"})
        assert refused.status == 503, refused.body
        assert refused.json["error"]["code"] == "session_moving"
        assert "moving to another server" in refused.json["error"]["message"]
        assert refused.headers.get("Retry-After") == "1"
        conn = await websocket_connect(other.base_url.replace("http", "ws") + f"/ws/sessions/{sid}")
        hello = {"session_id": sid, "client_id": "a", "display_name": "Ada", "host_token": token}
        await conn.write_message(json.dumps({"type": "join_session", "data": hello}))
        while await conn.read_message() is not None:
            pass
        conn.close()
        assert conn.close_code == 4503, (conn.close_code, conn.close_reason)
        # The Yjs socket alike (before any ticket is looked at: the session is not here).
        yjs = await websocket_connect(other.base_url.replace("http", "ws") + f"/ws/yjs/{sid}")
        while await yjs.read_message() is not None:
            pass
        yjs.close()
        assert yjs.close_code == 4503, (yjs.close_code, yjs.close_reason)
        # While someone is connected to it on its driver, it stays there.
        await asyncio.sleep(2)
        assert (await direct.post(f"/api/v1/sessions/{sid}/execute", {"code": "x"})).status == 503
        await client.aclose()
        body = await run(direct, sid, "x")
        assert body["outputs"][0]["data"]["text/plain"] == "'kept'"
        assert driver(servers, sid) is other
        assert f"session {sid}: handed over" in holder.log.read_text()
    finally:
        direct.close()
        api.close()
